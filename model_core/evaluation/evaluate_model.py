"""Held-out evaluation of a trained model with a plain forward loop (no TTA): per cohort, the AUROC of
every subset of sequences (all seven: ``multiparametric``, ``dce_only`` = ``model(dce=...)`` with DWI and T2
absent, ...), each with a seeded 1000x bootstrap 95 % CI and the spread of its log-odds between studies,
the paired-bootstrap AUROC gains of all sequences over DCE + DWI and over DCE alone, plus per-case scores.

The report goes into the model card's ``metrics`` (``update_card``). Hook for the inference module:
per-case rows (:attr:`EvalReport.cases`, written as ``predictions.csv`` by the CLI) carry ``birads`` and
both scores, which is what the BI-RADS 4 threshold calibration and downgrade rate need; Shapley and
integrated-gradients checks can add their own entries under ``metrics`` and ``thresholds`` of the card
with :func:`update_card`'s ``extra_metrics`` / ``thresholds`` arguments.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_core.errors import TrainError
from model_core.evaluation.bootstrap import bootstrap_columns, paired_p_value, resample_indices, summarise
from model_core.evaluation.cases import CaseDataset, predict_cases
from model_core.evaluation.metrics import auroc, bootstrap_auroc
from model_core.network.mome import Mome
from model_core.weights.card_seal import write_card
from model_core.weights.native import ModelCard, card_path_for, load_native, read_card, save_native

log = logging.getLogger(__name__)

SUBSETS: dict[str, tuple[str, ...]] = {
    "multiparametric": ("dce", "dwi", "t2"), "dce_only": ("dce",), "dwi_only": ("dwi",), "t2_only": ("t2",),
    "dce+dwi": ("dce", "dwi"), "dce+t2": ("dce", "t2"), "dwi+t2": ("dwi", "t2"),
}  # fmt: skip
"""Every non-empty subset of sequences, by the name its AUROC has in the report."""

GAINS: dict[str, str] = {"gain_over_dce_dwi": "dce+dwi", "gain_over_dce_only": "dce_only"}
"""Paired AUROC gains of ``multiparametric`` over these subsets, reported per cohort."""


@dataclass(frozen=True)
class EvalOptions:
    """Bootstrap settings (the paper: 1000 resamples, 95 %)."""

    bootstrap: int = 1000
    level: float = 0.95
    seed: int = 0


@dataclass
class EvalReport:
    """``metrics[cohort][subset]`` = AUROC record; ``cases`` = one row per (cohort, case)."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)


def evaluate(model: Mome, cohorts: Mapping[str, CaseDataset], opts: EvalOptions = EvalOptions(),
             progress: bool = True) -> EvalReport:
    """Score every cohort with every subset of :data:`SUBSETS` and compute AUROCs with CIs."""
    report = EvalReport()
    model.eval()
    for name, ds in cohorts.items():
        scores = {s: predict_cases(model, ds, modalities=mods, progress=progress, desc=f"{name} {s}").numpy()
                  for s, mods in SUBSETS.items()}
        y = ds.labels
        entry: dict[str, Any] = {"n": len(ds), "n_positive": int(y.sum()),
                                 "sites": sorted({c.site for c in ds.cases})}
        for s, sc in scores.items():
            entry[s] = {**bootstrap_auroc(y, sc, opts.bootstrap, opts.seed, opts.level).to_dict(),
                        "logit_sd": logit_sd(sc)}
        entry["auroc_drop_dce_only"] = entry["multiparametric"]["auroc"] - entry["dce_only"]["auroc"]
        entry.update(paired_gains(y, scores, opts))
        report.metrics[name] = entry
        log.info("%s: AUROC %.4f [%.4f, %.4f]; DCE only %.4f [%.4f, %.4f] (n=%d)", name,
                 entry["multiparametric"]["auroc"], entry["multiparametric"]["ci_lower"],
                 entry["multiparametric"]["ci_upper"], entry["dce_only"]["auroc"], entry["dce_only"]["ci_lower"],
                 entry["dce_only"]["ci_upper"], len(ds))
        for i, c in enumerate(ds.cases):
            report.cases.append({"cohort": name, "case_id": c.case_id, "site": c.site, "label": c.label,
                                 "birads": c.info.get("birads", ""),
                                 **{f"p_{s}": float(sc[i]) for s, sc in scores.items()}})
    return report


