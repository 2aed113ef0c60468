"""Preprocessing: phase interpolation, subtraction, standardisation, missing modalities, bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.ndimage as ndi

from model_core.bench.preprocess import grid_affine, synthetic_study
from model_core.errors import PreprocessError
from model_core.preprocessing.inverse import prepared_to_native
from model_core.preprocessing.preprocess import (
    Prepared,
    PreprocessOptions,
    interpolate_phases,
    phase_weights,
    preprocess,
    standardize,
)
from model_core.studies.study import Study, Volume

SMALL = {
    "dce": ((120, 80, 24), (1.2, 1.2, 2.5), (0.0, 3.0, 0.0)),
    "dwi": ((48, 34, 10), (3.0, 3.0, 6.0), (1.0, 2.0, -2.0)),
    "t2": ((96, 66, 12), (1.5, 1.5, 5.0), (-0.5, 4.0, 1.0)),
}
SIZES = {"dce": (96, 64, 32), "dwi": (64, 32, 16), "t2": (96, 64, 16)}
NO_MASK = PreprocessOptions(mask=False)


@pytest.fixture(scope="module")
def study() -> Study:
    return synthetic_study(scale=0.4, n_post=5, **SMALL)


def _const_study(values: list[float], subtraction: bool = False) -> Study:
    aff = grid_affine((4, 3, 2), (1.0, 1.0, 2.0), (0, 0, 0))
    vols = [Volume(np.full((4, 3, 2), v, np.float32), aff) for v in values]
    return Study(dce=vols, dce_is_subtraction=subtraction)


# -- DCE phases -------------------------------------------------------------------------------------
def test_phase_weights_5_to_6_hand_computed() -> None:
    """zoom(order=1, mode='grid-constant'), grid_mode=False: output k samples input 0.8 k."""
    want = np.array(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.2, 0.8, 0.0, 0.0, 0.0],
            [0.0, 0.4, 0.6, 0.0, 0.0],
            [0.0, 0.0, 0.6, 0.4, 0.0],
            [0.0, 0.0, 0.0, 0.8, 0.2],
            [0.0, 0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(phase_weights(5, 6), want, atol=1e-12)


def test_interpolate_phases_values_and_scipy() -> None:
    v = np.array([10.0, 20.0, 40.0, 80.0, 160.0], dtype=np.float32)
    x = v[:, None, None, None] * np.ones((5, 3, 2, 2), np.float32)
    out = interpolate_phases(x)
    want = [10.0, 0.2 * 10 + 0.8 * 20, 0.4 * 20 + 0.6 * 40, 0.6 * 40 + 0.4 * 80, 0.8 * 80 + 0.2 * 160, 160.0]
    assert out.shape == (6, 3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0, 0], want, rtol=1e-6)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((5, 4, 3, 2)).astype(np.float32)
    ref = ndi.zoom(y, (6 / 5, 1, 1, 1), order=1, mode="grid-constant")
    np.testing.assert_allclose(interpolate_phases(y), ref, atol=1e-6)


def test_six_phases_pass_through_bit_exact() -> None:
    x = np.random.default_rng(1).standard_normal((6, 4, 3, 2)).astype(np.float32)
    assert interpolate_phases(x) is x
    prep = preprocess(_const_study([1, 2, 3, 4, 5, 6], subtraction=True), options=NO_MASK)
    assert "phase_weights" not in prep.records["dce"].extra
    # with six subtraction phases, un-standardising gives back the input exactly (up to float32)
    r = prep.records["dce"]
    raw = prep.arrays["dce"] * np.float32(r.norm_std[0]) + np.float32(r.norm_mean[0])
    np.testing.assert_allclose(raw[:, 0, 0, 0], [1, 2, 3, 4, 5, 6], rtol=1e-6)


def test_subtraction_and_5_phase_study() -> None:
    """pre = 100, posts = 110..150 -> subtraction 10..50 -> 6 phases by the hand-computed weights."""
    prep = preprocess(_const_study([100, 110, 120, 130, 140, 150]), options=NO_MASK)
    r = prep.records["dce"]
    assert r.extra["phases_in"] == 5 and len(r.extra["phase_weights"]) == 6
    raw = prep.arrays["dce"][:, 1, 1, 1] * r.norm_std[0] + r.norm_mean[0]
    np.testing.assert_allclose(raw, [10, 18, 26, 34, 42, 50], rtol=1e-5)


# -- standardisation ------------------------------------------------------------------------------
def test_standardize_modes() -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 10, 8, 6)) * [[[[1.0]]], [[[5.0]]], [[[9.0]]]] + 40).astype(np.float32)
    y, mean, std = standardize(x, "volume")
    assert len(mean) == 1 and abs(float(y.mean())) < 1e-5 and abs(float(y.std()) - 1) < 1e-5
    assert not np.shares_memory(x, y)
    y, mean, std = standardize(x, "channel")
    assert len(std) == 3
    np.testing.assert_allclose(y.reshape(3, -1).std(axis=1), 1.0, atol=1e-5)
    mask = np.zeros((10, 8, 6), bool)
    mask[2:6, 2:6, 1:4] = True
    y, _, _ = standardize(x, "volume", mask)
    assert np.all(y[:, ~mask] == 0) and abs(float(y[:, mask].mean())) < 1e-5
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(PreprocessError, match="NaN"):
        standardize(x)


def test_options_round_trip_and_in_mask(study: Study) -> None:
    opt = PreprocessOptions(normalize="channel", normalize_in_mask=True, crop_margin_mm=2.0)
    assert PreprocessOptions.from_dict(json.loads(json.dumps(opt.to_dict()))) == opt
    prep = preprocess(study, SIZES, opt)
    dce, mask = prep.arrays["dce"], prep.masks["dce"]
    np.testing.assert_allclose(dce[:, mask].mean(axis=1), 0.0, atol=1e-4)
    assert np.all(dce[:, ~mask] == 0)


# -- the whole pipeline ---------------------------------------------------------------------------
def test_pipeline_records(study: Study) -> None:
    before = {k: v.data.copy() for k, v in (("pre", study.dce[0]), ("t2", study.t2))}
    prep = preprocess(study, SIZES)
    assert prep.modalities == ("dce", "dwi", "t2")
    for m, c in (("dce", 6), ("dwi", 1), ("t2", 1)):
        a = prep.arrays[m]
        assert a.dtype == np.float32 and a.ndim == 4 and a.shape[0] == c
        assert a.flags.c_contiguous and np.isfinite(a).all()
        r = prep.records[m]
        assert tuple(a.shape[1:]) == r.shape
        # the prepared grid's affine places prepared voxel 0 on the native voxel crop_start
        np.testing.assert_allclose(r.prepared_affine[:, 3], r.affine @ [*r.crop_start, 1.0], atol=1e-9)
    assert prep.records["dwi"].reference == "dwi[b=800]"
    assert prep.breast_mask is not None and prep.breast_mask.source == "dce_pre"
    json.dumps(prep.to_dict())
    assert Prepared.records_from_dict(prep.to_dict()) == prep.records
    np.testing.assert_array_equal(before["pre"], study.dce[0].data)  # the study is never modified
    np.testing.assert_array_equal(before["t2"], study.t2.data)


def test_breast_mask_anatomy(study: Study) -> None:
    """The mask covers the breasts (and the marker), not the air in front nor the body far behind."""
    prep = preprocess(study, SIZES)
    bm = prep.breast_mask
    r = prep.records["dce"]
    m = bm.on_grid(r.affine, r.native_shape)
    ijk = np.indices(r.native_shape).reshape(3, -1)
    xyz = (r.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3].reshape(3, *r.native_shape)
    s = 0.4
    x, y, z = xyz
    breast = (
        ((np.abs(x) - 70 * s) / (55 * s)) ** 2 + ((y - 5 * s) / (65 * s)) ** 2 + (z / (60 * s)) ** 2
    ) <= 0.8
    breast &= y > 8 * s
    assert m[breast].mean() > 0.98
    assert m[y > 85 * s].mean() < 0.02  # air in front of the breasts
    assert m[y < -40 * s].mean() < 0.02  # deep body behind the chest wall
    marker = np.round(np.linalg.solve(r.affine, [*study.clinical.extra["marker_mm"], 1.0])[:3]).astype(int)
    assert m[tuple(marker)]


def test_t2_resampling_cap() -> None:
    """A T2 matrix larger than the paper's 384 x 384 x 32 is down-sampled per axis; smaller ones are not."""
    st = synthetic_study(
        scale=1.0, dce=None, dwi=None, t2=((480, 200, 40), (0.7, 1.5, 4.0), (0, 10, 0)), noise=1.0
    )
    prep = preprocess(st, options=PreprocessOptions(mask=False))
    r = prep.records["t2"]
    assert r.shape == (384, 200, 32)
    np.testing.assert_allclose(r.extra["resample_factors"], [0.8, 1.0, 0.8])
    # prepared index -> native index is corner-aligned: last prepared voxel = last native voxel
    np.testing.assert_allclose(r.index_map().to_parent(np.array([[383, 199, 31]])), [[479, 199, 39]])
    never = preprocess(st, options=PreprocessOptions(mask=False, t2_resample="never"))
    assert never.records["t2"].shape == (480, 200, 40)


