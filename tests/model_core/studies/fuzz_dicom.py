"""Mutators and cases for DICOM series folders (see fuzzlib.py)."""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pydicom.config

from model_core.studies import read_study, read_volume
from tests.model_core.studies.builders import canonical_phantom, write_series
from tests.model_core.studies.fuzz_outcome import run_case

# --- DICOM ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _lenient_writes() -> Iterator[None]:
    settings = pydicom.config.settings
    old = settings.writing_validation_mode
    settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.writing_validation_mode = old


def dicom_base(work: Path) -> Path:
    folder = work / "dicom_base"
    folder.mkdir(exist_ok=True)
    write_series(folder, canonical_phantom((8, 8, 4)), description="Ax T2 TSE", series_number=3)
    return folder


_DCM_EDITS: dict[str, list[object]] = {
    "Rows": [0, 1, 7, 9, 65535],
    "Columns": [0, 1, 7, 9, 65535],
    "BitsAllocated": [0, 1, 8, 12, 32, 64],
    "BitsStored": [0, 8, 12, 17],
    "SamplesPerPixel": [0, 3],
    "PixelRepresentation": [0, 1, 2],
    "NumberOfFrames": ["2", "0", "-1", "abc"],
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL"],
    "ImagePositionPatient": [
        ["nan", "0", "0"],
        ["1e300", "0", "0"],
        ["abc", "0", "0"],
        ["0", "0"],
        ["10", "-20", "11"],
        ["10", "-20", "5"],
    ],
    "ImageOrientationPatient": [
        ["1", "0", "0", "1", "0", "0"],
        ["0", "0", "0", "0", "0", "0"],
        ["nan", "0", "0", "0", "1", "0"],
        ["1", "0", "0"],
        ["0.7", "0.7", "0", "0", "1", "0"],
    ],
    "PixelSpacing": [["0", "1"], ["-1", "1"], ["nan", "1"], ["50", "50"], ["abc", "1"], ["1"]],
    "RescaleSlope": ["nan", "inf", "0", "1e38", "abc"],
    "RescaleIntercept": ["nan", "-inf", "abc"],
    "SeriesInstanceUID": ["1.2.3", ""],
    "TemporalPositionIdentifier": [1, 2, -5],
    "AcquisitionTime": ["abc", "250000", "120000.5"],
}


def mutate_dicom_folder(rng: np.random.Generator, base: Path, folder: Path) -> None:
    shutil.copytree(base, folder)
    files = sorted(folder.iterdir())
    target = files[int(rng.integers(0, len(files)))]
    op = rng.integers(0, 6)
    if op == 0:
        b = bytearray(target.read_bytes())
        for _ in range(rng.integers(1, 6)):
            b[rng.integers(132, len(b))] = int(rng.integers(0, 256))
        target.write_bytes(bytes(b))
    elif op == 1:
        raw = target.read_bytes()
        target.write_bytes(raw[: rng.integers(0, len(raw))])
    elif op == 2:
        if rng.random() < 0.5:
            target.unlink()  # a missing slice (first/last ones leave an even, shorter stack)
        else:
            shutil.copy(target, folder / "dup.dcm")
    else:
        ds = pydicom.dcmread(target, force=True)
        for _ in range(rng.integers(1, 3)):
            what = rng.integers(0, 4)
            if what == 0:
                key = str(
                    rng.choice(
                        [
                            "ImagePositionPatient",
                            "ImageOrientationPatient",
                            "PixelSpacing",
                            "Rows",
                            "PixelData",
                            "SeriesInstanceUID",
                            "BitsAllocated",
                        ]
                    )
                )
                if key in ds:
                    delattr(ds, key)
            elif what == 1:
                pix = bytes(ds.PixelData) if "PixelData" in ds else b""
                ds.PixelData = (
                    pix[: int(rng.integers(0, len(pix) + 1))] if rng.random() < 0.7 else pix + b"\0" * 64
                )
            elif what == 2:
                ds.file_meta.TransferSyntaxUID = str(
                    rng.choice(
                        [
                            "1.2.840.10008.1.2.4.50",
                            "1.2.840.10008.1.2.2",
                            "1.2.840.10008.1.2",
                            "1.2.840.10008.1.2.5",
                        ]
                    )
                )
            else:
                key = str(rng.choice(list(_DCM_EDITS)))
                options = _DCM_EDITS[key]
                with _lenient_writes(), contextlib.suppress(ValueError, TypeError, OverflowError):
                    setattr(ds, key, options[int(rng.integers(0, len(options)))])
        with _lenient_writes():
            try:
                ds.save_as(target, enforce_file_format=False)
            except Exception:  # noqa: BLE001 - an unwritable mutation: write a truncated copy instead
                raw = target.read_bytes()
                target.write_bytes(raw[: len(raw) // 2])


def dicom_expected_shape(folder: Path) -> tuple[int, ...] | None:
    """(Columns, Rows) most files agree on, and the number of files carrying the DICOM magic."""
    files = [p for p in folder.iterdir() if p.is_file() and p.read_bytes()[128:132] == b"DICM"]
    sizes: Counter[tuple[int, int]] = Counter()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            sizes[(int(ds.Columns), int(ds.Rows))] += 1
        except Exception:  # noqa: BLE001 - reference parse only
            continue
    return (*sizes.most_common(1)[0][0], len(files)) if sizes else None


def dicom_case(rng: np.random.Generator, base: Path, work: Path, n: int, with_study: bool = True) -> str:
    folder = work / f"d{n}"
    shutil.rmtree(folder, ignore_errors=True)
    mutate_dicom_folder(rng, base, folder)
    try:
        out = run_case(lambda: read_volume(folder), lambda: dicom_expected_shape(folder))
        if with_study:
            out_study = run_case(lambda: read_study(folder), lambda: None)
            if out_study.startswith(("ESCAPED", "BAD")):
                return out_study
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
