"""The BI-RADS 4 biopsy-downgrade rule and its calibration.

**Rule.** For a BI-RADS 4 study (4, 4a, 4b, 4c) with malignancy probability ``p`` and the model card's
threshold ``tau``: ``p < tau`` -> "downgrade candidate: biopsy may be avoidable; decision support only";
``p >= tau`` -> "biopsy supported". Other categories: not applicable. No BI-RADS given: not applicable
(the rule needs the reader's category). A card without a calibrated threshold gives "no calibrated
threshold": there is never a silent default.

**Calibration** (the paper's operating point): on a calibration cohort's BI-RADS 4 cases, the largest
``tau`` that keeps sensitivity at 100 %, i.e. no cancer with ``p < tau``. Because the rule is strict
(``p < tau``), that is ``tau = min p over the malignant BI-RADS 4 cases``: every cancer has ``p >= tau``
and stays "biopsy supported" (a benign case tied with that cancer at exactly ``tau`` is not downgraded).
The record keeps the cohort name, ``n``, ``n_malignant``, the number and rate of downgraded cases (all
benign by construction) and the TTA setting the probabilities were computed with.

The record lives in ``ModelCard.thresholds["birads4"]``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_core.errors import MomeError

log = logging.getLogger(__name__)

CARD_KEY = "birads4"
RULE = "downgrade iff p < tau; tau = min p over malignant BI-RADS 4 calibration cases (100% sensitivity)"

TEXT_DOWNGRADE = "downgrade candidate: biopsy may be avoidable; decision support only"
TEXT_BIOPSY = "biopsy supported"
TEXT_NOT_APPLICABLE = "not applicable"
TEXT_NO_THRESHOLD = "no calibrated threshold"


class CalibrationError(MomeError, ValueError):
    """A threshold cannot be calibrated (e.g. no malignant BI-RADS 4 case in the cohort)."""


def is_birads4(category: Any) -> bool:
    """``"4"``, ``"4a"``, ``"4B"``, ``4`` ... -> True."""
    return category is not None and str(category).strip().lower().startswith("4")


@dataclass(frozen=True)
class Birads4Threshold:
    """A calibrated downgrade threshold and where it came from.

    Attributes:
        tau: downgrade iff ``p < tau``.
        cohort: calibration cohort name.
        n: BI-RADS 4 cases used; n_malignant: of them malignant.
        n_downgraded: cases with ``p < tau`` (all benign); downgrade_rate: ``n_downgraded / n``.
        sensitivity: on the calibration cases (1.0 by construction).
        tta: TTA setting of the calibration probabilities (``"none"``, ``"interactive"``, ``"full"``).
        rule: the rule in words.
    """

    tau: float
    cohort: str
    n: int
    n_malignant: int
    n_downgraded: int
    downgrade_rate: float
    sensitivity: float = 1.0
    tta: str = "none"
    rule: str = RULE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Birads4Threshold:
        """The record as stored in a model card, every field checked.

        Raises:
            CalibrationError: not an object, a missing field, or ``tau`` not a number in ``[0, 1]``.
        """
        if not isinstance(d, Mapping):
            raise CalibrationError(f"thresholds.{CARD_KEY} must be an object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in d)
        if missing:
            raise CalibrationError(f"thresholds.{CARD_KEY} lacks {missing}")
        tau = d["tau"]
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 <= float(tau) <= 1.0:
            raise CalibrationError(f"thresholds.{CARD_KEY}.tau must be a probability in [0, 1], got {tau!r}")
        return cls(**{k: v for k, v in d.items() if k in known})


def calibrate_birads4(
    probabilities: Sequence[float] | np.ndarray,
    malignant: Sequence[int | bool] | np.ndarray,
    birads: Sequence[Any] | None = None,
    *,
    cohort: str = "",
    tta: str = "none",
) -> Birads4Threshold:
    """The largest threshold keeping 100 % sensitivity on the BI-RADS 4 cases.

    Args:
        probabilities: malignancy probability per case.
        malignant: ground truth per case (1 / True = cancer).
        birads: category per case; only BI-RADS 4 cases are used. ``None``: every case is BI-RADS 4.
        cohort: name recorded with the threshold.
        tta: TTA setting the probabilities came from (recorded; use the same one at run time).

    Raises:
        CalibrationError: lengths differ, non-finite probabilities, or no malignant BI-RADS 4 case.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(malignant).astype(bool)
    if p.shape != y.shape or p.ndim != 1:
        raise CalibrationError(f"probabilities {p.shape} and labels {y.shape} must be equal-length 1-D arrays")
    keep = np.ones(p.shape, dtype=bool) if birads is None else np.array([is_birads4(b) for b in birads], bool)
    if keep.shape != p.shape:
        raise CalibrationError(f"birads has {keep.shape[0]} entries for {p.shape[0]} cases")
    p, y = p[keep], y[keep]
    if not np.all(np.isfinite(p)):
        raise CalibrationError("non-finite probabilities in the calibration cohort")
    if not y.any():
        raise CalibrationError(f"cohort {cohort!r}: no malignant BI-RADS 4 case; 100% sensitivity does not "
                               "define a threshold")
    tau = float(p[y].min())
    down = int((p < tau).sum())
    thr = Birads4Threshold(tau, cohort, int(p.size), int(y.sum()), down, down / p.size,
                           float((p[y] >= tau).mean()), tta)
    log.info("BI-RADS 4 threshold tau=%.6f on %s: n=%d, %d malignant, %d downgraded (%.1f%%)",
             tau, cohort or "cohort", thr.n, thr.n_malignant, down, 100 * thr.downgrade_rate)
    return thr


