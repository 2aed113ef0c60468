"""DICOM series -> :class:`~model_core.studies.study.Volume` (pixel data via pydicom, ``force=False``).

:func:`assemble_volume` turns one header-analysed :class:`~model_core.studies.dicom_headers.SubVolume` into a
RAS+ float32 volume: the stack is checked against the byte cap before any pixel is read, slices are used
in ImagePositionPatient order (computed in :mod:`~model_core.studies.dicom_headers`), positions must lie on a
line with even spacing (1 %), pixel values get ``RescaleSlope`` / ``RescaleIntercept``, and the affine is
built from ImageOrientationPatient / PixelSpacing / positions in LPS, then converted to RAS and reoriented
to the closest RAS+ axes.

The file's own grid (``meta["reorientation"]``) is ``(column, row, slice)`` with slices in ascending
position along the normal ``row_dir x col_dir``.

:func:`read_dicom_volume` reads a folder holding exactly one series (or a single file, which is refused:
a single 2-D slice is not a volume). A series split into several volumes (phases, b-values) gives
``data`` ``(C, X, Y, Z)`` with ``meta["channels"]`` naming each.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread

from model_core.errors import StudyReadError
from model_core.studies.dicom_bounds import open_dicom
from model_core.studies.dicom_headers import (
    DICOM_ERRORS,
    SeriesInfo,
    SubVolume,
    analyse_series,
    read_folder_headers,
    read_header,
)
from model_core.studies.orient import lps_to_ras, reorient_to_ras
from model_core.studies.study import Volume
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, check_affine, check_finite, check_shape, reading

logger = logging.getLogger(__name__)


def series_source(folder: Path, series: SeriesInfo, sub: SubVolume | None = None) -> str:
    """A readable, non-identifying source string: folder, series number/description, split value."""
    text = f"{folder} [{series.label}]"
    if sub is not None and sub.split_key is not None:
        text += f" {sub.split_key}={sub.split_value:g}"
    return text


def _affine_lps(source: str, sub: SubVolume) -> np.ndarray:
    h0 = sub.slices[0]
    iop = np.asarray(h0.iop, dtype=np.float64)
    ps = np.asarray(h0.pixel_spacing, dtype=np.float64)
    ipps = np.asarray([h.ipp for h in sub.slices], dtype=np.float64)
    n = len(sub.slices)
    step = (ipps[-1] - ipps[0]) / (n - 1)
    expected = ipps[0] + np.arange(n)[:, None] * step
    off = float(np.linalg.norm(ipps - expected, axis=1).max())
    if off > 0.01 * float(np.linalg.norm(step)) + 1e-3:
        raise StudyReadError(
            source, f"slice positions are not evenly spaced on a line (off by up to {off:.3g} mm)"
        )
    a = np.eye(4)
    a[:3, 0] = iop[:3] * ps[1]
    a[:3, 1] = iop[3:] * ps[0]
    a[:3, 2] = step
    a[:3, 3] = ipps[0]
    return a


def _read_pixels(path: Path, uid: str, rows: int, cols: int) -> np.ndarray:
    """One slice as float32 ``(cols, rows)`` = ``(i, j)``, rescaled."""
    with reading(path, "cannot read DICOM pixel data", DICOM_ERRORS):
        ds = dcmread(open_dicom(path), force=False)
        if str(ds.get("SeriesInstanceUID", "")) != uid:
            raise StudyReadError(path, "file changed while reading (SeriesInstanceUID differs)")
        arr = ds.pixel_array
        if arr.shape != (rows, cols):
            raise StudyReadError(path, f"pixel data shape {arr.shape}, header says {(rows, cols)}")
        if arr.dtype.kind not in "iuf":
            raise StudyReadError(path, f"unsupported pixel type {arr.dtype}")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise StudyReadError(path, f"RescaleSlope/Intercept not finite ({slope}, {intercept})")
    out = arr.T.astype(np.float32)
    if slope != 1.0 or intercept != 0.0:
        out = out * np.float32(slope) + np.float32(intercept)
    return out


def assemble_volume(
    folder: Path, series: SeriesInfo, sub: SubVolume, limits: ReadLimits = DEFAULT_LIMITS
) -> Volume:
    """Read one sub-volume's pixels into a RAS+ float32 :class:`Volume` ``(X, Y, Z)``."""
    source = series_source(folder, series, sub)
    h0 = sub.slices[0]
    check_shape(source, (h0.cols, h0.rows, len(sub.slices)), limits)
    affine_lps = check_affine(source, _affine_lps(source, sub), limits)
    data = np.empty((h0.cols, h0.rows, len(sub.slices)), dtype=np.float32)
    for k, h in enumerate(sub.slices):
        data[:, :, k] = _read_pixels(h.path, series.uid, h0.rows, h0.cols)
    check_finite(source, data, limits)
    with reading(source, "cannot reorient"):
        data, affine_ras, reorientation = reorient_to_ras(data, lps_to_ras(affine_lps))
    meta: dict[str, Any] = {
        "format": "dicom",
        "reorientation": reorientation,
        "series_uid": series.uid,
        "series_number": h0.series_number,
        "series_description": h0.description,
        "n_files": len(sub.slices),
    }
    if sub.split_key is not None:
        meta["split_key"], meta["split_value"] = sub.split_key, sub.split_value
    if h0.b_value is not None or sub.split_key == "b_value":
        meta["b_value"] = sub.split_value if sub.split_key == "b_value" else h0.b_value
    return Volume(data=np.ascontiguousarray(data), affine=affine_ras, source=source, meta=meta)


