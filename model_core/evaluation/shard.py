"""``mome predict`` under ``torchrun``: the cohort sharded over ranks, the parts merged into one output.

Rank ``r`` of ``W`` analyses manifest rows ``r, r + W, r + 2W, ...`` that the output does not already hold
and appends its lines to ``<out>.part<r>of<W>`` (resumable like the output itself). After a barrier, rank 0
merges the output and every part into the output, one line per case in manifest order (for each case its
last result line, else its last error line), written to a temporary file and moved into place; the parts
are then removed. So the merged file holds the same lines as a single-process run, in the same order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_core.engine.predictor import Predictor
from model_core.evaluation.predict import finished_cases, predict_cohort, prediction_lines, read_cohort

log = logging.getLogger(__name__)


def part_path(out: str | os.PathLike[str], rank: int, world: int) -> Path:
    p = Path(out)
    return p.with_name(f"{p.name}.part{rank}of{world}")


def merge_parts(csv_path: str | os.PathLike[str], out: str | os.PathLike[str], parts: Sequence[Path]) -> int:
    """Merge ``out`` and ``parts`` into ``out`` (manifest order, one line per case); returns the line count."""
    result: dict[str, str] = {}
    error: dict[str, str] = {}
    for src in (Path(out), *parts):
        for line, rec in prediction_lines(src):
            (result if "probability" in rec else error)[str(rec["case_id"])] = line
    lines = [result.get(r.case_id) or error.get(r.case_id) for r in read_cohort(csv_path)]
    kept = [x for x in lines if x is not None]
    tmp = Path(out).with_name(Path(out).name + ".merging")
    tmp.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    os.replace(tmp, out)
    for p in parts:
        p.unlink(missing_ok=True)
    return len(kept)


def predict_sharded(predictor: Predictor, csv_path: str | os.PathLike[str], out: str | os.PathLike[str],
                    rank: int, world: int, barrier: Any, **kw: Any) -> dict[str, Any]:
    """This rank's share of :func:`~model_core.evaluation.predict.predict_cohort`, then (rank 0) the merge.

    Args:
        barrier: a callable that waits for every rank (``torch.distributed.barrier``).
        kw: passed to ``predict_cohort`` (options, saliency_dir, progress, should_stop).
    Returns:
        this rank's counts; rank 0's also hold ``merged_lines``.
    """
    counts: dict[str, Any] = predict_cohort(predictor, csv_path, part_path(out, rank, world), shard=(rank, world),
                                            done=finished_cases(out), **kw)
    counts["rank"] = rank
    barrier()
    if rank == 0:
        counts["merged_lines"] = merge_parts(csv_path, out, [part_path(out, r, world) for r in range(world)])
        log.info("merged %d ranks into %s (%d lines)", world, out, counts["merged_lines"])
    barrier()
    return counts
