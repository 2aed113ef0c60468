"""Cohort CSV files: one row per study.

A cohort CSV (e.g. from ``mome phantom``) has a ``path`` column (the study folder, relative to the CSV's
folder or absolute) and usually ``case_id`` plus label and description columns (``malignant``, ``tnbc``,
``pcr``, ``site``, ``birads``, ...). :func:`read_cohort_rows` is the one reader; ``mome predict``
(:mod:`model_core.evaluation.predict`) and labelled cohorts (:mod:`model_core.evaluation.cases`, for training
and evaluation) interpret its rows; :class:`TaskSpec` says which label column a task reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_core.errors import MomeError, TrainError


@dataclass(frozen=True)
class CohortRow:
    """One row. ``case_id``: the column, else the row number (0 for the first row); ``path``: relative
    paths joined to the CSV's folder; ``fields``: the other columns as strings; ``line``: the CSV line."""

    case_id: str
    path: Path
    fields: Mapping[str, str] = field(default_factory=dict)
    line: int = 0


def read_cohort_rows(
    csv_path: str | os.PathLike[str], *, required: Iterable[str] = ("path",), error: type[MomeError] = MomeError,
    context: str = "",
) -> list[CohortRow]:
    """Every row of a cohort CSV.

    Args:
        required: columns that must be present (``path`` always is).
        error: the exception class raised (a :class:`MomeError`).
        context: appended to the missing-column message (e.g. the task).
    Raises:
        ``error``: no such file, not UTF-8 text, unreadable, or a required column is missing.
    """
    p = Path(csv_path)
    if not p.is_file():
        raise error(f"{p}: no such cohort CSV")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = ({"path"} | set(required)) - set(reader.fieldnames or [])
            if missing:
                raise error(f"{p}: missing columns {sorted(missing)}{context}; a cohort CSV needs a 'path' column "
                            f"(found {reader.fieldnames})")
            raw = list(reader)
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the cohort CSV as UTF-8") from exc
    except (OSError, csv.Error) as exc:
        raise error(f"{p}: cannot read the cohort CSV ({type(exc).__name__}: {exc})") from exc
    rows = []
    for i, r in enumerate(raw):
        path = Path(r["path"] or "")
        fields = {k: v for k, v in r.items() if k not in ("case_id", "path") and v is not None}
        rows.append(CohortRow(str(r.get("case_id") or i), path if path.is_absolute() else p.parent / path,
                              fields, i + 2))
    return rows


def check_unique_ids(rows: Sequence[CohortRow], csv_path: str | os.PathLike[str],
                     error: type[MomeError] = MomeError) -> None:
    """Raise ``error`` at the first repeated ``case_id``."""
    seen: set[str] = set()
    for r in rows:
        if r.case_id in seen:
            raise error(f"{csv_path}:{r.line}: duplicate case_id {r.case_id!r}")
        seen.add(r.case_id)


@dataclass(frozen=True)
class TaskSpec:
    """A binary task read from a cohort CSV.

    Attributes:
        name: ``malignancy``, ``tnbc`` or ``pcr``.
        label: CSV column holding the 0/1 label (class 1 = positive).
        malignant_only: keep only rows with ``malignant == 1`` (TNBC subtyping, pCR prediction).
        weighted: whether ``class_weights="auto"`` uses the balanced (weighted-softmax) loss; the paper
            weights the loss for TNBC and pCR only.
    """

    name: str
    label: str
    malignant_only: bool
    weighted: bool


TASKS: dict[str, TaskSpec] = {
    "malignancy": TaskSpec("malignancy", "malignant", False, False),
    "tnbc": TaskSpec("tnbc", "tnbc", True, True),
    "pcr": TaskSpec("pcr", "pcr", True, True),
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise TrainError(f"unknown task {name!r}; choose from {sorted(TASKS)}") from None
