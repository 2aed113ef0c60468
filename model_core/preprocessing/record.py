"""What preprocessing did to one modality, exactly enough to map prepared indices back to native ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_core.studies.geometry import AxisMap, Size3


@dataclass(frozen=True)
class ModalityRecord:
    """Everything done to one modality, enough to map prepared indices back to native ones exactly.

    Attributes:
        modality: ``"dce"``, ``"dwi"`` or ``"t2"``.
        reference: which Study volume defines the native grid (``"dce[0]"``, ``"dwi[b=800]"``, ``"t2"``).
        native_shape: spatial shape of that volume's array.
        native_affine: its 4x4 voxel -> RAS mm affine (nested tuples).
        crop_start, crop_stop: the crop box in native voxels (``stop`` exclusive).
        shape: spatial shape of the prepared array (after any resampling of the crop).
        channels: C of the prepared array.
        masked: whether voxels outside the breast mask were zeroed.
        norm_mean, norm_std: the standardisation (one value, or one per channel).
        steps: a human-readable list of what was done.
        extra: modality details (phase count and weights, b-value, resampling factors).
    """

    modality: str
    reference: str
    native_shape: Size3
    native_affine: tuple[tuple[float, ...], ...]
    crop_start: Size3
    crop_stop: Size3
    shape: Size3
    channels: int
    masked: bool
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    steps: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def affine(self) -> np.ndarray:
        """The reference volume's affine (voxel -> RAS mm), float64 (4, 4)."""
        return np.asarray(self.native_affine, dtype=np.float64)

    @property
    def crop_shape(self) -> Size3:
        return tuple(b - a for a, b in zip(self.crop_start, self.crop_stop, strict=True))  # type: ignore[return-value]

    def index_map(self) -> AxisMap:
        """Prepared index -> native index (un-resample, then un-crop)."""
        return AxisMap.corner_zoom(self.crop_shape, self.shape).then(AxisMap.shift(self.crop_start))

    @property
    def prepared_affine(self) -> np.ndarray:
        """Voxel -> RAS mm affine of the prepared array's grid."""
        return self.affine @ self.index_map().matrix()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("native_shape", "crop_start", "crop_stop", "shape", "norm_mean", "norm_std", "steps"):
            d[k] = list(d[k])
        d["native_affine"] = [list(r) for r in self.native_affine]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModalityRecord:
        kw = dict(d)
        for k in ("native_shape", "crop_start", "crop_stop", "shape", "norm_mean", "norm_std", "steps"):
            kw[k] = tuple(kw[k])
        kw["native_affine"] = tuple(tuple(float(v) for v in r) for r in kw["native_affine"])
        return cls(**kw)
