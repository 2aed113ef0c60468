"""``mome train`` and ``mome evaluate-model``.

Examples::

    # malignancy from scratch on phantom cohorts (train on two sites, validate on a third CSV)
    mome train --train-csv c/ds1/cohort.csv c/ds2/cohort.csv --val-csv c/val/cohort.csv --out runs/m \
        --preset demo --epochs 100 --accumulation 32
    # TNBC, 5-fold CV, fine-tuned from the diagnosis model (frozen backbone, weighted loss)
    mome train --task tnbc --train-csv c/ds1/cohort.csv --folds 5 --fold all --init runs/m/best.safetensors \
        --epochs 200 --out runs/tnbc
    # data parallel: the same command under torchrun (gloo on CPU)
    torchrun --standalone --nproc_per_node 2 -m model_core.train --train-csv ... --out runs/m
    # held-out test cohorts -> AUROC (multiparametric, DCE only) with 1000x bootstrap CIs -> model card
    mome evaluate-model runs/m/best.safetensors --cohort ds1=c/t1/cohort.csv --cohort ds2=c/t2/cohort.csv \
        --update-card
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_core.network.config import MODALITIES

if TYPE_CHECKING:
    from model_core.preprocessing.preprocess import PreprocessOptions

log = logging.getLogger(__name__)


def _command_line(args: argparse.Namespace, configure: Any, prog: str) -> str:
    """The canonical command of a parsed invocation: ``prog`` plus every option that differs from its
    default (and always the seed, epochs and accumulation), so the card's command re-runs the same thing."""
    ref = argparse.ArgumentParser(add_help=False)
    configure(ref)
    words = [*shlex.split(prog)]
    always = {"seed", "epochs", "accumulation", "lr", "preset", "task", "bootstrap"}
    for action in ref._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words.append(str(value))
            continue
        if value is None or (value == action.default and action.dest not in always):
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, list):
            if action.dest == "cohort":
                words += [w for v in value for w in (flag, str(v))]
            else:
                words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def configure_train(p: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``p``."""
    d = p.add_argument_group("data")
    d.add_argument("--train-csv", nargs="+", required=True, help="training cohort CSV(s) (mome phantom output)")
    d.add_argument("--val-csv", nargs="+", default=[], help="validation cohort CSV(s) (not with --folds)")
    d.add_argument("--folds", type=int, help="stratified k-fold on --train-csv (seeded with --seed)")
    d.add_argument("--fold", default=None, help="0-based fold index, or 'all' (one run per fold + summary)")
    d.add_argument("--task", default="malignancy", choices=["malignancy", "tnbc", "pcr"])
    d.add_argument("--cache", help="preprocessing cache folder (default OUT/cache; share it between runs)")
    d.add_argument("--workers", type=int, default=1, help="preprocessing processes (default 1)")
    d.add_argument("--crop", nargs="+", choices=MODALITIES, metavar="MODALITY",
                   help="sequences cropped to the breast box (and masked) before standardisation (default: those "
                        "of the --init model's card, else dce t2 as in the paper, which only standardises DWI); "
                        "recorded in the model card and applied at inference")
    m = p.add_argument_group("model")
    m.add_argument("--preset", default="demo", help="config preset (default demo)")
    m.add_argument("--config", help="JSON MomeConfig instead of a preset")
    g = m.add_mutually_exclusive_group()
    g.add_argument("--init", help="MOME model to fine-tune (native .safetensors or authors' .pth): frozen backbone")
    g.add_argument("--init-beit3", help="BEiT-3 checkpoint for the frozen backbone")
    g.add_argument("--scratch-init", default="authors", choices=["authors", "xavier"],
                   help="initialisation when training from scratch (default authors; xavier trains, see "
                        "scripts/train_demo.sh)")
    r = p.add_argument_group("recipe (defaults: the paper, MOME_SPEC §11)")
    r.add_argument("--epochs", type=int, default=100)
    r.add_argument("--accumulation", type=int, default=32, help="samples per optimizer step (batch 1 each)")
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--min-lr", type=float, default=1e-6)
    r.add_argument("--weight-decay", type=float, default=5e-4, help="coupled L2 (Adam, not AdamW)")
    r.add_argument("--class-weights", default="auto", choices=["auto", "none", "balanced"],
                   help="auto: balanced for tnbc/pcr (paper's weighted softmax), none for malignancy")
    r.add_argument("--modality-dropout", type=float, default=0.0, metavar="P",
                   help="show a training sample with a random proper subset of its sequences with probability P "
                        "(not in the paper; default 0, as for the demo model: see scripts/train_demo.sh)")
    r.add_argument("--single-loss", type=float, default=0.0, metavar="W",
                   help="add W x the mean loss of each present sequence alone (fused from the same encoding) to "
                        "every sample's loss (not in the paper; default 0)")
    r.add_argument("--poe-loss", type=float, default=0.0, metavar="V",
                   help="add V x the cross-entropy of the all-sequence output against the product of the "
                        "single-sequence posteriors (not in the paper; default 0)")
    r.add_argument("--ema", type=float, default=0.0, metavar="D",
                   help="validate, checkpoint and export an exponential moving average of the weights with decay D "
                        "per optimizer step (not in the paper; default 0 = off)")
    r.add_argument("--branch-warmup", type=int, default=0, metavar="E",
                   help="show the first E epochs without DCE (DWI and T2 only) (not in the paper; default 0)")
    r.add_argument("--balance-by", metavar="COLUMN",
                   help="draw each epoch's training cases so that this numeric cohort column (e.g. "
                        "lesion_diameter_mm) says nothing about the label (not in the paper; default off)")
    r.add_argument("--balance-bins", type=int, default=6, metavar="B",
                   help="equal-count bins of the --balance-by column (default 6)")
    r.add_argument("--balance-from", type=int, default=0, metavar="E",
                   help="first epoch (0-based) drawn with the balanced sampler (default 0)")
    r.add_argument("--epoch-end", default="carry", choices=["carry", "step"],
                   help="leftover gradients at epoch end: carry into the next epoch (authors) or step")
    r.add_argument("--seed", type=int, default=0)
    o = p.add_argument_group("run")
    o.add_argument("--out", required=True, help="output folder (best.safetensors + card, train_state.pt, history)")
    o.add_argument("--resume", action="store_true", help="continue OUT/train_state.pt exactly")
    o.add_argument("--stop-after", type=int, help="stop (resumably) after this many epochs")
    o.add_argument("--save-dtype", default="float32", choices=["float32", "float16"])
    o.add_argument("--threads", type=int, help="torch threads (default: all cores / processes per node)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")


def _preprocess_options(args: argparse.Namespace) -> PreprocessOptions:
    """``--crop`` as :class:`PreprocessOptions`; without it, a native ``--init`` model's own preprocessing
    (so that fine-tuning prepares studies as the model was trained), else the paper's."""
    from model_core.preprocessing.preprocess import PreprocessOptions

    if args.crop is None:
        if args.init and args.init.endswith(".safetensors"):
            from model_core.engine.card import preprocess_options
            from model_core.weights.native import read_card

            return preprocess_options(read_card(args.init))
        return PreprocessOptions()
    return PreprocessOptions(crop=tuple(m for m in MODALITIES if m in args.crop))


def run_train(args: argparse.Namespace) -> int:
    import torch

    from model_core.network.config import MomeConfig
    from model_core.train import ddp
    from model_core.train.options import InitSpec, TrainError, TrainOptions
    from model_core.train.run import RunSpec, train

    dist = ddp.init_distributed()
    try:
        threads = args.threads or max(1, (os.cpu_count() or 1) // dist.local_world_size)
        torch.set_num_threads(threads)
        cfg = MomeConfig.from_dict(json.loads(Path(args.config).read_text())) if args.config \
            else MomeConfig.preset(args.preset)
        preprocess = _preprocess_options(args)
        init = InitSpec("mome", args.init) if args.init else InitSpec("beit3", args.init_beit3) \
            if args.init_beit3 else InitSpec(scheme=args.scratch_init)
        opts = TrainOptions(task=args.task, epochs=args.epochs, accumulation=args.accumulation, lr=args.lr,
                            min_lr=args.min_lr, weight_decay=args.weight_decay, class_weights=args.class_weights,
                            epoch_end=args.epoch_end, seed=args.seed, stop_after=args.stop_after,
                            save_dtype=args.save_dtype, modality_dropout=args.modality_dropout,
                            single_loss=args.single_loss, branch_warmup=args.branch_warmup,
                            poe_loss=args.poe_loss, ema=args.ema, balance_by=args.balance_by,
                            balance_bins=args.balance_bins, balance_from=args.balance_from)
        if args.folds is None and args.fold is not None:
            raise TrainError("--fold needs --folds")
        folds: list[int | None] = [None]
        if args.folds is not None:
            if args.fold is None:
                raise TrainError("--folds needs --fold (an index or 'all')")
            folds = list(range(args.folds)) if args.fold == "all" else [int(args.fold)]
        summary: dict[str, Any] = {}
        for f in folds:
            out = Path(args.out) / f"fold{f}" if args.fold == "all" else Path(args.out)
            spec = RunSpec(tuple(args.train_csv), str(out), tuple(args.val_csv), cfg, init, args.folds, f,
                           args.cache or str(Path(args.out) / "cache"), args.workers, args.resume,
                           _command_line(args, configure_train, "mome train"), not args.no_progress,
                           preprocess)
            res = train(spec, opts, dist)
            summary[str(out)] = {"fold": f, "best_val_auroc": res.progress.best_auroc,
                                 "best_epoch": res.progress.best_epoch, "finished": res.finished,
                                 "best": None if res.best_path is None else str(res.best_path)}
        if dist.is_main:
            if args.fold == "all":
                import numpy as np

                aucs = np.array([v["best_val_auroc"] for v in summary.values()])
                summary["cross_validation"] = {"folds": args.folds, "auroc_mean": float(aucs.mean()),
                                               "auroc_sd": float(aucs.std(ddof=1))}
                (Path(args.out) / "cv_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        # every process reaches the end before any tears the group down (a rank destroying it while a
        # peer's gloo connection is still open aborted rank 0 at exit once in CI: "terminate called
        # without an active exception", exit -6)
        ddp.barrier(dist)
    finally:
        ddp.shutdown(dist)
    return 0


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


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from model_core.engine.card import preprocess_options
    from model_core.evaluation.evaluate_model import (
        EvalOptions,
        check_card_section,
        evaluate,
        export,
        summary_table,
        update_card,
        write_predictions,
    )
    from model_core.train.data import CaseCache, CaseDataset, read_cohort
    from model_core.train.options import TrainError, get_task
    from model_core.weights.native import load_native

    if args.card_section != "test" and (args.checks or not args.update_card):
        raise TrainError("--card-section needs --update-card and no --checks (the checks' Shapley, pointing-game "
                         "and threshold entries belong to the card's test section)")
    check_card_section(args.card_section)  # before the evaluation, not after it
    if args.calibrate_on and not args.checks:
        raise TrainError("--calibrate-on needs --checks (the threshold comes from the Predictor's probabilities)")
    torch.set_num_threads(args.threads or (os.cpu_count() or 1))
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
    checks = _run_checks(args, weights, {n: ds.cases for n, ds in cohorts.items()}, out) if args.checks else None
    if args.update_card:
        from model_core.engine.decision import CARD_KEY

        command = _command_line(args, configure_evaluate, "mome evaluate-model")
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


def _run_checks(args: argparse.Namespace, weights: Path, cohorts: dict[str, Any], out: Path) -> dict[str, Any]:
    """The Predictor-path checks (:mod:`model_core.evaluation.heldout`); writes checks.json/.jsonl."""
    from tqdm import tqdm

    from model_core.engine.predictor import Predictor
    from model_core.evaluation.heldout import CheckOptions, run_checks, summarise, write_rows

    predictor = Predictor.from_native(weights, device="cpu", threads=args.threads)
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
    """Register ``train`` and ``evaluate-model`` on the ``mome`` sub-parsers."""
    t = subparsers.add_parser("train", help="train MOME with the paper's recipe (k-fold, resumable, torchrun)",
                              description=__doc__.splitlines()[0], epilog=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_train(t)
    t.set_defaults(func=run_train)
    e = subparsers.add_parser("evaluate-model", help="AUROC (multiparametric, DCE only) with bootstrap CIs on "
                              "held-out cohorts; optionally into the model card")
    configure_evaluate(e)
    e.set_defaults(func=run_evaluate)


def main(argv: list[str] | None = None) -> int:
    """``python -m model_core.train ARGS`` = ``mome train ARGS`` (the torchrun entry point)."""
    p = argparse.ArgumentParser(prog="python -m model_core.train", description=__doc__.splitlines()[0])
    configure_train(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from model_core.errors import MomeError

    try:
        return run_train(args)
    except MomeError as exc:
        log.error("%s", exc)
        return 2
