"""The bootstrap (seeded, paired, covering the true AUROC of a binormal model), decision curves against
hand-computed net benefits, the BI-RADS 4 transfer, subgroups, readers and Shapley summaries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from model_core.evaluation.birads_transfer import birads4_transfer
from model_core.evaluation.bootstrap import (
    bootstrap_columns,
    paired_p_value,
    percentile_ci,
    ranked_stats,
    replicate_counts,
    resample_indices,
)
from model_core.evaluation.decision_curve import THRESHOLDS, decision_curve, net_benefit_avoid, net_benefit_treat
from model_core.evaluation.ranking import RankedRows
from model_core.evaluation.readers import reader_comparison, reader_positive
from model_core.evaluation.shapley_summary import global_shapley
from model_core.evaluation.subgroups import bin_labels, subgroup_table


def test_bootstrap_is_reproducible_with_a_seed_and_every_resample_has_both_classes() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.1
    y[0] = True
    s = rng.normal(size=40) + y
    a = resample_indices(y, 500, seed=3)
    assert a.shape == (500, 40) and np.array_equal(a, resample_indices(y, 500, seed=3))
    assert not np.array_equal(a, resample_indices(y, 500, seed=4))
    yy = y[a]
    assert yy.any(axis=1).all() and (~yy).any(axis=1).all()
    one = bootstrap_columns(y, {"m": s}, a, ranked_stats, block=64)["m"]
    two = bootstrap_columns(y, {"m": s}, resample_indices(y, 500, seed=3), ranked_stats, block=500)["m"]
    for k in ("auroc", "auprc", "pauroc_spec90", "f1@0.5"):
        np.testing.assert_array_equal(one[k], two[k])
    with pytest.raises(ValueError, match="both classes"):
        resample_indices(np.ones(5), 10)


def test_bootstrap_interval_covers_the_true_auroc_of_a_binormal_model() -> None:
    """Positives ~ N(mu, 1), negatives ~ N(0, 1): true AUROC = Phi(mu / sqrt 2). 100 cohorts of 80 + 80."""
    mu = 1.2
    true = norm.cdf(mu / np.sqrt(2))
    rng = np.random.default_rng(2024)
    covered = 0
    for k in range(100):
        y = np.r_[np.ones(80, bool), np.zeros(80, bool)]
        s = np.r_[rng.normal(mu, 1, 80), rng.normal(0, 1, 80)]
        idx = resample_indices(y, 1000, seed=k)
        lo, hi = percentile_ci(RankedRows.build(y[idx], s[idx]).auroc(), 0.95)
        covered += lo <= true <= hi
    assert covered >= 90, covered


def test_resampled_rows_without_their_own_sort_equal_sorted_resamples() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(150) < 0.3
    s = np.round(rng.normal(size=150) + y, 1)
    idx = resample_indices(y, 60, seed=1)
    w = RankedRows.weighted(y, s, replicate_counts(idx, y.size))
    r = RankedRows.build(y[idx], s[idx])
    for q in (w, r):
        assert q.auroc().shape == (60,)
    np.testing.assert_allclose(w.auroc(), r.auroc(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.average_precision(), r.average_precision(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.partial_auroc(0.1, "spec"), r.partial_auroc(0.1, "spec"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.partial_auroc(0.2, "sens"), r.partial_auroc(0.2, "sens"), rtol=0, atol=1e-12)
    for t in (0.1, 0.3):
        for k, v in w.confusion(t).items():
            np.testing.assert_array_equal(v, r.confusion(t)[k])
    for i in (0, 17):
        fw, tw = w.roc_points(i)
        keep = np.r_[True, np.diff(fw) + np.diff(tw) > 0]  # a group drawn 0 times repeats its point
        np.testing.assert_allclose(fw[keep], r.roc_points(i)[0], atol=1e-12)
        np.testing.assert_allclose(tw[keep], r.roc_points(i)[1], atol=1e-12)
        rw, pw = w.pr_points(i)
        keep = np.r_[True, np.abs(np.diff(rw)) + np.abs(np.diff(pw)) > 0]
        np.testing.assert_allclose(pw[keep], r.pr_points(i)[1], atol=1e-12)


def test_paired_p_value() -> None:
    assert paired_p_value(np.full(999, 0.01)) == pytest.approx(2 / 1000)
    assert paired_p_value(np.r_[-np.ones(500), np.ones(500)]) == 1.0
    assert paired_p_value(np.r_[-np.ones(100), np.ones(900)]) == pytest.approx(2 * 101 / 1001)
    # the same column against itself: differences are 0, p = 1
    y = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    s = np.linspace(0, 1, 40)
    reps = bootstrap_columns(y, {"a": s, "b": s.copy()}, resample_indices(y, 200), ranked_stats)
    assert paired_p_value(reps["a"]["auroc"] - reps["b"]["auroc"]) == 1.0


Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
S = np.array([0.9, 0.6, 0.15, 0.7, 0.3, 0.2, 0.1, 0.05, 0.05, 0.02])


def test_net_benefit_equals_hand_computed_values() -> None:
    i20, i50 = int(np.flatnonzero(THRESHOLDS == 0.2)[0]), int(np.flatnonzero(THRESHOLDS == 0.5)[0])
    nb = net_benefit_treat(Y, S)[0]
    # pt = 0.2: treated (s >= 0.2) tp 2, fp 3: 2/10 - 3/10 * 0.25; pt = 0.5: tp 2, fp 1: 0.2 - 0.1
    assert nb[i20] == pytest.approx(0.125, abs=1e-12) and nb[i50] == pytest.approx(0.1, abs=1e-12)
    av = net_benefit_avoid(Y, S)[0]
    # pt = 0.2: spared (s < 0.2) tn 4, fn 1: 0.4 - 0.1 * 4; pt = 0.5: tn 6, fn 1: 0.6 - 0.1
    assert av[i20] == pytest.approx(0.0, abs=1e-12) and av[i50] == pytest.approx(0.5, abs=1e-12)
    d = decision_curve(Y, S, "treat", n_resamples=200)
    assert d["treat_all"][i50] == pytest.approx(0.3 - 0.7, abs=1e-12) and d["treat_none"][i50] == 0
    # net reduction in interventions: (NB_model - NB_treat_all) (1 - pt) / pt
    t = THRESHOLDS
    np.testing.assert_allclose(av, (nb - np.array(d["treat_all"])) * (1 - t) / t, atol=1e-12)
    assert all(lo <= m <= hi for lo, m, hi in zip(d["ci_lower"], d["model"], d["ci_upper"], strict=True)
               if abs(m) > 0.05)
    with pytest.raises(ValueError):
        decision_curve(Y, S, "other")


def test_birads4_transfer_hand_example() -> None:
    src = (np.array([1, 1, 0, 0, 1]), np.array([0.3, 0.8, 0.1, 0.5, 0.01]), ["4a", "4c", "4b", "4", "3"])
    tgt = (np.array([0, 0, 0, 0, 1, 1, 1, 0]), np.array([0.05, 0.2, 0.4, 0.29999, 0.31, 0.9, 0.25, 0.0]),
           ["4a", "4b", "4", "4c", "4a", "4b", "4c", "2"])
    r = birads4_transfer(src, tgt, source_name="ds1", target_name="ds2")
    assert r["tau"] == 0.3  # the lowest malignant BI-RADS 4 score of the source (the BI-RADS 3 cancer ignored)
    assert (r["benign_downgraded"]["k"], r["benign_downgraded"]["n"]) == (3, 4)
    assert (r["cancers_missed"]["k"], r["cancers_missed"]["n"]) == (1, 3)
    assert r["benign_downgraded"]["ci_lower"] < 0.75 < r["benign_downgraded"]["ci_upper"]


def test_subgroups_bins_and_counts() -> None:
    assert bin_labels(["39", "40", "59.9", "60", "", "x"], [40, 60]) == ["<40", "40-60", "40-60", ">=60", None, None]
    rng = np.random.default_rng(1)
    y = rng.random(120) < 0.4
    s = rng.normal(size=120) + 2 * y
    age = [str(a) for a in rng.integers(25, 80, 120)]
    rows = subgroup_table(y, s, age, edges=[40, 60], n_resamples=200)
    assert [r["group"] for r in rows] == ["<40", "40-60", ">=60"]
    assert sum(r["n"] for r in rows) == 120
    m = np.array([float(a) >= 60 for a in age])
    assert rows[2]["auroc"]["value"] == pytest.approx(RankedRows.build(y[m], s[m]).auroc()[0])
    assert rows[2]["n_positive"] == int(y[m].sum())
    assert rows[2]["sensitivity"]["n"] == int(y[m].sum())


def test_reader_comparison() -> None:
    np.testing.assert_array_equal(reader_positive(["4b", "4A", "4", "3", "5", "", "x"]),
                                  [1, 0, 0, 0, 1, np.nan, np.nan])
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.4, 0.6, 0.1, 0.2, 0.7, 0.3])
    r = reader_comparison(y, s, ["5", "4c", "4b", "4b", "3", "4a", "3", ""], n_resamples=200)
    assert r["n"] == 7
    assert r["reader"]["sensitivity"] == pytest.approx(3 / 4) and r["reader"]["specificity"] == pytest.approx(2 / 3)
    assert r["model"]["sensitivity"] == pytest.approx(3 / 4)
    assert r["f1_difference"]["value"] == pytest.approx(r["model"]["f1"] - r["reader"]["f1"])


def test_global_shapley_groups() -> None:
    phi = np.array([[0.2, -0.1, 0.0], [-0.4, 0.1, 0.1], [np.nan, np.nan, np.nan]])
    g = global_shapley(phi, np.array([1, 0, 1]), np.array([0.9, 0.2, 0.5]), ("dce", "dwi", "t2"))
    assert g["overall"]["n"] == 2 and g["overall"]["dce"] == pytest.approx(0.3)
    assert g["true_benign"]["dce"] == pytest.approx(0.4) and g["predicted_malignant"]["dwi"] == pytest.approx(0.1)
