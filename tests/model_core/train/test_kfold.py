"""Stratified k-fold splits."""

from __future__ import annotations

import numpy as np
import pytest

from model_core.errors import TrainError
from model_core.train.kfold import fold_split, stratified_folds


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
