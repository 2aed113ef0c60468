"""``mome predict``: a cohort CSV through the Predictor into a JSON-lines file, resumable.

The CSV needs a ``path`` column (a study folder, relative to the CSV's folder or absolute) and may have a
``case_id`` column (default: the row number); :func:`model_core.phantom.write_cohort` writes such files.
Each finished case appends one line ``{"case_id": ..., **Result.to_dict()}``; a case that cannot be read or
analysed appends ``{"case_id": ..., "error": "<ErrorClass>: message"}`` and the run goes on (a bad study
never stops a cohort). Run again with the same output and finished cases are skipped (cases that ended
in an error are tried again). Saliency volumes are written per case under ``saliency_dir/<case_id>/`` when
asked. Progress and stop callbacks work per case (and inside each case's Run).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.progress import ProgressFn, StopFn, check_stop
from model_core.errors import Cancelled, MomeError
from model_core.evaluation.cohort import CohortRow, check_unique_ids, read_cohort_rows
from model_core.studies import read_study

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def read_cohort(csv_path: str | os.PathLike[str]) -> list[CohortRow]:
    """The cases of a cohort CSV (``path`` required, ``case_id`` optional; duplicate ids refused)."""
    rows = read_cohort_rows(csv_path)
    check_unique_ids(rows, csv_path)
    return rows


def finished_cases(out_jsonl: str | os.PathLike[str]) -> set[str]:
    """Case ids with a result line in ``out_jsonl`` (error lines and a torn last line do not count)."""
    p = Path(out_jsonl)
    if not p.is_file():
        return set()
    done = set()
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "probability" in rec and "case_id" in rec:
            done.add(str(rec["case_id"]))
    return done


def predict_cohort(
    predictor: Predictor, csv_path: str | os.PathLike[str], out_jsonl: str | os.PathLike[str], *,
    options: RunOptions | None = None, saliency_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    shard: tuple[int, int] = (0, 1), done: Collection[str] = (),
) -> dict[str, Any]:
    """Analyse every unfinished case of the cohort; returns counts ``{"cases", "skipped", "done", "errors"}``.

    ``shard=(rank, world)`` keeps manifest rows ``rank, rank + world, ...`` only; ``done``: case ids finished
    elsewhere (skipped like those already in ``out_jsonl``); see :mod:`model_core.evaluation.shard`.

    Raises:
        Cancelled: ``should_stop`` said so (finished cases stay in the file; run again to resume).
    """
    rank, world = shard
    rows = read_cohort(csv_path)[rank::world]
    done_before = finished_cases(out_jsonl) | set(done)
    todo = [r for r in rows if r.case_id not in done_before]
    out = Path(out_jsonl)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"cases": len(rows), "skipped": len(rows) - len(todo), "done": 0, "errors": 0}
    log.info("cohort %s: %d cases, %d already done", Path(csv_path).name, len(rows), counts["skipped"])
    for i, row in enumerate(todo):
        check_stop(should_stop, f"case {row.case_id}")
        try:
            result = predictor.run(read_study(row.path), options=options, should_stop=should_stop)
            line: dict[str, Any] = {"case_id": row.case_id, **result.to_dict()}
            if saliency_dir is not None and result.saliency:
                case_dir = Path(saliency_dir) / (_SAFE_ID.sub("_", row.case_id) or "case")
                for s in result.saliency.values():
                    case_dir.mkdir(parents=True, exist_ok=True)
                    s.write(case_dir / s.filename)
            counts["done"] += 1
        except Cancelled:
            raise
        except (MomeError, OSError, ValueError) as exc:
            line = {"case_id": row.case_id, "error": f"{type(exc).__name__}: {exc}"}
            counts["errors"] += 1
            log.warning("case %s: %s", row.case_id, line["error"])
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, allow_nan=False) + "\n")
        if progress is not None:
            progress(i + 1, len(todo), f"case {row.case_id}")
    return counts
