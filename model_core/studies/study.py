"""The ``Study`` object: one patient's multiparametric breast MRI, as read from disk.

Coordinate conventions
----------------------
* Every :class:`Volume` holds a float32 array indexed ``(i, j, k)`` (3-D) or ``(C, i, j, k)`` and a 4x4
  ``affine`` mapping voxel indices ``(i, j, k, 1)`` to **RAS+ millimetres** (x increases to the patient's
  Right... precisely: the nibabel convention, +x = Right, +y = Anterior, +z = Superior).
* Readers reorient arrays to the closest canonical RAS+ axis order (permutations and flips only, no
  resampling), so for an axial breast study ``i`` runs right-left across both breasts, ``j`` anterior-
  posterior and ``k`` over slices. The affine always stays exact; ``meta["reorientation"]`` records what
  was done to the file's own axis order.
* ``spacing`` is derived from the affine (column norms), in mm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("dce", "dwi", "t2", "t1")


@dataclass
class Volume:
    """One image volume with its geometry.

    Attributes:
        data: float32 array ``(X, Y, Z)`` (or ``(C, X, Y, Z)`` for multi-channel data).
        affine: float64 ``(4, 4)`` voxel-index -> RAS+ mm.
        source: where it came from (file path, DICOM SeriesInstanceUID, "phantom", ...).
        meta: free-form, JSON-serialisable metadata (series description, b-value, phase index, ...).
    """

    data: np.ndarray
    affine: np.ndarray
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """The last three axes of ``data``."""
        return tuple(int(s) for s in self.data.shape[-3:])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (i, j, k), from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when both volumes share spatial shape and affine (within ``atol_mm``)."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm)
        )


@dataclass
class RoleDecision:
    """Why one input (file or DICOM series) was given a role, for the reader's report."""

    source: str
    role: str  # "dce", "dwi", "t2", "t1" or "ignored"
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClinicalInfo:
    """Optional clinical fields. Never holds patient identifiers."""

    birads: str | None = None  # "1", "2", "3", "4", "4a", "4b", "4c", "5", "6"
    age: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_birads4(self) -> bool:
        return self.birads is not None and str(self.birads).lower().startswith("4")


@dataclass
class Study:
    """One multiparametric study.

    Attributes:
        dce: DCE phases in temporal order. When ``dce_is_subtraction`` is False: ``[pre, post1, ...]``
            (so 6 or 7 volumes for 5 or 6 post-contrast phases); when True: ready subtraction images
            ``[sub1, ...]``. All phases share one grid. ``None`` when absent.
        dwi: DWI images keyed by b-value (s/mm^2). Empty when absent.
        t2: T2-weighted volume or ``None``.
        t1: optional non-contrast T1 (breast mask) or ``None``.
        clinical: BI-RADS, age and other fields.
        decisions: the reader's report: which input went to which role and why.
        study_id: a non-identifying label (folder name, phantom id).
    """

    dce: list[Volume] | None = None
    dce_is_subtraction: bool = False
    dwi: dict[float, Volume] = field(default_factory=dict)
    t2: Volume | None = None
    t1: Volume | None = None
    clinical: ClinicalInfo = field(default_factory=ClinicalInfo)
    decisions: list[RoleDecision] = field(default_factory=list)
    study_id: str = ""

    @property
    def modalities(self) -> tuple[str, ...]:
        """Model modalities present, in model order, e.g. ``("dce", "t2")``."""
        present = []
        if self.dce:
            present.append("dce")
        if self.dwi:
            present.append("dwi")
        if self.t2 is not None:
            present.append("t2")
        return tuple(present)

    @property
    def highest_b(self) -> float | None:
        return max(self.dwi) if self.dwi else None

    def without(self, *roles: str) -> Study:
        """A shallow copy with the named roles removed (``"dce"``, ``"dwi"``, ``"t2"``, ``"t1"``)."""
        changes: dict[str, Any] = {}
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
            changes[role] = {} if role == "dwi" else None
        return dataclasses.replace(self, **changes)