# -- missing modalities and bad input -------------------------------------------------------------
@pytest.mark.parametrize(
    "present", [c for n in (1, 2, 3) for c in itertools.combinations(("dce", "dwi", "t2"), n)], ids=str
)
def test_any_subset_of_modalities(study: Study, present: tuple[str, ...]) -> None:
    sub = study.without(*[m for m in ("dce", "dwi", "t2") if m not in present])
    prep = preprocess(sub, SIZES)
    assert prep.modalities == present
    assert set(prep.records) == set(present)


def test_no_modality_is_an_error(study: Study) -> None:
    with pytest.raises(PreprocessError, match="at least one"):
        preprocess(study.without("dce", "dwi", "t2"), SIZES)
    with pytest.raises(PreprocessError):
        preprocess("not a study", SIZES)  # type: ignore[arg-type]


def _bad(study: Study, what: str) -> Study:
    aff = study.dce[0].affine
    shape = study.dce[0].spatial_shape
    if what == "nan":
        data = study.dce[1].data.copy()
        data[tuple(s // 2 for s in shape)] = np.nan
        return Study(dce=[study.dce[0], Volume(data, aff)])
    if what == "grid":
        other = aff.copy()
        other[0, 3] += 5.0
        return Study(dce=[study.dce[0], Volume(study.dce[1].data, other)])
    if what == "pre_only":
        return Study(dce=[study.dce[0]])
    if what == "4d":
        return Study(t2=Volume(np.zeros((2, *shape), np.float32), aff))
    if what == "singular":
        return Study(t2=Volume(study.dce[0].data, np.zeros((4, 4))))
    if what == "b_value":
        return Study(dwi={-5.0: study.dwi[800.0]})
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["nan", "grid", "pre_only", "4d", "singular", "b_value"])
def test_bad_input(study: Study, what: str) -> None:
    with pytest.raises(PreprocessError):
        preprocess(_bad(study, what), SIZES)


def test_missing_canvas_size_and_bad_options(study: Study) -> None:
    with pytest.raises(PreprocessError, match="canvas size"):
        preprocess(study, {"dce": (96, 64, 32)})
    with pytest.raises(PreprocessError):
        PreprocessOptions(normalize="global")  # type: ignore[arg-type]
    with pytest.raises(PreprocessError):
        PreprocessOptions(crop=("dce", "pet"))


def test_blank_mask_source_falls_back(study: Study) -> None:
    blank = Volume(np.zeros((20, 20, 10), np.float32), grid_affine((20, 20, 10), (8, 8, 8), (0, 0, 0)))
    st = Study(dce=study.dce, t1=blank)
    prep = preprocess(st, SIZES)
    assert prep.breast_mask.fallback is not None
    r = prep.records["dce"]
    assert not r.masked  # a fallback mask crops to the field of view but masks nothing out


def test_prepared_to_native_identity(study: Study) -> None:
    """DWI is neither cropped nor resampled: its prepared array maps back onto the b=800 image."""
    prep = preprocess(study, SIZES)
    back, affine = prepared_to_native(prep.arrays["dwi"], "dwi", prep)
    r = prep.records["dwi"]
    np.testing.assert_array_equal(affine, study.dwi[800.0].affine)
    np.testing.assert_allclose(back * r.norm_std[0] + r.norm_mean[0], study.dwi[800.0].data, atol=1e-3)


def test_mask_on_permuted_grid(study: Study) -> None:
    """A grid with swapped axes (non-diagonal affine) samples the same world mask (general path)."""
    bm = preprocess(study, SIZES).breast_mask
    vol = study.t2
    perm = vol.affine[:, [1, 0, 2, 3]]
    shape = vol.spatial_shape
    direct = bm.on_grid(vol.affine, shape)
    swapped = bm.on_grid(perm, (shape[1], shape[0], shape[2]))
    assert np.mean(direct == swapped.transpose(1, 0, 2)) > 0.999
    box = bm.crop_box(vol.affine, shape)
    box_p = bm.crop_box(perm, (shape[1], shape[0], shape[2]))
    assert box_p == ((box[0][1], box[0][0], box[0][2]), (box[1][1], box[1][0], box[1][2]))


def test_bench_preprocess_smoke(study: Study) -> None:
    """The benchmark runs end to end on a small study (no timing assertions)."""
    from model_core.bench.preprocess import bench_preprocess

    r = bench_preprocess(repeats=1, sizes=SIZES, study=study)
    assert {"total_exact", "total_fast", "cpu_total_exact", "prep_mask"} <= set(r["median_s"])
    json.dumps(r)
