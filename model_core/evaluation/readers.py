"""Model against radiologists: reader operating points and model-minus-reader F1 and MCC.

A reader column holds BI-RADS categories (``1, 2, 3, 4, 4a, 4b, 4c, 5, 6``); the reader calls a case
positive at **BI-RADS >= 4b** (the paper's reader operating point). A bare ``4`` (no subcategory) ranks
below ``4b`` and counts as negative; an empty or unknown category excludes the case from that reader's
comparison. The model calls a case positive when its score is above the threshold (0.5).

Differences ``model - reader`` of F1 and MCC have percentile bootstrap intervals and paired p-values
(the same resampled cases for both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model_core.evaluation.binary import confusion, metrics_from_counts
from model_core.evaluation.bootstrap import paired_p_value, percentile_ci, resample_indices

ORDER: tuple[str, ...] = ("0", "1", "2", "3", "4", "4a", "4b", "4c", "5", "6")
POSITIVE_FROM = "4b"


def reader_positive(categories: Sequence[Any]) -> np.ndarray:
    """``(N,)`` float: 1 for BI-RADS >= 4b, 0 below, NaN for an empty or unknown category."""
    out = np.full(len(categories), np.nan)
    cut = ORDER.index(POSITIVE_FROM)
    for i, c in enumerate(categories):
        key = str(c).strip().lower() if c is not None else ""
        if key in ORDER:
            out[i] = float(ORDER.index(key) >= cut)
    return out


def reader_comparison(labels: np.ndarray, scores: np.ndarray, categories: Sequence[Any], *,
                      threshold: float = 0.5, n_resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict[str, Any]:
    """The reader's point (sensitivity, specificity, FPR, PPV), the model's at ``threshold`` on the same
    cases, and model-minus-reader F1 and MCC with bootstrap intervals and p-values."""
    r = reader_positive(categories)
    keep = np.isfinite(r)
    y = np.asarray(labels).astype(bool)[keep]
    s = np.asarray(scores, dtype=np.float64)[keep]
    rp = r[keep]
    model = metrics_from_counts(confusion(y, s, threshold))
    reader = metrics_from_counts(confusion(y, rp, 0.5))
    out: dict[str, Any] = {"n": int(y.size), "n_positive": int(y.sum()), "reader_positive": ">= BI-RADS 4b",
                           "threshold": threshold}
    for who, m in (("reader", reader), ("model", model)):
        out[who] = {k: float(v[0]) for k, v in m.items()}
        out[who]["fpr"] = 1.0 - out[who]["specificity"]
    if y.all() or not y.any():
        return out
    idx = resample_indices(y, n_resamples, seed)
    dm = metrics_from_counts(confusion(y[idx], s[idx], threshold))
    dr = metrics_from_counts(confusion(y[idx], rp[idx], 0.5))
    for k in ("f1", "mcc"):
        d = dm[k] - dr[k]
        lo, hi = percentile_ci(d, level)
        out[f"{k}_difference"] = {"value": out["model"][k] - out["reader"][k], "ci_lower": lo, "ci_upper": hi,
                                  "p_value": paired_p_value(d), "ci": "bootstrap percentile"}
    return out
