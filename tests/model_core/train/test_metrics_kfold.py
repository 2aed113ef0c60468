from __future__ import annotations

import itertools

import numpy as np
import pytest

from model_core.evaluation.metrics import auroc, bootstrap_auroc
from model_core.train.kfold import fold_split, stratified_folds
from model_core.train.options import TrainError


def _pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return float(np.mean(wins))


def test_auroc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    s = rng.integers(0, 6, 40).astype(float)  # many ties
    assert auroc(y, s) == pytest.approx(_pairwise_auc(y, s))
    assert np.isnan(auroc(np.ones(5), np.arange(5.0)))


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


def test_stratified_folds_partition_and_balance() -> None:
    y = np.r_[np.zeros(23), np.ones(12)].astype(int)
    folds = stratified_folds(y, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(y.size))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert all(2 <= y[f].sum() <= 3 for f in folds)
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(y, 5, seed=3), strict=True))
    tr, va = fold_split(y, 5, 2, seed=3)
    assert np.array_equal(va, folds[2]) and not set(tr) & set(va) and len(tr) + len(va) == y.size
    with pytest.raises(TrainError, match="fewer than"):
        stratified_folds(np.r_[np.zeros(10), np.ones(2)], 5)
    with pytest.raises(TrainError):
        fold_split(y, 5, 5)
