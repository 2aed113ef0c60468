"""``mome evaluate`` end to end: prediction files and manifests -> cohorts -> the evaluation JSON, figures
and report in one folder (``evaluation.json``, ``*.png`` / ``*.svg``, ``report.html``, ``report.md``).

Cohorts are one per prediction file, or the file's cases split by a manifest column (``cohort_by``, e.g.
``site``). NaN in the JSON is written as ``null``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_core.engine.decision import CalibrationError
from model_core.errors import MomeError
from model_core.evaluation.birads_transfer import birads4_transfer
from model_core.evaluation.cohort_eval import EvaluateSettings, evaluate_cohort
from model_core.evaluation.kfold_summary import kfold_summary
from model_core.evaluation.predictions import CohortPredictions, join_labels, read_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """What to evaluate.

    Attributes:
        predictions: ``(name, path)`` per prediction file (JSONL or CSV).
        labels: manifests, one for all files or one per file (None: the scores CSV holds the labels).
        transfers: ``(source, target)`` cohort names for the BI-RADS 4 operating point.
        kfold: ``(task, cv_summary.json)`` pairs. model: native weights whose card is summarised.
        others: ``(name, path)``: another model's predictions of the same cases, score column ``name``.
    """

    predictions: Sequence[tuple[str, str]]
    labels: Sequence[str] = ()
    label_column: str | None = None
    cohort_by: str | None = None
    transfers: Sequence[tuple[str, str]] = ()
    kfold: Sequence[tuple[str, str]] = ()
    model: str | None = None
    command: str = ""
    others: Sequence[tuple[str, str]] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def load_cohorts(inp: Inputs) -> dict[str, CohortPredictions]:
    """Every cohort of the inputs, by name.

    Raises:
        MomeError: a file cannot be read, labels do not match, or two cohorts share a name.
    """
    if inp.labels and len(inp.labels) not in (1, len(inp.predictions)):
        raise MomeError(f"give one --labels manifest, or one per predictions file ({len(inp.predictions)})")
    cohorts: dict[str, CohortPredictions] = {}
    for i, (name, path) in enumerate(inp.predictions):
        recs, failed = read_predictions(path)
        manifest = inp.labels[min(i, len(inp.labels) - 1)] if inp.labels else None
        c = join_labels(name, recs, failed, manifest, inp.label_column)
        for other, opath in inp.others:
            orecs, _ = read_predictions(opath)
            c.scores[other] = np.array([orecs[k]["scores"]["model"] if k in orecs else np.nan for k in c.case_ids])
        parts = {name: c}
        if inp.cohort_by:
            if inp.cohort_by not in c.columns:
                raise MomeError(f"{name}: no column {inp.cohort_by!r} to split cohorts by")
            vals = c.columns[inp.cohort_by]
            parts = {v: c.subset(np.array([x == v for x in vals]), v) for v in sorted(set(vals))}
        for k, v in parts.items():
            if k in cohorts:
                raise MomeError(f"two cohorts named {k!r}")
            cohorts[k] = v
    return cohorts


def _card_summary(model: str | None) -> dict[str, Any] | None:
    if model is None:
        return None
    from model_core.weights.native import read_card

    card = read_card(model)
    return {"name": card.name, "weights_file": card.weights_file, "weights_sha256": card.weights_sha256,
            "description": card.description, "intended_use": card.intended_use, "thresholds": card.thresholds,
            "training": {k: card.training[k] for k in list(card.training)[:12]}}


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def evaluate_inputs(inp: Inputs, st: EvaluateSettings | None = None) -> dict[str, Any]:
    """The evaluation document (JSON-ready; NaN -> None)."""
    st = st or EvaluateSettings()
    cohorts = load_cohorts(inp)
    doc: dict[str, Any] = {"command": inp.command, "settings": {**asdict(st), **inp.extra},
                           "model_card": _card_summary(inp.model),
                           "cohorts": {k: evaluate_cohort(c, st) for k, c in cohorts.items()}}
    doc["birads4_transfer"] = []
    for src, tgt in inp.transfers:
        if src not in cohorts or tgt not in cohorts or st.birads not in cohorts[src].columns:
            raise MomeError(f"BI-RADS 4 transfer {src} -> {tgt}: unknown cohort or no {st.birads!r} column")
        a, b = cohorts[src], cohorts[tgt]
        try:
            doc["birads4_transfer"].append(birads4_transfer(
                (a.labels, a.scores["model"], a.columns[st.birads]),
                (b.labels, b.scores["model"], b.columns[st.birads]), source_name=src, target_name=tgt,
                level=st.level))
        except CalibrationError as exc:
            log.warning("BI-RADS 4 transfer %s -> %s: %s", src, tgt, exc)
            doc["birads4_transfer"].append({"source": src, "target": tgt, "error": str(exc)})
    doc["kfold"] = [kfold_summary(p, task) for task, p in inp.kfold]
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def write_evaluation(doc: dict[str, Any], out_dir: str | os.PathLike[str], plots: bool = True) -> dict[str, Path]:
    """Write ``evaluation.json``, the figures and the report; returns the paths written."""
    from model_core.evaluation.plots import cohort_figures
    from model_core.evaluation.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {name: cohort_figures(_nan(rec), out) for name, rec in doc["cohorts"].items()} if plots else {}
    doc = {**doc, "figures": figures}
    (out / "evaluation.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    paths = {"json": out / "evaluation.json", **write_report(doc, figures, out)}
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


def _nan(x: Any) -> Any:
    """``None`` back to NaN for plotting."""
    if x is None:
        return float("nan")
    if isinstance(x, dict):
        return {k: _nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan(v) for v in x]
    return x
