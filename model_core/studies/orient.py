"""Orientation: LPS <-> RAS, closest-canonical RAS+ reorientation, and the napari display mapping.

Conventions
-----------
* An affine maps voxel index ``(i, j, k, 1)`` to world millimetres. RAS+ (nibabel): +x Right, +y Anterior,
  +z Superior. LPS+ (DICOM, ITK/SimpleITK, NRRD "left-posterior-superior"): +x Left, +y Posterior.
  ``ras = diag(-1, -1, 1) @ lps``.
* SimpleITK images: ``GetArrayFromImage`` returns ``(z, y, x)``; spacing/origin/direction are ``(x, y, z)``
  in LPS. :func:`affine_from_itk` gives the RAS affine for the array transposed to ``(x, y, z)``.
* :func:`reorient_to_ras` permutes/flips the array axes (never resamples) so that ``i`` runs towards
  Right, ``j`` towards Anterior, ``k`` towards Superior (closest axes). The affine stays exact.
  ``meta["reorientation"]`` records ``ornt`` (nibabel orientation array: row ``a`` = [output axis, flip]
  for file axis ``a``), the file's axis codes, shape and affine, so :func:`undo_reorientation` can return
  an array to the file's own grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""4x4 matrix converting LPS world coordinates to RAS (its own inverse)."""


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """RAS affine from an LPS affine (same voxel grid): ``diag(-1, -1, 1, 1) @ affine_lps``."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def affine_from_itk(spacing: Any, origin: Any, direction: Any) -> np.ndarray:
    """RAS affine for index ``(x, y, z)`` from ITK geometry (spacing, origin, direction; LPS).

    ``direction`` is the row-major flattened 3x3 matrix whose columns are the LPS unit vectors of the
    x, y, z index axes (``sitk.Image.GetDirection()``).
    """
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = d @ np.diag(np.asarray(spacing, dtype=np.float64))
    a[:3, 3] = np.asarray(origin, dtype=np.float64)
    return lps_to_ras(a)


def _ornt(affine: np.ndarray) -> np.ndarray:
    ornt = io_orientation(affine)
    if np.isnan(ornt).any() or sorted(ornt[:, 0].astype(int).tolist()) != [0, 1, 2]:
        raise ValueError(f"cannot determine the closest axes of affine {np.round(affine, 4).tolist()}")
    return ornt


def reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Permute/flip ``data`` to the closest canonical RAS+ axis order.

    Args:
        data: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` in the file's own voxel order.
        affine: 4x4 voxel -> RAS mm for that order.

    Returns:
        ``(data_ras, affine_ras, reorientation)``: the array (C-contiguous; the input itself when already
        canonical), the exact affine of the new grid, and the record stored as ``meta["reorientation"]``.
    """
    affine = np.asarray(affine, dtype=np.float64)
    spatial = data.shape[-3:]
    ornt = _ornt(affine)
    record: dict[str, Any] = {
        "original_axcodes": "".join(str(c) for c in aff2axcodes(affine)),
        "ornt": ornt.astype(int).tolist(),
        "original_shape": [int(s) for s in spatial],
        "original_affine": affine.tolist(),
    }
    identity = np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]])
    if identity:
        return data, affine, record
    new_affine = affine @ inv_ornt_aff(ornt, spatial)
    if data.ndim == 3:
        out = apply_orientation(data, ornt)
    else:  # (C, X, Y, Z): apply_orientation acts on the leading axes
        out = np.moveaxis(apply_orientation(np.moveaxis(data, 0, -1), ornt), -1, 0)
    return np.ascontiguousarray(out), new_affine, record


def inverse_ornt(ornt: Any) -> np.ndarray:
    """The orientation that undoes ``ornt`` (maps the RAS grid back to the file grid)."""
    o = np.asarray(ornt, dtype=float)
    inv = np.zeros_like(o)
    for axis, (out_axis, flip) in enumerate(o):
        inv[int(out_axis)] = (axis, flip)
    return inv


def undo_reorientation(data: np.ndarray, reorientation: dict[str, Any]) -> np.ndarray:
    """Return a RAS-grid array ``(X, Y, Z)`` / ``(C, X, Y, Z)`` to the file's own voxel grid."""
    inv = inverse_ornt(reorientation["ornt"])
    if data.ndim == 3:
        return apply_orientation(data, inv)
    return np.moveaxis(apply_orientation(np.moveaxis(data, 0, -1), inv), -1, 0)


# --- napari ------------------------------------------------------------------------------------------

_REV4 = np.eye(4)[[2, 1, 0, 3]]


def napari_affine(affine_ras: np.ndarray) -> np.ndarray:
    """The 4x4 napari affine for a RAS volume shown as ``data.transpose(2, 1, 0)`` (axes ``(k, j, i)``).

    napari's world axes are then ``(S, P, L)`` mm, i.e. LPS reversed, as SimpleITK-based readers do; with a
    canonical RAS array the default 2-D view is axial in radiological convention (anterior up, patient
    right on the viewer's left). Every layer made this way shares one world frame.
    """
    return _REV4 @ LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64) @ _REV4


def is_axis_aligned(affine: np.ndarray, tol: float = 1e-6) -> bool:
    """True when the 3x3 part is diagonal (relative off-diagonal magnitude <= ``tol``)."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    off = m - np.diag(np.diag(m))
    return bool(np.abs(off).max() <= tol * max(float(np.abs(m).max()), 1e-12))
