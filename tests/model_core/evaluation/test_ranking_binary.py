"""Ranking and threshold metrics against scikit-learn (a test dependency only) on random data with ties,
and Clopper-Pearson intervals against scipy's exact binomial interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from model_core.evaluation.binary import binary_metrics, clopper_pearson, threshold_report
from model_core.evaluation.metrics import auroc
from model_core.evaluation.ranking import RankedRows, pr_on_grid, roc_on_grid

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the test extra")


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.7)
    y[:2] = [True, False]
    s = np.round(rng.normal(size=n) + 0.9 * y, int(rng.integers(0, 2)))  # rounding makes many ties
    return y.astype(int), s


@pytest.mark.parametrize("seed", range(25))
def test_ranking_metrics_equal_sklearn(seed: int) -> None:
    y, s = _data(seed)
    assert len(np.unique(s)) < y.size  # ties present
    r = RankedRows.build(y, s)
    assert abs(r.auroc()[0] - sk.roc_auc_score(y, s)) < 1e-12
    assert abs(auroc(y, s) - sk.roc_auc_score(y, s)) < 1e-12
    assert abs(r.average_precision()[0] - sk.average_precision_score(y, s)) < 1e-12
    for m in (0.1, 0.25):
        assert abs(r.partial_auroc(m, "spec")[0] - sk.roc_auc_score(y, s, max_fpr=m)) < 1e-12
        # sensitivity focus = specificity focus of the flipped problem
        assert abs(r.partial_auroc(m, "sens")[0] - sk.roc_auc_score(1 - y, -s, max_fpr=m)) < 1e-12


def test_rows_are_independent_and_one_class_rows_are_nan() -> None:
    ys, ss = zip(*(_data(k) for k in range(3)), strict=True)
    n = min(len(y) for y in ys)
    y = np.stack([v[:n] for v in ys])
    s = np.stack([v[:n] for v in ss])
    y[2] = 1
    r = RankedRows.build(y, s)
    for i in range(2):
        assert r.auroc()[i] == pytest.approx(sk.roc_auc_score(y[i], s[i]), abs=1e-12)
        assert r.average_precision()[i] == pytest.approx(sk.average_precision_score(y[i], s[i]), abs=1e-12)
    assert np.isnan(r.auroc()[2]) and np.isnan(r.partial_auroc()[2])


def test_curve_points_match_sklearn_curves() -> None:
    y, s = _data(3)
    fpr, tpr = RankedRows.build(y, s).roc_points()
    f2, t2, _ = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2, atol=1e-12)
    np.testing.assert_allclose(tpr, t2, atol=1e-12)
    rec, prec = RankedRows.build(y, s).pr_points()
    p2, r2, _ = sk.precision_recall_curve(y, s)
    np.testing.assert_allclose(rec, r2[::-1][1:], atol=1e-12)
    np.testing.assert_allclose(prec, p2[::-1][1:], atol=1e-12)
    grid = np.linspace(0, 1, 11)
    assert roc_on_grid(fpr, tpr, grid)[-1] == 1.0 and np.all(np.diff(roc_on_grid(fpr, tpr, grid)) >= 0)
    assert pr_on_grid(rec, prec, grid)[0] == prec[0]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_threshold_metrics_equal_sklearn(seed: int, threshold: float) -> None:
    y, s = _data(seed)
    p = 1 / (1 + np.exp(-s))
    pred = (p > threshold).astype(int)
    m = {k: v[0] for k, v in binary_metrics(y, p, threshold).items()}
    assert abs(m["accuracy"] - sk.accuracy_score(y, pred)) < 1e-12
    assert abs(m["f1"] - sk.f1_score(y, pred)) < 1e-12
    assert abs(m["mcc"] - sk.matthews_corrcoef(y, pred)) < 1e-12
    assert abs(m["sensitivity"] - sk.recall_score(y, pred)) < 1e-12
    assert abs(m["specificity"] - sk.recall_score(1 - y, 1 - pred)) < 1e-12
    assert abs(m["ppv"] - sk.precision_score(y, pred, zero_division=np.nan)) < 1e-12
    assert abs(m["npv"] - sk.precision_score(1 - y, 1 - pred, zero_division=np.nan)) < 1e-12


def test_positive_means_strictly_above_the_threshold() -> None:
    m = binary_metrics(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.9, 0.1]), 0.5)
    assert m["sensitivity"][0] == 0.5 and m["specificity"][0] == 1.0
    # degenerate tables: scikit-learn's conventions (F1 and MCC 0), proportions NaN
    d = binary_metrics(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]), 0.5)
    assert d["f1"][0] == 0 and d["mcc"][0] == 0 and np.isnan(d["sensitivity"][0]) and d["specificity"][0] == 1


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (8, 109), (0, 86), (86, 86), (37, 50)])
def test_clopper_pearson_equals_the_exact_binomial_interval(k: int, n: int) -> None:
    ref = binomtest(k, n).proportion_ci(0.95, method="exact")
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    assert (lo == 0) == (k == 0) and (hi == 1) == (k == n)


def test_clopper_pearson_hand_values_and_errors() -> None:
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, 86)[1] == pytest.approx(1 - 0.025 ** (1 / 86), rel=1e-12)
    assert clopper_pearson(5, 5)[0] == pytest.approx(0.025 ** (1 / 5), rel=1e-12)
    assert all(np.isnan(clopper_pearson(0, 0)))
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_threshold_report_counts() -> None:
    rep = threshold_report(np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1, 0.2]), 0.5)
    assert (rep["tp"], rep["fn"], rep["fp"], rep["tn"]) == (1, 1, 1, 2)
    assert rep["sensitivity"]["k"] == 1 and rep["sensitivity"]["n"] == 2
    assert rep["accuracy"]["value"] == pytest.approx(3 / 5)
    assert rep["ppv"]["ci_lower"] < 0.5 < rep["ppv"]["ci_upper"]
