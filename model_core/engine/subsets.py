"""The subset cache: every modality encoded once, any modality subset evaluated from the cache.

Layers ``0 .. split_layers-1`` attend within each modality, so each modality's output after them (its
*segment*) does not depend on the others (docs/model.md, *Missing modalities*). :func:`build_cache` runs
:meth:`Mome.encode` once per batch of canvases (one row per TTA version) and keeps the segments; any subset
then costs only the fusion layers (:meth:`Mome.fuse`): a toggle or a Shapley value never re-runs a
tokenizer.

Subsets are tuples of modality names in model order (``("dce", "t2")``); the empty tuple is the CLS-only
forward, the model's prior (Shapley's ``v(∅)`` is by default the card's reference value instead,
:mod:`model_core.engine.reference`). Their string keys (JSON, CLI) are ``"dce+t2"`` and ``"none"``.

Segments (``D`` = embed_dim, ``V`` = number of versions):

* ``cls``: ``(1, 1, D)``, the CLS token after the split layers *without* DCE (CLS alone in its segment).
  It depends on no input, so one row serves every version; it is the A segment of every DCE-free subset.
* ``dce``: ``(V, 1 + N_dce, D)``, CLS first, the A segment with DCE (its CLS has attended to DCE).
* ``dwi``: ``(V, N_dwi, D)``; ``t2``: ``(V, N_t2, D)``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model_core.engine.progress import Steps
from model_core.network.config import MODALITIES
from model_core.network.mome import Mome, Segments

log = logging.getLogger(__name__)

Subset = tuple[str, ...]
Version = tuple[int, int]

SUBSETS: tuple[Subset, ...] = tuple(
    s for r in range(len(MODALITIES) + 1) for s in itertools.combinations(MODALITIES, r)
)
"""All 8 subsets: ``()``, the 3 singles, the 3 pairs, the full set (model order inside each)."""

PRIOR_KEY = "none"
"""String key of the empty subset (the CLS-only prior)."""


def canonical(subset: str | Iterable[str]) -> Subset:
    """A subset as a tuple in model order. Accepts ``"dce+t2"``, ``"none"``, ``""`` or an iterable of names.

    Raises:
        ValueError: unknown or repeated modality names.
    """
    if isinstance(subset, str):
        names = [] if subset in ("", PRIOR_KEY) else subset.split("+")
    else:
        names = list(subset)
    unknown = set(names) - set(MODALITIES)
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"bad modality subset {subset!r}: names must be distinct and among {MODALITIES}")
    return tuple(m for m in MODALITIES if m in names)


def subset_key(subset: str | Iterable[str]) -> str:
    """``("dce", "t2") -> "dce+t2"``; ``() -> "none"``."""
    s = canonical(subset)
    return "+".join(s) if s else PRIOR_KEY


@dataclass(eq=False)
class SubsetCache:
    """Cached segments of one study (see the module docstring for shapes).

    Attributes:
        cls: ``(1, 1, D)`` CLS-only segment (the "no DCE" A segment).
        segments: modality -> segment for every modality present (``dce`` includes the CLS row).
        versions: the TTA version ``(pad op, flip op)`` of each row (``(0, -1)``: centred, unflipped).
    """

    cls: torch.Tensor
    segments: dict[str, torch.Tensor]
    versions: tuple[Version, ...]

    @property
    def n_versions(self) -> int:
        return len(self.versions)

    @property
    def modalities(self) -> Subset:
        """Modalities present, in model order."""
        return tuple(m for m in MODALITIES if m in self.segments)

    def available(self, subset: str | Iterable[str]) -> bool:
        """Whether every modality of ``subset`` is in the cache."""
        return set(canonical(subset)) <= set(self.segments)

    def segments_for(self, subset: str | Iterable[str], start: int = 0, stop: int | None = None) -> Segments:
        """``[A, B | None, C | None]`` for :meth:`Mome.fuse`, rows ``start:stop`` (the CLS-only A segment
        is expanded to the same rows)."""
        s = canonical(subset)
        if not self.available(s):
            raise ValueError(f"subset {subset_key(s)} needs modalities not in the cache ({self.modalities})")
        stop = self.n_versions if stop is None else stop
        n = stop - start
        a = self.segments["dce"][start:stop] if "dce" in s else self.cls.expand(n, -1, -1)
        return [a] + [self.segments[m][start:stop] if m in s else None for m in MODALITIES[1:]]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.cls, *self.segments.values()))


def cls_segment(model: Mome, device: torch.device | str | None = None) -> torch.Tensor:
    """The CLS-only segment ``(1, 1, D)`` after the split layers (no input needed)."""
    with torch.inference_mode():
        seg = model.encode(batch_size=1)[0]
    assert seg is not None
    return seg if device is None else seg.to(device)


def encode_batch(model: Mome, inputs: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """Encode one batch of canvases ``modality -> (B, C, X, Y, Z)`` (absent: missing or ``None``).

    Returns modality -> segment for the modalities given (``dce`` with its CLS row).
    """
    x = {m: inputs.get(m) for m in MODALITIES}
    with torch.inference_mode():
        segs = model.encode(x["dce"], x["dwi"], x["t2"])
    return {m: seg for m, seg in zip(MODALITIES, segs, strict=True) if x[m] is not None and seg is not None}


def build_cache(
    model: Mome,
    batches: Iterable[tuple[Sequence[Version], Mapping[str, torch.Tensor | None]]],
    *,
    steps: Steps | None = None,
) -> SubsetCache:
    """Encode every batch once and keep the segments.

    Args:
        model: the network (eval mode).
        batches: ``(versions, tensors)`` pairs, ``tensors`` = modality -> ``(B, C, X, Y, Z)``, ``B =
            len(versions)``; e.g. from :func:`model_core.preprocessing.tta.iter_tta_batches`.
        steps: progress/stop counter; checked before and advanced after each batch (stage ``"encode"``).
    """
    parts: dict[str, list[torch.Tensor]] = {}
    versions: list[Version] = []
    it = iter(batches)
    while True:
        if steps is not None:
            steps.check("encode")
        try:
            vers, tensors = next(it)
        except StopIteration:
            break
        for m, seg in encode_batch(model, tensors).items():
            parts.setdefault(m, []).append(seg)
        versions.extend(tuple(v) for v in vers)  # type: ignore[misc]
        if steps is not None:
            steps.advance("encode")
    if not versions:
        raise ValueError("build_cache needs at least one batch")
    segments = {m: torch.cat(p) if len(p) > 1 else p[0] for m, p in parts.items()}
    device = next(iter(segments.values())).device if segments else None
    return SubsetCache(cls_segment(model, device), segments, tuple(versions))


def subset_logits(model: Mome, cache: SubsetCache, subset: str | Iterable[str], chunk: int = 8) -> torch.Tensor:
    """Logits ``(V, num_classes)`` of one subset for every cached version (fusion layers only).

    The empty subset runs once (it depends on no input) and is repeated ``V`` times. ``chunk`` bounds how
    many versions go through the fusion layers at once.
    """
    s = canonical(subset)
    with torch.inference_mode():
        if not s:
            return model.fuse([cache.cls, None, None]).float().expand(cache.n_versions, -1)
        out = [model.fuse(cache.segments_for(s, i, min(i + chunk, cache.n_versions))).float()
               for i in range(0, cache.n_versions, max(1, chunk))]
    return torch.cat(out) if len(out) > 1 else out[0]


def subset_probabilities(model: Mome, cache: SubsetCache, subset: str | Iterable[str], chunk: int = 8) -> torch.Tensor:
    """Malignancy probability ``softmax(logits)[:, 1]`` of one subset, ``(V,)`` float32, one per version."""
    return subset_logits(model, cache, subset, chunk).softmax(-1)[:, 1]


def subset_values(
    model: Mome,
    cache: SubsetCache,
    subsets: Iterable[str | Iterable[str]] = SUBSETS,
    *,
    chunk: int = 8,
    steps: Steps | None = None,
) -> dict[str, np.ndarray | None]:
    """Per-version probabilities of each subset: ``key -> float64 (V,)``, ``None`` where the subset needs a
    modality the study lacks. Each computable subset is one step (stage ``"subsets"``)."""
    out: dict[str, np.ndarray | None] = {}
    for sub in subsets:
        key = subset_key(sub)
        if not cache.available(sub):
            out[key] = None
            continue
        if steps is not None:
            steps.check(f"subset {key}")
        out[key] = subset_probabilities(model, cache, sub, chunk).double().cpu().numpy()
        if steps is not None:
            steps.advance("subsets")
    return out


def n_available(cache_modalities: Iterable[str], subsets: Iterable[str | Iterable[str]] = SUBSETS) -> int:
    """How many of ``subsets`` are computable with the modalities present (for step planning)."""
    have = set(cache_modalities)
    return sum(1 for s in subsets if set(canonical(s)) <= have)


@dataclass(frozen=True)
class Scores:
    """What :meth:`Predictor.subsets` computes from a subset cache.

    Attributes:
        subsets: subset key -> probability averaged over the TTA versions (``None``: a modality is absent).
        shapley: modality -> exact Shapley value; shapley_check: the efficiency check.
        modalities: the modalities present; tta: the full set's per-version spread.
        shapley_empty: which ``v(∅)`` the Shapley values used (:func:`model_core.engine.reference.empty_value`).
    """

    subsets: dict[str, float | None]
    shapley: dict[str, float]
    shapley_check: dict[str, Any]
    modalities: tuple[str, ...]
    tta: dict[str, Any]
    shapley_empty: dict[str, Any] = field(default_factory=dict)

    @property
    def probability(self) -> float:
        p = self.subsets[subset_key(self.modalities)]
        assert p is not None
        return p
