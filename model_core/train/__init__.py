"""Training MOME with the paper's recipe (``mome train``; docs/model.md, *Training recipe*).

Public API::

    from model_core.train import RunSpec, TrainOptions, InitSpec, train
    res = train(RunSpec(train_csvs=("c/train/cohort.csv",), val_csvs=("c/val/cohort.csv",), out_dir="runs/m"),
                TrainOptions(epochs=100, accumulation=32))
    res.progress.best_auroc, res.best_path          # runs/m/best.safetensors + best.card.json

Modules: :mod:`.options` (frozen option dataclasses, tasks), :mod:`.data` (cohort CSV, preprocessing
cache, datasets), :mod:`.recipe` (init, Adam, cosine, weighted CE), :mod:`.loop` (epochs, accumulation,
best-AUROC checkpoint), :mod:`.state` (resumable state), :mod:`.ddp` (torchrun), :mod:`.kfold`,
:mod:`.metrics` (AUROC, bootstrap CI), :mod:`.evaluate` (held-out cohorts -> card), :mod:`.cli`.
"""

from __future__ import annotations

from model_core.train.options import TASKS, InitSpec, TrainError, TrainOptions
from model_core.train.run import RunSpec, train

__all__ = ["TASKS", "InitSpec", "RunSpec", "TrainError", "TrainOptions", "train"]
