"""Predictions joined with their labels: the input of ``mome evaluate``.

Predictions are ``mome predict``'s JSON lines or any CSV of scores:

* JSON lines: a line with ``probability`` gives the score column ``model`` and, from its ``subsets``,
  one column ``subset:<key>`` per modality subset (``subset:dce``, ``subset:dce+dwi`` ...; a subset the
  study could not form is NaN), and its ``shapley`` values. A line with ``error`` records a failed study.
  When a case has several lines (a resumed run), the last one counts.
* CSV: a ``case_id`` column and numeric score columns (the first one, or ``probability`` / ``score`` when
  present, is ``model``); an optional label column.

Labels and every other case column come from a manifest read by the project's cohort CSV reader
(:func:`model_core.evaluation.predict.read_cohort`), joined on ``case_id``; the label column (default
``malignant``, else ``label``) holds 0/1.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_core.errors import MomeError
from model_core.evaluation.predict import read_cohort

log = logging.getLogger(__name__)

MODALITIES = ("dce", "dwi", "t2")


@dataclass
class CohortPredictions:
    """One cohort's cases with labels and scores.

    Attributes:
        scores: ``{column: (N,) float}`` (NaN where a case has no such score).
        columns: manifest columns ``{name: [N values as text]}``.
        shapley: ``(N, 3)`` per-study Shapley values of :data:`MODALITIES` (NaN rows when absent).
        failed: ``[{"case_id", "error"}]`` of studies whose prediction failed.
    """

    name: str
    case_ids: list[str]
    labels: np.ndarray
    scores: dict[str, np.ndarray]
    columns: dict[str, list[str]] = field(default_factory=dict)
    shapley: np.ndarray | None = None
    failed: list[dict[str, str]] = field(default_factory=list)
    unlabelled: int = 0

    def subset(self, mask: np.ndarray, name: str) -> CohortPredictions:
        m = np.asarray(mask, dtype=bool)
        return CohortPredictions(
            name, [c for c, k in zip(self.case_ids, m, strict=True) if k], self.labels[m],
            {k: v[m] for k, v in self.scores.items()},
            {k: [x for x, keep in zip(v, m, strict=True) if keep] for k, v in self.columns.items()},
            None if self.shapley is None else self.shapley[m], [], 0)


def _records_jsonl(path: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    recs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d: not JSON (a torn line?), skipped", path, n)
            continue
        if not isinstance(rec, dict) or "case_id" not in rec:
            raise MomeError(f"{path} line {n}: not a prediction record (no case_id)")
        cid = str(rec["case_id"])
        if "probability" in rec:
            scores = {"model": float(rec["probability"])}
            for k, v in (rec.get("subsets") or {}).items():
                scores[f"subset:{k}"] = float("nan") if v is None else float(v)
            phi = rec.get("shapley") or {}
            recs[cid] = {"scores": scores, "shapley": [float(phi.get(m, np.nan)) for m in MODALITIES]}
            errors.pop(cid, None)
        elif "error" in rec:
            errors[cid] = str(rec["error"])
    return recs, [{"case_id": k, "error": v} for k, v in errors.items() if k not in recs]


def _records_csv(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "case_id" not in reader.fieldnames:
            raise MomeError(f"{path}: a scores CSV needs a 'case_id' column (found {reader.fieldnames})")
        rows = list(reader)
    cols = [c for c in reader.fieldnames if c != "case_id" and rows and _numeric(r[c] for r in rows)]
    main = next((c for c in ("probability", "score") if c in cols), cols[0] if cols else None)
    if main is None:
        raise MomeError(f"{path}: no numeric score column")
    recs = {}
    for r in rows:
        sc = {("model" if c == main else c): float(r[c]) if r[c].strip() else float("nan") for c in cols}
        recs[r["case_id"]] = {"scores": sc, "shapley": None, "row": r}
    return recs


def _numeric(values: Any) -> bool:
    try:
        for v in values:
            if str(v).strip():
                float(v)
    except ValueError:
        return False
    return True


def read_predictions(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """``({case_id: {"scores": {...}, "shapley": [...] | None}}, failed)`` from a JSONL or CSV file."""
    p = Path(path)
    if not p.is_file():
        raise MomeError(f"{p}: no such predictions file")
    if p.suffix.lower() == ".csv":
        return _records_csv(p), []
    return _records_jsonl(p)


def join_labels(name: str, records: dict[str, dict[str, Any]], failed: list[dict[str, str]],
                manifest: str | os.PathLike[str] | None, label_column: str | None = None) -> CohortPredictions:
    """Cases with both a score and a label, in manifest order (or prediction order without a manifest,
    when the scores CSV carries the label column).

    Raises:
        MomeError: no label column, labels not 0/1, or no labelled case.
    """
    if manifest is not None:
        rows = {r.case_id: {"case_id": r.case_id, "path": str(r.path), **r.fields} for r in read_cohort(manifest)}
    else:
        rows = {cid: rec.get("row") or {} for cid, rec in records.items()}
    names = next(iter(rows.values()), {}).keys()
    col = label_column or next((c for c in ("malignant", "label") if c in names), None)
    if col is None or col not in names:
        raise MomeError(f"{name}: no label column ({label_column or 'malignant/label'}) in {manifest or 'scores'}")
    ids = [c for c in rows if c in records]
    missing = sum(c not in records for c in rows)
    if missing:
        log.warning("%s: %d manifest cases have no prediction", name, missing)
    try:
        labels = np.array([int(float(rows[c][col])) for c in ids])
    except ValueError as exc:
        raise MomeError(f"{name}: label column {col!r} must hold 0/1 ({exc})") from exc
    if not ids or not np.isin(labels, (0, 1)).all():
        raise MomeError(f"{name}: no labelled cases, or labels outside 0/1 in {col!r}")
    keys = [k for k in dict.fromkeys(k for c in ids for k in records[c]["scores"]) if k != col]
    scores = {k: np.array([records[c]["scores"].get(k, np.nan) for c in ids]) for k in keys}
    shap = [records[c].get("shapley") for c in ids]
    shapley = None if any(v is None for v in shap) else np.array(shap, dtype=np.float64).reshape(len(ids), 3)
    columns = {k: [str(rows[c].get(k, "")) for c in ids] for k in names}
    return CohortPredictions(name, ids, labels.astype(bool), scores, columns, shapley, failed,
                             sum(c not in rows for c in records))
