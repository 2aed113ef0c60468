"""Result: JSON round trip, saliency NIfTI files keeping their affine."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from model_core.engine.result import Result, Saliency


def _affine(exact: bool) -> np.ndarray:
    a = np.array([[0.0, 0.0, 3.0, -80.5], [-0.75, 0.0, 0.0, 120.25], [0.0, 0.75, 0.0, -33.0], [0, 0, 0, 1]])
    if not exact:  # values a float32 header cannot hold within 1e-6 (oblique, scanner-like)
        c, s = np.cos(0.1234567), np.sin(0.1234567)
        a = np.array([[0.7031234 * c, -0.7031234 * s, 0, -171.123456789],
                      [0.7031234 * s, 0.7031234 * c, 0, 93.987654321],
                      [0, 0, 2.2000001, -60.55555551], [0, 0, 0, 1]])
    return a


def _result(saliency: dict[str, Saliency] | None = None) -> Result:
    return Result(
        probability=0.25, subsets={"none": 0.4, "dce": 0.3, "dwi": None, "t2": 0.5, "dce+dwi": None,
                                   "dce+t2": 0.25, "dwi+t2": None, "dce+dwi+t2": None},
        shapley={"dce": -0.2, "dwi": 0.0, "t2": 0.05}, shapley_check={"v_full": 0.25, "v_empty": 0.4,
                                                                      "sum_phi": -0.15, "error": 0.0},
        modalities=("dce", "t2"), tta={"kind": "none", "n_versions": 1}, decision={"status": "not_applicable"},
        explain={"n_steps": 32, "convergence_delta": 1e-3, "seconds": 1.5}, provenance={"device": "cpu"},
        study={"study_key": "abc"}, timings={"total": 1.0}, run_id="r1", created="2026-01-01T00:00:00+00:00",
        saliency=saliency or {},
    )


@pytest.mark.parametrize("exact", [True, False])
def test_saliency_nifti_keeps_its_affine(tmp_path, exact: bool) -> None:
    data = np.random.default_rng(0).normal(size=(7, 5, 3)).astype(np.float32)
    sal = Saliency("dce", data, _affine(exact), "dce[0]")
    path = sal.write(tmp_path / sal.filename)
    img = nib.load(str(path))
    assert isinstance(img, nib.Nifti1Image if exact else nib.Nifti2Image)
    assert int(img.header["sform_code"]) == 1
    back = Saliency.read(path, "dce")
    assert np.abs(back.affine - sal.affine).max() <= 1e-6
    assert np.array_equal(back.data, data)


def test_json_round_trip_and_files(tmp_path) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    r = _result({"dce": Saliency("dce", data, _affine(False), "dce[0]")})
    text = r.to_json()
    d = json.loads(text)
    assert d["saliency"]["dce"]["file"] == "saliency_dce.nii.gz" and d["saliency"]["dce"]["sum"] == float(data.sum())
    again = Result.from_json(text)
    assert again.to_dict() == {**r.to_dict(), "saliency": {}}  # arrays live in the NIfTI files
    assert again.subset_probability("t2+dce") == 0.25 and again.subset_probability(()) == 0.4
    assert again.subset_probability("dwi") is None
    paths = r.write(tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["result.json", "saliency_dce.nii.gz"]
    back = Result.read(tmp_path / "out")
    assert back.to_dict() == r.to_dict()
    assert np.array_equal(back.saliency["dce"].data, data)
    assert np.abs(back.saliency["dce"].affine - r.saliency["dce"].affine).max() <= 1e-6


def test_volatile_fields_can_be_dropped_and_nan_is_refused() -> None:
    d = _result().to_dict(volatile=False)
    assert "run_id" not in d and "timings" not in d and "created" not in d and "seconds" not in d["explain"]
    bad = _result()
    bad.probability = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        bad.to_json()
    with pytest.raises(ValueError, match="not a napari-mome result"):
        Result.from_dict({"schema": "other"})
