"""``mome demo``: a synthetic study through the whole pipeline. The result JSON, the saliency NIfTIs and the
analysed study go to ``--out``; the human summary is printed last (on stdout, or on stderr with
``--stdout``, which also prints the JSON on stdout)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from model_core.cli.common import emit, progress_logger, runtime_from_args

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from model_core.engine.demo import DEMO_IG_STEPS, STUDY_FOLDER, run_demo, summary_lines

    out = args.out or tempfile.mkdtemp(prefix="mome-demo-")
    bar = progress_logger("demo")
    steps = DEMO_IG_STEPS if args.ig_steps is None else args.ig_steps
    result, notice = run_demo(out, seed=args.seed, tta=args.tta, explain=not args.no_explain, ig_steps=steps,
                              weights=args.weights, preset=args.preset, scale=args.scale, progress=bar,
                              runtime=runtime_from_args(args), audit_log=args.audit, log_summary=False)
    if args.stdout:
        emit(result.to_dict(), None)
    lines = [f"result: {Path(out) / 'result.json'} (saliency_*.nii.gz beside it)",
             f"study: {Path(out) / STUDY_FOLDER} (view with: mome view {Path(out) / STUDY_FOLDER})",
             *summary_lines(result, notice)]
    (sys.stderr if args.stdout else sys.stdout).write("\n".join(lines) + "\n")
    return 0


def add_subparser(subparsers: Any) -> None:
    """Register the subcommand on the ``mome`` sub-parsers."""
    d = subparsers.add_parser("demo", help="a synthetic study through the whole pipeline (result JSON, saliency "
                              "NIfTIs and the study into --out; a summary on stdout)")
    d.add_argument("--out", help="output folder for result.json and saliency NIfTIs (default: a new temp dir)")
    d.add_argument("--seed", type=int, default=None, help="phantom seed (default: the demo case)")
    d.add_argument("--tta", default="none", choices=("none", "interactive", "full"), help="test-time augmentation")
    d.add_argument("--no-explain", action="store_true", help="skip integrated-gradients saliency")
    d.add_argument("--ig-steps", type=int, default=None,
                   help="integrated-gradients steps (default model_core.engine.demo.DEMO_IG_STEPS = 16, "
                        "the Run's default, on a path scanned from the blurred baseline)")
    d.add_argument("--weights", help="a native model (.safetensors + card) instead of the demo weights")
    d.add_argument("--preset", default="demo", help="config of the untrained fallback network (default demo)")
    d.add_argument("--scale", type=float, default=1.0, help="phantom matrix scale (1 = demo resolution)")
    d.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    d.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    d.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: reproducible, and on a busy 2-core machine two threads "
                        "stall at every barrier, measured 7x slower; use 0 for torch's default)")
    d.add_argument("--audit", help="append an audit line (JSONL) to this file")
    d.add_argument("--stdout", action="store_true",
                   help="also print the result JSON on stdout (the summary then goes to stderr)")
    d.set_defaults(func=run)
