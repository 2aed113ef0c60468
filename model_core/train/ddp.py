"""Data parallelism under ``torchrun`` (gloo on CPU, nccl on GPUs): manual gradient all-reduce.

Gradient accumulation makes DistributedDataParallel's per-backward all-reduce wasteful, so each process
accumulates locally and the summed gradients are all-reduced once per optimizer step
(:func:`allreduce_grads`). Every process starts from rank 0's weights (:func:`broadcast_parameters`) and
applies the same reduced gradient with the same optimizer, so the replicas stay bitwise identical; rank 0
alone writes files.

Single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``): every function here is a no-op.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from model_core.errors import MomeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def pad_for_processes(order: np.ndarray, world: int) -> np.ndarray:
    """``order`` ``(N,)`` padded by wrap-around to a multiple of ``world`` (each process gets as many)."""
    pad = (-len(order)) % world
    return np.concatenate([order, order[:pad]]) if pad else order


def init_distributed(backend: str = "gloo", timeout_s: float = 3600.0) -> DistInfo:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``, ...).

    The timeout covers rank 0 preprocessing the cohort while the others wait at a barrier.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")),
                    int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    log.info("data parallel: rank %d of %d (%s)", info.rank, world, backend)
    return info


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def allreduce_sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place sum over processes (identity without a process group)."""
    if info.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@torch.no_grad()
def broadcast_parameters(model: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if not info.active:
        return
    tensors = [p.data for p in model.parameters()] + [b for b in model.buffers()]
    if not tensors:
        return
    flat = _flatten_dense_tensors(tensors)
    dist.broadcast(flat, src=0)
    for t, v in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
        t.copy_(v)


@torch.no_grad()
def allreduce_grads(params: Sequence[nn.Parameter], info: DistInfo) -> None:
    """Sum ``.grad`` over processes in place, one flat buffer (a missing grad counts as zero, but a
    parameter that has no gradient on any process keeps ``grad=None``, as in a single process)."""
    if not info.active:
        return
    have = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
    dist.all_reduce(have, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, have.tolist(), strict=True) if h]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not live:
        return
    grads = [p.grad for p in live]
    flat = _flatten_dense_tensors(grads)  # type: ignore[arg-type]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    for g, v in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):  # type: ignore[arg-type]
        g.copy_(v)  # type: ignore[union-attr]


class ReplicaMismatchError(MomeError, RuntimeError):
    """Data-parallel replicas no longer hold identical weights."""


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes, in ``named_parameters`` order."""
    h = hashlib.sha256()
    for _, p in model.named_parameters():
        h.update(p.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas(model: nn.Module, info: DistInfo) -> str:
    """Verify that every process holds bitwise the same weights; returns the digest.

    Raises:
        ReplicaMismatchError: the digests differ between processes.
    """
    digest = weights_digest(model)
    if info.active:
        words = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.int64)
        lo, hi = words.clone(), words.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if not torch.equal(lo, hi):
            raise ReplicaMismatchError(f"rank {info.rank}: weights differ between the {info.world_size} processes")
        if info.is_main:
            log.info("data parallel: %d replicas bitwise identical (weights sha256 %s)", info.world_size, digest)
    return digest
