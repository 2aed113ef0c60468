"""Layers that look right on open (no viewer needed): labels as contours, robust contrast, a colormap per
role, the study's lesion mask loaded with the study, the sample study, the DCE kinetics classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_core.phantom import generate_study
from model_core.phantom.writers import write_nifti_study
from napari_mome._kinetics import DELAYED_THRESHOLD, classify, roi_mean, subtraction_mip
from napari_mome._reader import ROLE_COLORMAPS, napari_get_reader, robust_limits
from tests.model_core.studies.builders import canonical_phantom, write_nifti

AFF = np.diag([0.8, 0.8, 2.0, 1.0])


@pytest.fixture(scope="module")
def small_case():  # type: ignore[no-untyped-def]
    return generate_study(3, scale=0.5)


def test_mask_files_open_as_labels_on_the_image_grid(tmp_path: Path) -> None:
    img = write_nifti(tmp_path / "t2.nii.gz", canonical_phantom(), AFF)
    mask = (canonical_phantom() > canonical_phantom().mean()).astype(np.float32)
    for name in ("lesion_mask.nii.gz", "Labels.nii.gz", "tumour_seg.nii.gz"):
        path = write_nifti(tmp_path / name, mask, AFF)
        ((data, kwargs, kind),) = napari_get_reader(str(path))(str(path))  # type: ignore[misc]
        assert kind == "labels" and data.dtype == np.uint8 and set(np.unique(data)) == {0, 1}
        assert np.array_equal(data, mask.astype(np.uint8).transpose(2, 1, 0))
        assert kwargs["metadata"]["role"] == "mask"
    ((_, ikw, ikind),) = napari_get_reader(str(img))(str(img))  # type: ignore[misc]
    assert ikind == "image"
    assert kwargs["scale"] == ikw["scale"] and kwargs["translate"] == ikw["translate"]


def test_contrast_limits_are_robust_percentiles() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 10.0, size=(20, 30, 30)).astype(np.float32)
    data[0, 0, 0] = 1e6  # one hot voxel must not set the window
    lo, hi = robust_limits(data)
    assert 60 < lo < 80 and 120 < hi < 140
    assert robust_limits(np.zeros((3, 3, 3))) == (0.0, 1.0)


def test_study_folder_loads_its_mask_and_role_colormaps(tmp_path: Path, small_case) -> None:  # type: ignore[no-untyped-def]
    manifest = write_nifti_study(small_case, tmp_path / "study")
    layers = napari_get_reader(str(manifest.parent))(str(manifest.parent))  # type: ignore[misc]
    kinds = {kw["name"]: kind for _, kw, kind in layers}
    assert kinds["lesion_mask"] == "labels" and list(kinds.values()).count("labels") == 1
    by_name = {kw["name"]: (data, kw) for data, kw, _ in layers}
    mask, mkw = by_name["lesion_mask"]
    assert np.array_equal(mask, small_case.mask.data.astype(np.uint8).transpose(2, 1, 0))
    assert mkw["scale"] == by_name["DCE_t0"][1]["scale"] and mkw["translate"] == by_name["DCE_t0"][1]["translate"]
    for name, role in (("DCE_t1", "dce"), ("DWI_b1000", "dwi"), ("T2", "t2")):
        data, kw = by_name[name]
        assert kw["colormap"] == ROLE_COLORMAPS[role]
        lo, hi = kw["contrast_limits"]
        assert float(data.min()) <= lo < hi <= float(data.max()) and (lo, hi) != (data.min(), data.max())


def test_sample_is_the_demo_study_with_its_mask() -> None:
    from model_core.engine.demo import DEMO_SEED
    from napari_mome._sample_data import SYNTHETIC, make_sample

    layers = make_sample()
    names = [kw["name"] for _, kw, _ in layers]
    assert names[-1] == "lesion_mask" and layers[-1][2] == "labels"
    assert {"DCE_t0", "DWI_b1000", "T2"} <= set(names)
    assert all(kw["metadata"]["synthetic"] == SYNTHETIC for _, kw, _ in layers)
    case = generate_study(DEMO_SEED)
    assert np.array_equal(layers[-1][0], case.mask.data.astype(np.uint8).transpose(2, 1, 0))
    assert layers[0][1]["metadata"]["clinical"]["birads"] == case.study.clinical.birads


@pytest.mark.parametrize(("late", "expected"), [(1.3, "persistent"), (1.02, "plateau"), (0.8, "washout")])
def test_kinetic_curve_classes(late: float, expected: str) -> None:
    values = [100.0, 250.0, 100.0 + 150.0 * late]
    early, last = 250.0, values[-1]
    curve = classify(values)
    assert curve.delayed == expected
    assert curve.delayed_change == pytest.approx((last - early) / early)
    assert curve.initial == "fast" and curve.initial_change == pytest.approx(1.5)
    assert classify([100.0, 200.0, 200.0 * (1 + DELAYED_THRESHOLD - 1e-6)]).delayed == "plateau"
    assert classify([100.0, 200.0, 200.0 * (1 + DELAYED_THRESHOLD + 1e-6)]).delayed == "persistent"
    assert classify([100.0, 200.0, 200.0 * (1 - DELAYED_THRESHOLD - 1e-6)]).delayed == "washout"


def test_kinetic_curve_on_the_phantom_lesion(small_case) -> None:  # type: ignore[no-untyped-def]
    """The ROI mean follows the voxel data, and the curve uses the phases' acquisition times."""
    phases = [v.data for v in small_case.study.dce]
    idx = np.argwhere(small_case.mask.data > 0)[0]
    values = roi_mean(phases, idx, radius=0)
    assert values == [float(p[tuple(idx)]) for p in phases]
    times = [v.meta["time_s"] for v in small_case.study.dce]
    curve = classify(values, times)
    assert curve.times_s == tuple(times) and curve.delayed in ("persistent", "plateau", "washout")
    mip = subtraction_mip(phases[0], phases[1], axis=2)
    assert mip.shape == phases[0].shape[:2] and np.allclose(mip, (phases[1] - phases[0]).max(axis=2))
