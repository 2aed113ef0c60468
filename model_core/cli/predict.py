"""``mome predict``: a cohort CSV -> JSON lines, resumable (:mod:`model_core.evaluation.predict`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from model_core.cli.common import emit, progress_logger, runtime_from_args

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from model_core.engine.predictor import Predictor, RunOptions
    from model_core.evaluation.predict import predict_cohort
    from model_core.network.config import MomeConfig

    kw: dict[str, Any] = {"runtime": runtime_from_args(args), "audit_log": args.audit}
    if Path(args.checkpoint).suffix in (".pth", ".pt"):
        pred = Predictor.from_official(args.checkpoint, MomeConfig.preset(args.preset), **kw)
    else:
        pred = Predictor.from_native(args.checkpoint, **kw)
    opts = RunOptions(tta=args.tta, explain=args.explain, ig_steps=args.ig_steps)
    counts = predict_cohort(pred, args.cohort, args.out, options=opts, saliency_dir=args.saliency_dir,
                            progress=progress_logger("predict"))
    emit({"cohort": args.cohort, "out": args.out, **counts}, None)
    return 0 if counts["errors"] == 0 else 1


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
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--saliency-dir", help="write saliency NIfTIs under DIR/<case_id>/ (with --explain)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--audit", help="append an audit line (JSONL) per case to this file")
    p.set_defaults(func=run)
