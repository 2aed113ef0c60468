"""Checks shared by every reader: limits, header sanity, voxel sanity and study-level geometry.

Every check raises :class:`~model_core.errors.StudyReadError` (or :class:`~model_core.errors.GeometryError`)
with a message naming the file and the failed check. :func:`reading` turns any exception a third-party
library raises at the reader boundary into a ``StudyReadError`` that keeps the original as ``__cause__``.

Conventions: shapes are spatial ``(X, Y, Z)`` in the file's own axis order unless stated; affines are 4x4
voxel-index -> mm (RAS+ once a reader is done with them).
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from model_core.errors import GeometryError, StudyReadError
from model_core.studies.study import Study, Volume

logger = logging.getLogger(__name__)

MAX_ANISOTROPY = 50.0
"""Largest ratio between a volume's voxel sizes (real MR stays below about 15)."""

DEFAULT_MAX_BYTES = 1 << 30
"""Default cap on one volume's float32 size in memory (1 GiB), checked from the header before any read."""

# Everything the libraries were seen to raise on bad input, plus the
# standard-library decoders we call ourselves. Library-specific classes are added by each reader.
BOUNDARY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    ArithmeticError,
    AttributeError,
    TypeError,
    NotImplementedError,
    MemoryError,
    RuntimeError,
    IndexError,
    KeyError,
    LookupError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True)
class ReadLimits:
    """Limits applied before any voxel is read.

    Attributes:
        max_bytes: cap on ``prod(shape) * 4`` (the float32 array one volume becomes), default 1 GiB.
        max_dim: largest accepted size of one spatial axis.
        min_dim: smallest accepted size of one spatial axis (2: a single slice is not a volume).
        max_channels: largest accepted 4th axis (phases, b-values, ...).
        max_spacing_mm: voxel sizes must lie in ``(0, max_spacing_mm]``.
        nonfinite: ``"reject"`` (default) refuses any NaN/Inf voxel; ``"zero"`` sets them to 0 and records
            the count in ``meta["nonfinite_zeroed"]``.
        worker_timeout_s: wall-clock limit for one read in the isolating child process (NRRD/MHA/MHD).
        max_files: most files scanned in one DICOM folder.
        max_phases: most DCE phases in one study (checked before any phase is read from a manifest).
        max_b_values: most DWI b-values in one study.
        max_study_bytes: cap on the float32 bytes of all volumes of one study together (default 4 GiB),
            checked as each volume is read.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_dim: int = 4096
    min_dim: int = 2
    max_channels: int = 1024
    max_spacing_mm: float = 20.0
    nonfinite: Literal["reject", "zero"] = "reject"
    worker_timeout_s: float = 120.0
    max_files: int = 20000
    max_phases: int = 32
    max_b_values: int = 16
    max_study_bytes: int = 4 << 30


DEFAULT_LIMITS = ReadLimits()


def _short(text: object, limit: int = 300) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@contextmanager
def reading(path: object, what: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Re-raise any library exception inside the block as ``StudyReadError(path, what: Type: msg)``."""
    try:
        yield
    except StudyReadError:
        raise
    except (*BOUNDARY_ERRORS, *extra) as exc:
        raise StudyReadError(path, f"{what}: {type(exc).__name__}: {_short(exc)}") from exc


def confined(path: Path, root: Path, who: object, what: str) -> Path:
    """``path`` with every link followed, refused unless it stays inside the folder ``root``.

    Raises:
        StudyReadError: naming ``who``, when ``path`` resolves outside ``root`` (a link leaving the study
            folder) or cannot be resolved (a symlink loop).
    """
    try:
        base = root.resolve()
        target = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise StudyReadError(who, f"{what}: cannot resolve {path.name!r} (symlink loop?): {exc}") from exc
    if not target.is_relative_to(base):
        raise StudyReadError(who, f"{what}: {path.name!r} leaves the study folder (leads outside it); refused")
    return target


