"""BI-RADS 4 rule: calibration at 100 % sensitivity, the tie rule, the card, every decision branch."""

from __future__ import annotations

import numpy as np
import pytest

from model_core import Mome, MomeConfig
from model_core.engine.decision import (
    TEXT_BIOPSY,
    TEXT_DOWNGRADE,
    TEXT_NO_THRESHOLD,
    TEXT_NOT_APPLICABLE,
    CalibrationError,
    calibrate_birads4,
    decide,
    downgrade_rate,
    is_birads4,
    store_threshold,
    threshold_from_card,
)
from model_core.weights.native import ModelCard, load_native, save_native


def test_tau_is_the_smallest_cancer_probability_among_birads4() -> None:
    p = [0.05, 0.10, 0.30, 0.30, 0.60, 0.90, 0.01, 0.02]
    y = [0, 0, 1, 0, 1, 0, 1, 0]
    b = ["4a", "4b", "4", "4c", "4", "4a", "5", "3"]  # the last two are not BI-RADS 4
    thr = calibrate_birads4(p, y, b, cohort="phantom-ds1", tta="full")
    assert thr.tau == 0.30 and thr.n == 6 and thr.n_malignant == 2
    assert thr.n_downgraded == 2 and thr.downgrade_rate == pytest.approx(2 / 6) and thr.sensitivity == 1.0
    assert thr.cohort == "phantom-ds1" and thr.tta == "full"
    # tie: the benign case at exactly tau is not downgraded (rule p < tau), the cancer at tau is kept
    assert decide(0.30, "4c", thr, "full").status == "biopsy_supported"
    assert downgrade_rate([0.1, 0.3, 0.5], thr.tau) == pytest.approx(1 / 3)
    # no cancer is ever below tau on the calibration cases
    pp, yy = np.array(p)[:6], np.array(y)[:6]
    assert not np.any((pp < thr.tau) & (yy == 1))


def test_calibration_errors() -> None:
    with pytest.raises(CalibrationError, match="no malignant"):
        calibrate_birads4([0.2, 0.4], [0, 0])
    with pytest.raises(CalibrationError, match="no malignant"):
        calibrate_birads4([0.2, 0.4], [0, 1], ["4", "5"])
    with pytest.raises(CalibrationError, match="equal-length"):
        calibrate_birads4([0.2], [0, 1])
    with pytest.raises(CalibrationError, match="non-finite"):
        calibrate_birads4([float("nan"), 0.4], [0, 1])


def test_every_decision_branch() -> None:
    thr = calibrate_birads4([0.2, 0.5], [0, 1], cohort="c")
    down = decide(0.1, "4b", thr, "none")
    assert down.status == "downgrade_candidate" and down.text == TEXT_DOWNGRADE and down.tau == 0.5
    assert down.text == "downgrade candidate: biopsy may be avoidable; decision support only"
    assert decide(0.7, "4", thr).text == TEXT_BIOPSY == "biopsy supported"
    na = decide(0.1, "5", thr)
    assert na.status == "not_applicable" and na.text == TEXT_NOT_APPLICABLE and not na.applicable
    assert decide(0.1, None, thr).status == "not_applicable"
    missing = decide(0.1, "4a", None)
    assert missing.status == "no_calibrated_threshold" and missing.text == TEXT_NO_THRESHOLD and missing.tau is None
    assert "interactive" in decide(0.1, "4", thr, "interactive").note  # calibrated with "none"
    assert is_birads4(4) and is_birads4(" 4C") and not is_birads4("3") and not is_birads4(None)


def test_threshold_lives_in_the_model_card(tmp_path) -> None:
    model = Mome(MomeConfig.preset("tiny"))
    card = ModelCard(config={})
    assert threshold_from_card(card) is None
    thr = calibrate_birads4([0.2, 0.5, 0.7], [0, 1, 1], cohort="phantom")
    store_threshold(card, thr)
    save_native(model, tmp_path / "m.safetensors", card)
    _, loaded = load_native(tmp_path / "m.safetensors")
    assert threshold_from_card(loaded) == thr
    assert threshold_from_card(loaded.to_dict()) == thr
