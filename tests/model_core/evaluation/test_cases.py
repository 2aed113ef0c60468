from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_core.errors import TrainError
from model_core.evaluation.cases import CaseCache, CaseDataset, cohort_is_synthetic, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.network.config import MomeConfig
from model_core.preprocessing.preprocess import preprocess
from model_core.preprocessing.tta import center, fit, random_augment
from model_core.studies import read_study

CSV = "case_id,path,malignant,tnbc,pcr\n"


def test_task_filters(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(CSV + "a,x,0,0,\nb,y,1,1,0\nc,z,1,0,1\nd,w,1,0,\n")
    assert [c.label for c in read_cohort(p, get_task("malignancy"))] == [0, 1, 1, 1]
    assert [(c.case_id, c.label) for c in read_cohort(p, get_task("tnbc"))] == [("b", 1), ("c", 0), ("d", 0)]
    assert [(c.case_id, c.label) for c in read_cohort(p, get_task("pcr"))] == [("b", 0), ("c", 1)]
    assert read_cohort(p, get_task("malignancy"))[0].path == str((tmp_path / "x").resolve())
    p.write_text(CSV + "a,x,2,0,\n")
    with pytest.raises(TrainError, match="must be 0/1"):
        read_cohort(p, get_task("malignancy"))
    p.write_text("case_id,path\na,x\n")
    with pytest.raises(TrainError, match="missing columns"):
        read_cohort(p, get_task("malignancy"))


def test_cache_equals_fresh_preprocessing(cohorts: dict[str, Path], tiny_cfg: MomeConfig) -> None:
    cases = read_cohort(cohorts["val"], get_task("malignancy"))[:2]
    cache = CaseCache(cohorts["cache"], tiny_cfg.sizes)
    cache.ensure(cases, workers=1, progress=False)
    assert not cache.missing(cases) and cohort_is_synthetic([cohorts["val"]])
    prepared = preprocess(read_study(cases[0].path), tiny_cfg.sizes)
    fresh = fit(prepared, tiny_cfg.sizes)
    cached = cache.load(cases[0])
    assert set(cached) == {"dce", "dwi", "t2"}
    for m, f in fresh.items():
        assert np.array_equal(cached[m], f.resized), m
    ds = CaseDataset(cases, cache)
    x, y = ds.train_item(0, np.random.default_rng(3))
    want = random_augment(np.random.default_rng(3), prepared, tiny_cfg.sizes)  # = on the cached arrays
    assert y.tolist() == [cases[0].label]
    for m in ("dce", "dwi", "t2"):
        assert x[m] is not None and torch.equal(x[m][0], torch.from_numpy(want[m][0]))
    ev = ds.eval_item(0, ("dce",))
    assert ev["dwi"] is None and ev["t2"] is None
    assert torch.equal(ev["dce"][0], torch.from_numpy(center(prepared, tiny_cfg.sizes)["dce"][0]))
