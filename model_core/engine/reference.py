"""Shapley's empty coalition ``v(∅)`` and which sequences a model uses, from the model card (PRODUCT §5).

**v(∅).** SHAP's convention: the value of the empty coalition is the model's *mean probability over a
reference cohort* (the expected output), so the Shapley bars of a study read "from this model's average
study to this study" and add up to ``v(N) - v_ref``. The record lives in
``ModelCard.metrics["shapley_reference"]`` with the reference cohort's digest (sha256 over the sorted
per-study voxel-data digests) and the cohorts' seeds; :mod:`model_core.evaluation.reference_cohort`
computes it. The older choice, the CLS-only forward (``subsets["none"]``: an input the network never saw
in training), stays available as ``shapley_empty="prior"``.

**Sequences not used.** The same record holds, per sequence, how the model scores the reference cohort
with that sequence alone: the spread of its logit margin between studies and its AUROC with a bootstrap
interval. A sequence whose logit barely moves between studies (sd below :data:`MIN_LOGIT_SD`) or whose
AUROC interval reaches 0.5 carries no evidence this model uses: :func:`unused_modalities` names it, and the
Result and the widget mark it "not used by this model" instead of showing its bar as evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model_core.engine.subsets import PRIOR_KEY

CARD_KEY = "shapley_reference"
"""Entry of ``ModelCard.metrics`` holding the :class:`ShapleyReference`."""

MIN_LOGIT_SD = 0.007
"""A sequence alone whose logit margin varies less than this between reference studies is not used (10x the
0.0007 measured for T2 alone on the demo model, whose T2-only probability is the same for every study)."""

NOT_USED = "not used by this model"

EMPTY_KINDS = ("reference", "prior")


@dataclass(frozen=True)
class ShapleyReference:
    """The reference-cohort record (``ModelCard.metrics["shapley_reference"]``).

    Attributes:
        v_empty: mean malignancy probability (all sequences, no TTA) over the reference studies.
        n: number of reference studies.
        cohort_digest: sha256 over the sorted per-study voxel-data digests (:func:`cohort_digest`).
        cohorts: per cohort CSV: name, sha256 of the CSV, site, seed, n (``cohort.json``).
        tta: TTA setting of the reference probabilities.
        subsets: subset key -> mean probability over the reference studies.
        sequences: modality -> figures of that sequence alone: ``logit_sd``, ``probability_sd``,
            ``auroc`` (with ``ci_lower``/``ci_upper``), ``used`` (bool), ``why``.
        command: how the record was made.
    """

    v_empty: float
    n: int
    cohort_digest: str
    cohorts: list[dict[str, Any]] = field(default_factory=list)
    tta: str = "none"
    subsets: dict[str, float] = field(default_factory=dict)
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ShapleyReference:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def study_digest(inputs: Mapping[str, Mapping[str, Any]]) -> str:
    """One digest of a study from :func:`model_core.engine.audit.study_inputs` (sorted ``name:sha256``)."""
    text = "\n".join(f"{k}:{inputs[k]['sha256']}" for k in sorted(inputs))
    return hashlib.sha256(text.encode()).hexdigest()


def cohort_digest(study_digests: Iterable[str]) -> str:
    """sha256 over the sorted study digests (independent of case order and file format)."""
    return hashlib.sha256("\n".join(sorted(study_digests)).encode()).hexdigest()


def reference_from_card(card: Any) -> ShapleyReference | None:
    """The record in a model card (``ModelCard`` or its dict), or ``None``."""
    if card is None:
        return None
    metrics = card.get("metrics", {}) if isinstance(card, Mapping) else getattr(card, "metrics", {})
    rec = (metrics or {}).get(CARD_KEY)
    return None if rec is None else ShapleyReference.from_dict(rec)


def store_reference(card: Any, ref: ShapleyReference) -> None:
    """Put ``ref`` into ``card.metrics`` (write the card afterwards with
    :func:`model_core.weights.native.save_card`)."""
    card.metrics = {**dict(card.metrics or {}), CARD_KEY: ref.to_dict()}


def sequence_use(logit_sd: float, auroc: float, ci_lower: float) -> tuple[bool, str]:
    """Whether a sequence alone carries evidence the model uses, and why (see the module docstring)."""
    if logit_sd < MIN_LOGIT_SD:
        return False, (f"alone, its logit varies by sd {logit_sd:.2g} between reference studies "
                       f"(< {MIN_LOGIT_SD}): the model gives every study the same score from it")
    if ci_lower <= 0.5:
        return False, f"alone, AUROC {auroc:.3f} with 95 % interval reaching {ci_lower:.3f} (<= 0.5)"
    return True, f"alone, AUROC {auroc:.3f} (95 % interval from {ci_lower:.3f}), logit sd {logit_sd:.3g}"


def unused_modalities(ref: ShapleyReference | None) -> dict[str, str]:
    """modality -> reason, for the sequences the card's figures say this model does not use."""
    if ref is None:
        return {}
    return {m: str(s.get("why", NOT_USED)) for m, s in ref.sequences.items() if not s.get("used", True)}


def empty_value(kind: str, subsets: Mapping[str, float | None], ref: ShapleyReference | None,
                tta: str) -> tuple[float, dict[str, Any]]:
    """``v(∅)`` for one Run and the record saying which one it is.

    Args:
        kind: ``"reference"`` (the card's reference mean; the CLS-only prior when the card has none, said
            in ``note``) or ``"prior"`` (the CLS-only forward, ``subsets["none"]``).
        subsets: the Run's subset probabilities.
        ref: the card's record.
        tta: the Run's TTA setting (a mismatch with the reference's is noted).
    Returns:
        ``(v_empty, record)``; record: ``kind`` (``"reference"`` or ``"prior"``), ``v_empty``,
        ``description``, ``n``, ``cohort_digest``, ``note``.
    """
    if kind not in EMPTY_KINDS:
        raise ValueError(f"shapley_empty must be one of {EMPTY_KINDS}, got {kind!r}")
    prior = subsets[PRIOR_KEY]
    if kind == "reference" and ref is not None:
        note = "" if tta == ref.tta else f"reference computed with TTA {ref.tta!r}, this run used {tta!r}"
        return ref.v_empty, {
            "kind": "reference", "v_empty": ref.v_empty, "n": ref.n, "cohort_digest": ref.cohort_digest,
            "description": f"mean probability of this model over {ref.n} reference studies", "note": note}
    assert prior is not None
    note = "" if kind == "prior" else "the model card has no reference cohort; the CLS-only prior is used"
    return float(prior), {"kind": "prior", "v_empty": float(prior), "n": 0, "cohort_digest": "",
                          "description": "CLS-only forward (no sequence; the model's prior)", "note": note}
