"""Integrated gradients on a scanned path: the steps go where the model's output changes.

From a baseline close to the input (:mod:`model_core.engine.baselines`), ``F`` along the straight path
``b + alpha (x - b)`` is flat over most of [0, 1] and changes over a short stretch (a lesion's evidence
switching on). Equally spaced or Gauss-Legendre points over the whole path waste most of their gradient
evaluations on the flat parts. Here:

1. :func:`scan_path`: ``F`` at ``K + 1`` equally spaced ``alpha`` (forward only, batched);
2. :func:`scanned_segments`: each of the ``K`` intervals is one piece with at least one point, the other
   points shared out in proportion to ``|F|``'s change over the interval;
3. :func:`integrate`: Gauss-Legendre on each piece (the rule captum uses by default), all points of all
   pieces batched together, ``internal_batch_size`` points per forward/backward;
   ``attribution = (x - b) * sum_j w_j grad F(b + alpha_j (x - b))``.

The scan's end points are ``F(b)`` and ``F(x)``, so completeness, ``sum(attr) - (F(x) - F(b))``, needs no
further forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from model_core.engine.progress import Steps


def _margin(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 1] - logits[:, 0]


def scanned_segments(f: Sequence[float], n_steps: int) -> list[tuple[float, float, int]]:
    """Pieces of the path from a forward-only scan: ``f`` = ``F`` at ``K + 1`` equally spaced ``alpha`` in
    [0, 1]; each of the ``K`` intervals is one piece with 1 step plus a share of the other ``n_steps - K``
    proportional to ``|F(end) - F(start)|`` (largest remainders first), so the points sit where ``F``
    changes. Needs ``n_steps >= K``."""
    k = len(f) - 1
    if k < 1 or n_steps < k:
        raise ValueError(f"a scan of {len(f)} points needs n_steps >= {k}, got {n_steps}")
    w = np.abs(np.diff(np.asarray(f, dtype=np.float64)))
    w = w + 1e-3 * (w.sum() / k + 1e-12)  # ties and a flat path: spread evenly
    extra = (n_steps - k) * w / w.sum()
    steps = 1 + np.floor(extra).astype(int)
    for i in np.argsort(-(extra - np.floor(extra)), kind="stable")[: n_steps - int(steps.sum())]:
        steps[i] += 1
    return [(i / k, (i + 1) / k, int(steps[i])) for i in range(k)]


def scan_path(model: nn.Module, base: Sequence[torch.Tensor], xs: Sequence[torch.Tensor], present: Sequence[str],
          scan: int, batch: int, ctx: Callable[[], contextlib.AbstractContextManager[Any]],
          steps: Steps | None) -> list[float]:
    """``F(b + alpha (x - b))`` at ``alpha = 0, 1/scan, ..., 1`` (forward only, ``batch`` points a pass)."""
    alphas = [i / scan for i in range(scan + 1)]
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(alphas), max(1, batch)):
            if steps is not None:
                steps.check("explain")
            a = torch.tensor(alphas[i:i + batch], dtype=xs[0].dtype, device=xs[0].device)
            pts = {m: b + a.view(-1, *([1] * (x.dim() - 1))) * (x - b)
                   for m, b, x in zip(present, base, xs, strict=True)}
            with ctx():
                out.extend(_margin(model(**pts)).double().tolist())
    return out


def quadrature(segments: Sequence[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights (float64 ``(N,)`` each) over the pieces; weights sum to 1."""
    alphas, weights = [], []
    for a, b, n in segments:
        x, w = np.polynomial.legendre.leggauss(n)
        alphas.append(a + (b - a) * (x + 1.0) / 2.0)
        weights.append(w * (b - a) / 2.0)
    return np.concatenate(alphas), np.concatenate(weights)


def integrate(forward: Callable[..., torch.Tensor], base: Sequence[torch.Tensor], xs: Sequence[torch.Tensor],
              segments: Sequence[tuple[float, float, int]], batch: int) -> tuple[torch.Tensor, ...]:
    """Attributions ``(x - b) * sum_j w_j grad F(point_j)`` per input (shapes of ``xs``).

    Args:
        forward: ``forward(*inputs) -> (B,)`` the explained output, inputs ``(B, C, X, Y, Z)``.
        base, xs: baselines and inputs ``(1, C, X, Y, Z)``.
        segments: the pieces (:func:`scanned_segments`).
        batch: points per forward/backward.
    """
    alphas, weights = quadrature(segments)
    acc = [torch.zeros_like(x, dtype=torch.float64) for x in xs]
    for i in range(0, alphas.size, max(1, batch)):
        a = torch.tensor(alphas[i:i + batch], dtype=xs[0].dtype, device=xs[0].device)
        w = torch.tensor(weights[i:i + batch], dtype=torch.float64, device=xs[0].device)
        pts = tuple((b + a.view(-1, *([1] * (x.dim() - 1))) * (x - b)).requires_grad_(True)
                    for b, x in zip(base, xs, strict=True))
        with torch.enable_grad():
            out = forward(*pts)
            grads = torch.autograd.grad(out.sum(), pts)
        for k, g in enumerate(grads):
            acc[k] += (g.double() * w.view(-1, *([1] * (g.dim() - 1)))).sum(0, keepdim=True)
    return tuple((acc[k] * (x - b).double()).to(x.dtype) for k, (b, x) in enumerate(zip(base, xs, strict=True)))


def refine(forward: Callable[..., torch.Tensor], base: Sequence[torch.Tensor], xs: Sequence[torch.Tensor],
           scanned: Sequence[float], n_steps: int, batch: int, target_error: float, max_steps: int,
           more: Callable[[int], None] | None = None,
           ) -> tuple[tuple[torch.Tensor, ...], float, int, list[tuple[float, float, int]]]:
    """:func:`integrate` on :func:`scanned_segments` of ``n_steps``, doubling the steps while the relative
    completeness error exceeds ``target_error`` and ``2 * n_steps <= max_steps`` (``more(n)`` is called
    before each doubled pass).

    Returns:
        ``(attributions, delta, n_steps used, segments used)``; ``delta = sum(attr) - (F(x) - F(b))``.
    """
    span = scanned[-1] - scanned[0]
    while True:
        segments = scanned_segments(scanned, n_steps)
        attrs = integrate(forward, base, xs, segments, batch)
        d = sum(float(a.double().sum()) for a in attrs) - span
        if abs(d) <= target_error * abs(span) or 2 * n_steps > max_steps:
            return attrs, d, n_steps, segments
        n_steps *= 2
        if more is not None:
            more(n_steps)
