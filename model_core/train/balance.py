"""A confounder-balanced training sampler (``mome train --balance-by COLUMN``).

When a cohort column (e.g. the lesion diameter) predicts the label, a network can learn that column in
place of the evidence it stands for. The sampler draws every epoch's training cases with replacement so
that, in what the network is shown, the column says nothing about the label: its values are cut into
``bins`` equal-count bins, each bin is drawn equally often, and within a bin each class half the time.

Not in the paper. Deterministic per ``(seed, epoch)``, like :func:`model_core.train.loop.epoch_order`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from model_core.evaluation.cases import CaseRef
from model_core.train.ddp import pad_for_processes
from model_core.train.options import TrainError

log = logging.getLogger(__name__)


def column_values(cases: Sequence[CaseRef], column: str) -> np.ndarray:
    """The numeric ``column`` of each case ``(N,)`` from its cohort row.

    Raises:
        TrainError: a case lacks the column or its value is not a finite number.
    """
    out = np.empty(len(cases), dtype=np.float64)
    for i, case in enumerate(cases):
        raw = case.info.get(column)
        if raw is None:
            raise TrainError(f"--balance-by {column!r}: case {case.case_id!r} has no such cohort column")
        try:
            value = float(raw)
        except ValueError:
            raise TrainError(f"--balance-by {column!r}: case {case.case_id!r} has {raw!r}, not a number") from None
        if not math.isfinite(value):
            raise TrainError(f"--balance-by {column!r}: case {case.case_id!r} has {raw!r}, not a finite number")
        out[i] = value
    return out


def balance_weights(values: np.ndarray, labels: np.ndarray, bins: int) -> np.ndarray:
    """Sampling probabilities ``(N,)`` (summing to 1) that make ``values`` uninformative of ``labels``.

    Cases are ranked by value (ties by index) and cut into ``bins`` bins of equal count; every bin gets
    weight ``1 / bins``, split equally between its two classes and equally among a class's cases.

    Raises:
        TrainError: fewer cases than bins, labels other than 0/1, or a bin holding one class only (the
            column separates the classes there, so no reweighting can hide it; use fewer bins).
    """
    n = len(values)
    if bins < 2 or n < bins:
        raise TrainError(f"balancing needs 2 <= bins <= cases, got {bins} bins for {n} cases")
    if not np.isin(labels, (0, 1)).all():
        raise TrainError("balancing needs 0/1 labels")
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(values, kind="stable")] = np.arange(n)
    which = rank * bins // n
    weights = np.empty(n, dtype=np.float64)
    for b in range(bins):
        in_bin = which == b
        for c in (0, 1):
            cell = in_bin & (labels == c)
            count = int(cell.sum())
            if count == 0:
                lo, hi = values[in_bin].min(), values[in_bin].max()
                raise TrainError(f"balancing: bin {b + 1}/{bins} ({lo:g} .. {hi:g}) has no class-{c} case; "
                                 "use fewer bins")
            weights[cell] = 1.0 / (bins * 2 * count)
    log.info("balanced sampler: %d bins, case weights %.3g .. %.3g (uniform %.3g)",
             bins, weights.min(), weights.max(), 1.0 / n)
    return weights / weights.sum()


def balanced_order(weights: np.ndarray, seed: int, epoch: int, world: int = 1) -> np.ndarray:
    """The epoch's case indices ``(ceil(N / world) * world,)``: ``N`` draws with replacement from
    ``weights`` ``(N,)``, seeded by ``(seed, epoch)``, padded by wrap-around for ``world`` processes."""
    n = len(weights)
    return pad_for_processes(np.random.default_rng([seed, epoch, 5]).choice(n, size=n, replace=True, p=weights),
                             world)
