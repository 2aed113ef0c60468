"""DICOM folder scanning and header-level series analysis (pydicom, ``force=False``, no pixel data read).

* :func:`scan_folder` lists candidate files: regular files under the folder (symlinks leaving it are
  skipped, at most ``ReadLimits.max_files``, depth <= 4) that carry the ``DICM`` magic at byte 128.
  DICOMDIR files are never followed (their paths could point outside the folder, CVE-2026-32711); every
  file is found by scanning instead.
* :func:`read_header` parses one file's header into a :class:`SliceHeader` (a file with the DICOM magic
  that pydicom cannot parse is an error naming the file).
* :func:`analyse_series` groups slices by SeriesInstanceUID, groups each series' images by slice location
  (ImagePositionPatient projected on the slice normal, never filename or InstanceNumber) and, when there
  are several images per location, splits them into volumes by b-value, TemporalPositionIdentifier,
  TriggerTime, AcquisitionTime or AcquisitionNumber (first key that splits cleanly).

Geometry (LPS, DICOM): column ``c`` moves along ``IOP[0:3]`` by ``PixelSpacing[1]``, row ``r`` along
``IOP[3:6]`` by ``PixelSpacing[0]``; the slice normal is their cross product.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.errors import BytesLengthException, InvalidDicomError

from model_core.errors import StudyReadError
from model_core.studies.dicom_bounds import open_dicom
from model_core.studies.sniff import has_dicom_magic
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, reading

logger = logging.getLogger(__name__)

DICOM_ERRORS: tuple[type[BaseException], ...] = (InvalidDicomError, BytesLengthException)
_MAX_DEPTH = 4
# MR (and Enhanced MR), CT, PET, secondary capture image storage SOP classes
_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.128",
    "1.2.840.10008.5.1.4.1.1.7",
)
_LOCATION_TOL_MM = 0.01
_UID = re.compile(r"\d+(\.\d+)+")  # leading zeros tolerated: seen in real vendor UIDs

# Vendor b-value tags: (group, element, kind). GE stores b + 1e9 (or + 1e6) in the first value.
_B_TAGS = (
    (0x0018, 0x9087, "std"),
    (0x0043, 0x1039, "ge"),
    (0x0019, 0x100C, "siemens"),
    (0x2001, 0x1003, "philips"),
)


def scan_folder(folder: Path, limits: ReadLimits = DEFAULT_LIMITS) -> list[Path]:
    """Files with the DICOM magic under ``folder`` (sorted by name only for reproducible logs)."""
    root = folder.resolve()
    found: list[Path] = []
    with reading(folder, "cannot list folder"):
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            depth = len(Path(dirpath).relative_to(root).parts)
            if depth >= _MAX_DEPTH:
                dirnames[:] = []
            for name in filenames:
                if name.upper() == "DICOMDIR":
                    continue
                p = Path(dirpath) / name
                if p.is_symlink() and not p.resolve().is_relative_to(root):
                    logger.warning("%s: skipping a link that leaves the folder", p)
                    continue
                if not p.is_file() or not has_dicom_magic(p):
                    continue
                found.append(p)
                if len(found) > limits.max_files:
                    raise StudyReadError(folder, f"more than {limits.max_files} DICOM files; refused")
    return sorted(found)


def _floats(ds: Any, keyword: str, n: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = [value]
    values = [float(v) for v in value]
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{keyword} must be {n} finite numbers, got {values}")
    return tuple(values)


def _number(ds: Any, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        value = list(value)[0] if len(value) else None
        if value is None:
            return None
    v = float(value)
    return v if math.isfinite(v) else None


def _dicom_time(value: Any) -> float | None:
    """``HHMMSS.ffffff`` (or a DateTime's time part) -> seconds since midnight."""
    if value is None:
        return None
    s = str(value).strip()
    if len(s) >= 14 and s[:8].isdigit():  # DT: YYYYMMDDHHMMSS
        s = s[8:]
    digits = s.split(".")[0]
    if not digits.isdigit() or len(digits) < 2:
        return None
    hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    frac = float("0." + s.split(".")[1]) if "." in s and s.split(".")[1].isdigit() else 0.0
    return hh * 3600 + mm * 60 + ss + frac


def _b_value(ds: Any) -> float | None:
    for group, elem, kind in _B_TAGS:
        el = ds.get((group, elem))
        if el is None or el.value in (None, b"", ""):
            continue
        value = el.value
        if isinstance(value, bytes):
            continue  # private tag read without a dictionary (implicit VR): not decodable safely
        first = value[0] if hasattr(value, "__iter__") and not isinstance(value, str) else value
        b = float(first)
        if kind == "ge" and b >= 1e6:
            b = b % 1e6 if b < 1e9 else b % 1e9
        if math.isfinite(b) and 0 <= b <= 1e5:
            return b
    return None


@dataclass
class SliceHeader:
    """The header fields we use from one DICOM image file."""

    path: Path
    series_uid: str
    series_number: int | None = None
    description: str = ""
    protocol: str = ""
    image_type: tuple[str, ...] = ()
    rows: int = 0
    cols: int = 0
    frames: int = 1
    samples: int = 1
    iop: tuple[float, ...] | None = None
    ipp: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    b_value: float | None = None
    temporal_position: float | None = None
    trigger_time: float | None = None
    acquisition_time: float | None = None
    acquisition_number: float | None = None
    series_time: float | None = None
    echo_time: float | None = None
    repetition_time: float | None = None
    contrast_agent: str = ""
    scanning_sequence: str = ""


def read_header(path: Path) -> SliceHeader | None:
    """Parse one file's header; ``None`` for non-image objects (reports, presentation states, ...).

    Every object needs a well-formed SOPClassUID and SOPInstanceUID (type 1 everywhere; a truncated file
    fails here). An object counts as an image when it has Rows, Columns, ImagePositionPatient or an
    MR/CT/PET/secondary capture SOP class; an image lacking SeriesInstanceUID, Rows or Columns is an error
    (never skipped, so a damaged slice cannot silently shorten a stack).
    """
    with reading(path, "cannot parse DICOM header", DICOM_ERRORS):
        ds = dcmread(open_dicom(path), stop_before_pixels=True, force=False)
        sop = str(ds.get("SOPClassUID", "") or "")
        for key, value in (("SOPClassUID", sop), ("SOPInstanceUID", str(ds.get("SOPInstanceUID", "") or ""))):
            if not _UID.fullmatch(value):
                raise StudyReadError(path, f"not a valid DICOM object: {key} {value[:70]!r} (damaged file?)")
        image_like = any(k in ds for k in ("Rows", "Columns", "ImagePositionPatient", "PixelSpacing")) or (
            sop.startswith(_IMAGE_SOP_PREFIXES)
        )
        if not image_like:
            return None
        missing = [k for k in ("SeriesInstanceUID", "Rows", "Columns") if k not in ds]
        if missing:
            raise StudyReadError(path, f"image object lacks {', '.join(missing)}")
        n = ds.get("SeriesNumber")
        return SliceHeader(
            path=path,
            series_uid=str(ds.SeriesInstanceUID),
            series_number=int(n) if n not in (None, "") else None,
            description=str(ds.get("SeriesDescription", "") or ""),
            protocol=str(ds.get("ProtocolName", "") or ""),
            image_type=tuple(str(t).upper() for t in (ds.get("ImageType") or ())),
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            frames=int(ds.get("NumberOfFrames") or 1),
            samples=int(ds.get("SamplesPerPixel") or 1),
            iop=_floats(ds, "ImageOrientationPatient", 6),
            ipp=_floats(ds, "ImagePositionPatient", 3),
            pixel_spacing=_floats(ds, "PixelSpacing", 2),
            b_value=_b_value(ds),
            temporal_position=_number(ds, "TemporalPositionIdentifier"),
            trigger_time=_number(ds, "TriggerTime"),
            acquisition_time=_dicom_time(ds.get("AcquisitionDateTime") or ds.get("AcquisitionTime")),
            acquisition_number=_number(ds, "AcquisitionNumber"),
            series_time=_dicom_time(ds.get("SeriesTime")),
            echo_time=_number(ds, "EchoTime"),
            repetition_time=_number(ds, "RepetitionTime"),
            contrast_agent=str(ds.get("ContrastBolusAgent", "") or "").strip(),
            scanning_sequence=str(ds.get("ScanningSequence", "") or ""),
        )


@dataclass
class SubVolume:
    """One 3-D volume inside a series: its slices in spatial order plus the value that split it out."""

    slices: list[SliceHeader]
    positions: np.ndarray  # (n,) projection of IPP on the normal, ascending
    split_key: str | None = None
    split_value: float | None = None


@dataclass
class SeriesInfo:
    """A series after header analysis.

    ``problem`` is set (and ``volumes`` empty) when it is unusable. ``fatal`` marks a broken image stack
    (missing slices, uneven spacing, unequal images per location, images of different size, orientation
    or pixel spacing): readers refuse the study rather than ignore it. Benign problems (single slice,
    multi-frame, colour, no geometry) only exclude the series.
    """

    uid: str
    headers: list[SliceHeader]
    volumes: list[SubVolume] = field(default_factory=list)
    problem: str = ""
    fatal: bool = False

    @property
    def first(self) -> SliceHeader:
        return self.headers[0]

    @property
    def label(self) -> str:
        h = self.first
        return f"series {h.series_number if h.series_number is not None else '?'} {h.description!r}"

    @property
    def time(self) -> float | None:
        """Earliest acquisition time (s), else the series time."""
        times = [h.acquisition_time for h in self.headers if h.acquisition_time is not None]
        return min(times) if times else self.first.series_time


def _normal(path: Path, iop: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        raise StudyReadError(
            path, f"ImageOrientationPatient {list(iop)} is not two orthogonal unit vectors"
        )
    n = np.cross(row, col)
    return n / np.linalg.norm(n)


def spacing_problem(positions: np.ndarray, rel_tol: float = 0.01) -> str:
    """Describe uneven slice spacing (> ``rel_tol``, e.g. a missing slice); "" when even."""
    diffs = np.diff(positions)
    typical = float(np.median(diffs))
    if typical <= 0:
        return "slice positions coincide"
    worst = int(np.argmax(np.abs(diffs - typical)))
    if abs(float(diffs[worst]) - typical) > rel_tol * typical:
        missing = round(float(diffs[worst]) / typical) - 1
        hint = f" ({missing} missing slice(s)?)" if missing >= 1 else ""
        return (
            f"inconsistent slice spacing: {float(diffs[worst]):.4g} mm between slices {worst} and "
            f"{worst + 1}, "
            f"typical {typical:.4g} mm{hint}"
        )
    return ""


_SPLIT_KEYS = ("b_value", "temporal_position", "trigger_time", "acquisition_time", "acquisition_number")


def _split(
    locations: list[list[SliceHeader]], m: int
) -> tuple[str, list[list[SliceHeader]], list[float]] | None:
    """Split ``m`` images per location into ``m`` volumes by the first key that separates them."""
    for key in _SPLIT_KEYS:
        values = [[getattr(h, key) for h in loc] for loc in locations]
        if any(v is None for loc in values for v in loc) or any(len(set(loc)) != m for loc in values):
            if key == "b_value" and len({v for loc in values for v in loc if v is not None}) > 1:
                return None  # b-values vary but do not separate the images: diffusion directions
            continue
        ranked = [
            sorted(zip(vals, loc, strict=True), key=lambda t: t[0])
            for vals, loc in zip(values, locations, strict=True)
        ]
        if key in ("b_value", "temporal_position"):
            first = [v for v, _ in ranked[0]]
            if any([v for v, _ in r] != first for r in ranked):
                continue
        vols = [[r[i][1] for r in ranked] for i in range(m)]
        split_values = [float(np.median([r[i][0] for r in ranked])) for i in range(m)]
        return key, vols, split_values
    return None


def analyse_series(uid: str, headers: list[SliceHeader]) -> SeriesInfo:
    """Group one series' images by location and split them into volumes (header data only)."""
    info = SeriesInfo(uid=uid, headers=headers)
    h0 = headers[0]
    if h0.frames > 1:
        info.problem = "multi-frame (enhanced) DICOM is not supported"
        return info
    if h0.samples != 1:
        info.problem = f"colour images (SamplesPerPixel {h0.samples}) are not MR volumes"
        return info
    if any(h.iop is None or h.ipp is None or h.pixel_spacing is None for h in headers):
        info.problem = "no geometry (ImageOrientationPatient / ImagePositionPatient / PixelSpacing missing)"
        return info
    for h in headers[1:]:
        if (
            (h.rows, h.cols) != (h0.rows, h0.cols)
            or not np.allclose(np.asarray(h.iop), np.asarray(h0.iop), atol=1e-4)
            or not np.allclose(np.asarray(h.pixel_spacing), np.asarray(h0.pixel_spacing), rtol=1e-4)
        ):
            info.problem = f"images differ in size, orientation or pixel spacing ({h.path.name} vs {h0.path.name})"
            info.fatal = True
            return info
    normal = _normal(h0.path, h0.iop)  # type: ignore[arg-type]
    proj = np.array([float(np.dot(h.ipp, normal)) for h in headers])  # type: ignore[arg-type]
    order = np.argsort(proj, kind="stable")
    locations: list[list[SliceHeader]] = []
    loc_pos: list[float] = []
    for idx in order:
        if loc_pos and proj[idx] - loc_pos[-1] <= _LOCATION_TOL_MM:
            locations[-1].append(headers[idx])
        else:
            locations.append([headers[idx]])
            loc_pos.append(float(proj[idx]))
    if len(locations) == 1:
        info.problem = f"a single 2-D slice location ({len(headers)} image(s)) is not a volume"
        return info
    counts = {len(loc) for loc in locations}
    if len(counts) != 1:
        info.problem = (
            f"unequal number of images per slice location ({min(counts)}..{max(counts)}): missing images"
        )
        info.fatal = True
        return info
    m = counts.pop()
    positions = np.asarray(loc_pos)
    gap = spacing_problem(positions)
    if gap:
        info.problem, info.fatal = gap, True
        return info
    if m == 1:
        info.volumes = [SubVolume(slices=[loc[0] for loc in locations], positions=positions)]
        return info
    split = _split(locations, m)
    if split is None:
        info.problem = (
            f"{m} images per slice location that no b-value, temporal position, trigger or "
            "acquisition time separates"
        )
        return info
    key, vols, values = split
    info.volumes = [
        SubVolume(slices=v, positions=positions, split_key=key, split_value=val)
        for v, val in zip(vols, values, strict=True)
    ]
    return info


def read_folder_headers(folder: Path, limits: ReadLimits = DEFAULT_LIMITS) -> tuple[list[SeriesInfo], int]:
    """Scan ``folder`` and analyse every series. Returns ``(series, n_non_image_files)``."""
    files = scan_folder(folder, limits)
    by_uid: dict[str, list[SliceHeader]] = {}
    skipped = 0
    for f in files:
        h = read_header(f)
        if h is None:
            skipped += 1
            continue
        by_uid.setdefault(h.series_uid, []).append(h)
    series = [analyse_series(uid, hs) for uid, hs in by_uid.items()]
    series.sort(
        key=lambda s: (s.first.series_number if s.first.series_number is not None else 1 << 30, s.uid)
    )
    return series, skipped
