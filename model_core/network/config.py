"""Model configuration: a frozen dataclass plus named presets.

``MomeConfig()`` with no arguments is the paper's base model (docs/model.md, *Network*). Spatial sizes are canvas
sizes ``(X, Y, Z)`` per modality; every axis must be a multiple of 16 (the tokenizer maps n -> n/16).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model_core.errors import BudgetError, ConfigError, known_fields

MODALITIES: tuple[str, str, str] = ("dce", "dwi", "t2")
"""Model call order. Branch A = DCE (with the CLS token), B = DWI, C = T2."""

BRANCH_OF: dict[str, str] = {"dce": "A", "dwi": "B", "t2": "C"}

Size3 = tuple[int, int, int]

_BASE_SIZES: dict[str, Size3] = {"dce": (384, 256, 128), "dwi": (256, 128, 32), "t2": (384, 256, 48)}
_BASE_CHANS: dict[str, int] = {"dce": 6, "dwi": 1, "t2": 1}


MAX_PARAMETERS = int(os.environ.get("MOME_MAX_PARAMETERS", 2_000_000_000))
"""Largest model (estimated parameter count) a config may ask for; env ``MOME_MAX_PARAMETERS`` raises it.
The paper's base model has about 0.3 billion."""

MAX_TOKENS = int(os.environ.get("MOME_MAX_TOKENS", 65_536))
"""Most patch tokens over the three canvases (the base model has 6,144); env ``MOME_MAX_TOKENS``."""

MAX_DEPTH = 256
"""Most encoder layers."""


def _check_types(cfg: Any) -> None:
    """Integer fields must be JSON integers (not booleans or strings); float fields numbers."""
    for name in ("embed_dim", "num_heads", "ffn_dim", "depth", "split_layers", "num_experts",
                 "slots_per_expert", "num_classes"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name} must be an integer, got {v!r}")
    for name in ("adapter_ratio", "drop_path_rate", "ln_eps"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v!r}")
    if not isinstance(cfg.sizes, Mapping) or not isinstance(cfg.in_chans, Mapping):
        raise ConfigError("sizes and in_chans must be objects keyed by modality")
    if cfg.depth > MAX_DEPTH:
        raise ConfigError(f"depth {cfg.depth} is above the limit of {MAX_DEPTH} layers")


def _check_budget(cfg: MomeConfig) -> None:
    """Refuse configs whose model or token count would not fit the stated budget (before allocating)."""
    tokens = sum(cfg.num_tokens(m) for m in MODALITIES)
    if tokens > MAX_TOKENS:
        raise BudgetError(f"config asks for {tokens} patch tokens (canvases {dict(cfg.sizes)}), above the "
                          f"limit of {MAX_TOKENS}; set MOME_MAX_TOKENS to raise it")
    n = cfg.estimated_parameters()
    if n > MAX_PARAMETERS:
        raise BudgetError(f"config asks for about {n:,} parameters ({4 * n / 2**30:.1f} GiB as float32), above "
                          f"the limit of {MAX_PARAMETERS:,}; set MOME_MAX_PARAMETERS to raise it")


def _freeze_sizes(sizes: Mapping[str, Any]) -> dict[str, Size3]:
    out: dict[str, Size3] = {}
    for m in MODALITIES:
        if m not in sizes:
            raise ConfigError(f"sizes must name every modality {MODALITIES}; missing {m!r}")
        s = tuple(int(v) for v in sizes[m])
        if len(s) != 3:
            raise ConfigError(f"sizes[{m!r}] must have 3 axes (X, Y, Z), got {s}")
        out[m] = s  # type: ignore[assignment]
    extra = set(sizes) - set(MODALITIES)
    if extra:
        raise ConfigError(f"unknown modalities in sizes: {sorted(extra)}")
    return out


