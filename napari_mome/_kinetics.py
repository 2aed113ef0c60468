"""DCE kinetics without Qt: the time-intensity curve of a small ROI and its BI-RADS lexicon class, and
the subtraction maximum-intensity projection.

Curve class (BI-RADS MRI lexicon, delayed phase): compare the last phase ``S_last`` with the early
post-contrast peak ``S_early`` (the highest phase within :data:`EARLY_WINDOW_S` of injection, else phase 1):
``(S_last - S_early) / S_early`` above +:data:`DELAYED_THRESHOLD` is *persistent*, below
-:data:`DELAYED_THRESHOLD` *washout*, otherwise *plateau*. The initial enhancement
``(S_early - S_pre) / S_pre`` is reported as slow (< 50 %), medium (50-100 %) or fast (> 100 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DELAYED_THRESHOLD = 0.10
EARLY_WINDOW_S = 120.0
INITIAL_THRESHOLDS = (0.5, 1.0)
ROI_RADIUS = 1
"""The ROI is the (2r+1)^3 voxel cube around the clicked voxel (3x3x3), clipped at the edges."""


@dataclass(frozen=True)
class Curve:
    """Mean ROI intensity per DCE phase and its classification.

    Attributes:
        values: mean intensity per phase (pre first).
        times_s: acquisition time per phase (seconds after injection; phase indices when unknown).
        initial: ``"slow"``, ``"medium"`` or ``"fast"``; initial_change: relative early enhancement.
        delayed: ``"persistent"``, ``"plateau"`` or ``"washout"``; delayed_change: relative late change.
    """

    values: tuple[float, ...]
    times_s: tuple[float, ...]
    initial: str
    initial_change: float
    delayed: str
    delayed_change: float

    def describe(self) -> str:
        return (f"{self.delayed} (late vs early {100 * self.delayed_change:+.0f} %, thresholds "
                f"\u00b1{100 * DELAYED_THRESHOLD:.0f} %); initial {self.initial} "
                f"({100 * self.initial_change:+.0f} %; slow < 50 % < medium < 100 % < fast)")


def roi_mean(phases: Sequence[np.ndarray], index: Sequence[int], radius: int = ROI_RADIUS) -> list[float]:
    """Mean of the ROI cube around ``index`` in each phase (arrays of one shape, any axis order)."""
    shape = phases[0].shape
    sl = tuple(slice(max(0, int(i) - radius), min(n, int(i) + radius + 1)) for i, n in zip(index, shape, strict=True))
    return [float(np.mean(np.asarray(p[sl], dtype=np.float64))) for p in phases]


def classify(values: Sequence[float], times_s: Sequence[float] | None = None) -> Curve:
    """Classify a pre + post-contrast curve (at least 3 points). Raises ValueError otherwise."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 3:
        raise ValueError("a kinetic curve needs a pre-contrast and at least two post-contrast phases")
    t = np.asarray(times_s if times_s is not None else np.arange(v.size), dtype=np.float64)
    early_idx = [i for i in range(1, v.size - 1) if times_s is None or t[i] <= EARLY_WINDOW_S] or [1]
    early = float(v[early_idx].max()) if times_s is not None else float(v[1])
    pre = float(v[0])
    initial_change = (early - pre) / abs(pre) if pre else float("inf")
    initial = "slow" if initial_change < INITIAL_THRESHOLDS[0] else \
        "medium" if initial_change <= INITIAL_THRESHOLDS[1] else "fast"
    delayed_change = (float(v[-1]) - early) / abs(early) if early else 0.0
    delayed = "persistent" if delayed_change > DELAYED_THRESHOLD else \
        "washout" if delayed_change < -DELAYED_THRESHOLD else "plateau"
    return Curve(tuple(v.tolist()), tuple(t.tolist()), initial, initial_change, delayed, delayed_change)


def subtraction_mip(pre: np.ndarray, post: np.ndarray, axis: int = 0) -> np.ndarray:
    """Maximum-intensity projection of ``post - pre`` along ``axis`` (float32)."""
    return np.max(np.asarray(post, dtype=np.float32) - np.asarray(pre, dtype=np.float32), axis=axis)
