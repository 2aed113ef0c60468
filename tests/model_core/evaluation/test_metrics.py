"""AUROC (Mann-Whitney U with mid-ranks) and its bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest

from model_core.evaluation.metrics import auroc, bootstrap_auroc


def _pairwise_auroc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auroc_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(y, np.ones(4)) == 0.5
    assert np.isnan(auroc(np.ones(3), np.arange(3.0)))


def test_auroc_matches_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + 0.7 * y, 1)  # rounding makes ties
    assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s), abs=1e-12)


def test_auroc_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        auroc(np.array([0, 1]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError):
        auroc(np.array([0, 1, 1]), np.array([0.5, 0.2]))


def test_bootstrap_is_seeded_and_brackets_the_point() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(30), np.ones(20)].astype(int)
    s = y + rng.normal(0, 0.8, y.size)
    a, b = bootstrap_auroc(y, s, 1000, seed=5), bootstrap_auroc(y, s, 1000, seed=5)
    assert a == b and a.n_resamples == 1000 and a.n == 50 and a.n_positive == 20
    assert a.lower < a.auroc < a.upper
    assert bootstrap_auroc(y, s, 1000, seed=6) != a
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_auroc(np.zeros(4), np.arange(4.0))