def check_shape(path: object, shape: Sequence[int], limits: ReadLimits = DEFAULT_LIMITS) -> tuple[int, ...]:
    """Validate a header shape ``(X, Y, Z)`` or ``(X, Y, Z, C)``; trailing singleton axes are dropped.

    Returns the approved shape (3 or 4 axes). Also enforces the float32 byte cap.
    """
    dims = [int(s) for s in shape]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) not in (3, 4):
        raise StudyReadError(
            path,
            f"wrong dimensionality: {len(dims)}-D shape {tuple(dims)}; expected 3-D "
            "(or 4-D with phases/b-values on the last axis)",
        )
    for axis, n in enumerate(dims[:3]):
        if not limits.min_dim <= n <= limits.max_dim:
            what = "a single 2-D slice is not a volume" if n == 1 else "size out of range"
            raise StudyReadError(
                path,
                f"{what}: axis {axis} has {n} voxels (accepted {limits.min_dim}.."
                f"{limits.max_dim}); shape {tuple(dims)}",
            )
    if len(dims) == 4 and not 1 <= dims[3] <= limits.max_channels:
        raise StudyReadError(path, f"4th axis has {dims[3]} entries (accepted 1..{limits.max_channels})")
    check_nbytes(path, math.prod(dims), limits)
    return tuple(dims)


