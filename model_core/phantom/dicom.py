"""Write a phantom study as classic single-frame MR DICOM series (pydicom).

One series per DCE phase (``DCE pre``, ``DCE post1``...; TemporalPositionIdentifier = phase + 1,
NumberOfTemporalPositions, AcquisitionTime = study start + phase time, ContrastBolusAgent on post
phases), one per DWI b-value (``DWI b800``; DiffusionBValue (0018,9087), isotropic trace), ``T2`` and an
optional ``T1``. Series folders are ``NN_<name>/IM0001.dcm`` ... (one file per slice).

Geometry (DICOM patient coordinates are LPS): with the RAS affine ``A`` and ``L = diag(-1, -1, 1, 1) A``,
pixel ``(row r, column c)`` of slice ``k`` is voxel ``(I-1-c, J-1-r, k)``, so for our positive-diagonal
affines the rows run to the patient's left and the columns to posterior: ImageOrientationPatient
``[1, 0, 0, 0, 1, 0]`` (the usual axial orientation), ImagePositionPatient = ``L @ (I-1, J-1, k, 1)``,
PixelSpacing = ``[spacing_j, spacing_i]``, SliceThickness = SpacingBetweenSlices = ``spacing_k``.

Pixels are int16 with RescaleSlope = max|series| / 30000, RescaleIntercept = 0 (one slope per series).
UIDs come from :func:`pydicom.uid.generate_uid` with entropy from (site, seed, scale, series, slice), so a
case always gets the same UIDs. The only patient attributes are PatientID = PatientName =
``PHANTOM-xxxxxxxx`` (a hash of site and seed), PatientSex ``F`` and PatientAge.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from model_core.phantom.generate import PhantomCase
from model_core.studies.study import Volume

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"  # pydicom's root + ".1"


@dataclass
class SeriesSpec:
    """One series to write: its folder name, volume and extra tags (keyword -> value)."""

    folder: str
    description: str
    volume: Volume
    time_s: float = 0.0
    tags: dict[str, Any] = field(default_factory=dict)


def _uid(case: PhantomCase, *parts: object) -> str:
    src = ["napari-mome-phantom", case.site.name, str(case.seed), f"{case.scale:g}", *map(str, parts)]
    return str(generate_uid(entropy_srcs=src))


def slice_geometry(affine: np.ndarray, shape: tuple[int, int, int]) -> dict[str, Any]:
    """DICOM geometry of an RAS voxel grid (see the module docstring).

    Returns:
        ``orientation`` (6 floats), ``positions`` (``(K, 3)`` LPS mm of each slice's first pixel),
        ``pixel_spacing`` ``[row, column]`` mm, ``thickness`` mm, ``normal`` (unit LPS slice normal).
    """
    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    ni, nj, nk = shape
    row_dir = -lps[:3, 0] / np.linalg.norm(lps[:3, 0])  # increasing column index c = decreasing i
    col_dir = -lps[:3, 1] / np.linalg.norm(lps[:3, 1])  # increasing row index r = decreasing j
    ks = np.arange(nk, dtype=np.float64)
    vox = np.stack([np.full(nk, ni - 1.0), np.full(nk, nj - 1.0), ks, np.ones(nk)])
    positions = (lps @ vox)[:3].T
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    normal = np.cross(row_dir, col_dir)
    return {
        "orientation": [float(v) for v in (*row_dir, *col_dir)],
        "positions": positions,
        "pixel_spacing": [float(spacing[1]), float(spacing[0])],
        "thickness": float(spacing[2]),
        "normal": normal,
    }


def _ds(value: float) -> str:
    """A DICOM decimal string (<= 16 characters)."""
    s = f"{value:.10g}"
    return s if len(s) <= 16 else f"{value:.6e}"


def _tm(seconds: float) -> str:
    h, rem = divmod(seconds, 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{int(h):02d}{int(m):02d}{s:09.6f}"


def _base_dataset(case: PhantomCase, study_uid: str, frame_uid: str, date: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientID = case.patient_id
    ds.PatientName = case.patient_id
    ds.PatientSex = "F"
    if case.study.clinical.age is not None:
        ds.PatientAge = f"{int(case.study.clinical.age):03d}Y"
    ds.PatientPosition = "HFP"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = study_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.StudyID = case.case_id[-16:]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = _tm(9 * 3600.0)
    ds.StudyDescription = "PHANTOM breast MRI (synthetic)"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "napari-mome phantom"
    ds.ManufacturerModelName = "synthetic"
    ds.InstitutionName = case.site.institution
    ds.MagneticFieldStrength = _ds(case.truth.field_strength)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleType = "US"
    return ds


def series_specs(case: PhantomCase) -> list[SeriesSpec]:
    """The series of one case, in acquisition order."""
    st = case.study
    if not st.dce or st.t2 is None:
        raise ValueError(f"{case.case_id}: a phantom study needs DCE and T2")
    n = len(st.dce)
    specs = []
    se = {"ScanningSequence": "SE"}
    if st.t1 is not None:
        specs.append(
            SeriesSpec("t1", "T1 non-FS", st.t1, -1500.0, {**se, "RepetitionTime": "560", "EchoTime": "12"})
        )
    specs.append(
        SeriesSpec("t2", "T2 TSE", st.t2, -1200.0, {**se, "RepetitionTime": "4500", "EchoTime": "102"})
    )
    for b, vol in sorted(st.dwi.items()):
        tags: dict[str, Any] = {"ScanningSequence": "EP", "RepetitionTime": "6400", "EchoTime": "90"}
        tags.update(DiffusionBValue=float(b), DiffusionDirectionality="ISOTROPIC")
        specs.append(SeriesSpec(f"dwi_b{b:g}", f"DWI b{b:g}", vol, -900.0, tags))
    times = (0.0, *case.site.post_times_s)
    for p, vol in enumerate(st.dce):
        tags = {"ScanningSequence": "GR", "RepetitionTime": "4.5", "EchoTime": "1.7", "FlipAngle": "12"}
        tags.update(
            TemporalPositionIdentifier=p + 1, NumberOfTemporalPositions=n, TriggerTime=_ds(1000.0 * times[p])
        )
        if p > 0:
            tags["ContrastBolusAgent"] = "Gd-DTPA"
        name, desc = ("dce_pre", "DCE pre") if p == 0 else (f"dce_post{p}", f"DCE post{p}")
        specs.append(SeriesSpec(name, desc, vol, times[p], tags))
    return specs


def write_series(
    base: Dataset, spec: SeriesSpec, number: int, folder: Path, case: PhantomCase, t0: float
) -> Path:
    """Write one series (one file per slice) into ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    vol = spec.volume
    data = np.asarray(vol.data, dtype=np.float32)
    geo = slice_geometry(vol.affine, vol.spatial_shape)
    peak = float(np.abs(data).max())
    slope = peak / 30000.0 if peak > 0 else 1.0
    pix = np.clip(np.round(data / slope), -32768, 32767).astype("<i2")
    ds = base
    series_uid = _uid(case, "series", spec.folder)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = spec.description
    ds.ProtocolName = spec.description
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = _tm(t0 + spec.time_s)
    ds.AcquisitionNumber = 1
    ds.Rows, ds.Columns = int(data.shape[1]), int(data.shape[0])
    ds.PixelSpacing = [_ds(v) for v in geo["pixel_spacing"]]
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(geo["thickness"])
    ds.ImageOrientationPatient = [_ds(round(v, 8)) for v in geo["orientation"]]
    ds.RescaleSlope = _ds(slope)
    ds.MRAcquisitionType = "3D" if spec.folder.startswith("dce") else "2D"
    for key, value in spec.tags.items():
        setattr(ds, key, value)
    for k in range(data.shape[2]):
        sop = _uid(case, "sop", spec.folder, k)
        ds.SOPInstanceUID = sop
        ds.InstanceNumber = k + 1
        pos = geo["positions"][k]
        ds.ImagePositionPatient = [_ds(round(float(v), 6)) for v in pos]
        ds.SliceLocation = _ds(round(float(np.dot(pos, geo["normal"])), 6))
        ds.PixelData = np.ascontiguousarray(pix[::-1, ::-1, k].T).tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = UID(sop)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
        ds.file_meta = meta
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    for key in spec.tags:
        delattr(ds, key)
    return folder


def write_dicom_study(case: PhantomCase, folder: Path, manifest: bool = False) -> list[Path]:
    """Every series of ``case`` under ``folder`` (plus ``study.json`` naming them if ``manifest``)."""
    folder.mkdir(parents=True, exist_ok=True)
    day = int(_uid(case, "date").rsplit(".", 1)[-1][-6:]) % 1500
    date = (dt.date(2021, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")
    base = _base_dataset(case, _uid(case, "study"), _uid(case, "frame"), date)
    t0 = 9 * 3600.0 + 1800.0
    out, names = [], {}
    for number, spec in enumerate(series_specs(case), start=1):
        sub = f"{number:02d}_{spec.folder}"
        out.append(write_series(base, spec, number, folder / sub, case, t0))
        names[spec.folder] = sub
    if manifest:
        doc: dict[str, Any] = {
            "version": 1, "study_id": case.case_id,
            "dce": [names["dce_pre"], *[names[f"dce_post{p}"] for p in range(1, len(case.study.dce or []))]],
            "dwi": {f"{b:g}": names[f"dwi_b{b:g}"] for b in case.study.dwi},
            "t2": names["t2"], "birads": case.study.clinical.birads, "age": case.study.clinical.age,
            "clinical": dict(case.study.clinical.extra),
        }  # fmt: skip
        if "t1" in names:
            doc["t1"] = names["t1"]
        (folder / "study.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return out
