"""BI-RADS 4 figures with the paper's denominators and exact (Clopper-Pearson) intervals."""

from __future__ import annotations

import pytest
from scipy.stats import binom

from model_core.engine.demo import DEMO_WEIGHTS
from model_core.evaluation.binary import clopper_pearson
from model_core.evaluation.heldout import paper_denominators
from model_core.weights.native import read_card


@pytest.mark.parametrize(("k", "n"), [(0, 13), (1, 21), (9, 29), (12, 27), (16, 16)])
def test_clopper_pearson_bounds_are_exact(k: int, n: int) -> None:
    lo, hi = clopper_pearson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    # the defining tail equations: P(X >= k | lo) = 2.5 %, P(X <= k | hi) = 2.5 %
    if k > 0:
        assert binom.sf(k - 1, n, lo) == pytest.approx(0.025, abs=1e-9)
    if k < n:
        assert binom.cdf(k, n, hi) == pytest.approx(0.025, abs=1e-9)
    assert clopper_pearson(0, 13)[1] == pytest.approx(1 - 0.025 ** (1 / 13))


def test_paper_denominators() -> None:
    applied = {"n_birads4": 42, "n_malignant": 13, "benign_downgraded": 9, "malignant_downgraded": 0}
    f = paper_denominators(applied)
    assert f["benign_downgraded_of_benign"]["k"] == 9 and f["benign_downgraded_of_benign"]["n"] == 29
    assert f["cancers_missed_of_malignant"]["k"] == 0 and f["cancers_missed_of_malignant"]["n"] == 13


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="resources/demo.safetensors is not installed")
def test_shipped_card_reports_the_paper_denominators() -> None:
    for rec in read_card(DEMO_WEIGHTS).metrics["birads4_downgrade"].values():
        b, c = rec["benign_downgraded_of_benign"], rec["cancers_missed_of_malignant"]
        assert b["n"] == rec["n_birads4"] - rec["n_malignant"] and b["k"] == rec["benign_downgraded"]
        assert c["n"] == rec["n_malignant"] and c["k"] == rec["malignant_downgraded"]
        assert (b["ci_lower"], b["ci_upper"]) == pytest.approx(clopper_pearson(b["k"], b["n"]))


def test_no_benign_birads4_gives_null_not_nan() -> None:
    f = paper_denominators({"n_birads4": 3, "n_malignant": 3, "benign_downgraded": 0, "malignant_downgraded": 0})
    assert f["benign_downgraded_of_benign"]["value"] is None and f["benign_downgraded_of_benign"]["n"] == 0