def check_nbytes(path: object, n_voxels: int, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse volumes whose float32 array would exceed ``limits.max_bytes`` (checked before reading)."""
    nbytes = int(n_voxels) * 4
    if nbytes > limits.max_bytes:
        raise StudyReadError(
            path,
            f"too large: header declares {n_voxels} voxels = {nbytes / 2**20:.0f} MiB "
            f"as float32, above the cap of {limits.max_bytes / 2**20:.0f} MiB",
        )


def check_spacing(path: object, spacing: Sequence[float], limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Voxel sizes (mm) must be finite and in ``(0, max_spacing_mm]``."""
    for axis, s in enumerate(spacing):
        if not (math.isfinite(float(s)) and 0.0 < float(s) <= limits.max_spacing_mm):
            raise StudyReadError(
                path,
                f"voxel spacing {float(s)!r} mm on axis {axis} is not in (0, {limits.max_spacing_mm}] mm",
            )


def check_affine(path: object, affine: np.ndarray, limits: ReadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Validate a 4x4 voxel -> mm affine: finite, last row (0,0,0,1), sane spacing, well conditioned.

    Returns it as float64. "Well conditioned" means the three columns are not close to parallel
    (``|det| >= 1e-3 * prod(column norms)``), so the closest-axis reorientation is unambiguous.
    """
    with reading(path, "invalid affine"):
        a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise StudyReadError(path, f"affine has shape {a.shape}, expected (4, 4)")
    if not np.all(np.isfinite(a)):
        raise StudyReadError(path, f"affine is not finite: {a.tolist()}")
    if not np.allclose(a[3], (0.0, 0.0, 0.0, 1.0)):
        raise StudyReadError(path, f"affine last row is {a[3].tolist()}, expected [0, 0, 0, 1]")
    norms = np.linalg.norm(a[:3, :3], axis=0)
    check_spacing(path, norms, limits)
    if float(norms.max()) > MAX_ANISOTROPY * float(norms.min()):
        raise StudyReadError(
            path, f"absurd geometry: voxel sizes {norms.round(4).tolist()} mm differ by more than "
            f"{MAX_ANISOTROPY:g}x between axes"
        )
    det = float(np.linalg.det(a[:3, :3]))
    if not abs(det) >= 1e-3 * float(np.prod(norms)):
        raise StudyReadError(
            path,
            f"affine is singular or degenerate (det {det:.3g}, column norms {norms.round(4).tolist()})",
        )
    if float(np.abs(a[:3, 3]).max()) > 1e6:
        raise StudyReadError(path, f"affine origin {a[:3, 3].tolist()} mm is absurd (|x| > 1e6 mm)")
    return a


def check_finite(path: object, data: np.ndarray, limits: ReadLimits = DEFAULT_LIMITS) -> int:
    """Apply the non-finite policy in place; returns the number of voxels zeroed (0 under "reject")."""
    finite = np.isfinite(data)
    if finite.all():
        return 0
    n_bad = int(data.size - np.count_nonzero(finite))
    if limits.nonfinite == "zero":
        data[~finite] = 0.0
        logger.warning("%s: %d non-finite voxels set to 0", path, n_bad)
        return n_bad
    n_nan = int(np.count_nonzero(np.isnan(data)))
    raise StudyReadError(
        path,
        f"{n_bad} non-finite voxels ({n_nan} NaN, {n_bad - n_nan} Inf) of {data.size}; "
        "refused (ReadLimits.nonfinite='reject')",
    )


def check_volume(vol: Volume, limits: ReadLimits = DEFAULT_LIMITS) -> Volume:
    """Final check on a reader's output: float32, 3-D or 4-D, finite, valid affine."""
    if vol.data.dtype != np.float32:
        raise StudyReadError(vol.source, f"internal: volume dtype {vol.data.dtype}, expected float32")
    if vol.data.ndim not in (3, 4):
        raise StudyReadError(vol.source, f"internal: volume has {vol.data.ndim} axes")
    check_affine(vol.source, vol.affine, limits)
    if not np.isfinite(vol.data).all():
        raise StudyReadError(vol.source, "internal: non-finite voxels after reading")
    return vol


def check_same_geometry(volumes: Sequence[Volume], what: str, atol_mm: float = 1e-3) -> None:
    """Raise :class:`GeometryError` naming both files when two volumes do not share one grid."""
    if not volumes:
        return
    ref = volumes[0]
    for other in volumes[1:]:
        if ref.same_grid(other, atol_mm=atol_mm):
            continue
        if ref.spatial_shape != other.spatial_shape:
            detail = f"shape {ref.spatial_shape} vs {other.spatial_shape}"
        else:
            diff = float(np.abs(ref.affine - other.affine).max())
            detail = f"affines differ by up to {diff:.4g} mm"
        raise GeometryError(
            other.source, f"{what} must share one grid, but it differs from {ref.source}: {detail}"
        )


def check_study_counts(path: object, n_phases: int, n_b_values: int, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse more DCE phases or DWI b-values than the limits allow (before reading them)."""
    if n_phases > limits.max_phases:
        raise StudyReadError(path, f"{n_phases} DCE phases, above the limit of {limits.max_phases} "
                                   "(raise ReadLimits.max_phases)")
    if n_b_values > limits.max_b_values:
        raise StudyReadError(path, f"{n_b_values} DWI b-values, above the limit of {limits.max_b_values} "
                                   "(raise ReadLimits.max_b_values)")


class StudyBudget:
    """Running total of a study's float32 bytes; :meth:`add` refuses the volume that passes the cap."""

    def __init__(self, path: object, limits: ReadLimits = DEFAULT_LIMITS) -> None:
        self.path, self.limits, self.total = path, limits, 0

    def add(self, vol: Volume) -> Volume:
        self.total += int(vol.data.size) * 4
        if self.total > self.limits.max_study_bytes:
            raise StudyReadError(
                self.path, f"the study's volumes take more than {self.limits.max_study_bytes / 2**30:.1f} GiB "
                f"as float32 (reached at {vol.source}); raise ReadLimits.max_study_bytes to read it"
            )
        return vol


def check_not_constant(vol: Volume) -> None:
    """Refuse a blank or constant image: every voxel the same value carries nothing the model can judge."""
    if vol.data.size and float(vol.data.min()) == float(vol.data.max()):
        raise StudyReadError(
            vol.source, f"every voxel is {float(vol.data.flat[0]):g}: a blank or constant image, nothing to analyse"
        )


def validate_study(study: Study, limits: ReadLimits = DEFAULT_LIMITS) -> Study:
    """Study-level checks: phase / b-value counts and the study's total size (StudyReadError), DCE phases
    share one grid (else GeometryError); a DWI grid mismatch is logged."""
    where = study.study_id or "study"
    check_study_counts(where, len(study.dce or []), len(study.dwi), limits)
    budget = StudyBudget(where, limits)
    for vol in [*(study.dce or []), *study.dwi.values(), *(v for v in (study.t2, study.t1) if v is not None)]:
        budget.add(vol)
        check_not_constant(vol)
    if study.dce:
        check_same_geometry(study.dce, "DCE phases")
    if len(study.dwi) > 1:
        vols = list(study.dwi.values())
        if not all(vols[0].same_grid(v) for v in vols[1:]):
            logger.warning("%s: DWI b-value images do not share one grid", study.study_id or "study")
    return study
