"""Training MOME with the paper's recipe (``mome train``; docs/model.md, *Training recipe*).

Public API::

    from model_core.train import RunSpec, TrainOptions, InitSpec, train
    res = train(RunSpec(train_csvs=("c/train/cohort.csv",), val_csvs=("c/val/cohort.csv",), out_dir="runs/m"),
                TrainOptions(epochs=100, accumulation=32))
    res.progress.best_auroc, res.best_path          # runs/m/best.safetensors + best.card.json

Modules: :mod:`.options` (frozen option dataclasses), :mod:`.recipe` (init, Adam, cosine, weighted CE),
:mod:`.loop` (epochs, accumulation, best-AUROC checkpoint), :mod:`.balance` (size-balanced sampling),
:mod:`.ema` (weight average), :mod:`.state` (resumable state), :mod:`.ddp` (torchrun), :mod:`.kfold`,
:mod:`.run` (one run from cohorts to the best checkpoint). Cohorts, their preprocessing cache and the
metrics are in :mod:`model_core.evaluation`; the command line in :mod:`model_core.cli.train`.
"""

from __future__ import annotations

from model_core.errors import TrainError
from model_core.evaluation.cohort import TASKS
from model_core.train.options import InitSpec, TrainOptions
from model_core.train.run import RunSpec, train

__all__ = ["TASKS", "InitSpec", "RunSpec", "TrainError", "TrainOptions", "train"]
