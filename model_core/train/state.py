"""The resumable training state: one ``train_state.pt`` file, written atomically after every epoch.

It holds only tensors and plain Python types (saved with ``torch.save``, loaded with
``torch.load(weights_only=True)``, so a state file cannot run code): the model and optimizer state dicts,
the scheduler state, the next epoch, the best validation AUROC so far, the per-epoch history, the
gradients carried across the epoch boundary (``epoch_end="carry"``), the structure needed to rebuild the
model without its initial checkpoint (config, tied frozen modules, frozen backbone), the options that must
not change on resume, and the random-stream scheme.

Random state: every epoch derives its streams from the run seed (sample order from
``SeedSequence([seed, epoch])``; augmentation and drop path from ``[seed, epoch, rank, ...]``), and a
state is only written at an epoch boundary, so the seed and the epoch number *are* the complete random
state: a resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.train.options import TrainError

log = logging.getLogger(__name__)

STATE_FORMAT = "napari-mome-train-state"
STATE_VERSION = 1
RNG_SCHEME = "numpy/torch streams re-derived each epoch from SeedSequence([seed, epoch, ...])"


@dataclass
class Progress:
    """Where a run stands (mutable; part of the state)."""

    epoch: int = 0
    best_auroc: float = float("-inf")
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


def save_state(path: str | os.PathLike[str], *, model: Mome, optimizer: torch.optim.Optimizer,
               scheduler: Any, progress: Progress, carried: dict[str, torch.Tensor], key: dict[str, Any],
               frozen_backbone: bool, extra: dict[str, Any] | None = None,
               ema: dict[str, Any] | None = None, token_heads: dict[str, torch.Tensor] | None = None) -> None:
    """Write the state atomically (``path.tmp`` then rename). ``extra``: plain data kept for the record;
    ``ema``: the weight average's state (:class:`model_core.train.ema.WeightAverage`), when one is kept;
    ``token_heads``: the training-only token heads' state dict, when there are heads."""
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "epoch": progress.epoch,
        "best_auroc": progress.best_auroc,
        "best_epoch": progress.best_epoch,
        "history": progress.history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "carried_grads": carried,
        "config": model.cfg.to_json(),
        "tied_modules": [n for n, m in model.frozen_multiways() if m.is_tied],
        "frozen_backbone": frozen_backbone,
        "key": key,
        "rng": {"seed": int(key["options"]["seed"]), "scheme": RNG_SCHEME},
        "extra": extra or {},
    }
    if ema is not None:
        state["ema"] = ema
    if token_heads is not None:
        state["token_heads"] = token_heads
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, p)


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state file safely (``weights_only=True``) and check its format."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:  # pickle errors surface as these
        raise TrainError(f"{path}: unreadable training state ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path}: not a napari-mome training state")
    if int(state.get("version", 0)) > STATE_VERSION:
        raise TrainError(f"{path}: training state version {state['version']} is newer than supported")
    return state


def check_key(state: dict[str, Any], key: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse to resume when options, cohorts or world size differ from the saved run."""
    saved = state["key"]
    diff = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k))
    if diff:
        detail = "; ".join(f"{k}: saved {saved.get(k)!r} vs now {key.get(k)!r}" for k in diff)
        raise TrainError(f"{path}: cannot resume, the run differs ({detail[:2000]})")


def model_from_state(state: dict[str, Any]) -> Mome:
    """Rebuild the network (tied/untied structure, frozen split) and load its weights strictly."""
    model = Mome(MomeConfig.from_dict(json.loads(state["config"])), init=False)
    tied = set(state["tied_modules"])
    for name, mw in model.frozen_multiways():
        if name in tied:
            mw.tie()
        else:
            mw.untie()
    model.load_state_dict(state["model"], strict=True)
    model.freeze_backbone(bool(state["frozen_backbone"]))
    return model.train()


def restore_training(state: dict[str, Any], model: Mome, optimizer: torch.optim.Optimizer,
                     scheduler: Any, heads: torch.nn.Module | None = None,
                     heads_prefix: str = "") -> tuple[Progress, dict[str, torch.Tensor]]:
    """Load optimizer and scheduler states (and the token heads' weights); returns the progress and the
    carried gradients (the heads' named with ``heads_prefix``)."""
    if (heads is None) != ("token_heads" not in state):
        raise TrainError("the training state and the run disagree on the token heads")
    params = dict(model.named_parameters())
    if heads is not None:
        heads.load_state_dict(state["token_heads"], strict=True)
        params.update({heads_prefix + n: p for n, p in heads.named_parameters()})
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    carried = dict(state["carried_grads"])
    unknown = set(carried) - set(params)
    if unknown:
        raise TrainError(f"training state carries gradients of unknown parameters {sorted(unknown)[:5]}")
    for n, g in carried.items():
        params[n].grad = g.clone()
    progress = Progress(int(state["epoch"]), float(state["best_auroc"]), int(state["best_epoch"]),
                        list(state["history"]))
    log.info("resuming at epoch %d (best val AUROC %.4f at epoch %d)", progress.epoch, progress.best_auroc,
             progress.best_epoch)
    return progress, carried
