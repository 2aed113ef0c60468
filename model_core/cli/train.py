"""``mome train``.

Examples::

    # malignancy from scratch on phantom cohorts (train on two sites, validate on a third CSV)
    mome train --train-csv c/ds1/cohort.csv c/ds2/cohort.csv --val-csv c/val/cohort.csv --out runs/m \
        --preset demo --epochs 100 --accumulation 32
    # TNBC, 5-fold CV, fine-tuned from the diagnosis model (frozen backbone, weighted loss)
    mome train --task tnbc --train-csv c/ds1/cohort.csv --folds 5 --fold all --init runs/m/best.safetensors \
        --epochs 200 --out runs/tnbc
    # data parallel: the same command under torchrun (gloo on CPU)
    torchrun --standalone --nproc_per_node 2 -m model_core.train --train-csv ... --out runs/m
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_core.cli.common import command_line, run_alone
from model_core.network.config import MODALITIES
from model_core.runtime import Runtime

if TYPE_CHECKING:
    from model_core.preprocessing.preprocess import PreprocessOptions

log = logging.getLogger(__name__)


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
                   help="initialisation when training from scratch (default authors; xavier trains from "
                        "scratch, see docs/demo_model.md)")
    r = p.add_argument_group("recipe (defaults: the paper's, docs/model.md)")
    r.add_argument("--epochs", type=int, default=100)
    r.add_argument("--accumulation", type=int, default=32, help="samples per optimizer step (batch 1 each)")
    r.add_argument("--lr", type=float, default=1e-4)
    r.add_argument("--min-lr", type=float, default=1e-6)
    r.add_argument("--weight-decay", type=float, default=5e-4, help="coupled L2 (Adam, not AdamW)")
    r.add_argument("--class-weights", default="auto", choices=["auto", "none", "balanced"],
                   help="auto: balanced for tnbc/pcr (paper's weighted softmax), none for malignancy")
    r.add_argument("--modality-dropout", type=float, default=0.0, metavar="P",
                   help="show a training sample with a random proper subset of its sequences with probability P "
                        "(not in the paper; default 0)")
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
    r.add_argument("--t2-warmup", type=int, default=0, metavar="E",
                   help="of the --branch-warmup epochs, show the first E with T2 alone (not in the paper; default 0)")
    r.add_argument("--shared-pad", action="store_true",
                   help="one random pad per sample for every sequence, so that the same place lines up across "
                        "sequences (not in the paper; default independent offsets)")
    r.add_argument("--token-head", type=float, default=0.0, metavar="U",
                   help="weight of training-only token heads: a class read from the maximum of each --token-head-on "
                        "sequence's own tokens, not exported (not in the paper; default 0 = off)")
    r.add_argument("--token-head-on", nargs="+", default=["t2"], choices=MODALITIES, metavar="MODALITY",
                   help="the sequences that get a token head (default t2)")
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
    from model_core.network.config import MomeConfig
    from model_core.train import ddp
    from model_core.train.options import InitSpec, TrainError, TrainOptions
    from model_core.train.run import RunSpec, train

    dist = ddp.init_distributed()
    try:
        threads = args.threads or max(1, (os.cpu_count() or 1) // dist.local_world_size)
        runtime = Runtime("cpu", threads=threads)
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
                            balance_bins=args.balance_bins, balance_from=args.balance_from,
                            shared_pad=args.shared_pad, t2_warmup=args.t2_warmup,
                            token_head=args.token_head, token_head_on=tuple(args.token_head_on))
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
                           command_line(args, configure_train, "mome train"), not args.no_progress,
                           preprocess)
            res = train(spec, opts, dist, runtime)
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


def add_subparser(subparsers: Any) -> None:
    """Register ``train`` on the ``mome`` sub-parsers."""
    t = subparsers.add_parser("train", help="train MOME with the paper's recipe (k-fold, resumable, torchrun)",
                              description=__doc__.splitlines()[0], epilog=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_train(t)
    t.set_defaults(func=run_train)


def main(argv: list[str] | None = None) -> int:
    """``python -m model_core.train ARGS`` = ``mome train ARGS`` (the torchrun entry point)."""
    return run_alone("python -m model_core.train", __doc__.splitlines()[0], configure_train, run_train, argv)
