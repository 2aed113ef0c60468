"""Threshold metrics of a binary classifier and exact (Clopper-Pearson) intervals for proportions.

A case is called positive when its score is **above** the threshold (the paper: "positive when the
score is above 0.5"). Metrics from the confusion counts ``tp, fp, tn, fn``:

* accuracy ``(tp + tn) / n``; sensitivity ``tp / (tp + fn)``; specificity ``tn / (tn + fp)``;
  PPV ``tp / (tp + fp)``; NPV ``tn / (tn + fn)`` (NaN when the denominator is 0);
* F1 ``2 tp / (2 tp + fp + fn)`` and MCC ``(tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))``,
  both 0 when their denominator is 0 (scikit-learn's convention).

Every function takes ``(R, N)`` rows (bootstrap resamples) or ``(N,)``; counts and metrics are ``(R,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta

PROPORTIONS: dict[str, tuple[str, str]] = {
    "accuracy": ("tp+tn", "n"), "sensitivity": ("tp", "tp+fn"), "specificity": ("tn", "tn+fp"),
    "ppv": ("tp", "tp+fp"), "npv": ("tn", "tn+fn"),
}
"""Metrics that are proportions of cases: ``name -> (numerator, denominator)`` in confusion counts."""

METRICS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "mcc")


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Confusion counts ``tp, fp, tn, fn`` (each ``(R,)`` int) with ``positive = score > threshold``."""
    y = np.atleast_2d(np.asarray(labels).astype(bool))
    pred = np.atleast_2d(np.asarray(scores, dtype=np.float64)) > threshold
    if y.shape != pred.shape:
        raise ValueError(f"labels {y.shape} and scores {pred.shape} differ in shape")
    tp = (y & pred).sum(axis=1)
    fp = (~y & pred).sum(axis=1)
    fn = (y & ~pred).sum(axis=1)
    tn = (~y & ~pred).sum(axis=1)
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), empty)


def metrics_from_counts(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` (``(R,)`` float) from confusion counts."""
    tp, fp, tn, fn = (np.asarray(c[k], dtype=np.float64) for k in ("tp", "fp", "tn", "fn"))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn, np.nan),
        "sensitivity": _ratio(tp, tp + fn, np.nan),
        "specificity": _ratio(tn, tn + fp, np.nan),
        "ppv": _ratio(tp, tp + fp, np.nan),
        "npv": _ratio(tn, tn + fn, np.nan),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, 0.0),
        "mcc": _ratio(tp * tn - fp * fn, den, 0.0),
    }


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """:func:`confusion` then :func:`metrics_from_counts`."""
    return metrics_from_counts(confusion(labels, scores, threshold))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for ``k`` successes in ``n`` trials; ``(nan, nan)`` when ``n = 0``.

    Lower ``= Beta^-1(alpha/2; k, n-k+1)`` (0 when ``k = 0``), upper ``= Beta^-1(1-alpha/2; k+1, n-k)``
    (1 when ``k = n``), ``alpha = 1 - level``.
    """
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def proportion(k: int, n: int, level: float = 0.95) -> dict[str, Any]:
    """``{"value", "k", "n", "ci_lower", "ci_upper", "ci": "clopper-pearson"}`` (value NaN when n = 0)."""
    lo, hi = clopper_pearson(k, n, level)
    return {"value": k / n if n else float("nan"), "k": int(k), "n": int(n), "ci_lower": lo, "ci_upper": hi,
            "ci": "clopper-pearson"}


def _count(c: dict[str, np.ndarray], expr: str) -> int:
    if expr == "n":
        return int(sum(int(c[k][0]) for k in ("tp", "fp", "tn", "fn")))
    return int(sum(int(c[k][0]) for k in expr.split("+")))


def threshold_report(labels: np.ndarray, scores: np.ndarray, threshold: float,
                     level: float = 0.95) -> dict[str, Any]:
    """Metrics at one threshold for one cohort: confusion counts, each proportion with its exact interval
    (:data:`PROPORTIONS`), F1 and MCC as values (their bootstrap intervals are added by the caller)."""
    c = confusion(labels, scores, threshold)
    m = metrics_from_counts(c)
    out: dict[str, Any] = {"threshold": float(threshold), "rule": "positive iff score > threshold",
                           **{k: int(v[0]) for k, v in c.items()}}
    for name, (num, den) in PROPORTIONS.items():
        out[name] = proportion(_count(c, num), _count(c, den), level)
    for name in ("f1", "mcc"):
        out[name] = {"value": float(m[name][0])}
    return out
