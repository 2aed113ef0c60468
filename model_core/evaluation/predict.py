"""``mome predict``: a cohort CSV through the Predictor into a JSON-lines file, resumable (PRODUCT §2, flow 2).

The CSV needs a ``path`` column (a study folder, relative to the CSV's folder or absolute) and may have a
``case_id`` column (default: the row number); :func:`model_core.phantom.write_cohort` writes such files.

Each case gets exactly one line in the output: ``{"case_id": ..., **Result.to_dict()}``, or, when it cannot
be read or analysed, whatever the exception, ``{"case_id": ..., "error": "<ErrorClass>: message",
"error_type": "<ErrorClass>"}``; the run goes on (a bad study never stops a cohort). With an audit log each
case also gets exactly one audit line (the Predictor's, or a read-failure line written here).

Resume: run again with the same output and finished cases are skipped. A torn last line (an interrupted
write) is cut off first, and error lines are removed (those cases are tried again), so the file keeps one
line per case. Saliency volumes go under ``saliency_dir/<name>/``, where ``<name>`` is the case id reduced
to ``[A-Za-z0-9._-]`` (plus a hash of the id when it had to change), confined to ``saliency_dir``.

Privacy: with ``hash_paths`` (the default of ``mome predict``) the study folder's path is replaced by
``<study:HASH>`` in error lines and in log records emitted while the case runs (folder paths often hold
patient names).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.progress import ProgressFn, StopFn, check_stop
from model_core.errors import Cancelled, MomeError
from model_core.evaluation.cohort import CohortRow, check_unique_ids, read_cohort_rows
from model_core.studies import read_study

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


class CohortError(MomeError, ValueError):
    """The cohort CSV or the output path cannot be used (missing, not UTF-8, no ``path`` column, ...)."""


def read_cohort(csv_path: str | os.PathLike[str]) -> list[CohortRow]:
    """The cases of a cohort CSV (``path`` required, ``case_id`` optional; duplicate ids refused).

    Raises:
        CohortError: the file is missing or unreadable, not UTF-8 text, lacks a ``path`` column, has an
            empty path or repeats a case id.
    """
    rows = read_cohort_rows(csv_path, error=CohortError)
    for r in rows:
        if not str(r.path).strip() or r.path == Path(csv_path).parent:
            raise CohortError(f"{csv_path}:{r.line}: empty path")
    check_unique_ids(rows, csv_path, CohortError)
    return rows


def case_dir_name(case_id: str) -> str:
    """A file-system name for ``case_id``: itself when already plain (``[A-Za-z0-9._-]``, not only dots),
    else its plain characters plus 8 hex digits of its sha256 (distinct ids stay distinct)."""
    plain = _SAFE_ID.sub("_", case_id).strip(".")
    if plain == case_id and plain:
        return plain
    return f"{plain[:64] or 'case'}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"


def case_dir(saliency_dir: str | os.PathLike[str], case_id: str) -> Path:
    """``saliency_dir/<case_dir_name>``, refused unless it stays inside ``saliency_dir``."""
    root = Path(saliency_dir).resolve()
    target = (root / case_dir_name(case_id)).resolve()
    if target.parent != root:
        raise CohortError(f"case {case_id!r}: saliency folder would leave {saliency_dir}; refused")
    return target


def check_output(out_jsonl: str | os.PathLike[str]) -> Path:
    """The output path, refused when it is a folder."""
    out = Path(out_jsonl)
    if out.is_dir():
        raise CohortError(f"{out}: --out must be a JSON-lines file, not a folder")
    return out


def repair_torn_tail(out_jsonl: Path) -> int:
    """Cut an incomplete last line (an interrupted write) off ``out_jsonl``; returns the bytes removed."""
    if not out_jsonl.is_file():
        return 0
    data = out_jsonl.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with out_jsonl.open("r+b") as fh:
        fh.truncate(keep)
    log.warning("%s: removed a torn last line (%d bytes) before resuming", out_jsonl.name, len(data) - keep)
    return len(data) - keep


def prediction_lines(out_jsonl: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` for every line of ``out_jsonl`` that is a JSON object with a ``case_id`` (a torn
    line is skipped); empty when the file does not exist."""
    p = Path(out_jsonl)
    if not p.is_file():
        return []
    pairs = [(line, _loads(line)) for line in p.read_text(encoding="utf-8").splitlines()]
    return [(line, rec) for line, rec in pairs if "case_id" in rec]


def finished_cases(out_jsonl: str | os.PathLike[str]) -> set[str]:
    """Case ids with a result line in ``out_jsonl`` (error lines and a torn last line do not count)."""
    return {str(rec["case_id"]) for _, rec in prediction_lines(out_jsonl) if "probability" in rec}


