"""The authors' ``.pth`` checkpoints: safe loading, strict loading into :class:`Mome`, config inference.

Safety: ``.pth`` files are opened only with ``torch.load(weights_only=True)`` and an explicit, minimal
allow-list; a file that needs anything else (e.g. a ``__reduce__`` payload) is refused with
:class:`UnsafeCheckpointError` and its code never runs. Our own format is :mod:`model_core.weights.native`;
the BEiT-3 backbone import is :mod:`model_core.weights.beit3`.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_core.errors import CheckpointError, UnsafeCheckpointError
from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.network.multiway import BRANCHES, Multiway

log = logging.getLogger(__name__)

SAFE_GLOBALS: tuple[Any, ...] = (argparse.Namespace,)
"""The only non-tensor classes a ``.pth`` may contain (training scripts store their ``args``)."""

_READ_ERRORS = (RuntimeError, OSError, EOFError, ValueError, AttributeError, TypeError, IndexError, KeyError,
                struct.error, zipfile.BadZipFile, UnicodeDecodeError, MemoryError)
"""What torch.load raises on damaged (but not malicious) files."""

_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict")

StateDict = dict[str, torch.Tensor]


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` and :data:`SAFE_GLOBALS`; never plain unpickling.

    Raises:
        UnsafeCheckpointError: the pickle references anything outside the allow-list.
        CheckpointError: the file is missing or not a readable torch file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{p}: refused: loading it would need unpickling code or classes outside the allow-list "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{p}: not a readable torch checkpoint ({exc.__class__.__name__}: {exc})") from exc


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> StateDict:
    """Find the tensor dict inside a checkpoint object (``state_dict`` / ``model`` / ``module`` wrappers,
    ``module.`` prefixes of DataParallel)."""
    seen = 0
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj) and seen < 4:
        key = next((k for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if key is None:
            break
        obj = obj[key]
        seen += 1
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: no state dict found (looked under {', '.join(_WRAPPER_KEYS)})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: state dict holds non-tensor entries: {bad[:10]}")
    sd = {str(k): v for k, v in obj.items()}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_tensor_dict(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_any(sd_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str]) -> tuple[StateDict, str]:
    if isinstance(sd_or_path, (str, os.PathLike)):
        return unwrap_state_dict(safe_torch_load(sd_or_path), str(sd_or_path)), str(sd_or_path)
    return unwrap_state_dict(sd_or_path, "state dict"), "state dict"


@dataclass
class LoadReport:
    """What a load did. ``tied``/``untied``: frozen multiway modules stored once / with three copies."""

    source: str
    loaded: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    untied: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.source}: {len(self.loaded)} tensors loaded, {len(self.fresh)} fresh, "
                f"{len(self.discarded)} discarded; frozen multiway modules tied {len(self.tied)}, "
                f"untied {len(self.untied)}")


def format_problems(source: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    lines = [f"{source}: does not match the model ({len(missing)} missing, {len(unexpected)} unexpected, "
             f"{len(shapes)} mis-shaped keys)"]
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        for k in keys[:40]:
            lines.append(f"  {title}: {k}")
        if len(keys) > 40:
            lines.append(f"  ... and {len(keys) - 40} more {title} keys")
    return "\n".join(lines)


def _copies_equal(sd: Mapping[str, torch.Tensor], prefix: str, module: Multiway) -> bool:
    for name in module.A.state_dict():
        a = sd[f"{prefix}.A.{name}"]
        if not all(torch.equal(a, sd[f"{prefix}.{w}.{name}"]) for w in BRANCHES[1:]):
            return False
    return True


def load_official_state_dict(
    model: Mome, sd_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str], *, tie_equal: bool = True,
) -> LoadReport:
    """Load an authors'-layout MOME state dict key for key, strictly.

    Args:
        model: the target network (its config must match the checkpoint's widths and canvas sizes).
        sd_or_path: a state dict, a wrapper dict, or a path to the authors' ``.pth``.
        tie_equal: store frozen A/B/C copies once when they are bitwise equal; unequal copies are always
            loaded untied, exactly.
    Raises:
        CheckpointError: listing every missing, unexpected and mis-shaped key (nothing is loaded then).
        UnsafeCheckpointError: the file would need unsafe unpickling.
    """
    sd, source = load_any(sd_or_path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(format_problems(source, missing, unexpected, shapes))
    kinds = [f"{k}: {sd[k].dtype}" for k, v in expected.items()
             if v.is_floating_point() and not (sd[k].is_floating_point() and sd[k].element_size() >= 2)]
    if kinds:
        raise CheckpointError(f"{source}: {len(kinds)} floating-point tensor(s) stored as an integer, boolean "
                              f"or 8-bit type, which would load as wrong weights: {', '.join(kinds[:5])}")
    report = LoadReport(source)
    for name, mw in model.frozen_multiways():
        if tie_equal and _copies_equal(sd, name, mw):
            mw.tie()
            report.tied.append(name)
        else:
            mw.untie()
            report.untied.append(name)
    with torch.no_grad():
        target = model.state_dict(keep_vars=True)
        for k, t in target.items():
            t.copy_(sd[k].to(t.dtype))
    report.loaded = list(expected)
    log.info(report.summary())
    return report


def infer_config(sd: Mapping[str, torch.Tensor], base: MomeConfig | None = None,
                 num_heads: int | None = None) -> MomeConfig:
    """A :class:`MomeConfig` matching an authors'-layout state dict.

    Widths, depth, split point, experts and channels come from tensor shapes; head count and canvas
    sizes cannot be read from shapes and come from ``base`` (default: the paper's base config; head
    count defaults to ``embed_dim // 64``, BEiT's head width, when ``base``'s width differs).
    """
    base = base or MomeConfig()
    try:
        d = sd["head.weight"].shape[1]
        layer_ids = {int(m.group(1)) for k in sd if (m := re.match(r"beit3\.encoder\.layers\.(\d+)\.", k))}
        depth = max(layer_ids) + 1
        split = sum(1 for i in range(depth) if f"beit3.encoder.layers.{i}.MLP_Adapter.A.D_fc1.weight" in sd)
        joint = f"beit3.encoder.layers.{depth - 1}.MLP_Adapter.moe.phi"
        phi = sd[joint] if joint in sd else None
        heads = num_heads or (base.num_heads if base.embed_dim == d else max(d // 64, 1))
        cfg = base.replace(
            embed_dim=d, num_heads=heads,
            ffn_dim=sd["beit3.encoder.layers.0.ffn.A.fc1.weight"].shape[0],
            depth=depth, split_layers=split,
            adapter_ratio=sd["beit3.encoder.layers.0.MLP_Adapter.A.D_fc1.weight"].shape[0] / d
            if split else base.adapter_ratio,
            num_experts=phi.shape[1] if phi is not None else base.num_experts,
            slots_per_expert=phi.shape[2] if phi is not None else base.slots_per_expert,
            in_chans={m: sd[f"beit3.{m}_embed.stem.0.weight"].shape[1] for m in ("dce", "dwi", "t2")},
            stem_widths=(sd["beit3.dce_embed.stem.0.weight"].shape[0], sd["beit3.dce_embed.stem.3.weight"].shape[0]),
            num_classes=sd["head.weight"].shape[0],
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot infer the model configuration from the state dict: {exc}") from exc
    rows = {"A": cfg.num_tokens("dce") + 2, "B": cfg.num_tokens("dwi"), "C": cfg.num_tokens("t2")}
    got = {w: sd.get(f"beit3.encoder.embed_positions.{w}.weight", torch.empty(0, 0)).shape[0] for w in rows}
    if got != rows:
        raise CheckpointError(f"position tables have {got} rows but the canvas sizes {dict(cfg.sizes)} need {rows}; "
                              "pass the canvas sizes the checkpoint was trained with")
    return cfg
