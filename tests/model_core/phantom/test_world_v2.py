"""The ``v2`` phantom world: lesions with their breast-MRI T2 appearance, everything else as ``v1``.

What the tests pin down: the same seed gives the same labels, anatomy and DCE in both worlds; T2 kinds and
ratios follow the class (benign cysts and bright fibroadenomas, iso- to hypointense cancers); the T2 class
evidence can be found without knowing where the lesion is (the brightest smoothed spot of the image);
peritumoral oedema is a bright shell around the lesion; cohorts record their world and never mix two.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from model_core.evaluation.metrics import auroc
from model_core.phantom import SITES, generate_study
from model_core.phantom.cohort import write_cohort
from model_core.phantom.params import T2_KINDS_BENIGN, get_world
from model_core.phantom.sequences import oedema_shell
from model_core.phantom.truth import sample_truth

V1, V2 = get_world("v1"), get_world("v2")


def test_v2_changes_t2_only() -> None:
    a = generate_study(11, "ds1", scale=0.5, params=V1, with_t1=False)
    b = generate_study(11, "ds1", scale=0.5, params=V2, with_t1=False)
    la, lb = a.labels(), b.labels()
    for key in ("t2_ratio", "t2_kind", "t2_oedema"):
        la.pop(key), lb.pop(key)
    assert la == lb
    for va, vb in zip(a.study.dce, b.study.dce, strict=True):
        np.testing.assert_array_equal(va.data, vb.data)
    np.testing.assert_array_equal(a.mask.data, b.mask.data)
    assert not np.array_equal(a.study.t2.data, b.study.t2.data)


def test_t2_kinds_follow_the_class() -> None:
    truths = [sample_truth(np.random.default_rng(s), SITES["ds1"], V2) for s in range(2000)]
    benign = [t.lesion for t in truths if not t.malignant]
    malignant = [t.lesion for t in truths if t.malignant]
    assert {les.t2_kind for les in benign} == set(T2_KINDS_BENIGN)
    assert {les.t2_kind for les in malignant} == {"hypo", "bright"}
    assert all(les.t2_kind == "hypo" for t in truths if t.malignant and not t.tnbc for les in [t.lesion])
    cysts = [les.t2_ratio for les in benign if les.t2_kind == "cyst"]
    hypo = [les.t2_ratio for les in malignant if les.t2_kind == "hypo"]
    assert min(cysts) >= 3.0 and np.median(hypo) < 0.8
    share = np.mean([les.t2_oedema > 0 for les in malignant])
    assert 0.2 < share < 0.4 and all(les.t2_oedema == 0 for les in benign)
    assert all(t.lesion.t2_kind == "solid" and t.lesion.t2_oedema == 0
               for t in (sample_truth(np.random.default_rng(s), SITES["ds1"], V1) for s in range(50)))


def _brightest_spot(t2: np.ndarray) -> float:
    """Lesion-agnostic: the brightest 3-voxel-smoothed spot over the median of the brighter half."""
    body = t2 > np.percentile(t2, 50)
    return float(ndi.uniform_filter(t2, 3).max() / np.median(t2[body]))


@pytest.mark.parametrize("site", ["ds1", "ds2"])
def test_t2_evidence_found_without_the_lesion_position(site: str) -> None:
    cases = [generate_study(500 + s, site, scale=0.75, params=V2, with_t1=False) for s in range(60)]
    y = np.array([int(c.truth.malignant) for c in cases])
    spot = np.array([_brightest_spot(c.study.t2.data) for c in cases])
    assert auroc(y, -spot) > 0.75  # benign: a bright spot; malignant: none


def test_oedema_is_a_bright_shell() -> None:
    lesion = np.zeros((40, 40, 20), np.float32)
    lesion[15:25, 15:25, 7:13] = 1.0
    shell = oedema_shell(lesion, np.ones_like(lesion), (1.0, 1.0, 2.0), 3.0)
    assert shell[lesion > 0].max() == 0.0
    assert shell[14, 20, 10] > 0.9 and shell[12, 20, 10] > 0.1 and shell[5, 20, 10] < 1e-3
    world = {p: dataclasses.replace(V2, t2=dataclasses.replace(V2.t2, oedema_p=p)) for p in (0.0, 1.0)}
    plain, oedema = (generate_study(5, "ds1", label=1, scale=0.75, params=world[p], with_t1=False)
                     for p in (0.0, 1.0))
    assert plain.truth.lesion.t2_ratio == oedema.truth.lesion.t2_ratio and oedema.truth.lesion.t2_oedema > 0
    diff = oedema.study.t2.data - plain.study.t2.data
    centre = np.linalg.solve(plain.study.t2.affine, [*plain.lesion_centre_mm, 1.0])[:3].round().astype(int)
    assert abs(diff[tuple(centre)]) < 1e-6  # the lesion itself is unchanged
    assert diff.max() > 0.1 and diff.min() > -0.05  # a brighter shell ...
    near = np.argwhere(diff > 0.05)
    assert np.abs(near - centre).max() * 2.5 < 40.0  # ... around the lesion only


def test_cohort_records_its_world_and_refuses_another(tmp_path: Path) -> None:
    write_cohort(2, "ds1", 3, tmp_path / "c", scale=0.3, formats=("nifti",), progress=False, world="v2")
    settings = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert settings["world"] == "v2"
    with pytest.raises(ValueError, match="world 'v2'"):
        write_cohort(2, "ds1", 3, tmp_path / "c", scale=0.3, formats=("nifti",), progress=False, world="v1")
    from model_core.cli.main import main

    assert main(["phantom", "--n", "2", "--seed", "3", "--out", str(tmp_path / "c"), "--scale", "0.3",
                 "--formats", "nifti", "--world", "v1", "--no-progress"]) == 2  # one clear error, no traceback
    assert json.loads((tmp_path / "c" / "cohort.json").read_text())["world"] == "v2"
    with pytest.raises(ValueError, match="unknown phantom world"):
        write_cohort(1, "ds1", 3, tmp_path / "d", scale=0.3, formats=("nifti",), progress=False, world="v9")
