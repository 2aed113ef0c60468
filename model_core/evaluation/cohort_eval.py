"""Every statistic of one cohort (``mome evaluate``): the JSON record behind each figure and table.

Per cohort, for the score column ``model`` (the mean over the TTA versions when ``mome predict`` ran
with TTA): AUROC, AUPRC, partial AUROCs (:mod:`model_core.evaluation.ranking`) with bootstrap intervals,
ROC and PR curves with pointwise bands, threshold metrics at 0.5 and at a chosen threshold
(:mod:`model_core.evaluation.binary`), the missing-modality table (AUROC of every subset column and its
paired p-value against ``model``), requested paired comparisons, decision curves, subgroups, readers and
the global Shapley summary. All bootstrap statistics of a cohort share one resample matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_core.errors import MomeError
from model_core.evaluation.binary import threshold_report
from model_core.evaluation.birads_transfer import birads4_mask
from model_core.evaluation.bootstrap import (
    band,
    bootstrap_columns,
    paired_p_value,
    percentile_ci,
    ranked_stats,
    resample_indices,
    summarise,
)
from model_core.evaluation.decision_curve import decision_curve
from model_core.evaluation.predictions import MODALITIES, CohortPredictions
from model_core.evaluation.ranking import RankedRows
from model_core.evaluation.readers import reader_comparison
from model_core.evaluation.shapley_summary import global_shapley
from model_core.evaluation.subgroups import is_numeric, subgroup_table

log = logging.getLogger(__name__)

RANKED = ("auroc", "auprc", "pauroc_spec90", "pauroc_sens90")


@dataclass(frozen=True)
class EvaluateSettings:
    """How a cohort is evaluated (the paper: 1000 resamples, 95 %, positive above 0.5).

    Attributes:
        threshold: the second operating point (besides 0.5), e.g. a calibrated one; None: only 0.5.
        subgroups: ``{column: bin edges or None}``; a numeric column without edges is split into tertiles.
        readers: reader BI-RADS columns. birads: the cohort's BI-RADS column (decision curve for avoiding
            biopsy, BI-RADS 4 subgroup). compare: ``(a, b)`` score-column pairs for paired p-values.
    """

    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95
    threshold: float | None = None
    subgroups: Mapping[str, Sequence[float] | None] = field(default_factory=dict)
    readers: Sequence[str] = ()
    birads: str = "birads"
    compare: Sequence[tuple[str, str]] = ()


def _finite(c: CohortPredictions, col: str) -> np.ndarray:
    return np.isfinite(c.scores[col])


def _ranked_summary(y: np.ndarray, s: np.ndarray, reps: Mapping[str, np.ndarray], level: float) -> dict[str, Any]:
    r = RankedRows.build(y, s)
    point = {"auroc": r.auroc()[0], "auprc": r.average_precision()[0],
             "pauroc_spec90": r.partial_auroc(0.1, "spec")[0], "pauroc_sens90": r.partial_auroc(0.1, "sens")[0]}
    return {k: summarise(point[k], reps[k], level) for k in RANKED}


def _main_column(c: CohortPredictions, st: EvaluateSettings, idx: np.ndarray,
                 cache: dict[str, np.ndarray]) -> dict[str, Any]:
    y, s = c.labels, c.scores["model"]
    thresholds = (0.5,) if st.threshold is None or st.threshold == 0.5 else (0.5, st.threshold)
    reps = bootstrap_columns(y, {"model": s}, idx, lambda r: ranked_stats(r, thresholds, curves=True))["model"]
    cache["model"] = reps["auroc"]
    out = _ranked_summary(y, s, reps, st.level)
    out["auroc"]["definition"] = "Mann-Whitney, ties half"
    out["pauroc_spec90"]["definition"] = "McClish-standardised area over FPR <= 0.1 (specificity >= 90 %)"
    out["pauroc_sens90"]["definition"] = "McClish-standardised area over FNR <= 0.1 (sensitivity >= 90 %)"
    out["thresholds"] = []
    for t in thresholds:
        rep = threshold_report(y, s, t, st.level)
        for k in ("f1", "mcc"):
            lo, hi = percentile_ci(reps[f"{k}@{t:g}"], st.level)
            rep[k].update(ci_lower=lo, ci_upper=hi, ci="bootstrap percentile")
        out["thresholds"].append(rep)
    r = RankedRows.build(y, s)
    fpr, tpr = r.roc_points()
    rec, prec = r.pr_points()
    out["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "band": band(reps["roc_tpr"], st.level)}
    out["pr_curve"] = {"recall": rec.tolist(), "precision": prec.tolist(),
                       "band": band(reps["pr_precision"], st.level)}
    return out


def _paired(c: CohortPredictions, a: str, b: str, idx: np.ndarray, st: EvaluateSettings,
            cache: dict[str, np.ndarray]) -> dict[str, Any]:
    """AUROC of columns ``a`` and ``b`` and of their difference on the cases both score (paired).

    ``cache``: AUROC replicates of columns over the cohort's resamples ``idx``, reused when every case
    has both scores (so the same replicates as computing them again)."""
    m = _finite(c, a) & _finite(c, b)
    y = c.labels[m]
    out: dict[str, Any] = {"a": a, "b": b, "n": int(m.sum()), "n_positive": int(y.sum())}
    if y.all() or not y.any():
        return out
    shared = bool(m.all())
    rows = idx if shared else resample_indices(y, idx.shape[0], st.seed)
    need = {k: c.scores[k][m] for k in (a, b) if not (shared and k in cache)}
    reps = {k: {"auroc": v} for k, v in cache.items() if shared and k in (a, b)}
    if need:
        reps.update(bootstrap_columns(y, need, rows, lambda r: {"auroc": r.auroc()}))
    if shared:
        cache.update({k: v["auroc"] for k, v in reps.items()})
    pa = RankedRows.build(y, c.scores[a][m]).auroc()[0]
    pb = RankedRows.build(y, c.scores[b][m]).auroc()[0]
    d = reps[a]["auroc"] - reps[b]["auroc"]
    lo, hi = percentile_ci(d, st.level)
    out.update(auroc_a=summarise(pa, reps[a]["auroc"], st.level), auroc_b=summarise(pb, reps[b]["auroc"], st.level),
               difference={"value": float(pa - pb), "ci_lower": lo, "ci_upper": hi}, p_value=paired_p_value(d))
    return out


def _subsets(c: CohortPredictions, idx: np.ndarray, st: EvaluateSettings,
             cache: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for col in (k for k in c.scores if k.startswith("subset:")):
        if not _finite(c, col).any() or col == "subset:none":
            continue
        rec = _paired(c, col, "model", idx, st, cache)
        rec["subset"] = col.split(":", 1)[1]
        rows.append(rec)
    return rows


def _decision(c: CohortPredictions, idx: np.ndarray, st: EvaluateSettings) -> dict[str, Any]:
    y, s = c.labels, c.scores["model"]
    out = {"treat": decision_curve(y, s, "treat", idx=idx, level=st.level)}
    if st.birads in c.columns:
        m = birads4_mask(c.columns[st.birads])
        if y[m].any() and not y[m].all():
            out["avoid_biopsy_birads4"] = decision_curve(y[m], s[m], "avoid_biopsy", st.n_resamples, st.seed,
                                                         st.level)
    return out


def _subgroups(c: CohortPredictions, st: EvaluateSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    y, s = c.labels, c.scores["model"]
    for col, edges in st.subgroups.items():
        if col == "birads4" and st.birads in c.columns:
            values = ["BI-RADS 4" if b else "other" for b in birads4_mask(c.columns[st.birads])]
        elif col in c.columns:
            values = c.columns[col]
        else:
            log.warning("%s: no column %r for subgroups", c.name, col)
            continue
        if edges is None and is_numeric(values):
            x = np.array([float(v) for v in values if v.strip()])
            edges = [float(v) for v in np.round(np.quantile(x, [1 / 3, 2 / 3]), 3)]
        out[col] = {"edges": None if edges is None else list(edges),
                    "rows": subgroup_table(y, s, values, edges=edges, n_resamples=st.n_resamples, seed=st.seed,
                                           level=st.level)}
    return out


def evaluate_cohort(c: CohortPredictions, st: EvaluateSettings = EvaluateSettings()) -> dict[str, Any]:
    """The record of one cohort (see the module docstring)."""
    if "model" not in c.scores:
        raise MomeError(f"{c.name}: no 'model' score column")
    keep = _finite(c, "model")
    c = c if keep.all() else c.subset(keep, c.name)
    if c.labels.all() or not c.labels.any():
        raise MomeError(f"cohort {c.name!r}: {c.labels.size} scored cases of one class; AUROC and the bootstrap "
                        "need both")
    idx = resample_indices(c.labels, st.n_resamples, st.seed)
    cache: dict[str, np.ndarray] = {}
    log.info("%s: %d cases (%d positive), %d resamples", c.name, c.labels.size, int(c.labels.sum()), idx.shape[0])
    out: dict[str, Any] = {"name": c.name, "n": int(c.labels.size), "n_positive": int(c.labels.sum()),
                           "n_failed": len(c.failed), "failed": c.failed, "n_unlabelled": c.unlabelled,
                           "model": _main_column(c, st, idx, cache), "subsets": _subsets(c, idx, st, cache),
                           "comparisons": [_paired(c, a, b, idx, st, cache) for a, b in st.compare
                                           if a in c.scores and b in c.scores],
                           "decision_curves": _decision(c, idx, st), "subgroups": _subgroups(c, st)}
    out["readers"] = {r: reader_comparison(c.labels, c.scores["model"], c.columns[r], n_resamples=st.n_resamples,
                                           seed=st.seed, level=st.level) for r in st.readers if r in c.columns}
    if c.shapley is not None:
        out["shapley"] = global_shapley(c.shapley, c.labels, c.scores["model"], MODALITIES)
    return out
