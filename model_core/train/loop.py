"""The training loop: batch 1, gradient accumulation, per-epoch cosine step, best-validation checkpoint.

One epoch (docs/model.md, *Training recipe*): the training cases in a seeded random order (the same on every
process; with ``W`` processes each takes every ``W``-th, the order padded by wrap-around to a multiple of
``W``); per case one augmented forward/backward with ``loss / accumulation`` (options not in the paper: plus
``single_loss`` times the mean loss of each present sequence alone and ``poe_loss`` times the loss of all of
them against the product of the singles' posteriors; without DCE in the first ``branch_warmup`` epochs, and T2
alone in the first ``t2_warmup`` of them); an optimizer step (after summing the gradients over processes)
every ``accumulation / W`` local cases; leftover gradients carried into the next epoch or stepped
(``epoch_end``); the scheduler stepped; validation AUROC on centred inputs; the model saved as
``best.safetensors`` when ``val_auroc >= best`` (ties go to the later epoch); the resumable state and
``history.json`` written (rank 0 writes every file)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from model_core.engine.subsets import SUBSETS, Subset
from model_core.evaluation.cases import CaseDataset, case_bar, predict_cases
from model_core.evaluation.metrics import auroc
from model_core.network.config import MODALITIES
from model_core.network.mome import Mome
from model_core.train import ddp
from model_core.train.balance import balance_weights, balanced_order, column_values
from model_core.train.ema import WeightAverage
from model_core.train.options import TrainError, TrainOptions
from model_core.train.recipe import loss_fn, trainable_parameters
from model_core.train.state import Progress, save_state
from model_core.train.token_heads import HEADS_PREFIX, TokenHeads
from model_core.weights.native import ModelCard, save_native

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
BEST_FILE = "best.safetensors"
HISTORY_FILE = "history.json"


DROPOUT_SUBSETS: tuple[Subset, ...] = tuple(s for s in SUBSETS if 0 < len(s) < len(MODALITIES))
"""The 6 proper, non-empty modality subsets a training sample may be shown with (modality dropout)."""


def dropout_subset(rng: np.random.Generator, p: float) -> Subset | None:
    """With probability ``p`` a subset drawn uniformly from :data:`DROPOUT_SUBSETS`, else ``None`` (all).

    Draws nothing when ``p == 0``, so the paper's recipe consumes no random numbers for it.
    """
    if p <= 0.0 or rng.random() >= p:
        return None
    return DROPOUT_SUBSETS[int(rng.integers(len(DROPOUT_SUBSETS)))]


class AuxLosses(NamedTuple):
    """The losses of one sample: ``main`` (all present sequences), ``single`` (mean loss of each present
    sequence alone) and ``poe`` (all present sequences against the product of the singles' posteriors);
    ``single`` and ``poe`` are ``None`` with fewer than two present sequences. ``token``: the token heads'
    mean loss (``None`` without heads or without a present sequence that has one)."""

    main: torch.Tensor
    single: torch.Tensor | None
    poe: torch.Tensor | None
    token: torch.Tensor | None = None


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Class-1 log-odds ``(B,)`` of two-class logits ``(B, 2)``."""
    return logits[:, 1] - logits[:, 0]


def poe_log_odds(singles: Sequence[torch.Tensor], prior: float) -> torch.Tensor:
    """Product of experts: the class-1 log-odds ``(B,)`` of the sequences together, were they independent
    given the class, from each sequence's own posterior log-odds ``(B,)`` (each trained against the same
    class prior, log-odds ``prior``): ``prior + sum_m (l_m - prior)``."""
    return prior + torch.stack([s - prior for s in singles]).sum(dim=0)


def single_losses(model: Mome, inputs: Mapping[str, torch.Tensor | None], target: torch.Tensor,
                  weight: torch.Tensor | None, prior: float = 0.0, heads: TokenHeads | None = None) -> AuxLosses:
    """The loss of all present sequences, the mean loss of each present sequence alone and the
    product-of-experts loss, from one :meth:`Mome.encode` (``forward`` is exactly ``fuse(encode(...))``).

    The product-of-experts loss is the binary cross-entropy of the all-sequence log-odds against the
    detached :func:`poe_log_odds` of the singles (a soft target; the singles learn from their own losses
    only). Two-class heads only.

    Args:
        inputs: ``{"dce": (1, 6, X, Y, Z) | None, "dwi": ..., "t2": ...}``; target ``(1,)``.
        prior: the class-1 log-odds the singles are calibrated to (that of the training set, 0 with a
            balanced loss).
        heads: training-only token heads, read from the same encoding.
    """
    segs = model.encode(inputs["dce"], inputs["dwi"], inputs["t2"])
    logits = model.fuse(segs)
    loss = loss_fn(logits, target, weight)
    token = None if heads is None else heads.loss(segs, inputs, target, weight)
    present = [i for i, name in enumerate(MODALITIES) if inputs[name] is not None]
    if len(present) < 2:
        return AuxLosses(loss, None, None, token)
    cls_only = segs[0] if inputs["dce"] is None else model.encode(batch_size=target.shape[0])[0]
    singles, odds = [], []
    for i in present:
        single: list[torch.Tensor | None] = [cls_only, None, None]
        single[i] = segs[i]
        out = model.fuse(single)
        singles.append(loss_fn(out, target, weight))
        odds.append(log_odds(out).detach())
    soft = torch.sigmoid(poe_log_odds(odds, prior))
    poe = F.binary_cross_entropy_with_logits(log_odds(logits), soft)
    return AuxLosses(loss, torch.stack(singles).mean(), poe, token)


def _log_odds_of(labels: Sequence[int] | np.ndarray) -> float:
    """Log-odds of class 1 in ``labels`` (0 when a class is absent)."""
    pos = float(np.sum(np.asarray(labels) == 1))
    neg = float(len(labels)) - pos
    return float(np.log(pos / neg)) if pos > 0 and neg > 0 else 0.0


def _seed_int(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint32)[0])


