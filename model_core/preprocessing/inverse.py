"""Canvas -> native voxel grid: the exact inverse of preprocessing + canvas, for maps and points.

The chain native -> crop -> (T2 resample) -> resize rule -> pad -> flip is axis-aligned in index space,
so it is one :class:`~model_core.studies.geometry.AxisMap` per modality and canvas: ``native = s * canvas + o``
(per axis, ``s < 0`` on flipped axes). Points therefore map exactly both ways
(:func:`native_to_canvas_index`, :func:`canvas_to_native_index`).

A map on the canvas (e.g. an integrated-gradients saliency ``(X, Y, Z)``, or ``(C, X, Y, Z)`` summed over
channels) is brought back by :func:`canvas_to_native`: unflip, unpad, un-resize, un-resample and un-crop
composed into *one* separable linear interpolation (so the map is smoothed once, not once per step):
every native voxel inside the crop box samples the canvas at its exact canvas coordinate; voxels outside
the crop box get ``fill`` (0). The result lies on the reference volume's own array grid and carries its
affine (voxel -> RAS mm), so it overlays the input layer exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from model_core.preprocessing.canvas import CanvasRecord
from model_core.preprocessing.preprocess import ModalityRecord, Prepared
from model_core.studies.geometry import AxisMap, resample_axes


def _record(
    modality: str, prepared: Prepared | Mapping[str, ModalityRecord] | ModalityRecord
) -> ModalityRecord:
    if isinstance(prepared, ModalityRecord):
        return prepared
    records = prepared.records if isinstance(prepared, Prepared) else prepared
    if modality not in records:
        raise KeyError(f"modality {modality!r} was not prepared (have {sorted(records)})")
    return records[modality]


def canvas_map(record: ModalityRecord, canvas_record: CanvasRecord) -> AxisMap:
    """Canvas index -> native index of the reference volume (exact, per axis)."""
    if tuple(canvas_record.input_shape) != tuple(record.shape):
        raise ValueError(
            f"canvas record is for a {canvas_record.input_shape} array, but {record.modality} "
            f"was prepared as {record.shape}"
        )
    return canvas_record.index_map().then(record.index_map())


def canvas_to_native_index(
    points: np.ndarray, modality: str, prepared: Any, canvas_record: CanvasRecord
) -> np.ndarray:
    """``(N, 3)`` canvas indices (X, Y, Z) -> ``(N, 3)`` native voxel indices (float64)."""
    return canvas_map(_record(modality, prepared), canvas_record).to_parent(np.atleast_2d(points))


def native_to_canvas_index(
    points: np.ndarray, modality: str, prepared: Any, canvas_record: CanvasRecord
) -> np.ndarray:
    """``(N, 3)`` native voxel indices -> ``(N, 3)`` canvas indices (float64; may fall outside the canvas
    for points outside the crop box)."""
    return canvas_map(_record(modality, prepared), canvas_record).to_child(np.atleast_2d(points))


def world_to_native_index(points_mm: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``(N, 3)`` RAS mm -> ``(N, 3)`` voxel indices of the grid ``affine``."""
    p = np.atleast_2d(np.asarray(points_mm, dtype=np.float64))
    h = np.c_[p, np.ones(len(p))]
    return (np.linalg.inv(affine) @ h.T).T[:, :3]


def canvas_to_native(
    canvas: Any,
    modality: str,
    prepared: Prepared | Mapping[str, ModalityRecord] | ModalityRecord,
    canvas_record: CanvasRecord,
    *,
    fill: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bring a canvas map back to the modality's native voxel grid.

    Args:
        canvas: ``(X, Y, Z)`` or ``(C, X, Y, Z)`` (summed over C) on the canvas of ``canvas_record``;
            numpy array or torch tensor.
        modality: ``"dce"``, ``"dwi"`` or ``"t2"``.
        prepared: the :class:`Prepared` (or its records, e.g. from ``Prepared.records_from_dict``).
        canvas_record: the record returned with that canvas.
        fill: value outside the crop box.

    Returns:
        ``(map float32 native_shape, affine 4x4 voxel -> RAS mm)`` on the reference volume's grid.
    """
    rec = _record(modality, prepared)
    amap = canvas_map(rec, canvas_record)
    arr = canvas.detach().cpu().numpy() if hasattr(canvas, "detach") else np.asarray(canvas)
    if arr.ndim == 4:
        arr = arr.sum(axis=0, dtype=np.float32)
    if tuple(arr.shape) != tuple(canvas_record.target):
        raise ValueError(f"map shape {arr.shape} does not match the canvas {canvas_record.target}")
    r_start, r_stop = canvas_record.region()
    coords = []
    for a in range(3):
        native = np.arange(rec.crop_start[a], rec.crop_stop[a], dtype=np.float64)
        s, o = amap.scale[a], amap.offset[a]
        c = (native - o) / s if s != 0 else np.full_like(native, float(r_start[a]))
        # stay inside the pasted volume (rounding at its edges must not pull in the zero padding)
        coords.append(np.clip(c, r_start[a], r_stop[a] - 1) - r_start[a])
    region = arr[r_start[0] : r_stop[0], r_start[1] : r_stop[1], r_start[2] : r_stop[2]]
    inner = resample_axes(region, coords)
    out = np.full(rec.native_shape, fill, dtype=np.float32)
    out[tuple(slice(a, b) for a, b in zip(rec.crop_start, rec.crop_stop, strict=True))] = inner
    return out, rec.affine.copy()


def prepared_to_native(
    prepared_map: np.ndarray, modality: str, prepared: Any, *, fill: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A map on the prepared (pre-canvas) grid ``(X, Y, Z)`` or ``(C, X, Y, Z)`` -> native grid + affine."""
    rec = _record(modality, prepared)
    shape = tuple(np.shape(prepared_map)[-3:])
    identity = CanvasRecord(shape, shape, None, shape, (0, 0, 0), 0, None)  # type: ignore[arg-type]
    return canvas_to_native(prepared_map, modality, rec, identity, fill=fill)
