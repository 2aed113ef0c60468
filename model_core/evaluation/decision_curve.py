"""Decision curves (Vickers and Elkin 2006): net benefit of acting on the model across threshold
probabilities ``pt``.

* **Treat** (act = treat as cancer, i.e. biopsy): the model treats a case iff ``score >= pt``;
  ``NB(pt) = TP/n - FP/n * pt/(1 - pt)``. References: treat all ``prevalence - (1 - prevalence) pt/(1-pt)``,
  treat none ``0``.
* **Avoid biopsy** (BI-RADS 4, where the default is to biopsy every case): the model spares a case iff
  ``score < pt``; the net benefit of avoiding biopsies is ``TN/n - FN/n * (1 - pt)/pt`` (net true negatives
  per case; a missed cancer weighs ``(1 - pt)/pt`` spared benign biopsies). The reference biopsy all is 0
  and avoid all is ``(1 - prevalence) - prevalence (1 - pt)/pt``. It equals
  ``(NB_model - NB_treat_all) (1 - pt)/pt``, the "net reduction in interventions".

Counts for every ``pt`` come from one binning of the scores; shapes: scores ``(R, N)``, curves ``(R, T)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_core.evaluation.bootstrap import resample_indices

THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)
"""Threshold probabilities of the curves (0.01 ... 0.99)."""


def counts_at(labels: np.ndarray, scores: np.ndarray,
              thresholds: np.ndarray = THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """``(tp, fp)``, each ``(R, T)``: positives / negatives with ``score >= thresholds[j]``."""
    y = np.atleast_2d(np.asarray(labels).astype(bool))
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    t = np.asarray(thresholds, dtype=np.float64)
    r, _ = s.shape
    nb = t.size + 1
    b = np.searchsorted(t, s, side="right")  # number of thresholds <= score
    flat = (np.arange(r)[:, None] * nb + b).ravel()
    pos = np.bincount(flat, weights=y.ravel().astype(np.float64), minlength=r * nb).reshape(r, nb)
    neg = np.bincount(flat, weights=(~y).ravel().astype(np.float64), minlength=r * nb).reshape(r, nb)
    # score >= t_j  <=>  bin > j
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1][:, 1:]
    fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return tp, fp


def net_benefit_treat(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """``(R, T)`` net benefit of treating iff ``score >= pt``."""
    y = np.atleast_2d(np.asarray(labels).astype(bool))
    tp, fp = counts_at(y, scores, thresholds)
    n = y.shape[1]
    w = thresholds / (1.0 - thresholds)
    return tp / n - fp / n * w


def net_benefit_avoid(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """``(R, T)`` net benefit of avoiding biopsy iff ``score < pt`` (net true negatives per case)."""
    y = np.atleast_2d(np.asarray(labels).astype(bool))
    tp, fp = counts_at(y, scores, thresholds)
    n = y.shape[1]
    n_pos = y.sum(axis=1, keepdims=True)
    tn = (n - n_pos) - fp
    fn = n_pos - tp
    return tn / n - fn / n * (1.0 - thresholds) / thresholds


def treat_all(prevalence: float, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    return prevalence - (1.0 - prevalence) * thresholds / (1.0 - thresholds)


def avoid_all(prevalence: float, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    return (1.0 - prevalence) - prevalence * (1.0 - thresholds) / thresholds


def decision_curve(labels: np.ndarray, scores: np.ndarray, kind: str = "treat", n_resamples: int = 1000,
                   seed: int = 0, level: float = 0.95, idx: np.ndarray | None = None) -> dict[str, Any]:
    """One decision curve with its percentile bootstrap band and reference strategies.

    Args:
        kind: ``"treat"`` or ``"avoid_biopsy"``. idx: ``(R, N)`` resamples to reuse (else drawn here).
    """
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    fn = {"treat": net_benefit_treat, "avoid_biopsy": net_benefit_avoid}.get(kind)
    if fn is None:
        raise ValueError(f"kind must be 'treat' or 'avoid_biopsy', got {kind!r}")
    if idx is None:
        idx = resample_indices(y, n_resamples, seed)
    reps = np.concatenate([fn(y[idx[b:b + 100]], s[idx[b:b + 100]]) for b in range(0, idx.shape[0], 100)])
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a], axis=0)
    prev = float(y.mean())
    out: dict[str, Any] = {"kind": kind, "n": int(y.size), "n_positive": int(y.sum()), "prevalence": prev,
                           "thresholds": THRESHOLDS.tolist(), "model": fn(y, s)[0].tolist(),
                           "ci_lower": lo.tolist(), "ci_upper": hi.tolist()}
    if kind == "treat":
        out["treat_all"] = treat_all(prev).tolist()
        out["treat_none"] = [0.0] * THRESHOLDS.size
    else:
        out["biopsy_all"] = [0.0] * THRESHOLDS.size
        out["avoid_all"] = avoid_all(prev).tolist()
    return out
