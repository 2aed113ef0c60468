"""study.json manifests and folders of named image files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from model_core.errors import GeometryError, StudyReadError
from model_core.studies import read_study
from tests.model_core.studies.builders import canonical_phantom, write_nifti

AFF = np.diag([0.8, 0.8, 2.0, 1.0])
DWI_AFF = np.diag([1.6, 1.6, 3.0, 1.0])


def _files(folder: Path) -> None:
    base = canonical_phantom()
    for p in range(4):
        write_nifti(folder / f"dce_{p}.nii.gz", base + 100 * p, AFF)
    for b in (0, 800):
        write_nifti(folder / f"dwi_b{b}.nii.gz", base + b, DWI_AFF)
    write_nifti(folder / "t2.nii.gz", base, AFF)
    write_nifti(folder / "lesion_mask.nii.gz", (base > 1000).astype(np.int16), AFF)


def _manifest(folder: Path, doc: dict) -> None:
    (folder / "study.json").write_text(json.dumps(doc))


def test_manifest_phases_dwi_t2_clinical(tmp_path: Path) -> None:
    _files(tmp_path)
    img = sitk.GetImageFromArray(canonical_phantom().transpose(2, 1, 0))
    sitk.WriteImage(img, str(tmp_path / "t1.nrrd"))
    _manifest(
        tmp_path,
        {
            "study_id": "c1",
            "dce": [f"dce_{p}.nii.gz" for p in range(4)],
            "dwi": {"0": "dwi_b0.nii.gz", "800": "dwi_b800.nii.gz"},
            "t2": "t2.nii.gz",
            "t1": "t1.nrrd",
            "birads": "4B",
            "age": 51,
            "extra": {"label": "benign"},
        },
    )
    study = read_study(tmp_path)
    assert study.study_id == "c1" and study.modalities == ("dce", "dwi", "t2") and study.t1 is not None
    assert np.allclose(np.diff([v.data.mean() for v in study.dce]), 100.0)
    assert sorted(study.dwi) == [0.0, 800.0] and study.highest_b == 800.0
    assert study.clinical.birads == "4b" and study.clinical.is_birads4 and study.clinical.age == 51.0
    assert study.clinical.extra == {"label": "benign"}
    assert {d.role for d in study.decisions} == {"dce", "dwi", "t2", "t1"}
    assert read_study(tmp_path / "study.json").study_id == "c1"


def test_manifest_subtraction_and_4d_forms(tmp_path: Path) -> None:
    _files(tmp_path)
    phases = np.stack([canonical_phantom() + 7 * p for p in range(6)], axis=-1)
    write_nifti(tmp_path / "dce4d.nii.gz", phases, AFF)
    dwi = np.stack([canonical_phantom(), canonical_phantom() // 2], axis=-1)
    write_nifti(tmp_path / "dwi4d.nii.gz", dwi, DWI_AFF)
    _manifest(
        tmp_path, {"dce": {"file": "dce4d.nii.gz"}, "dwi": {"file": "dwi4d.nii.gz", "b_values": [0, 1000]}}
    )
    study = read_study(tmp_path)
    assert len(study.dce) == 6 and np.array_equal(study.dce[5].data, phases[..., 5])
    assert sorted(study.dwi) == [0.0, 1000.0]
    _manifest(tmp_path, {"dce": {"pre": "dce_0.nii.gz", "post": ["dce_1.nii.gz", "dce_3.nii.gz"]}})
    assert [float(v.data.mean()) for v in read_study(tmp_path).dce] == pytest.approx(
        [float(canonical_phantom().mean()) + d for d in (0, 100, 300)], abs=1e-3
    )
    _manifest(tmp_path, {"dce": {"subtraction": ["dce_1.nii.gz", "dce_2.nii.gz"]}})
    study = read_study(tmp_path)
    assert study.dce_is_subtraction and len(study.dce) == 2


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"dce": ["dce_0.nii.gz", "../outside.nii.gz"]}, "leaves the study folder"),
        ({"dce": ["dce_0.nii.gz", "/etc/passwd"]}, "leaves the study folder"),
        ({"t2w": "t2.nii.gz"}, "unknown manifest keys"),
        ({"t2": "missing.nii.gz"}, "does not exist"),
        ({"birads": "4"}, "names no DCE"),
        ({"t2": "t2.nii.gz", "birads": "7"}, "birads"),
        ({"t2": "t2.nii.gz", "age": "old"}, "age"),
        ({"dce": ["dce_0.nii.gz"]}, "at least one post-contrast"),
        ({"dwi": {"high": "dwi_b800.nii.gz"}}, "not a number"),
        ({"dce": ["dce_0.nii.gz", "dwi_b800.nii.gz"]}, "DCE phases must share one grid"),
        ({"dce": {"pre": "dce_0.nii.gz"}}, "'pre' needs 'post'"),
        (
            {"dce": {"pre": "dce_0.nii.gz", "post": ["dce_1.nii.gz"], "phases": ["dce_0.nii.gz"]}},
            "disagree|different",
        ),
    ],
)
def test_manifest_errors(tmp_path: Path, doc: dict, match: str) -> None:
    _files(tmp_path)
    (tmp_path.parent / "outside.nii.gz").write_bytes((tmp_path / "t2.nii.gz").read_bytes())
    _manifest(tmp_path, doc)
    with pytest.raises(StudyReadError, match=match):
        read_study(tmp_path)


def test_manifest_not_json(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(StudyReadError, match="cannot read manifest") as err:
        read_study(tmp_path)
    assert err.value.__cause__ is not None


def test_named_files_without_manifest(tmp_path: Path) -> None:
    _files(tmp_path)
    study = read_study(tmp_path)
    assert len(study.dce) == 4 and np.allclose(np.diff([v.data.mean() for v in study.dce]), 100.0)
    assert sorted(study.dwi) == [0.0, 800.0] and study.t2 is not None
    assert any(d.role == "ignored" and "mask" in d.reason for d in study.decisions)


def test_named_pre_post_files(tmp_path: Path) -> None:
    base = canonical_phantom()
    for name, add in (("post2", 200), ("pre", 0), ("post1", 100), ("T2w", 0)):
        write_nifti(tmp_path / f"{name}.nii", base + add, AFF)
    study = read_study(tmp_path)
    assert [float(v.data.mean() - study.dce[0].data.mean()) for v in study.dce] == pytest.approx(
        [0, 100, 200]
    )
    assert study.t2 is not None


def test_named_files_mismatched_dce_grid(tmp_path: Path) -> None:
    write_nifti(tmp_path / "pre.nii", canonical_phantom(), AFF)
    write_nifti(tmp_path / "post1.nii", canonical_phantom(), DWI_AFF)
    with pytest.raises(GeometryError, match=r"pre\.nii") as err:
        read_study(tmp_path)
    assert "post1.nii" in str(err.value)


def test_folder_without_recognised_files(tmp_path: Path) -> None:
    write_nifti(tmp_path / "mystery.nii", canonical_phantom(), AFF)
    with pytest.raises(StudyReadError, match="no DCE, DWI or T2 image recognised"):
        read_study(tmp_path)
