"""An exponential moving average of the trained weights (``mome train --ema D``; not in the paper).

After every optimizer step ``t`` (counted from 0) each trainable parameter's average becomes ``a <- d_t * a
+ (1 - d_t) * p`` with ``d_t = min(D, (1 + t) / (10 + t))``: the warm-up of ``d_t`` keeps the first steps
from leaning on the initial weights. Until step ``(10 D - 1) / (1 - D)`` (8991 for ``D = 0.999``) the
warm-up term is the smaller one, and the average spans about the last ``(10 + t) / 9`` steps (about a ninth
of the run so far); from then on about the last ``1 / (1 - D)``. Validation, the best-validation checkpoint
and the exported model use the averaged weights (:meth:`WeightAverage.swapped`); training goes on with the
raw ones. The average and its step count are part of the resumable state, so a resumed run averages exactly
as the uninterrupted one does. Every process of a data-parallel job steps the same replicated weights, so
each holds the same average.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from model_core.train.options import TrainError

log = logging.getLogger(__name__)


class WeightAverage:
    """The running average of ``params``.

    Args:
        params: ``(name, parameter)`` pairs (the trainable ones).
        decay: ``D`` in ``(0, 1)``.
    """

    def __init__(self, params: Sequence[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise TrainError(f"the weight-average decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.params = list(params)
        self.steps = 0
        self.average = {n: p.detach().clone() for n, p in self.params}

    def current_decay(self) -> float:
        """``d_t`` of the next update."""
        return min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters' current values in (call after each optimizer step)."""
        d = self.current_decay()
        for n, p in self.params:
            self.average[n].mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.steps += 1

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the parameters hold the average; their own values come back after it."""
        raw = {n: p.detach().clone() for n, p in self.params}
        with torch.no_grad():
            for n, p in self.params:
                p.copy_(self.average[n])
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params:
                    p.copy_(raw[n])

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "steps": self.steps, "average": {n: t.clone() for n, t in self.average.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a saved average; refuses one of another decay or other parameters."""
        if float(state["decay"]) != self.decay:
            raise TrainError(f"the saved weight average has decay {state['decay']}, this run {self.decay}")
        saved = dict(state["average"])
        if set(saved) != set(self.average):
            missing = sorted(set(self.average) ^ set(saved))[:5]
            raise TrainError(f"the saved weight average covers other parameters ({missing})")
        for n, t in saved.items():
            if t.shape != self.average[n].shape:
                raise TrainError(f"the saved weight average of {n} has shape {tuple(t.shape)}")
            self.average[n] = t.clone().to(self.average[n].dtype)
        self.steps = int(state["steps"])
        log.info("weight average restored (%d steps, decay %g)", self.steps, self.decay)