def drop_error_lines(out_jsonl: Path) -> int:
    """Rewrite ``out_jsonl`` without its error lines (their cases run again); returns how many went."""
    if not out_jsonl.is_file():
        return 0
    lines = out_jsonl.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [x for x in lines if "error" not in _loads(x)]
    if len(keep) == len(lines):
        return 0
    tmp = out_jsonl.with_name(out_jsonl.name + ".tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, out_jsonl)
    return len(lines) - len(keep)


def _loads(line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return rec if isinstance(rec, dict) else {}


def path_token(path: Path) -> str:
    """``<study:HASH>``: 12 hex digits of a salted sha256 of the folder's absolute path."""
    digest = hashlib.sha256(b"napari-mome-path:" + str(path.absolute()).encode()).hexdigest()[:12]
    return f"<study:{digest}>"


def redact(text: str, path: Path) -> str:
    """``text`` with every spelling of ``path`` (as given, absolute, resolved) replaced by its token."""
    forms = {str(path), str(path.absolute())}
    with contextlib.suppress(OSError, RuntimeError):
        forms.add(str(path.resolve()))
    for form in sorted(forms, key=len, reverse=True):
        if form and form != ".":
            text = text.replace(form, path_token(path))
    return text


class _RedactFilter(logging.Filter):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):  # a record whose arguments do not format stays as it was
            record.msg, record.args = redact(record.getMessage(), self.path), None
        return True


@contextlib.contextmanager
def redacted_logs(path: Path | None) -> Iterator[None]:
    """While active, log records reaching the root logger's handlers have ``path`` replaced by its token."""
    if path is None:
        yield
        return
    flt = _RedactFilter(path)
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


def error_line(row: CohortRow, exc: BaseException, hash_paths: bool) -> dict[str, Any]:
    """The output line of a failed case: the error class and its message (path hashed when asked)."""
    message = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, MomeError):
        message = f"{message} (unexpected error; please report it)"
    return {"case_id": row.case_id, "error": redact(message, row.path) if hash_paths else message,
            "error_type": type(exc).__name__}


def run_case(predictor: Predictor, row: CohortRow, options: RunOptions | None,
             saliency_dir: str | os.PathLike[str] | None, should_stop: StopFn | None) -> dict[str, Any]:
    """One case to its output line; raises whatever reading, the Run or writing saliency raised."""
    t0 = time.perf_counter()
    try:
        study = read_study(row.path)
    except Exception as exc:
        predictor.audit_failure(row.case_id, exc, time.perf_counter() - t0)
        raise
    result = predictor.run(study, options=options, should_stop=should_stop)
    if saliency_dir is not None and result.saliency:
        folder = case_dir(saliency_dir, row.case_id)
        folder.mkdir(parents=True, exist_ok=True)
        for s in result.saliency.values():
            s.write(folder / s.filename)
    return {"case_id": row.case_id, **result.to_dict()}


def prepare_output(out_jsonl: str | os.PathLike[str]) -> Path:
    """Check the output path, repair a torn tail and drop error lines; returns the path."""
    out = check_output(out_jsonl)
    out.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(out)
    dropped = drop_error_lines(out)
    if dropped:
        log.info("%s: %d earlier error line(s) removed; those cases run again", out.name, dropped)
    return out


def append_line(out: Path, line: dict[str, Any]) -> None:
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, allow_nan=False) + "\n")


def predict_cohort(
    predictor: Predictor, csv_path: str | os.PathLike[str], out_jsonl: str | os.PathLike[str], *,
    options: RunOptions | None = None, saliency_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None, should_stop: StopFn | None = None, hash_paths: bool = True,
    shard: tuple[int, int] = (0, 1), done: Collection[str] = (),
) -> dict[str, Any]:
    """Analyse every unfinished case of the cohort; returns counts ``{"cases", "skipped", "done", "errors"}``.

    ``shard=(rank, world)`` keeps manifest rows ``rank, rank + world, ...`` only; ``done``: case ids finished
    elsewhere (skipped like those already in ``out_jsonl``); see :mod:`model_core.evaluation.shard`.

    Raises:
        CohortError: the CSV or the output path cannot be used (before any case runs).
        Cancelled: ``should_stop`` said so (finished cases stay in the file; run again to resume).
    """
    rank, world = shard
    rows = read_cohort(csv_path)[rank::world]
    out = prepare_output(out_jsonl)
    done_before = finished_cases(out) | set(done)
    todo = [r for r in rows if r.case_id not in done_before]
    counts = {"cases": len(rows), "skipped": len(rows) - len(todo), "done": 0, "errors": 0}
    log.info("cohort %s: %d cases, %d already done", Path(csv_path).name, len(rows), counts["skipped"])
    for i, row in enumerate(todo):
        check_stop(should_stop, f"case {row.case_id}")
        with redacted_logs(row.path if hash_paths else None):
            try:
                line = run_case(predictor, row, options, saliency_dir, should_stop)
                counts["done"] += 1
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad study never stops a cohort, whatever it raised
                line = error_line(row, exc, hash_paths)
                counts["errors"] += 1
                log.warning("case %s: %s", row.case_id, line["error"])
        append_line(out, line)
        if progress is not None:
            progress(i + 1, len(todo), f"case {row.case_id}")
    return counts
