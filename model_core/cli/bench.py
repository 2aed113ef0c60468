"""``mome bench``: speed and memory benchmarks (JSON on stdout)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from model_core.cli.common import emit

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from model_core.bench.forward import bench_forward

    report: dict[str, Any] = {}
    args.what = args.what or ["forward"]
    unknown = set(args.what) - {"forward", "preprocess", "inference", "evaluate", "read"}
    if unknown:
        log.error("unknown benchmark(s) %s; choose from forward, preprocess, inference, evaluate, read",
                  sorted(unknown))
        return 2
    if "evaluate" in args.what:
        from model_core.bench.evaluate import bench_evaluate

        log.info("bench evaluate (%d predictions, %d bootstrap replicates)", args.eval_cases, args.eval_resamples)
        report["evaluate"] = bench_evaluate(args.eval_cases, args.eval_resamples)
    if "forward" in args.what:
        report.update(bench_forward(
            args.preset, args.dtypes.split(","), args.attention.split(","), args.threads, args.repeats,
            args.device, force_bf16=args.force_bf16, progress=lambda s: log.info("bench forward: %s", s),
        ))
    if "preprocess" in args.what:
        from model_core.bench.preprocess import bench_preprocess
        from model_core.network.config import MomeConfig
        from model_core.runtime import Runtime

        Runtime("cpu", threads=args.threads).apply_threads()
        log.info("bench preprocess (paper-size study, %s canvases)", args.preset)
        report["preprocess"] = bench_preprocess(args.repeats, MomeConfig.preset(args.preset).sizes)
    if "read" in args.what:
        from model_core.bench.read import bench_read
        from model_core.network.config import MomeConfig

        log.info("bench read: peak memory of reading and preprocessing (%s)", args.corpus or "synthetic corpus")
        report["read"] = bench_read(args.corpus, MomeConfig.preset(args.preset).sizes, args.scale)
    if "inference" in args.what:
        from model_core.bench.inference import bench_inference

        log.info("bench inference (%s preset, %s): forward, cache, subsets, toggle, Run, IG, TTA",
                 args.preset, args.device)
        report["inference"] = bench_inference(args.preset, args.threads, args.repeats, args.device,
                                              ig_steps=args.ig_steps, ig_repeats=args.ig_repeats,
                                              tta_full=args.tta_full, dtype=args.dtypes.split(",")[0],
                                              weights=args.weights or "")
    emit(report, args.json)
    return 0


def add_subparser(subparsers: Any) -> None:
    """Register the subcommand on the ``mome`` sub-parsers."""
    b = subparsers.add_parser("bench", help="speed and memory benchmarks (JSON on stdout)")
    b.add_argument("what", nargs="*", help="forward, preprocess, inference, evaluate and/or read (default: forward)")
    b.add_argument("--preset", default="base", help="model preset: base (paper), demo, fixture, tiny")
    b.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32,bf16")
    b.add_argument("--attention", default="segment,dense", help="comma list of segment,dense")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--force-bf16", action="store_true", help="run bf16 even on a CPU without bf16 units")
    b.add_argument("--ig-steps", type=int, default=16, help="inference: integrated-gradients steps (default 16, "
                   "the Run's)")
    b.add_argument("--weights", help="inference: a native model (e.g. resources/demo.safetensors) instead of the "
                   "untrained demo network")
    b.add_argument("--ig-repeats", type=int, default=None, help="inference: timed IG runs (default --repeats)")
    b.add_argument("--tta-full", action="store_true", help="inference: also time the 54-version TTA")
    b.add_argument("--eval-cases", type=int, default=10_000, help="evaluate: predictions (default 10000)")
    b.add_argument("--eval-resamples", type=int, default=1000, help="evaluate: bootstrap replicates (default 1000)")
    b.add_argument("--corpus", help="read: a folder whose entries (study folders, image files) are the cases "
                                    "(default: a synthetic corpus in a temporary folder)")
    b.add_argument("--scale", type=float, default=0.5, help="read: matrix scale of the synthetic corpus (1 = paper)")
    b.add_argument("--json", help="also write the report to this file")
    b.set_defaults(func=run)
