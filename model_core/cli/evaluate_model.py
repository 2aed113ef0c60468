"""``mome evaluate-model``: held-out cohorts -> AUROC (multiparametric, DCE only) with bootstrap CIs,
optionally the Predictor-path checks, into the model card.

Example::

    mome evaluate-model runs/m/best.safetensors --cohort ds1=c/t1/cohort.csv --cohort ds2=c/t2/cohort.csv \
        --update-card
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from model_core.cli.common import command_line
from model_core.runtime import Runtime

log = logging.getLogger(__name__)


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="native .safetensors (card beside it)")
    p.add_argument("--cohort", action="append", required=True, metavar="NAME=CSV",
                   help="a held-out cohort (repeatable), e.g. ds1_test=cohorts/ds1_test/cohort.csv")
    p.add_argument("--task", default="malignancy", choices=["malignancy", "tnbc", "pcr"])
    p.add_argument("--cache", help="preprocessing cache folder (default: beside the weights, cache/)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="folder for eval.json and predictions.csv (default: beside the weights)")
    p.add_argument("--update-card", action="store_true", help="write the metrics into the model card")
    p.add_argument("--card-section", default="test", metavar="NAME",
                   help="with --update-card: the card's metrics entry to write (default test; another name, e.g. "
                        "test_ds1_large, adds an evaluation and keeps the others)")
    p.add_argument("--export", metavar="PATH", help="re-save weights + card as PATH (resources/demo.safetensors)")
    p.add_argument("--export-name", help="model name in the exported card")
    p.add_argument("--export-fp16", action="store_true", help="store the exported weights as float16")
    p.add_argument("--reproduce", help="how to reproduce the model (recorded in the exported card)")
    p.add_argument("--checks", action="store_true",
                   help="also run every study through the inference engine (Predictor): global Shapley, IG "
                        "pointing game on malignant cases, BI-RADS 4 threshold (needs lesion masks for IG)")
    p.add_argument("--calibrate-on", metavar="NAME", help="cohort that calibrates the BI-RADS 4 threshold")
    p.add_argument("--ig-steps", type=int, default=16, help="IG integration points per case (default 16)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from model_core.engine.card import preprocess_options
    from model_core.errors import TrainError
    from model_core.evaluation.cases import CaseCache, CaseDataset, read_cohort
    from model_core.evaluation.cohort import get_task
    from model_core.evaluation.evaluate_model import (
        EvalOptions,
        check_card_section,
        evaluate,
        export,
        summary_table,
        update_card,
        write_predictions,
    )
    from model_core.weights.native import load_native

    if args.card_section != "test" and (args.checks or not args.update_card):
        raise TrainError("--card-section needs --update-card and no --checks (the checks' Shapley, pointing-game "
                         "and threshold entries belong to the card's test section)")
    check_card_section(args.card_section)  # before the evaluation, not after it
    if args.calibrate_on and not args.checks:
        raise TrainError("--calibrate-on needs --checks (the threshold comes from the Predictor's probabilities)")
    runtime = Runtime("cpu", threads=args.threads or (os.cpu_count() or 1))
    runtime.apply_threads()
    weights = Path(args.weights)
    model, card = load_native(args.weights)
    cache = CaseCache(args.cache or weights.parent / "cache", model.cfg.sizes, preprocess_options(card))
    cohorts: dict[str, CaseDataset] = {}
    csvs: dict[str, str] = {}
    for item in args.cohort:
        name, sep, csv_path = item.partition("=")
        if not sep or not name or not csv_path:
            raise TrainError(f"--cohort wants NAME=CSV, got {item!r}")
        cases = read_cohort(csv_path, get_task(args.task))
        cache.ensure(cases, args.workers, not args.no_progress)
        cohorts[name], csvs[name] = CaseDataset(cases, cache), csv_path
    if args.calibrate_on and args.calibrate_on not in cohorts:
        raise TrainError(f"--calibrate-on {args.calibrate_on!r} is not one of the --cohort names {sorted(cohorts)}")
    report = evaluate(model, cohorts, EvalOptions(args.bootstrap, 0.95, args.seed), not args.no_progress)
    out = Path(args.out) if args.out else weights.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report.metrics, indent=2) + "\n")
    write_predictions(report, out / "predictions.csv")
    checks = _run_checks(args, runtime, weights, {n: ds.cases for n, ds in cohorts.items()}, out) \
        if args.checks else None
    if args.update_card:
        from model_core.engine.decision import CARD_KEY

        command = command_line(args, configure_evaluate, "mome evaluate-model")
        extra = {k: v for k, v in (checks or {}).items() if k != "birads4"}
        thresholds = {}
        if checks and "birads4" in checks:
            extra["birads4_downgrade"] = checks["birads4"]["applied"]
            thresholds[CARD_KEY] = checks["birads4"]["threshold"]
        update_card(weights, report, extra_metrics=extra, thresholds=thresholds, section=args.card_section,
                    evaluation={"command": command, "cohorts": csvs, "task": args.task,
                                "bootstrap": args.bootstrap, "bootstrap_seed": args.seed,
                                "tta": "none (centred input)"})
    if args.export:
        extra = {"reproduce": args.reproduce} if args.reproduce else {}
        card = export(weights, args.export, name=args.export_name, half=args.export_fp16, training=extra)
        log.info("exported %s (sha256 %s)", args.export, card.weights_sha256[:12])
    log.info("\n%s", summary_table(report))
    sys.stdout.write(json.dumps(report.metrics, indent=2) + "\n")
    return 0


def _run_checks(args: argparse.Namespace, runtime: Runtime, weights: Path, cohorts: dict[str, Any],
                out: Path) -> dict[str, Any]:
    """The Predictor-path checks (:mod:`model_core.evaluation.heldout`); writes checks.json/.jsonl."""
    from tqdm import tqdm

    from model_core.engine.predictor import Predictor
    from model_core.evaluation.heldout import CheckOptions, run_checks, summarise, write_rows

    predictor = Predictor.from_native(weights, runtime=runtime)
    total = sum(len(v) for v in cohorts.values())
    with tqdm(total=total, desc="checks", disable=args.no_progress, file=sys.stderr) as bar:
        rows = run_checks(predictor, cohorts, CheckOptions(ig_steps=args.ig_steps),
                          progress=lambda done, _total, _name: bar.update(done - bar.n))
    apply_to = [n for n in cohorts if n != args.calibrate_on]
    summary = summarise(rows, args.calibrate_on, apply_to)
    write_rows(rows, out / "checks.jsonl")
    (out / "checks.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, pg in summary["pointing_game"].items():
        if pg.get("dce"):
            log.info("pointing game %s: DCE %.3f (n=%d)", name, pg["dce"]["hit_rate"], pg["dce"]["n"])
    return summary


def add_subparser(subparsers: Any) -> None:
    """Register ``evaluate-model`` on the ``mome`` sub-parsers."""
    e = subparsers.add_parser("evaluate-model", help="AUROC (multiparametric, DCE only) with bootstrap CIs on "
                              "held-out cohorts; optionally into the model card")
    configure_evaluate(e)
    e.set_defaults(func=run)
