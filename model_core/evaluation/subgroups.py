"""Subgroup tables: the cohort split by a manifest column, each part with AUROC, AUPRC, sensitivity and
specificity and their intervals, and its case counts.

A numeric column is binned with edges (``[40, 60]`` -> ``<40``, ``40-60``, ``>=60``: left-closed bins, the
paper's age groups); any other column is split by value. Cases with an empty value form no subgroup.
AUROC and AUPRC have percentile bootstrap intervals (resampled within the subgroup; NaN when it holds one
class); sensitivity and specificity at the threshold have Clopper-Pearson intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model_core.evaluation.binary import confusion, proportion
from model_core.evaluation.bootstrap import bootstrap_columns, resample_indices, summarise
from model_core.evaluation.ranking import RankedRows


def bin_labels(values: Sequence[str], edges: Sequence[float] | None) -> list[str | None]:
    """The subgroup label of each value (``None`` for an empty or unparsable one when binning)."""
    if edges is None:
        return [v.strip() if v is not None and str(v).strip() else None for v in values]
    e = sorted(float(x) for x in edges)
    names = bin_names(e)
    out: list[str | None] = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(names[int(np.searchsorted(e, x, side="right"))] if np.isfinite(x) else None)
    return out


def bin_names(edges: Sequence[float]) -> list[str]:
    """``[40, 60]`` -> ``["<40", "40-60", ">=60"]``."""
    e = sorted(float(x) for x in edges)
    return [f"<{e[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(e[:-1], e[1:], strict=True)] + [f">={e[-1]:g}"]


def is_numeric(values: Sequence[str]) -> bool:
    """True when every non-empty value parses as a number (and there are more than 5 distinct ones)."""
    seen = set()
    for v in values:
        if v is None or not str(v).strip():
            continue
        try:
            seen.add(float(v))
        except ValueError:
            return False
    return len(seen) > 5


def _ranked_ci(y: np.ndarray, s: np.ndarray, n_resamples: int, seed: int, level: float) -> dict[str, Any]:
    if y.all() or not y.any():
        nan = {"value": float("nan"), "ci_lower": float("nan"), "ci_upper": float("nan")}
        return {"auroc": nan, "auprc": dict(nan)}
    point = RankedRows.build(y, s)
    reps = bootstrap_columns(y, {"s": s}, resample_indices(y, n_resamples, seed),
                             lambda r: {"auroc": r.auroc(), "auprc": r.average_precision()})["s"]
    return {"auroc": summarise(point.auroc()[0], reps["auroc"], level),
            "auprc": summarise(point.average_precision()[0], reps["auprc"], level)}


def subgroup_table(labels: np.ndarray, scores: np.ndarray, values: Sequence[str], *,
                   edges: Sequence[float] | None = None, threshold: float = 0.5, n_resamples: int = 1000,
                   seed: int = 0, level: float = 0.95) -> list[dict[str, Any]]:
    """One row per subgroup (sorted by name; bins in order): counts and metrics with intervals."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    groups = bin_labels(list(values), edges)
    names = [g for g in dict.fromkeys(groups) if g is not None]
    if edges is None:
        names.sort()
    else:
        names = [g for g in bin_names(edges) if g in names]
    rows = []
    for g in names:
        m = np.array([x == g for x in groups])
        yy, ss = y[m], s[m]
        c = {k: int(v[0]) for k, v in confusion(yy, ss, threshold).items()}
        rows.append({"group": g, "n": int(m.sum()), "n_positive": int(yy.sum()),
                     **_ranked_ci(yy, ss, n_resamples, seed, level),
                     "sensitivity": proportion(c["tp"], c["tp"] + c["fn"], level),
                     "specificity": proportion(c["tn"], c["tn"] + c["fp"], level)})
    return rows
