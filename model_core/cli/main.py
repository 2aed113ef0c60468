"""The ``mome`` command line: ``bench``, ``convert``, ``phantom``, ``demo`` (and more as they land).

Logging goes to stderr; machine-readable results (JSON) go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("model_core")


def _emit(obj: Any, out: str | None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False)
    if out:
        Path(out).write_text(text + "\n")
        log.info("wrote %s", out)
    sys.stdout.write(text + "\n")


def _cmd_bench(args: argparse.Namespace) -> int:
    from model_core.bench.forward import bench_forward

    report: dict[str, Any] = {}
    args.what = args.what or ["forward"]
    unknown = set(args.what) - {"forward", "preprocess", "inference"}
    if unknown:
        log.error("unknown benchmark(s) %s; choose from forward, preprocess, inference", sorted(unknown))
        return 2
    if "forward" in args.what:
        report.update(bench_forward(
            args.preset, args.dtypes.split(","), args.attention.split(","), args.threads, args.repeats,
            args.device, force_bf16=args.force_bf16, progress=lambda s: log.info("bench forward: %s", s),
        ))
    if "preprocess" in args.what:
        import torch

        from model_core.bench.preprocess import bench_preprocess
        from model_core.network.config import MomeConfig

        torch.set_num_threads(args.threads)
        log.info("bench preprocess (paper-size study, %s canvases)", args.preset)
        report["preprocess"] = bench_preprocess(args.repeats, MomeConfig.preset(args.preset).sizes)
    if "inference" in args.what:
        from model_core.bench.inference import bench_inference

        log.info("bench inference (%s preset, %s): forward, cache, subsets, toggle, Run, IG, TTA",
                 args.preset, args.device)
        report["inference"] = bench_inference(args.preset, args.threads, args.repeats, args.device,
                                              ig_steps=args.ig_steps, ig_repeats=args.ig_repeats,
                                              tta_full=args.tta_full, dtype=args.dtypes.split(",")[0])
    _emit(report, args.json)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from model_core.network.config import MomeConfig
    from model_core.weights.convert import convert_official

    base = MomeConfig.from_dict(json.loads(Path(args.config).read_text())) if args.config \
        else MomeConfig.preset(args.preset)
    report = convert_official(args.src, args.dst, base, args.num_heads)
    _emit({"source": args.src, "weights": args.dst, "loaded": len(report.loaded),
           "tied_modules": len(report.tied), "untied_modules": len(report.untied)}, None)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from model_core.engine.demo import DEMO_IG_STEPS, run_demo

    out = args.out or tempfile.mkdtemp(prefix="mome-demo-")
    bar = _progress_logger("demo")
    steps = DEMO_IG_STEPS if args.ig_steps is None else args.ig_steps
    result, _ = run_demo(out, seed=args.seed, tta=args.tta, explain=not args.no_explain, ig_steps=steps,
                         weights=args.weights, preset=args.preset, scale=args.scale, progress=bar,
                         device=args.device, dtype=args.dtype, threads=args.threads or None, audit_log=args.audit)
    _emit(result.to_dict(), None)
    log.info("outputs in %s", out)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from model_core.engine.predictor import Predictor, RunOptions
    from model_core.evaluation.predict import predict_cohort
    from model_core.network.config import MomeConfig

    kw: dict[str, Any] = {"device": args.device, "dtype": args.dtype, "threads": args.threads,
                          "audit_log": args.audit}
    if Path(args.checkpoint).suffix in (".pth", ".pt"):
        pred = Predictor.from_official(args.checkpoint, MomeConfig.preset(args.preset), **kw)
    else:
        pred = Predictor.from_native(args.checkpoint, **kw)
    opts = RunOptions(tta=args.tta, explain=args.explain, ig_steps=args.ig_steps)
    counts = predict_cohort(pred, args.cohort, args.out, options=opts, saliency_dir=args.saliency_dir,
                            progress=_progress_logger("predict"))
    _emit({"cohort": args.cohort, "out": args.out, **counts}, None)
    return 0 if counts["errors"] == 0 else 1


def _progress_logger(what: str) -> Any:
    """A progress callback that logs each stage once and every 10 %."""
    last: list[Any] = ["", -1]  # stage, percent

    def progress(done: int, total: int, stage: str) -> None:
        pct = 100 * done // max(total, 1)
        if stage != last[0] or pct // 10 != last[1] // 10:
            log.info("%s: %s (%d/%d, %d%%)", what, stage, done, total, pct)
            last[:] = [stage, pct]

    return progress


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mome", description="MOME for multiparametric breast MRI "
                                     "(research use only; not for clinical decisions).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="speed and memory benchmarks (JSON on stdout)")
    b.add_argument("what", nargs="*", help="forward, preprocess and/or inference (default: forward)")
    b.add_argument("--preset", default="base", help="model preset: base (paper), demo, fixture, tiny")
    b.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32,bf16")
    b.add_argument("--attention", default="segment,dense", help="comma list of segment,dense")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--force-bf16", action="store_true", help="run bf16 even on a CPU without bf16 units")
    b.add_argument("--ig-steps", type=int, default=32, help="inference: integrated-gradients steps")
    b.add_argument("--ig-repeats", type=int, default=None, help="inference: timed IG runs (default --repeats)")
    b.add_argument("--tta-full", action="store_true", help="inference: also time the 54-version TTA")
    b.add_argument("--json", help="also write the report to this file")
    b.set_defaults(func=_cmd_bench)

    c = sub.add_parser("convert", help="the authors' .pth -> native safetensors + model card")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--preset", default="base", help="config preset giving canvas sizes and heads (default base)")
    c.add_argument("--config", help="JSON MomeConfig instead of a preset")
    c.add_argument("--num-heads", type=int, help="attention heads (cannot be read from shapes)")
    c.set_defaults(func=_cmd_convert)

    d = sub.add_parser("demo", help="a synthetic study through the whole pipeline (result JSON on stdout)")
    d.add_argument("--out", help="output folder for result.json and saliency NIfTIs (default: a new temp dir)")
    d.add_argument("--seed", type=int, default=None, help="phantom seed (default: the demo case)")
    d.add_argument("--tta", default="none", choices=("none", "interactive", "full"), help="test-time augmentation")
    d.add_argument("--no-explain", action="store_true", help="skip integrated-gradients saliency")
    d.add_argument("--ig-steps", type=int, default=None,
                   help="integrated-gradients steps (default model_core.engine.demo.DEMO_IG_STEPS = 64: "
                        "the shipped demo model needs them for a completeness error of a few %%; "
                        "the library default is 32)")
    d.add_argument("--weights", help="a native model (.safetensors + card) instead of the demo weights")
    d.add_argument("--preset", default="demo", help="config of the untrained fallback network (default demo)")
    d.add_argument("--scale", type=float, default=1.0, help="phantom matrix scale (1 = demo resolution)")
    d.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    d.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    d.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: reproducible, and on a busy 2-core machine two threads "
                        "stall at every barrier, measured 7x slower; use 0 for torch's default)")
    d.add_argument("--audit", help="append an audit line (JSONL) to this file")
    d.set_defaults(func=_cmd_demo)

    p = sub.add_parser("predict", help="a cohort CSV (column 'path', optional 'case_id') -> JSON lines, resumable")
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
    p.set_defaults(func=_cmd_predict)

    from model_core.cli.phantom import add_subparser as add_phantom

    add_phantom(sub)
    from model_core.cli.train import add_subparser as add_train

    add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from model_core.errors import MomeError

    try:
        return int(args.func(args))
    except MomeError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