def epoch_order(n: int, seed: int, epoch: int, world: int = 1) -> np.ndarray:
    """The epoch's case order ``(ceil(n / world) * world,)``: a seeded permutation padded by wrap-around."""
    return ddp.pad_for_processes(np.random.default_rng([seed, epoch]).permutation(n), world)


def predict(model: Mome, ds: CaseDataset, dist: ddp.DistInfo | None = None,
            modalities: Sequence[str] = MODALITIES, progress: bool = False, desc: str = "validate") -> np.ndarray:
    """Class-1 probabilities ``(N,)`` on centred inputs (eval mode; cases split over processes)."""
    dist = dist or ddp.DistInfo()
    scores = predict_cases(model, ds, range(dist.rank, len(ds), dist.world_size), modalities,
                           progress and dist.is_main, desc)
    ddp.allreduce_sum_(scores, dist)
    return scores.numpy()


@dataclass
class TrainResult:
    """The outcome of :meth:`Trainer.fit` (``model`` holds the last epoch's weights)."""

    model: Mome
    progress: Progress
    finished: bool
    best_path: Path | None


class Trainer:
    """Runs epochs on one process of a (possibly data-parallel) job. See the module docstring.

    Args:
        model, optimizer, scheduler: built by :mod:`model_core.train.recipe` (or restored).
        train_ds, val_ds: cached datasets; validation must hold both classes.
        opts: the recipe.
        weight: class weights ``(2,)`` or ``None``.
        out_dir: where rank 0 writes ``best.safetensors`` (+ card), ``train_state.pt``, ``history.json``.
        make_card: builds the card of a new best model from the progress.
        state_key: saved in the state; a resume must present the same key.
        heads: the training-only token heads (``opts.token_head > 0``), already in the optimizer.
    """

    def __init__(self, model: Mome, optimizer: torch.optim.Optimizer, scheduler: Any, train_ds: CaseDataset,
                 val_ds: CaseDataset, opts: TrainOptions, weight: torch.Tensor | None, out_dir: Path,
                 dist: ddp.DistInfo, make_card: Callable[[Progress], ModelCard], state_key: dict[str, Any],
                 frozen_backbone: bool, progress_bars: bool = True, extra: dict[str, Any] | None = None,
                 ema_state: Mapping[str, Any] | None = None, heads: TokenHeads | None = None) -> None:
        if (heads is None) != (opts.token_head == 0.0):
            raise TrainError("token heads are needed exactly when the token-head loss has a weight")
        if opts.accumulation % dist.world_size:
            raise TrainError(f"accumulation {opts.accumulation} must be a multiple of the {dist.world_size} processes")
        if len(np.unique(val_ds.labels)) < 2:
            raise TrainError("the validation set needs both classes (AUROC selects the checkpoint)")
        if len(train_ds) == 0:
            raise TrainError("empty training set")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_ds, self.val_ds, self.opts, self.weight = train_ds, val_ds, opts, weight
        self.out_dir, self.dist, self.make_card = out_dir, dist, make_card
        self.state_key, self.frozen_backbone, self.bars = state_key, frozen_backbone, progress_bars
        self.extra = extra or {}
        self.params = trainable_parameters(model)
        self.heads = heads
        self.head_params = [] if heads is None else [(HEADS_PREFIX + n, p) for n, p in heads.named_parameters()]
        self.local_accum = opts.accumulation // dist.world_size
        self.prior = 0.0 if weight is not None else _log_odds_of(train_ds.labels)
        self.balance = None if opts.balance_by is None else balance_weights(
            column_values(train_ds.cases, opts.balance_by), train_ds.labels, opts.balance_bins)
        if self.balance is not None and weight is not None:
            log.warning("--balance-by already shows each class half the time; the class-weighted loss weights "
                        "the classes again (consider --class-weights none)")
        self.ema = WeightAverage(self.params, opts.ema) if opts.ema > 0.0 else None
        if self.ema is not None and ema_state is not None:
            self.ema.load_state_dict(ema_state)

    # ---------------------------------------------------------------------------------------------
    def _step(self) -> None:
        ddp.allreduce_grads([p for _, p in self.params + self.head_params], self.dist)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training set; returns the history fields of the epoch."""
        opts, dist, model = self.opts, self.dist, self.model
        model.train()
        balance = self.balance if opts.balanced(epoch) else None
        if balance is not None:
            order = balanced_order(balance, opts.seed, epoch, dist.world_size)
        else:
            order = epoch_order(len(self.train_ds), opts.seed, epoch, dist.world_size)
        order = order[dist.rank :: dist.world_size]
        prior = self.prior if balance is None else 0.0  # the balanced sampler shows each class half the time
        rng = np.random.default_rng([opts.seed, epoch, dist.rank, 1])
        drop_rng = np.random.default_rng([opts.seed, epoch, dist.rank, 3])  # its own stream: p=0 changes nothing
        torch.manual_seed(_seed_int(opts.seed, epoch, dist.rank, 2))
        lr = self.optimizer.param_groups[0]["lr"]
        # loss sum, samples, shown with a subset, single loss, poe loss, token-head loss
        total = torch.zeros(6, dtype=torch.float64)
        steps = 0
        t0, c0 = time.perf_counter(), time.process_time()
        bar = case_bar(order, self.bars and dist.is_main, f"epoch {epoch + 1}/{opts.epochs}", leave=False)
        for i, idx in enumerate(bar):
            inputs, target = self.train_ds.train_item(int(idx), rng, opts.shared_pad)
            keep = dropout_subset(drop_rng, opts.modality_dropout)
            if epoch < opts.branch_warmup:
                inputs = {**inputs, "dce": None}
            if epoch < opts.t2_warmup:
                inputs = {**inputs, "dwi": None}
            if keep is not None and any(inputs[m] is not None for m in keep):
                inputs = {m: v if m in keep else None for m, v in inputs.items()}
                total[2] += 1
            if opts.single_loss > 0.0 or opts.poe_loss > 0.0 or self.heads is not None:
                loss, single, poe, token = single_losses(model, inputs, target, self.weight, prior, self.heads)
                objective = loss
                if token is not None:
                    objective = objective + opts.token_head * token
                    total[5] += token.item()
                if single is not None and poe is not None:
                    objective = objective + opts.single_loss * single
                    if opts.poe_loss > 0.0:
                        objective = objective + opts.poe_loss * poe
                    total[3:5] += torch.tensor([single.item(), poe.item()], dtype=torch.float64)
            else:
                loss = objective = loss_fn(model(**inputs), target, self.weight)
            (objective / opts.accumulation).backward()
            total[:2] += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
            if (i + 1) % self.local_accum == 0:
                self._step()
                steps += 1
            if dist.is_main and i % 8 == 0:
                bar.set_postfix(loss=f"{total[0].item() / total[1].item():.4f}", lr=f"{lr:.2e}")
        if len(order) % self.local_accum:
            if opts.epoch_end == "step":
                self._step()
                steps += 1
            elif dist.active:  # gather the leftovers on rank 0 so that its saved state holds all of them
                ddp.allreduce_grads([p for _, p in self.params + self.head_params], dist)
                if not dist.is_main:
                    self.optimizer.zero_grad(set_to_none=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        ddp.allreduce_sum_(total, dist)
        return {"epoch": epoch + 1, "lr": lr, "train_loss": total[0].item() / total[1].item(),
                "train_samples": int(total[1].item()), "subset_samples": int(total[2].item()),
                "single_loss": total[3].item() / total[1].item(), "poe_loss": total[4].item() / total[1].item(),
                "token_loss": total[5].item() / total[1].item(),
                "optimizer_steps": steps,
                "train_seconds": seconds, "seconds_per_sample": seconds / max(len(order) * dist.world_size, 1),
                "cpu_seconds_per_sample": cpu / max(len(order), 1), "threads": torch.get_num_threads()}

    def carried(self) -> dict[str, torch.Tensor]:
        return {n: p.grad.detach().clone() for n, p in self.params + self.head_params if p.grad is not None}

    def fit(self, progress: Progress) -> TrainResult:
        """Run epochs ``progress.epoch .. epochs-1`` (at most ``stop_after`` of them)."""
        opts, dist = self.opts, self.dist
        best_path = self.out_dir / BEST_FILE
        ran = 0
        while progress.epoch < opts.epochs:
            if opts.stop_after is not None and ran >= opts.stop_after:
                log.info("stopping after %d epoch(s) as asked; resume with --resume", ran)
                break
            epoch = progress.epoch
            row = self.train_epoch(epoch)
            self.scheduler.step()
            averaged = self.ema.swapped() if self.ema is not None else contextlib.nullcontext()
            with averaged:  # validate, and save a new best, with the averaged weights (if any)
                self._validate(epoch, row, progress, best_path)
            if dist.is_main:  # the state holds the raw weights (and the average)
                save_state(self.out_dir / STATE_FILE, model=self.model, optimizer=self.optimizer,
                           scheduler=self.scheduler, progress=progress, carried=self.carried(),
                           key=self.state_key, frozen_backbone=self.frozen_backbone, extra=self.extra,
                           ema=None if self.ema is None else self.ema.state_dict(),
                           token_heads=None if self.heads is None else self.heads.state_dict())
                (self.out_dir / HISTORY_FILE).write_text(json.dumps(progress.history, indent=1) + "\n")
            ddp.barrier(dist)
            ran += 1
        ddp.check_replicas(self.model, dist)
        finished = progress.epoch >= opts.epochs
        return TrainResult(self.model, progress, finished, best_path if best_path.is_file() else None)

    def _validate(self, epoch: int, row: dict[str, Any], progress: Progress, best_path: Path) -> None:
        """Validate the model as it stands, record the epoch in ``row``/``progress``, save a new best."""
        t0 = time.perf_counter()
        scores = predict(self.model, self.val_ds, self.dist, progress=self.bars)
        val_auc = auroc(self.val_ds.labels, scores)
        val_seconds = time.perf_counter() - t0
        row.update(val_auroc=val_auc, val_seconds=val_seconds, seconds_per_val_case=val_seconds / len(self.val_ds))
        improved = bool(val_auc >= progress.best_auroc)
        row["best"] = improved
        progress.history.append(row)
        progress.epoch = epoch + 1
        if improved:
            progress.best_auroc, progress.best_epoch = float(val_auc), epoch + 1
        log.info("epoch %d/%d: loss %.4f, val AUROC %.4f%s (%.0f s train, %.0f s val)", epoch + 1,
                 self.opts.epochs, row["train_loss"], val_auc, " (best)" if improved else "",
                 row["train_seconds"], row["val_seconds"])
        if improved and self.dist.is_main:
            dtype = torch.float16 if self.opts.save_dtype == "float16" else None
            save_native(self.model, best_path, self.make_card(progress), dtype=dtype)
