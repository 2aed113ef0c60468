"""A small logistic model for checking the phantom world: Newton fit and cross-validated AUROC.

Only numpy; used by the separability report (:mod:`model_core.evaluation.separability`) and the tests.
"""

from __future__ import annotations

import numpy as np

from model_core.evaluation.metrics import auroc


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
