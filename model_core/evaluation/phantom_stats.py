"""Small, dependency-free statistics for checking the phantom world: AUROC and a logistic model.

Only numpy; used by the separability report and the tests (no scikit-learn here).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties).

    Args:
        labels: ``(N,)`` 0/1 (1 = positive).
        scores: ``(N,)`` higher = more positive; NaNs are not allowed.

    Returns:
        AUROC in [0, 1]; NaN when one class is empty.
    """
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method.

    Args:
        x: ``(N, F)`` features (standardise them first).
        y: ``(N,)`` 0/1.
        l2: ridge weight (the intercept is not penalised).

    Returns:
        ``(F + 1,)`` weights, intercept last.
    """
    xa = np.hstack([np.asarray(x, np.float64), np.ones((len(x), 1))])
    yy = np.asarray(y, np.float64)
    w = np.zeros(xa.shape[1])
    reg = np.full(xa.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ w, -30, 30)))
        grad = xa.T @ (p - yy) + reg * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def cv_logistic_auroc(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated AUROC of a logistic model on ``x`` ``(N, F)``: out-of-fold scores pooled."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(y).astype(int)
    order = np.random.default_rng(seed).permutation(len(y))
    out = np.zeros(len(y))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-12
        w = fit_logistic((x[train] - mu) / sd, y[train])
        out[test] = np.hstack([(x[test] - mu) / sd, np.ones((len(test), 1))]) @ w
    return auroc(y, out)
