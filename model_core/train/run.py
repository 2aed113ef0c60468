"""One training run end to end: cohorts -> cache -> model (fresh or resumed) -> :class:`Trainer` -> card.

``train(spec, opts)`` is what ``mome train`` calls (once per fold with ``--fold all``). Under torchrun
every process calls it; rank 0 fills the preprocessing cache while the others wait, and writes all files.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import model_core
from model_core.evaluation.cases import CaseCache, CaseDataset, cohort_is_synthetic, cohort_record, read_cohorts
from model_core.network.config import MomeConfig
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.runtime import Runtime
from model_core.train import ddp
from model_core.train.kfold import fold_split
from model_core.train.loop import STATE_FILE, Trainer, TrainResult
from model_core.train.options import InitSpec, TrainError, TrainOptions
from model_core.train.recipe import build_model, class_weights, make_optimizer, make_scheduler
from model_core.train.state import Progress, check_key, model_from_state, read_state, restore_training
from model_core.train.token_heads import HEADS_PREFIX, TokenHeads
from model_core.weights.native import RESEARCH_USE, SYNTHETIC_NOTE, ModelCard

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RunSpec:
    """Data, model and output of a run.

    Attributes:
        train_csvs: cohort CSVs to train on (with ``folds``: the pool split into train/validation).
        val_csvs: validation cohort CSVs (empty with ``folds``).
        out_dir: output folder; ``cache_dir`` defaults to ``out_dir/cache``.
        config: model configuration (ignored for a native MOME init, which brings its own).
        init: weight source.
        folds, fold: stratified k-fold on ``train_csvs`` (seeded with the run seed), 0-based fold index.
        workers: preprocessing processes.
        resume: continue from ``out_dir/train_state.pt`` when it exists.
        command: the command line, recorded in the card.
        progress: tqdm bars on stderr.
        preprocess: preprocessing of every study (default: the paper's); recorded in the card, so that
            inference and evaluation prepare studies the same way.
    """

    train_csvs: tuple[str, ...]
    out_dir: str
    val_csvs: tuple[str, ...] = ()
    config: MomeConfig = field(default_factory=lambda: MomeConfig.preset("demo"))
    init: InitSpec = InitSpec()
    folds: int | None = None
    fold: int | None = None
    cache_dir: str | None = None
    workers: int = 1
    resume: bool = False
    command: str = ""
    progress: bool = True
    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)

    def __post_init__(self) -> None:
        if not self.train_csvs:
            raise TrainError("give at least one training cohort CSV")
        if (self.folds is None) == (not self.val_csvs):
            raise TrainError("give validation cohort CSVs or k-fold settings (folds, fold), not both")
        if self.folds is not None and self.fold is None:
            raise TrainError("k-fold needs the fold index")


def _ids_digest(ds: CaseDataset) -> str:
    return hashlib.sha256("\n".join(c.case_id for c in ds.cases).encode()).hexdigest()[:16]


def _datasets(spec: RunSpec, opts: TrainOptions) -> tuple[list[Any], list[Any]]:
    task = opts.task_spec
    pool = read_cohorts(spec.train_csvs, task)
    if spec.folds is not None:
        assert spec.fold is not None
        labels = np.array([c.label for c in pool])
        tr, va = fold_split(labels, spec.folds, spec.fold, seed=opts.seed)
        return [pool[i] for i in tr], [pool[i] for i in va]
    return pool, read_cohorts(spec.val_csvs, task)


def _card_factory(spec: RunSpec, opts: TrainOptions, model: torch.nn.Module, train_ds: CaseDataset,
                  val_ds: CaseDataset, dist: ddp.DistInfo, init_report: dict[str, Any]) -> Any:
    synthetic = cohort_is_synthetic([*spec.train_csvs, *spec.val_csvs])
    train_cohorts = [cohort_record(p) for p in spec.train_csvs]
    val_cohorts = [cohort_record(p) for p in spec.val_csvs]
    intended = RESEARCH_USE + (" " + SYNTHETIC_NOTE if synthetic else "")

    def make(progress: Progress) -> ModelCard:
        cfg: MomeConfig = model.cfg  # type: ignore[assignment]
        return ModelCard(
            config=cfg.to_dict(),
            name=f"mome-{opts.task}",
            description=(f"MOME ({opts.task}) trained with the paper's recipe by `mome train`. "
                         + (SYNTHETIC_NOTE if synthetic else "")).strip(),
            intended_use=intended,
            provenance={"package": f"napari-mome {model_core.__version__}", "torch": torch.__version__,
                        "numpy": np.__version__, "python": platform.python_version(),
                        # bitwise reproduction needs the same CPU kernels as well as the same thread count
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "synthetic_training_data": synthetic},
            training={
                "command": spec.command, "seed": opts.seed, "task": opts.task, "options": opts.to_dict(),
                "init": init_report, "train_cohorts": train_cohorts, "val_cohorts": val_cohorts,
                "folds": spec.folds, "fold": spec.fold, "n_train": len(train_ds), "n_val": len(val_ds),
                "train_positive": int(train_ds.labels.sum()), "val_positive": int(val_ds.labels.sum()),
                "world_size": dist.world_size, "threads": torch.get_num_threads(),
                "best_epoch": progress.best_epoch, "epochs_completed": progress.epoch,
                "history": [{k: r[k] for k in ("epoch", "lr", "train_loss", "val_auroc", "train_seconds")}
                            for r in progress.history],
            },
            metrics={"validation": {"auroc": progress.best_auroc, "epoch": progress.best_epoch,
                                    "n": len(val_ds), "n_positive": int(val_ds.labels.sum())}},
            preprocess=spec.preprocess.to_dict(),
        )

    return make


def train(spec: RunSpec, opts: TrainOptions, dist: ddp.DistInfo | None = None,
          runtime: Runtime | None = None) -> TrainResult:
    """Train (or resume) one model; see the module docstring. Returns the :class:`TrainResult`.

    ``runtime``: its thread count is applied for the whole run (training runs on the CPU).
    """
    dist = dist or ddp.DistInfo()
    if runtime is not None:
        runtime.apply_threads()
    out = Path(spec.out_dir)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = read_state(state_path) if spec.resume and state_path.is_file() else None
    if state is None and state_path.is_file() and not spec.resume:
        raise TrainError(f"{state_path} exists: pass --resume to continue it, or choose another --out")
    if state is not None:
        model = model_from_state(state)
        init_report: dict[str, Any] = dict(state.get("extra", {}).get("init", {}))
    else:
        model, report = build_model(spec.config, spec.init, seed=opts.seed)
        init_report = report.to_dict()
        ddp.broadcast_parameters(model, dist)

    train_cases, val_cases = _datasets(spec, opts)
    cache = CaseCache(spec.cache_dir or out / "cache", model.cfg.sizes, spec.preprocess)
    if dist.is_main:
        cache.ensure([*train_cases, *val_cases], spec.workers, spec.progress)
    ddp.barrier(dist)
    train_ds, val_ds = CaseDataset(train_cases, cache), CaseDataset(val_cases, cache)

    init_key = {"kind": spec.init.kind, "path": spec.init.path, "scheme": spec.init.scheme}
    key = {"options": opts.resume_key(), "init": init_key,
           "train": _ids_digest(train_ds), "val": _ids_digest(val_ds), "world_size": dist.world_size,
           "folds": spec.folds, "fold": spec.fold}
    if spec.preprocess != PreprocessOptions():  # older states (the paper's preprocessing) resume unchanged
        key["preprocess"] = spec.preprocess.to_dict()
    heads = None
    if opts.token_head > 0.0:
        torch.manual_seed(opts.seed)  # the heads start the same in every process and every run
        heads = TokenHeads(opts.token_head_on, model.cfg.embed_dim, model.cfg.num_classes)
    optimizer = make_optimizer(model, opts, heads)
    scheduler = make_scheduler(optimizer, opts)
    progress = Progress()
    if state is not None:
        check_key(state, key, state_path)
        progress, _ = restore_training(state, model, optimizer, scheduler, heads, HEADS_PREFIX)
        if not dist.is_main:  # rank 0 alone holds the carried (already summed) gradients
            optimizer.zero_grad(set_to_none=True)
    weight = class_weights(train_ds.labels, opts.weighted_loss)
    if weight is not None:
        log.info("class-weighted loss: %s", [round(w, 4) for w in weight.tolist()])
    make_card = _card_factory(spec, opts, model, train_ds, val_ds, dist, init_report)
    trainer = Trainer(model, optimizer, scheduler, train_ds, val_ds, opts, weight, out, dist, make_card, key,
                      frozen_backbone=spec.init.frozen_backbone, progress_bars=spec.progress,
                      extra={"init": init_report}, ema_state=None if state is None else state.get("ema"),
                      heads=heads)
    log.info("training %s: %d train / %d val cases, %d epochs, accumulation %d, %d process(es)", opts.task,
             len(train_ds), len(val_ds), opts.epochs, opts.accumulation, dist.world_size)
    return trainer.fit(progress)