def logit_sd(p: np.ndarray) -> float:
    """Standard deviation between studies of the log-odds of probabilities ``p`` ``(N,)``."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return float(np.std(np.log(q) - np.log1p(-q)))


def paired_gains(y: np.ndarray, scores: Mapping[str, np.ndarray], opts: EvalOptions) -> dict[str, Any]:
    """AUROC of ``multiparametric`` minus that of each subset in :data:`GAINS`, with a paired bootstrap
    percentile interval and two-sided p-value (the same resampled cases for both columns)."""
    cols = {"multiparametric": scores["multiparametric"], **{s: scores[s] for s in GAINS.values()}}
    idx = resample_indices(y, opts.bootstrap, opts.seed)
    reps = bootstrap_columns(y, cols, idx, lambda rows: {"auroc": rows.auroc()})
    out: dict[str, Any] = {}
    for key, sub in GAINS.items():
        diff = reps["multiparametric"]["auroc"] - reps[sub]["auroc"]
        point = auroc(y, cols["multiparametric"]) - auroc(y, cols[sub])
        out[key] = {**summarise(point, diff, opts.level), "p_value": paired_p_value(diff), "versus": sub,
                    "bootstrap_resamples": opts.bootstrap, "bootstrap_seed": opts.seed}
    return out


def write_predictions(report: EvalReport, path: str | os.PathLike[str]) -> None:
    """Per-case scores as CSV (``cohort, case_id, site, label, birads`` and ``p_<subset>`` for every
    subset of :data:`SUBSETS`)."""
    cols = ["cohort", "case_id", "site", "label", "birads", *(f"p_{s}" for s in SUBSETS)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(report.cases)


def check_card_section(section: str) -> None:
    """Raise :class:`TrainError` unless ``section`` can name a card's metrics entry (``test_ds1_large``;
    not ``*_protocol``, which holds how an entry was made)."""
    if not section.isidentifier() or section.endswith("_protocol"):
        raise TrainError(f"card section {section!r}: want a plain name such as 'test' or 'test_ds1_large'")


def update_card(weights: str | os.PathLike[str], report: EvalReport, *, evaluation: Mapping[str, Any] | None = None,
                extra_metrics: Mapping[str, Any] | None = None, thresholds: Mapping[str, Any] | None = None,
                section: str = "test") -> Path:
    """Add the report to the card beside ``weights`` as ``metrics[section]`` (default ``test``; the
    weights are untouched, so their sha256 stays valid). ``evaluation``: how it was run (command, cohorts,
    seeds), stored as ``metrics[section + "_protocol"]``. Other sections of the card are kept."""
    check_card_section(section)
    card = read_card(weights)
    card.metrics = {**card.metrics, section: report.metrics, **dict(extra_metrics or {})}
    if evaluation:
        card.metrics[f"{section}_protocol"] = dict(evaluation)
    if thresholds:
        card.thresholds = {**card.thresholds, **dict(thresholds)}
    path = card_path_for(weights)
    write_card(path, card.to_dict())
    log.info("updated %s", path)
    return path


def export(weights: str | os.PathLike[str], dst: str | os.PathLike[str], *, name: str | None = None,
           half: bool = False, training: Mapping[str, Any] | None = None) -> ModelCard:
    """Re-save a native model (e.g. ``best.safetensors``) under another name with its card (sha256 and
    ``weights_file`` recomputed), optionally in float16 and with extra ``training`` fields."""
    import torch

    model, card = load_native(weights)
    if name:
        card.name = name
    card.training = {**card.training, **dict(training or {})}
    if half:
        card.training["stored_dtype"] = "float16"
    return save_native(model, dst, card, dtype=torch.float16 if half else None)


def summary_table(report: EvalReport) -> str:
    """A Markdown table of the report (for logs and model-card READMEs)."""
    lines = ["| cohort | n (pos) | AUROC multiparametric [95% CI] | AUROC DCE only [95% CI] |", "|---|---|---|---|"]
    for name, e in report.metrics.items():
        mp, dc = e["multiparametric"], e["dce_only"]
        lines.append(f"| {name} | {e['n']} ({e['n_positive']}) | {mp['auroc']:.3f} [{mp['ci_lower']:.3f}, "
                     f"{mp['ci_upper']:.3f}] | {dc['auroc']:.3f} [{dc['ci_lower']:.3f}, {dc['ci_upper']:.3f}] |")
    return "\n".join(lines)


def labels_and_scores(report: EvalReport, cohort: str,
                      subset: str = "multiparametric") -> tuple[np.ndarray, np.ndarray]:
    """``(labels, scores)`` of one cohort from the per-case rows."""
    rows = [r for r in report.cases if r["cohort"] == cohort]
    return np.array([r["label"] for r in rows]), np.array([r[f"p_{subset}"] for r in rows])
