"""The phantom world as a whole: label distributions and how much each sequence says.

One module fixture generates 200 small ds1 studies (scale 0.5, no T1) and their hand features; the
median generation time is recorded (``record_property`` / log), never asserted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from model_core.evaluation.logistic import cv_logistic_auroc
from model_core.evaluation.metrics import auroc
from model_core.phantom import SITES, generate_study
from model_core.phantom.features import FEATURES, lesion_features
from model_core.phantom.params import BPE_LEVELS, PARAMS
from model_core.phantom.truth import CaseTruth, sample_truth

log = logging.getLogger(__name__)
N, SCALE = 200, 0.5


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    rows, feats, times = [], [], []
    for seed in range(N):
        t0 = time.perf_counter()
        case = generate_study(seed, "ds1", scale=SCALE, with_t1=False)
        times.append(time.perf_counter() - t0)
        f = lesion_features(case.study, case.mask)
        feats.append([f[k] for k in FEATURES])
        rows.append(case.labels())
    return {"rows": rows, "x": np.asarray(feats), "median_s": float(np.median(times))}


@pytest.fixture(scope="module")
def truths() -> list[CaseTruth]:
    return [sample_truth(np.random.default_rng(s), SITES["ds2"], PARAMS) for s in range(3000)]


def test_generation_time_recorded(cohort: dict[str, Any], record_property: Any) -> None:
    record_property("median_generation_s_scale_0.5", round(cohort["median_s"], 4))
    log.info("median phantom generation time at scale %.2f: %.3f s", SCALE, cohort["median_s"])
    assert cohort["median_s"] > 0


def test_label_distributions_on_generated_studies(cohort: dict[str, Any]) -> None:
    rows = cohort["rows"]
    by_birads = Counter((r["birads"], r["malignant"]) for r in rows)
    assert by_birads[("4", 0)] > 0 and by_birads[("4", 1)] > 0  # BI-RADS 4 is mixed
    assert all(r["tnbc"] == 0 for r in rows if r["malignant"] == 0)
    assert all(r["pcr"] == "" for r in rows if r["malignant"] == 0)
    assert any(r["tnbc"] == 1 for r in rows) and any(r["pcr"] == 1 for r in rows)
    assert 0.45 < np.mean([r["malignant"] for r in rows]) < 0.75  # ds1 prevalence 0.6
    assert all(5.0 <= r["lesion_diameter_mm"] <= 40.0 for r in rows)
    assert {r["kinetic_type"] for r in rows} == {"persistent", "plateau", "washout"}
    assert {r["field_strength"] for r in rows} == {1.5}


def test_label_distributions_large_sample(truths: list[CaseTruth]) -> None:
    mal = [t for t in truths if t.malignant]
    rate = {b: np.mean([t.malignant for t in truths if t.birads == b]) for b in "2345"}
    assert rate["2"] < 0.15 and rate["3"] < 0.3  # mostly benign
    assert 0.25 < rate["4"] < 0.75  # mixed
    assert rate["5"] > 0.85  # mostly malignant
    assert 0.10 < np.mean([t.tnbc for t in mal]) < 0.20
    pcr_tnbc = np.mean([t.pcr for t in mal if t.tnbc])
    pcr_other = np.mean([t.pcr for t in mal if not t.tnbc])
    assert pcr_tnbc > pcr_other + 0.1
    assert all(t.pcr is None and not t.tnbc for t in truths if not t.malignant)
    assert {t.bpe for t in truths} == set(BPE_LEVELS)
    assert {t.field_strength for t in truths} == {1.5, 3.0}
    # younger women: more BPE; malignant: older
    young = np.mean([BPE_LEVELS.index(t.bpe) for t in truths if t.age < 40])
    old = np.mean([BPE_LEVELS.index(t.bpe) for t in truths if t.age >= 60])
    assert young > old
    assert np.mean([t.age for t in mal]) > np.mean([t.age for t in truths if not t.malignant]) + 4
    # TNBC looks different: rim enhancement and brighter T2 than other cancers
    tn = [t for t in mal if t.tnbc]
    other = [t for t in mal if not t.tnbc]
    assert np.mean([t.lesion.pattern == "rim" for t in tn]) > np.mean(
        [t.lesion.pattern == "rim" for t in other]
    )
    assert np.median([t.lesion.t2_ratio for t in tn]) > np.median([t.lesion.t2_ratio for t in other])


@pytest.mark.parametrize(
    "feature", ["dce_washout", "dce_initial_rise", "dce_irregularity", "dwi_low_adc", "t2_dark"]
)
def test_each_modality_is_informative_but_not_perfect(cohort: dict[str, Any], feature: str) -> None:
    y = np.array([r["malignant"] for r in cohort["rows"]])
    score = np.nan_to_num(cohort["x"][:, list(FEATURES).index(feature)])
    assert 0.6 <= auroc(y, score) <= 0.95, feature


def test_dwi_and_t2_add_to_dce(cohort: dict[str, Any]) -> None:
    y = np.array([r["malignant"] for r in cohort["rows"]])
    x = np.nan_to_num(cohort["x"])
    dce_cols = [i for i, k in enumerate(FEATURES) if FEATURES[k] == "dce"]
    dce_only = cv_logistic_auroc(x[:, dce_cols], y)
    everything = cv_logistic_auroc(x, y)
    log.info("logistic CV AUROC: DCE only %.3f, all %.3f", dce_only, everything)
    assert 0.75 < dce_only < 0.97  # DCE alone is good but not perfect
    assert everything >= dce_only + 0.02
