"""Stratified, seeded k-fold splits (the paper's five-fold cross-validation for TNBC and pCR)."""

from __future__ import annotations

import numpy as np

from model_core.train.options import TrainError


def stratified_folds(labels: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """Split case indices into ``k`` folds with (nearly) equal class proportions.

    Each class's indices are shuffled with ``default_rng(seed)`` and dealt round-robin; the deal of each
    class starts at the fold after the previous class's last one, so fold sizes differ by at most one.

    Args:
        labels: ``(N,)`` integer class labels.
    Returns:
        ``k`` sorted index arrays, disjoint, covering ``0 .. N-1``.
    Raises:
        TrainError: ``k < 2`` or a class has fewer than ``k`` cases.
    """
    y = np.asarray(labels).ravel()
    if k < 2:
        raise TrainError(f"k-fold needs k >= 2, got {k}")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < k:
            raise TrainError(f"class {c} has {idx.size} cases, fewer than the {k} folds")
        idx = idx[rng.permutation(idx.size)]
        for j, i in enumerate(idx):
            folds[(start + j) % k].append(int(i))
        start = (start + idx.size) % k
    return [np.array(sorted(f), dtype=np.int64) for f in folds]


def fold_split(labels: np.ndarray, k: int, fold: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, val_indices)`` for fold ``fold`` (0-based) of :func:`stratified_folds`."""
    if not 0 <= fold < k:
        raise TrainError(f"fold must lie in [0, {k - 1}], got {fold}")
    folds = stratified_folds(labels, k, seed)
    train = np.concatenate([f for i, f in enumerate(folds) if i != fold])
    return np.sort(train), folds[fold]
