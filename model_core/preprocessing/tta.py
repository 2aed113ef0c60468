"""Test-time augmentation, the val/test transform and training augmentation (docs/model.md, *Canvas and TTA*).

A *version* is a pair ``(n, m)``: pad op n (0..8) then flip op m (0..5), the same pair for every modality,
each modality on its own canvas. The paper averages the malignancy probability over all 54 versions
(:data:`TTA_VERSIONS`, in the order of the authors' fixture: n outer, m inner). None of them is the plain
unflipped input.

**Interactive subset** (:data:`INTERACTIVE_VERSIONS`): the centred pad with each of the 6 flips,
``(0, 0) ... (0, 5)``. Flips change what the network sees far more than a shift of a few voxels does (the
tokenizer's stride-16 grid makes pads mostly a sub-patch shift), the centred pad is the val/test
placement, and 6 forwards instead of 54 keep a click responsive. Every flip appears exactly once, as in
the full set.

The resize rule is computed once per modality (:func:`fit`) and shared by all versions.
Inputs are mappings ``modality -> (C, X, Y, Z) float32`` (e.g. ``Prepared.arrays``) and canvas sizes
``modality -> (X, Y, Z)`` (e.g. ``MomeConfig.sizes``); outputs are numpy canvases or torch tensors
``(B, C, X, Y, Z)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from model_core.preprocessing.canvas import (
    FLIP_OPS,
    NUM_PAD_OPS,
    CanvasRecord,
    ResizeMethod,
    apply_resize_rule,
    make_record,
    paste,
    resized_shape,
)

logger = logging.getLogger(__name__)

Version = tuple[int, int]

TTA_VERSIONS: tuple[Version, ...] = tuple((n, m) for n in range(NUM_PAD_OPS) for m in range(len(FLIP_OPS)))
"""The paper's 54 versions ``(pad op, flip op)``, fixture order."""

INTERACTIVE_VERSIONS: tuple[Version, ...] = tuple((0, m) for m in range(len(FLIP_OPS)))
"""The cheap subset for interactive use: centred pad x all 6 flips."""


def tta_versions(kind: str = "full") -> tuple[Version, ...]:
    """``"full"``: the 54 versions; ``"interactive"``: the 6-version subset. (The unflipped centred
    val/test input is :func:`center`, or the version ``(0, -1)`` in the batch helpers.)"""
    if kind == "full":
        return TTA_VERSIONS
    if kind == "interactive":
        return INTERACTIVE_VERSIONS
    raise ValueError(f"unknown TTA kind {kind!r}; use 'full' or 'interactive'")


def _arrays_of(arrays: Any) -> Mapping[str, np.ndarray]:
    return arrays.arrays if hasattr(arrays, "arrays") else arrays


@dataclass(frozen=True)
class Fitted:
    """One modality after the resize rule: ``resized`` float32 ``(C, X', Y', Z')``, shared by all versions."""

    resized: np.ndarray
    input_shape: tuple[int, int, int]
    target: tuple[int, int, int]
    ratio: float | None

    def record(
        self, pad_op: int | None, flip_op: int | None, offset: Sequence[int] | None = None
    ) -> CanvasRecord:
        return make_record(self.input_shape, self.target, self.ratio, pad_op, flip_op, offset)

    def canvas(
        self, pad_op: int | None, flip_op: int | None, offset: Sequence[int] | None = None
    ) -> tuple[np.ndarray, CanvasRecord]:
        rec = self.record(pad_op, flip_op, offset)
        return paste(self.resized, rec), rec


def fit(arrays: Any, sizes: Mapping[str, Sequence[int]], method: ResizeMethod = "exact") -> dict[str, Fitted]:
    """Apply the resize rule to every modality present (``arrays``: mapping or ``Prepared``)."""
    out: dict[str, Fitted] = {}
    for m, a in _arrays_of(arrays).items():
        if a is None:
            continue
        if m not in sizes:
            raise ValueError(f"no canvas size for modality {m!r}")
        target = tuple(int(v) for v in sizes[m])
        resized, r = apply_resize_rule(a, target, method)
        out[m] = Fitted(resized, tuple(a.shape[1:]), target, r)  # type: ignore[arg-type]
    return out