def raise_if_unusable(folder: Path, series: SeriesInfo) -> None:
    if series.problem:
        raise StudyReadError(f"{folder} [{series.label}] ({series.first.path.name})", series.problem)


def read_dicom_volume(path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS) -> Volume:
    """Read a folder holding one DICOM series (or refuse a single file: one 2-D slice is not a volume)."""
    p = Path(path)
    if p.is_file():
        h = read_header(p)
        if h is None:
            raise StudyReadError(p, "DICOM file without image geometry (not an image)")
        series_list = [analyse_series(h.series_uid, [h])]
        folder = p.parent
    elif p.is_dir():
        series_list, _ = read_folder_headers(p, limits)
        folder = p
    else:
        raise StudyReadError(p, "no such file or folder")
    if not series_list:
        raise StudyReadError(p, "no DICOM image files found")
    if len(series_list) > 1:
        labels = ", ".join(s.label for s in series_list[:6])
        raise StudyReadError(p, f"{len(series_list)} DICOM series in one folder ({labels}); use read_study")
    series = series_list[0]
    raise_if_unusable(folder, series)
    vols = [assemble_volume(folder, series, sub, limits) for sub in series.volumes]
    if len(vols) == 1:
        return vols[0]
    for v in vols[1:]:
        if not v.same_grid(vols[0]):
            raise StudyReadError(v.source, "volumes of one series do not share a grid")
    meta = dict(vols[0].meta)
    meta["channels"] = [
        {"split_key": v.meta.get("split_key"), "split_value": v.meta.get("split_value")} for v in vols
    ]
    check_shape(p, (*vols[0].spatial_shape, len(vols)), limits)
    data = np.stack([v.data for v in vols])
    return Volume(data=data, affine=vols[0].affine, source=series_source(folder, series), meta=meta)


def read_series_of_file(path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS) -> list[Volume]:
    """All volumes of the series that the DICOM file ``path`` belongs to, from the files of its folder.

    Used when a user opens one ``.dcm`` file in napari. A series that is a single slice is refused.
    """
    p = Path(path)
    h = read_header(p)
    if h is None:
        raise StudyReadError(p, "DICOM file without image geometry (not an image)")
    series_list, _ = read_folder_headers(p.parent, limits)
    series = next((s for s in series_list if s.uid == h.series_uid), None)
    if series is None:
        raise StudyReadError(p, "its series was not found in its folder")
    raise_if_unusable(p.parent, series)
    return [assemble_volume(p.parent, series, sub, limits) for sub in series.volumes]
