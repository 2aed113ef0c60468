"""``mome predict``: a cohort CSV -> JSON lines, resumable (:mod:`model_core.evaluation.predict`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from model_core.cli.common import emit, progress_logger, runtime_from_args

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """``mome predict``; under torchrun (``WORLD_SIZE`` > 1) each rank takes a shard and rank 0 merges
    (:mod:`model_core.evaluation.shard`)."""
    from model_core.engine.predictor import Predictor, RunOptions
    from model_core.evaluation.predict import predict_cohort
    from model_core.network.config import MomeConfig
    from model_core.train.ddp import barrier, init_distributed, shutdown

    info = init_distributed("gloo")
    if info.active and args.device == "auto":  # one GPU per rank when there are GPUs
        import torch

        args.device = f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu"
    kw: dict[str, Any] = {"runtime": runtime_from_args(args), "audit_log": args.audit}
    if Path(args.checkpoint).suffix in (".pth", ".pt"):
        pred = Predictor.from_official(args.checkpoint, MomeConfig.preset(args.preset), **kw)
    else:
        pred = Predictor.from_native(args.checkpoint, **kw)
    opts = RunOptions(tta=args.tta, explain=args.explain, ig_steps=args.ig_steps)
    bar = sys.stderr.isatty() and not info.active
    run_kw: dict[str, Any] = {"options": opts, "saliency_dir": args.saliency_dir,
                              "progress": progress_bar("predict") if bar else progress_logger("predict"),
                              "hash_paths": not args.no_hash_paths}
    if info.active:
        from model_core.evaluation.shard import predict_sharded

        try:
            counts = predict_sharded(pred, args.cohort, args.out, info.rank, info.world_size,
                                     lambda: barrier(info), **run_kw)
        finally:
            shutdown(info)
        if info.is_main:
            emit({"cohort": args.cohort, "out": args.out, **counts}, None)
    else:
        counts = predict_cohort(pred, args.cohort, args.out, **run_kw)
        emit({"cohort": args.cohort, "out": args.out, **counts}, None)
    return 0 if counts["errors"] == 0 else 1


def progress_bar(what: str) -> Any:
    """A progress callback drawing a tqdm bar on stderr (for a terminal)."""
    from tqdm import tqdm

    bar = tqdm(desc=what, unit="case", dynamic_ncols=True)

    def progress(done: int, total: int, stage: str) -> None:
        bar.total, bar.n = total, done
        bar.set_postfix_str(stage, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def add_subparser(subparsers: Any) -> None:
    """Register the subcommand on the ``mome`` sub-parsers."""
    p = subparsers.add_parser("predict", help="a cohort CSV (column 'path', optional 'case_id') -> JSON lines, "
                              "resumable")
    p.add_argument("cohort")
    p.add_argument("--checkpoint", required=True, help="native .safetensors (+ card) or the authors' .pth")
    p.add_argument("--out", required=True, help="JSON-lines output (appended; finished cases are skipped)")
    p.add_argument("--preset", default="base", help="config for an authors' .pth (default base)")
    p.add_argument("--tta", default="none", choices=("none", "interactive", "full"))
    p.add_argument("--explain", action="store_true", help="integrated-gradients saliency per case")
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--saliency-dir", help="write saliency NIfTIs under DIR/<name>/ (with --explain); <name> is the "
                   "case_id reduced to [A-Za-z0-9._-] (plus a short hash when it had to change)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--audit", help="append an audit line (JSONL) per case to this file")
    p.add_argument("--no-hash-paths", action="store_true",
                   help="keep study folder paths in error lines and logs (default: replaced by <study:HASH>, "
                        "since folder names often hold patient names)")
    p.set_defaults(func=run)