@dataclass(frozen=True)
class MomeConfig:
    """Hyper-parameters of a MOME network.

    Attributes:
        embed_dim: token width D (768 in the paper).
        num_heads: attention heads; ``embed_dim % num_heads == 0``.
        ffn_dim: hidden width of the frozen FFN (3072).
        depth: encoder layers (12).
        split_layers: layers ``0 .. split_layers-1`` use per-modality attention and adapters; the rest
            use joint attention and the shared soft-MoE adapter (9).
        adapter_ratio: adapter hidden = ``int(adapter_ratio * embed_dim)`` (0.25).
        num_experts, slots_per_expert: soft-MoE size (128 x 1).
        in_chans: input channels per modality (DCE 6, DWI 1, T2 1).
        sizes: canvas ``(X, Y, Z)`` per modality.
        num_classes: head outputs (2; class 1 = positive).
        drop_path_rate: maximum stochastic-depth rate, linear over depth (0.15; training only).
        stem_widths: widths of the first two tokenizer convs (64, 128).
        ln_eps: LayerNorm / InstanceNorm epsilon (1e-5).
    """

    embed_dim: int = 768
    num_heads: int = 12
    ffn_dim: int = 3072
    depth: int = 12
    split_layers: int = 9
    adapter_ratio: float = 0.25
    num_experts: int = 128
    slots_per_expert: int = 1
    in_chans: Mapping[str, int] = field(default_factory=lambda: dict(_BASE_CHANS))
    sizes: Mapping[str, Size3] = field(default_factory=lambda: dict(_BASE_SIZES))
    num_classes: int = 2
    drop_path_rate: float = 0.15
    stem_widths: tuple[int, int] = (64, 128)
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        _check_types(self)
        object.__setattr__(self, "sizes", _freeze_sizes(self.sizes))
        chans = {m: int(self.in_chans[m]) for m in MODALITIES if m in self.in_chans}
        if set(chans) != set(MODALITIES) or set(self.in_chans) != set(MODALITIES):
            raise ConfigError(f"in_chans must name exactly {MODALITIES}, got {dict(self.in_chans)}")
        object.__setattr__(self, "in_chans", chans)
        object.__setattr__(self, "stem_widths", tuple(int(w) for w in self.stem_widths))
        if self.num_heads < 1 or self.ffn_dim < 1 or self.depth < 1 or min(self.stem_widths, default=0) < 1:
            raise ConfigError("num_heads, ffn_dim, depth and stem_widths must be >= 1")
        if self.embed_dim <= 0 or self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} must be a positive multiple of num_heads {self.num_heads}")
        if not 0 <= self.split_layers <= self.depth:
            raise ConfigError(f"split_layers {self.split_layers} must lie in [0, depth={self.depth}]")
        if self.adapter_dim < 1:
            raise ConfigError(f"adapter_ratio {self.adapter_ratio} gives an empty adapter")
        for m, s in self.sizes.items():
            if any(v <= 0 or v % 16 for v in s):
                raise ConfigError(f"sizes[{m!r}] = {s}: every axis must be a positive multiple of 16")
        if self.num_classes < 1 or self.num_experts < 1 or self.slots_per_expert < 1:
            raise ConfigError("num_classes, num_experts and slots_per_expert must be >= 1")
        if any(c < 1 for c in self.in_chans.values()) or len(self.stem_widths) != 2:
            raise ConfigError("in_chans must be >= 1 and stem_widths must hold two widths")
        _check_budget(self)

    # ----------------------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def adapter_dim(self) -> int:
        return int(self.adapter_ratio * self.embed_dim)

    def grid(self, modality: str) -> Size3:
        """Token grid ``(X/16, Y/16, Z/16)`` of one modality."""
        return tuple(v // 16 for v in self.sizes[modality])  # type: ignore[return-value]

    def num_tokens(self, modality: str) -> int:
        """Patch tokens of one modality (without CLS)."""
        gx, gy, gz = self.grid(modality)
        return gx * gy * gz

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["sizes"] = {m: list(v) for m, v in self.sizes.items()}
        d["in_chans"] = dict(self.in_chans)
        d["stem_widths"] = list(self.stem_widths)
        return d

    def estimated_parameters(self) -> int:
        """An upper estimate of the parameter count, from the config alone (nothing allocated).

        Per layer and branch: attention ``4 D^2``, FFN ``2 D F``, adapters ``2 D a``; soft-MoE experts
        ``E * 2 D a``; tokenizer stems ``27 (c w1 + w1 w2 + w2 D)`` per modality; the head ``D * classes``.
        """
        d, f, a = self.embed_dim, self.ffn_dim, max(self.adapter_dim, 1)
        w1, w2 = self.stem_widths
        per_layer = 3 * (4 * d * d + 2 * d * f + 2 * d * a + 8 * d)
        moe = self.num_experts * (2 * d * a + 2 * d) + self.num_experts * self.slots_per_expert * d
        stems = sum(27 * (c * w1 + w1 * w2 + w2 * d) for c in self.in_chans.values())
        return self.depth * (per_layer + moe) + stems + d * (self.num_classes + 2)

    @classmethod
    def checked_from_dict(cls, d: Any, source: str = "config") -> MomeConfig:
        """:meth:`from_dict` for untrusted input: any malformed value becomes a :class:`ConfigError`.

        Raises:
            ConfigError: naming ``source`` and the problem (``BudgetError`` when too large to build).
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: must be a JSON object, got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except (BudgetError, ConfigError):
            raise
        except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as exc:
            raise ConfigError(f"{source}: invalid value ({type(exc).__name__}: {str(exc)[:200]})") from exc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MomeConfig:
        kw = known_fields(cls, d, ConfigError)
        if "sizes" in kw:
            kw["sizes"] = {m: tuple(v) for m, v in kw["sizes"].items()}
        if "stem_widths" in kw:
            kw["stem_widths"] = tuple(kw["stem_widths"])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __hash__(self) -> int:
        return hash(self.to_json())

    def replace(self, **changes: Any) -> MomeConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str) -> MomeConfig:
        """A named preset: ``base`` (paper), ``demo`` (CPU-friendly), ``fixture`` (parity fixtures),
        ``tiny`` (unit tests)."""
        try:
            return cls(**PRESETS[name])
        except KeyError:
            raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None


PRESETS: dict[str, dict[str, Any]] = {
    "base": {},
    # CPU-friendly: the fixture widths, narrower stems (16, 32: half the cost of a training step) and no
    # stochastic depth (trained from scratch on a few hundred phantoms), on canvases that hold the phantom
    # world's breast crop of every sequence at about native resolution (crop X 122-159, Y 22-56 voxels:
    # Y 48 instead of 96 halves the tokenizer cost, which is mostly zero padding otherwise). The DWI canvas
    # holds the breast crop (``mome train --crop dce dwi t2``, recorded in the demo model's card); an
    # uncropped DWI would need a 128 x 96 canvas for the whole field of view.
    "demo": {
        "embed_dim": 64,
        "num_heads": 4,
        "ffn_dim": 256,
        "num_experts": 32,
        "stem_widths": (16, 32),
        "drop_path_rate": 0.0,
        "sizes": {"dce": (128, 48, 48), "dwi": (128, 48, 32), "t2": (128, 48, 32)},
    },
    # Exactly the parity-fixture model (../shared/fixtures/mome_parity).
    "fixture": {
        "embed_dim": 64,
        "num_heads": 4,
        "ffn_dim": 256,
        "sizes": {"dce": (96, 64, 32), "dwi": (64, 32, 16), "t2": (96, 64, 16)},
    },
    # Unit tests: every structural feature, minimal cost.
    "tiny": {
        "embed_dim": 32,
        "num_heads": 2,
        "ffn_dim": 64,
        "depth": 4,
        "split_layers": 2,
        "num_experts": 8,
        "stem_widths": (8, 16),
        "sizes": {"dce": (32, 32, 16), "dwi": (32, 16, 16), "t2": (32, 32, 16)},
    },
}
