"""Hardening items 4 and 6 at the study level: memory budgets checked before reading, ambiguous manifests
refused, inputs the model cannot judge (constant, absurd geometry, a broken DICOM stack) refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import BudgetError, StudyReadError
from model_core.preprocessing import intensity
from model_core.preprocessing.preprocess import preprocess
from model_core.studies import ReadLimits, read_study
from tests.model_core.studies.builders import canonical_phantom, write_nifti, write_series

AFF = np.diag([0.8, 0.8, 2.0, 1.0])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    base = canonical_phantom()
    for p in range(3):
        write_nifti(tmp_path / f"dce_{p}.nii.gz", base + 100 * p, AFF)
    write_nifti(tmp_path / "t2.nii.gz", base, AFF)
    return tmp_path


def _manifest(folder: Path, text: str | dict) -> None:
    (folder / "study.json").write_text(text if isinstance(text, str) else json.dumps(text))


@pytest.mark.parametrize(("doc", "match"), [
    ({"dce": ["a"] * 100_000}, "100000 DCE phases, above the limit of 32"),  # an 800 KB study.json
    ({"dce": {"pre": "dce_0.nii.gz", "post": ["dce_1.nii.gz"] * 40}}, "41 DCE phases"),
    ({"dwi": {str(b): "a" for b in range(60_000)}}, "60000 DWI b-values"),
    ({"dwi": [{"b": b, "file": "a"} for b in range(30_000)]}, "30000 DWI b-values"),
    ({"dwi": {"file": "dce_0.nii.gz", "b_values": list(range(60_000))}}, "60000 DWI b-values"),
])
def test_phase_and_b_value_counts_refused_before_reading(folder: Path, doc: dict, match: str) -> None:
    _manifest(folder, doc)
    with pytest.raises(StudyReadError, match=match) as info:
        read_study(folder)
    assert "ReadLimits.max_" in str(info.value)


@pytest.mark.parametrize(("doc", "match"), [
    ('{"t2": "t2.nii.gz", "t2": "dce_0.nii.gz"}', r"\['t2'\] given twice"),
    ({"dce": ["dce_0.nii.gz", "dce_1.nii.gz"], "dwi": {"0": "t2.nii.gz"}, "t2": "t2.nii.gz"}, "named for both"),
    ({"dce": ["dce_0.nii.gz", "dce_0.nii.gz", "./dce_0.nii.gz"]}, "named for both dce"),
    ({"dwi": [{"b": True, "file": "dce_0.nii.gz"}]}, "b-value True is not a number"),
])
def test_ambiguous_manifests_refused(folder: Path, doc: str | dict, match: str) -> None:
    _manifest(folder, doc)
    with pytest.raises(StudyReadError, match=match):
        read_study(folder)


def test_study_total_size_is_capped(folder: Path) -> None:
    one = canonical_phantom().size * 4
    assert len(read_study(folder, ReadLimits(max_study_bytes=4 * one)).dce or []) == 3
    with pytest.raises(StudyReadError, match="raise ReadLimits.max_study_bytes"):
        read_study(folder, ReadLimits(max_study_bytes=3 * one))


@pytest.mark.parametrize("value", [0, 7])
def test_constant_image_refused(folder: Path, value: int) -> None:
    write_nifti(folder / "t2.nii.gz", np.full((6, 7, 5), value, np.int16), AFF)
    with pytest.raises(StudyReadError, match="constant image"):
        read_study(folder)


def test_absurd_geometry_refused_naming_the_file(folder: Path) -> None:
    write_nifti(folder / "t2.nii.gz", canonical_phantom((8, 8, 512)), np.diag([20.0, 20.0, 0.01, 1.0]))
    with pytest.raises(StudyReadError, match=r"t2\.nii\.gz: absurd geometry"):
        read_study(folder)


def test_dicom_series_with_one_odd_slice_is_refused(tmp_path: Path) -> None:
    vol = canonical_phantom((6, 7, 5))
    per_slice = [{}, {}, {"PixelSpacing": [0.5, 0.5]}, {}, {}]
    write_series(tmp_path, vol, description="Ax T2 FSE", series_number=3, per_slice=per_slice)
    with pytest.raises(StudyReadError, match="differ in size, orientation or pixel spacing"):
        read_study(tmp_path)


def test_phase_interpolation_budget(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = read_study(folder)
    need = intensity.check_phase_budget(2, 6, (6, 7, 5))
    assert need == (2 + 6) * 6 * 7 * 5 * 4
    monkeypatch.setattr(intensity, "MAX_PHASE_BYTES", need - 1)
    with pytest.raises(BudgetError, match="MOME_MAX_PHASE_BYTES"):
        preprocess(study)
