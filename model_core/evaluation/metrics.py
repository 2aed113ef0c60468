"""AUROC and its bootstrap confidence interval (the paper: "mean and 95% CI with 1000-time bootstrap").

Pure numpy/scipy. Scores: higher = more positive (class 1). The bootstrap resamples cases with
replacement from a seeded generator; a resample holding a single class has no AUROC and is drawn again,
so exactly ``n_resamples`` AUROCs enter the percentile interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_core.evaluation.ranking import RankedRows


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counting one half; computed by
    :class:`model_core.evaluation.ranking.RankedRows`, which the bootstrap uses too).

    Args:
        labels: ``(N,)`` 0/1. scores: ``(N,)``.
    Returns:
        AUROC in [0, 1]; NaN when a class is empty.
    """
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float(_auroc_rows(y[None, :], s[None, :])[0])


def _auroc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Row-wise AUROC of ``(R, N)`` label and score matrices (NaN for a row with one class)."""
    return RankedRows.build(y, s).auroc()


@dataclass(frozen=True)
class AurocCI:
    """An AUROC with its percentile bootstrap interval."""

    auroc: float
    lower: float
    upper: float
    n: int
    n_positive: int
    n_resamples: int
    level: float
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return {"auroc": self.auroc, "ci_lower": self.lower, "ci_upper": self.upper, "n": self.n,
                "n_positive": self.n_positive, "bootstrap_resamples": self.n_resamples,
                "ci_level": self.level, "bootstrap_seed": self.seed}


def bootstrap_auroc(
    labels: np.ndarray, scores: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
) -> AurocCI:
    """AUROC with a percentile bootstrap CI (cases resampled with replacement).

    Raises:
        ValueError: a class is empty (no AUROC), bad shapes, non-finite scores or ``level``.
    """
    y, s = _check(labels, scores)
    if not 0 < level < 1 or n_resamples < 1:
        raise ValueError(f"need 0 < level < 1 and n_resamples >= 1, got {level}, {n_resamples}")
    point = auroc(y, s)
    if np.isnan(point):
        raise ValueError("AUROC needs both classes")
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    have = 0
    for _ in range(1000):
        idx = rng.integers(0, y.size, size=(n_resamples, y.size))
        yy = y[idx]
        ok = yy.any(axis=1) & ~yy.all(axis=1)
        if ok.any():
            v = _auroc_rows(yy[ok], s[idx[ok]])
            values.append(v)
            have += v.size
        if have >= n_resamples:
            break
    aucs = np.concatenate(values)[:n_resamples]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(aucs, [alpha, 1.0 - alpha])
    return AurocCI(point, float(lo), float(hi), int(y.size), int(y.sum()), int(aucs.size), level, seed)
