"""The logistic helpers used to check the phantom world."""

from __future__ import annotations

import numpy as np

from model_core.evaluation.logistic import cv_logistic_auroc, fit_logistic


def test_logistic_recovers_direction_and_cv_auroc() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(int)
    w = fit_logistic(x, y)
    assert w[0] > 0 > w[1]
    assert cv_logistic_auroc(x, y) > 0.95
    assert 0.4 < cv_logistic_auroc(rng.normal(size=(400, 1)), y) < 0.6
