"""The BI-RADS 4 operating point found on one cohort and applied to another (the paper: the threshold
keeping 100 % sensitivity on ds1's BI-RADS 4 cases downgraded 8 of 109 benign BI-RADS 4 cases of ds2 and
missed 0 of 86 cancers).

The threshold and its rule are those of :mod:`model_core.engine.decision` (``downgrade iff p < tau``,
``tau`` = the lowest score of a malignant BI-RADS 4 case of the calibration cohort). On the target cohort's
BI-RADS 4 cases: benign downgraded out of benign, cancers missed (downgraded) out of malignant, each with
its Clopper-Pearson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model_core.engine.decision import calibrate_birads4, is_birads4
from model_core.evaluation.binary import proportion


def birads4_mask(birads: Sequence[Any]) -> np.ndarray:
    """``(N,)`` bool: the case's BI-RADS category is 4 (4, 4a, 4b, 4c)."""
    return np.array([is_birads4(b) for b in birads], dtype=bool)


def birads4_transfer(source: tuple[np.ndarray, np.ndarray, Sequence[Any]],
                     target: tuple[np.ndarray, np.ndarray, Sequence[Any]], *, source_name: str = "",
                     target_name: str = "", level: float = 0.95) -> dict[str, Any]:
    """Calibrate on ``source`` and apply to ``target``; each is ``(labels (N,), scores (N,), birads (N,))``.

    Raises:
        model_core.engine.decision.CalibrationError: the source has no malignant BI-RADS 4 case.
    """
    y_src, s_src, b_src = source
    thr = calibrate_birads4(s_src, y_src, list(b_src), cohort=source_name)
    y = np.asarray(target[0]).astype(bool)
    s = np.asarray(target[1], dtype=np.float64)
    keep = birads4_mask(target[2])
    y, s = y[keep], s[keep]
    down = s < thr.tau
    benign_down = int((down & ~y).sum())
    missed = int((down & y).sum())
    return {
        "source": source_name, "target": target_name, "tau": thr.tau, "rule": thr.rule,
        "source_birads4": {"n": thr.n, "n_malignant": thr.n_malignant, "n_downgraded": thr.n_downgraded},
        "target_birads4": {"n": int(y.size), "n_malignant": int(y.sum()), "n_benign": int((~y).sum())},
        "benign_downgraded": proportion(benign_down, int((~y).sum()), level),
        "cancers_missed": proportion(missed, int(y.sum()), level),
    }
