"""generate_study: determinism, site protocols, geometry conventions, truth consistency."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from model_core.phantom import SITES, PhantomCase, generate_study, get_site
from model_core.phantom.generate import case_streams
from model_core.phantom.params import PARAMS
from model_core.phantom.truth import sample_truth

SCALE = 0.4  # small studies: DCE ~58 x 45 x 19


def _arrays(case: PhantomCase) -> list[np.ndarray]:
    st = case.study
    assert st.dce is not None and st.t2 is not None
    out = [v.data for v in st.dce] + [st.dwi[b].data for b in sorted(st.dwi)] + [st.t2.data, case.mask.data]
    return out + ([st.t1.data] if st.t1 is not None else [])


@pytest.fixture(scope="module")
def cases() -> dict[str, PhantomCase]:
    return {name: generate_study(11, name, scale=SCALE) for name in SITES}


def test_same_seed_is_bitwise_identical() -> None:
    a, b = generate_study(5, "ds2", scale=SCALE), generate_study(5, "ds2", scale=SCALE)
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        assert x.dtype == y.dtype == np.float32
        assert x.tobytes() == y.tobytes()
    assert a.truth == b.truth
    assert all(
        np.array_equal(u.affine, v.affine) for u, v in zip(a.study.dce or [], b.study.dce or [], strict=True)
    )


def test_different_seed_or_site_differs() -> None:
    a = generate_study(5, "ds1", scale=SCALE)
    b = generate_study(6, "ds1", scale=SCALE)
    c = generate_study(5, "ds3", scale=SCALE)
    assert a.study.dce is not None and b.study.dce is not None and c.study.dce is not None
    assert not np.array_equal(a.study.dce[1].data, b.study.dce[1].data)
    assert a.case_id != c.case_id and a.patient_id != c.patient_id


def test_labels_do_not_depend_on_scale() -> None:
    small = generate_study(21, "ds1", scale=0.3)
    large = generate_study(21, "ds1", scale=0.5)
    assert small.truth == large.truth
    assert np.allclose(small.lesion_centre_mm, large.lesion_centre_mm)


def test_forced_label() -> None:
    assert generate_study(3, "ds1", label=1, scale=0.3).truth.malignant
    assert not generate_study(3, "ds1", label=0, scale=0.3).truth.malignant


@pytest.mark.parametrize("name", sorted(SITES))
def test_site_protocol(cases: dict[str, PhantomCase], name: str) -> None:
    site = get_site(name)
    case = cases[name]
    st = case.study
    assert st.dce is not None and len(st.dce) == site.n_post + 1
    assert [v.meta["time_s"] for v in st.dce] == [0.0, *site.post_times_s]
    assert tuple(sorted(st.dwi)) == site.b_values
    assert st.highest_b == max(site.b_values)
    assert case.truth.field_strength in site.field_strengths
    assert st.clinical.extra["field_strength"] == case.truth.field_strength
    assert st.modalities == ("dce", "dwi", "t2")
    assert (st.t1 is not None) == (site.protocols[case.truth.protocol_index].t1 is not None)


def test_site_constants() -> None:
    assert (SITES["ds1"].n_post, SITES["ds1"].b_values, SITES["ds1"].field_strengths) == (
        6,
        (0.0, 1000.0),
        (1.5,),
    )
    assert (SITES["ds2"].n_post, SITES["ds2"].b_values, SITES["ds2"].field_strengths) == (
        5,
        (0.0, 800.0),
        (1.5, 3.0),
    )
    assert SITES["ds3"].n_post == 6 and max(SITES["ds3"].b_values) in (800.0, 1000.0)
    # ds2 mixes field strengths; the protocol also changes the DCE matrix
    fields = {sample_truth(np.random.default_rng(s), SITES["ds2"], PARAMS).field_strength for s in range(40)}
    assert fields == {1.5, 3.0}
    shapes = {p.dce.shape for p in SITES["ds2"].protocols}
    assert len(shapes) == 2
    with pytest.raises(ValueError):
        get_site("ds9")


def test_geometry_conventions(cases: dict[str, PhantomCase]) -> None:
    for case in cases.values():
        st = case.study
        assert st.dce is not None and st.t2 is not None
        dce, dwi, t2 = st.dce[0], st.dwi[max(st.dwi)], st.t2
        for v in (*st.dce, *st.dwi.values(), t2, case.mask):
            assert v.data.dtype == np.float32 and v.data.ndim == 3
            a = v.affine[:3, :3]
            assert np.allclose(a, np.diag(np.diag(a))) and (np.diag(a) > 0).all()  # canonical RAS+
        assert all(v.same_grid(dce) for v in st.dce) and case.mask.same_grid(dce)
        assert not dwi.same_grid(dce) and not t2.same_grid(dce)
        assert np.prod(dce.spacing) < np.prod(t2.spacing) < np.prod(dwi.spacing)  # DCE finest, DWI coarsest
        # i runs across both breasts (widest axis), k over slices (thickest spacing)
        assert dce.data.shape[0] == max(dce.data.shape) and dce.spacing[2] == max(dce.spacing)
        assert np.isfinite(dce.data).all() and (dce.data >= 0).all()


def test_demo_scale_matrices() -> None:
    truth = sample_truth(np.random.default_rng(case_streams(0, SITES["ds1"])[0]), SITES["ds1"], PARAMS)
    proto = SITES["ds1"].protocols[truth.protocol_index]
    assert (
        proto.dce.shape == (144, 112, 48)
        and proto.dwi.shape == (128, 100, 32)
        and proto.t2.shape == (144, 112, 32)
    )
    assert 340 <= proto.dce.fov_mm[0] <= 380


def test_mask_and_lesion_truth(cases: dict[str, PhantomCase]) -> None:
    for case in cases.values():
        les = case.truth.lesion
        assert 5.0 <= les.diameter_mm <= 40.0
        vol_mm3 = float(case.mask.data.sum()) * float(np.prod(case.mask.spacing))
        assert vol_mm3 > 0
        # mask volume within a factor of ~3 of the base ellipsoid (spicules add, partial volume trims)
        assert 0.25 < vol_mm3 / (np.pi / 6 * les.diameter_mm**3) < 4.0
        # the lesion centre lies inside the mask's bounding box, in world space
        ijk = np.argwhere(case.mask.data > 0)
        lo = case.mask.affine[:3, :3] @ ijk.min(0) + case.mask.affine[:3, 3]
        hi = case.mask.affine[:3, :3] @ ijk.max(0) + case.mask.affine[:3, 3]
        c = np.asarray(case.lesion_centre_mm)
        assert np.all(c >= lo - 5.0) and np.all(c <= hi + 5.0)
        assert case.labels()["malignant"] == int(case.truth.malignant)
        assert case.study.clinical.birads == case.truth.birads
        assert "malignant" not in case.study.clinical.extra  # the diagnosis never leaks into clinical info


def test_mask_never_empty_for_small_lesions() -> None:
    prof = SITES["ds1"]
    def diameter(seed: int) -> float:
        return sample_truth(np.random.default_rng(case_streams(seed, prof)[0]), prof, PARAMS).lesion.diameter_mm

    seeds = list(itertools.islice((s for s in range(3000) if diameter(s) <= 6.0), 2))  # the first two
    assert seeds
    for seed in seeds:
        case = generate_study(seed, "ds1", scale=0.3, with_t1=False)  # 12 x 12 x 10 mm DCE voxels
        assert case.mask.data.sum() >= 1
