"""The vectorised case bootstrap: resample indices, percentile intervals and paired p-values.

The paper: "mean and 95 % CI with 1000-time bootstrap"; p-values by bootstrap. Cases are drawn with
replacement from a seeded generator (:func:`resample_indices`); a resample holding a single class is drawn
again, so every replicate has an AUROC. The same ``(R, N)`` index matrix serves every statistic and
every score column of a cohort, which makes two columns' replicates *paired* (the same cases in each).

Statistics are computed for blocks of replicates at once, each block given as case multiplicities on the
cohort's own sort order (:meth:`~model_core.evaluation.ranking.RankedRows.weighted`: no sort per
resample), so 10,000 cases x 1000 replicates never holds more than ``block x N`` values per array.

**Paired p-value** for ``H0: stat(a) = stat(b)`` from the replicate differences ``d_r``:
``p = min(1, 2 min(1 + #{d_r <= 0}, 1 + #{d_r >= 0}) / (R + 1))``, the two-sided percentile-bootstrap
test (the ``+1`` keeps a finite number of replicates from giving ``p = 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from model_core.evaluation.binary import metrics_from_counts
from model_core.evaluation.ranking import RankedRows, pr_on_grid, roc_on_grid

GRID = np.linspace(0.0, 1.0, 101)
"""FPR (ROC) and recall (PR) values at which curve bands are given."""


def resample_indices(labels: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``(R, N)`` int case indices, every row holding both classes (rows with one class redrawn).

    Raises:
        ValueError: ``labels`` has one class, or ``n_resamples < 1``.
    """
    y = np.asarray(labels).astype(bool).ravel()
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if y.all() or not y.any():
        raise ValueError("the bootstrap needs both classes")
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    have = 0
    while have < n_resamples:
        idx = rng.integers(0, y.size, size=(n_resamples - have, y.size))
        yy = y[idx]
        ok = yy.any(axis=1) & ~yy.all(axis=1)
        rows.append(idx[ok])
        have += int(ok.sum())
    return np.concatenate(rows)[:n_resamples]


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates ignored; ``(nan, nan)`` if all are)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def paired_p_value(diff: np.ndarray) -> float:
    """Two-sided bootstrap p-value of paired replicate differences (module docstring)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    low, high = 1 + int((d <= 0).sum()), 1 + int((d >= 0).sum())
    return float(min(1.0, 2.0 * min(low, high) / (d.size + 1)))


def replicate_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """``(R, N)`` float: how often each of ``n`` cases appears in each resample row of ``idx``."""
    r = idx.shape[0]
    flat = (np.arange(r)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


def ranked_stats(rows: RankedRows, thresholds: Sequence[float] = (0.5,),
                 curves: bool = False) -> dict[str, np.ndarray]:
    """Every ranking and threshold statistic of the rows, each ``(R,)`` (curves ``(R, len(GRID))``).

    Keys: ``auroc``, ``auprc``, ``pauroc_spec90``, ``pauroc_sens90``, ``<metric>@<threshold>`` for each
    metric of :mod:`model_core.evaluation.binary`, and with ``curves`` ``roc_tpr`` / ``pr_precision``.
    """
    r = rows
    out = {"auroc": r.auroc(), "auprc": r.average_precision(), "pauroc_spec90": r.partial_auroc(0.1, "spec"),
           "pauroc_sens90": r.partial_auroc(0.1, "sens")}
    for t in thresholds:
        for k, v in metrics_from_counts(r.confusion(t)).items():
            out[f"{k}@{t:g}"] = v
    if curves:
        n = r.cum_pos.shape[0]
        out["roc_tpr"] = np.stack([roc_on_grid(*r.roc_points(i), GRID) for i in range(n)])
        out["pr_precision"] = np.stack([pr_on_grid(*r.pr_points(i), GRID) for i in range(n)])
    return out


def bootstrap_columns(
    labels: np.ndarray, columns: Mapping[str, np.ndarray], idx: np.ndarray,
    stat: Callable[[RankedRows], dict[str, np.ndarray]], block: int = 100,
) -> dict[str, dict[str, np.ndarray]]:
    """``stat`` of every score column over the resamples ``idx`` (``(R, N)``), in blocks of rows.

    Each column is sorted once; a block of resamples is its case multiplicities
    (:meth:`RankedRows.weighted`). Returns ``{column: {statistic: (R, ...) replicates}}``; the columns
    share ``idx`` (paired).
    """
    y = np.asarray(labels).astype(bool).ravel()
    cols = {c: np.asarray(s, dtype=np.float64).ravel() for c, s in columns.items()}
    orders = {c: np.argsort(-s, kind="stable") for c, s in cols.items()}
    parts: dict[str, dict[str, list[np.ndarray]]] = {c: {} for c in cols}
    for b in range(0, idx.shape[0], block):
        counts = replicate_counts(idx[b:b + block], y.size)
        for c, s in cols.items():
            for k, v in stat(RankedRows.weighted(y, s, counts, orders[c])).items():
                parts[c].setdefault(k, []).append(v)
    return {c: {k: np.concatenate(v) for k, v in d.items()} for c, d in parts.items()}


def summarise(point: float, replicates: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """``{"value", "ci_lower", "ci_upper", "ci": "bootstrap percentile"}``."""
    lo, hi = percentile_ci(replicates, level)
    return {"value": float(point), "ci_lower": lo, "ci_upper": hi, "ci": "bootstrap percentile"}


def band(replicates: np.ndarray, level: float = 0.95) -> dict[str, list[float]]:
    """Pointwise percentile band of curve replicates ``(R, G)`` on :data:`GRID`."""
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(replicates, [a, 1.0 - a], axis=0)
    return {"grid": GRID.tolist(), "lower": lo.tolist(), "upper": hi.tolist()}