def threshold_from_card(card: Any) -> Birads4Threshold | None:
    """The threshold stored in a model card (``ModelCard`` or its dict), or ``None`` when absent."""
    if card is None:
        return None
    thresholds = card.get("thresholds", {}) if isinstance(card, Mapping) else getattr(card, "thresholds", {})
    rec = (thresholds or {}).get(CARD_KEY)
    return None if rec is None else Birads4Threshold.from_dict(rec)


def store_threshold(card: Any, threshold: Birads4Threshold) -> None:
    """Write the threshold into ``card.thresholds["birads4"]`` (save the card afterwards)."""
    card.thresholds = dict(card.thresholds or {})
    card.thresholds[CARD_KEY] = threshold.to_dict()


@dataclass(frozen=True)
class Decision:
    """The BI-RADS 4 decision for one study.

    Attributes:
        status: ``"downgrade_candidate"``, ``"biopsy_supported"``, ``"not_applicable"`` or
            ``"no_calibrated_threshold"``.
        text: the sentence to show.
        birads: the category given (``None`` when unknown).
        probability: ``p`` used.
        tau: the threshold (``None`` when not applicable or missing).
        threshold: the full calibration record, when used.
        note: extra context (e.g. TTA mismatch between calibration and run).
    """

    status: str
    text: str
    birads: str | None
    probability: float
    tau: float | None = None
    threshold: dict[str, Any] | None = None
    note: str = ""

    @property
    def applicable(self) -> bool:
        return self.status in ("downgrade_candidate", "biopsy_supported", "no_calibrated_threshold")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def decide(probability: float, birads: Any, threshold: Birads4Threshold | None, tta: str | None = None) -> Decision:
    """Apply the rule (see the module docstring). ``tta``: the run's TTA setting, compared with the
    calibration's (a mismatch is noted, not hidden)."""
    cat = None if birads is None else str(birads)
    p = float(probability)
    if not is_birads4(cat):
        why = "no BI-RADS category given" if cat is None else f"BI-RADS {cat}: the rule is for BI-RADS 4 only"
        return Decision("not_applicable", TEXT_NOT_APPLICABLE, cat, p, note=why)
    if threshold is None:
        return Decision("no_calibrated_threshold", TEXT_NO_THRESHOLD, cat, p,
                        note="the model card has no BI-RADS 4 threshold; calibrate one on a cohort")
    note = ""
    if tta is not None and tta != threshold.tta:
        note = f"threshold calibrated with TTA {threshold.tta!r}, this run used {tta!r}"
    down = p < threshold.tau
    return Decision("downgrade_candidate" if down else "biopsy_supported", TEXT_DOWNGRADE if down else TEXT_BIOPSY,
                    cat, p, threshold.tau, threshold.to_dict(), note)


def downgrade_rate(probabilities: Iterable[float], tau: float) -> float:
    """Fraction of cases with ``p < tau``."""
    p = np.asarray(list(probabilities), dtype=np.float64)
    return float((p < tau).mean()) if p.size else 0.0
