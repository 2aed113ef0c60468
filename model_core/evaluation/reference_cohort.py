"""``mome reference``: a model's Shapley reference value and per-sequence figures on a reference cohort.

Every study of the cohort CSVs is read from disk and analysed by the :class:`Predictor` as the plugin
would (no TTA, no saliency). From the results:

* ``v_empty``: the mean malignancy probability with every sequence (SHAP's expected value), and the mean
  of every subset;
* per sequence alone: the spread (sd) of its probability and of its logit margin ``log(p / (1 - p))``
  between studies, and its AUROC with a 1000x bootstrap 95 % interval (the CSV's ``malignant`` column);
  :func:`model_core.engine.reference.sequence_use` turns these into ``used`` / ``why``;
* the cohort digest: sha256 over the sorted per-study voxel-data digests (the audit's input digests), so
  the same phantoms written in another format give the same digest.

The record goes into the model card through :func:`model_core.weights.native.save_card`; the weights file
is never rewritten. The reference cohort must be none of the model's training, selection or test cohorts.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_core.engine.audit import study_inputs
from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.reference import ShapleyReference, cohort_digest, sequence_use, store_reference, study_digest
from model_core.engine.subsets import SUBSETS, subset_key
from model_core.evaluation.cases import cohort_record, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.evaluation.metrics import bootstrap_auroc
from model_core.network.config import MODALITIES
from model_core.studies import read_study
from model_core.weights.native import card_path_for, read_card, save_card

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.log(q / (1.0 - q))  # type: ignore[no-any-return]


def _cohort_entry(csv_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The cohort's record without the local path (folder name, CSV sha256, site, seed, n)."""
    rec = cohort_record(csv_path)
    rec["name"] = Path(csv_path).resolve().parent.name
    rec.pop("csv", None)
    return rec


def reference_values(predictor: Predictor, csvs: Sequence[str | os.PathLike[str]], *, n_bootstrap: int = 1000,
                     seed: int = 0, progress: ProgressFn | None = None, command: str = "") -> ShapleyReference:
    """Analyse every study of ``csvs`` and summarise (see the module docstring).

    Raises:
        TrainError: a CSV is missing or lacks the ``malignant`` column; MomeError: a study cannot be read.
        ValueError: the cohort has a single class (no AUROC).
    """
    cases = [c for p in csvs for c in read_cohort(p, get_task("malignancy"))]
    opts = RunOptions(tta="none", explain=False, shapley_empty="prior")
    rows: dict[str, list[float]] = {subset_key(s): [] for s in SUBSETS}
    labels, digests = [], []
    for i, case in enumerate(cases):
        study = read_study(case.path)
        if set(study.modalities) != set(MODALITIES):
            raise ValueError(f"{case.case_id}: a reference study needs every sequence, has {study.modalities}")
        digests.append(study_digest(study_inputs(study)))
        result = predictor.run(study, options=opts)
        for k in rows:
            rows[k].append(float(result.subsets[k]))  # type: ignore[arg-type]
        labels.append(case.label)
        if progress is not None:
            progress(i + 1, len(cases), case.case_id)
    y = np.asarray(labels)
    sequences: dict[str, dict[str, Any]] = {}
    for m in MODALITIES:
        p = np.asarray(rows[m])
        ci = bootstrap_auroc(y, p, n_resamples=n_bootstrap, seed=seed)
        logit_sd = float(_logit(p).std())
        used, why = sequence_use(logit_sd, ci.auroc, ci.lower)
        sequences[m] = {"logit_sd": logit_sd, "probability_sd": float(p.std()), **ci.to_dict(),
                        "used": used, "why": why}
    full = np.asarray(rows[subset_key(MODALITIES)])
    return ShapleyReference(
        v_empty=float(full.mean()), n=len(cases), cohort_digest=cohort_digest(digests),
        cohorts=[_cohort_entry(p) for p in csvs], tta="none",
        subsets={k: float(np.mean(v)) for k, v in rows.items()}, sequences=sequences, command=command)


def cohort_digests(csvs: Sequence[str | os.PathLike[str]], progress: ProgressFn | None = None) -> list[dict[str, Any]]:
    """Per cohort CSV: its record (name, CSV sha256, site, seed, n) and ``cohort_digest`` over its studies'
    voxel data (:func:`model_core.engine.reference.cohort_digest`; no model involved)."""
    out = []
    for p in csvs:
        cases = read_cohort(p, get_task("malignancy"))
        digests = []
        for i, case in enumerate(cases):
            digests.append(study_digest(study_inputs(read_study(case.path))))
            if progress is not None:
                progress(i + 1, len(cases), case.case_id)
        out.append({**_cohort_entry(p), "n_read": len(cases), "cohort_digest": cohort_digest(digests)})
    return out


def update_card_test_cohorts(weights: str | os.PathLike[str], cohorts: list[dict[str, Any]], world_commit: str,
                             command: str) -> Path:
    """Store the test cohorts' records in ``card.metrics["test_cohorts"]`` with the git commit of the phantom
    world they come from."""
    card = read_card(weights)
    card.metrics = {**card.metrics, "test_cohorts": {"world_commit": world_commit, "cohorts": cohorts,
                                                     "command": command}}
    return save_card(weights, card)


def update_card_reference(weights: str | os.PathLike[str], ref: ShapleyReference) -> Path:
    """Store ``ref`` in the card beside ``weights`` (other entries kept; the weights are not touched)."""
    card = read_card(weights)
    store_reference(card, ref)
    path = save_card(weights, card)
    log.info("updated %s: v_empty %.4f over %d studies", card_path_for(weights), ref.v_empty, ref.n)
    return path


def summary(ref: ShapleyReference) -> dict[str, Any]:
    """A short JSON view (v_empty, n, digest, per-sequence AUROC / logit sd / used)."""
    return {"v_empty": ref.v_empty, "n": ref.n, "cohort_digest": ref.cohort_digest,
            "sequences": {m: {k: s[k] for k in ("auroc", "ci_lower", "ci_upper", "logit_sd", "used")}
                          for m, s in ref.sequences.items()},
            "prior_cls_only": ref.subsets.get("none", math.nan)}