def _flip_of(m: int) -> int | None:
    return None if m < 0 else m


def center(
    arrays: Any, sizes: Mapping[str, Sequence[int]], method: ResizeMethod = "exact"
) -> dict[str, tuple[np.ndarray, CanvasRecord]]:
    """The validation/test transform: resize rule -> centred pad, no flip, per modality."""
    return {m: f.canvas(0, None) for m, f in fit(arrays, sizes, method).items()}


def random_augment(
    rng: np.random.Generator,
    arrays: Any,
    sizes: Mapping[str, Sequence[int]],
    method: ResizeMethod = "exact",
    shared_pad: bool = False,
) -> dict[str, tuple[np.ndarray, CanvasRecord]]:
    """Training augmentation (docs/model.md, *Training recipe*): resize rule -> random pad -> one random flip for all.

    Pad offsets are drawn independently per modality and axis, uniform in ``[0, f_i]`` inclusive (modalities
    in model order dce, dwi, t2); then one flip op is drawn uniformly from the 6 (never identity) and
    applied to every modality. With ``shared_pad`` one fraction ``u`` in ``[0, 1]`` is drawn per axis and
    every modality is offset by ``round(u * f_i)`` of its own free space, so that the same place of the
    study sits at the same relative canvas position in every sequence (not in the paper).
    """
    fitted = fit(arrays, sizes, method)
    offsets: dict[str, tuple[int, ...]] = {}
    shared = rng.random(3) if shared_pad else None
    for m in sorted(fitted, key=lambda k: ("dce", "dwi", "t2").index(k) if k in ("dce", "dwi", "t2") else 9):
        f = fitted[m]
        free = [t - s for t, s in zip(f.target, resized_shape(f.input_shape, f.ratio), strict=True)]
        if shared is None:
            offsets[m] = tuple(int(rng.integers(0, v + 1)) for v in free)
        else:
            offsets[m] = tuple(int(round(float(u) * v)) for u, v in zip(shared, free, strict=True))
    flip = int(rng.integers(0, len(FLIP_OPS)))
    return {m: fitted[m].canvas(None, flip, offsets[m]) for m in fitted}


def tta_canvases(
    fitted: Mapping[str, Fitted], versions: Sequence[Version], device: torch.device | str | None = None
) -> tuple[dict[str, torch.Tensor], list[dict[str, CanvasRecord]]]:
    """A batch of canvases: float32 tensors ``(B, C, X, Y, Z)`` per modality, ``B = len(versions)``.

    Returns the tensors and, per version, the records of each modality (for the inverse).
    Flip ``-1`` in a version means no flip.
    """
    tensors: dict[str, torch.Tensor] = {}
    records: list[dict[str, CanvasRecord]] = [{} for _ in versions]
    for m, f in fitted.items():
        buf = np.zeros((len(versions), f.resized.shape[0], *f.target), dtype=np.float32)
        for b, (n, k) in enumerate(versions):
            rec = f.record(n, _flip_of(k))
            paste(f.resized, rec, out=buf[b])
            records[b][m] = rec
        t = torch.from_numpy(buf)
        tensors[m] = t if device is None else t.to(device)
    return tensors, records


def iter_tta_batches(
    fitted: Mapping[str, Fitted],
    versions: Sequence[Version] = TTA_VERSIONS,
    batch_size: int = 2,
    device: torch.device | str | None = None,
) -> Iterator[tuple[list[Version], dict[str, torch.Tensor], list[dict[str, CanvasRecord]]]]:
    """Yield ``(versions, tensors (B, C, X, Y, Z), records)`` in chunks of ``batch_size``.

    Memory is bounded by the chunk: one paper-size version (DCE 6x384x256x128 + DWI + T2) is ~325 MB of
    float32, so all 54 at once (~17 GB) never exist; the default of 2 keeps canvases under ~0.7 GB.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for i in range(0, len(versions), batch_size):
        chunk = list(versions[i : i + batch_size])
        tensors, records = tta_canvases(fitted, chunk, device)
        yield chunk, tensors, records
