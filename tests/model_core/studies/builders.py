"""Small synthetic test inputs written in-test: NIfTI volumes, DICOM series, study folders.

Conventions: ``canonical_phantom`` is a RAS-ordered ``(X, Y, Z)`` int16 array with a bright marker in the
right-anterior-superior part and a dimmer one left-posterior, so flips and transpositions are visible.
DICOM series are written slice by slice with pydicom (Explicit VR Little Endian, MR Image Storage).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

BRIGHT = (4, 5, 3)  # index of the bright marker in canonical_phantom() (upper part of every axis)
DIM = (1, 1, 1)


def canonical_phantom(shape: tuple[int, int, int] = (6, 7, 5)) -> np.ndarray:
    """``(X, Y, Z)`` int16 (every axis >= 5): a ramp background, 2000 at BRIGHT, 1500 at DIM."""
    x, y, z = np.indices(shape)
    data = (x + 10 * y + 100 * z).astype(np.int16)
    data[BRIGHT] = 2000
    data[DIM] = 1500
    return data


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, qform: bool = True) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    if qform:
        img.set_qform(affine, code=1)
    nib.save(img, path)
    return path


def uid(*parts: object) -> str:
    """A deterministic UID from the given parts."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_slice(
    path: Path,
    pixels: np.ndarray,
    *,
    series_uid: str,
    ipp: Sequence[float],
    iop: Sequence[float],
    pixel_spacing: Sequence[float],
    description: str = "",
    series_number: int = 1,
    instance: int = 1,
    extra: dict[str, Any] | None = None,
    private: Sequence[tuple[int, int, str, Any]] = (),
) -> Path:
    """One MR slice; ``pixels`` is ``(rows, cols)`` int16."""
    sop = uid(series_uid, instance, path.name)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "MR"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = uid("frame")
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6g}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.6g}" for v in iop]
    ds.PixelSpacing = [f"{v:.6g}" for v in pixel_spacing]
    ds.SliceThickness = "3"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    for group, elem, vr, value in private:
        ds.add_new((group, elem), vr, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    volume: np.ndarray,
    *,
    description: str,
    series_number: int,
    spacing: tuple[float, float, float] = (1.0, 1.2, 3.0),
    origin: Sequence[float] = (10.0, -20.0, 5.0),
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    series_uid: str | None = None,
    per_slice: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    private: Sequence[tuple[int, int, str, Any]] = (),
    name: str = "s{series}_{idx:03d}.dcm",
    first_index: int = 0,
    skip: Sequence[int] = (),
) -> list[Path]:
    """Write ``volume`` ``(cols, rows, slices)`` as one slice per file (LPS geometry from ``iop``).

    ``per_slice[k]`` adds attributes to slice ``k``; ``skip`` omits slice indices (to make gaps).
    """
    series_uid = series_uid or uid("series", series_number, description)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    paths = []
    for k in range(volume.shape[2]):
        if k in skip:
            continue
        ipp = np.asarray(origin, float) + k * spacing[2] * normal
        attrs = dict(extra or {})
        attrs.update((per_slice or [{}] * volume.shape[2])[k])
        idx = first_index + k
        paths.append(
            write_slice(
                folder / name.format(series=series_number, idx=idx),
                volume[:, :, k].T,
                series_uid=series_uid,
                ipp=ipp,
                iop=iop,
                pixel_spacing=(spacing[1], spacing[0]),
                description=description,
                series_number=series_number,
                instance=idx + 1,
                extra=attrs,
                private=private,
            )
        )
    return paths
