"""Global Shapley summaries: mean ``|phi|`` per sequence over a cohort, overall, by true class and by
predicted class (score above the threshold). ``phi`` are the per-study exact Shapley values that
``mome predict`` writes (``shapley`` of each result line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def global_shapley(phi: np.ndarray, labels: np.ndarray, scores: np.ndarray, modalities: Sequence[str],
                   threshold: float = 0.5) -> dict[str, Any]:
    """``phi`` ``(N, M)`` (NaN rows skipped) -> ``{"overall"|"true_<c>"|"predicted_<c>": {modality: mean
    |phi|, "n": cases}}`` for classes ``benign`` / ``malignant``."""
    p = np.asarray(phi, dtype=np.float64)
    ok = np.isfinite(p).all(axis=1)
    y = np.asarray(labels).astype(bool)[ok]
    pred = np.asarray(scores, dtype=np.float64)[ok] > threshold
    a = np.abs(p[ok])
    groups = {"overall": np.ones(y.size, bool), "true_benign": ~y, "true_malignant": y,
              "predicted_benign": ~pred, "predicted_malignant": pred}
    out: dict[str, Any] = {"threshold": threshold}
    for g, m in groups.items():
        out[g] = {mod: (float(a[m, j].mean()) if m.any() else float("nan")) for j, mod in enumerate(modalities)}
        out[g]["n"] = int(m.sum())
    return out
