"""Integrated-gradients saliency with captum, mapped back to each input's native voxel grid.

* **Target**: the malignancy logit margin ``F(x) = logit_1 - logit_0`` (the log-odds of the probability).
* **Inputs**: the three canvases *jointly* (one IG path from the baseline ``b`` to the input in every
  present modality at once), so the attributions of all modalities together satisfy completeness:
  ``sum(attributions) ~= F(x) - F(b)``. An absent modality stays absent on the whole path.
* **Baseline**: given by the caller (:mod:`model_core.engine.baselines`: the Predictor uses the study
  blurred within its breast region, "this study without its focal findings"); default zeros in
  standardised space (the canvas padding value).
* **Steps**: ``n_steps`` (default 32) gradient evaluations, Gauss-Legendre (captum's default method);
  ``internal_batch_size`` scaled inputs go through one forward/backward at a time, bounding memory.
* **Graded path** (``decades``; the library default 6 is for the zero baseline, the blurred baseline
  needs none): the straight path ``b + alpha * (x - b)``, ``alpha`` in [0, 1], is cut at
  ``alpha = 10^-6, 10^-5, ..., 10^-1`` and captum integrates each piece with its share of the steps; the
  attributions of the pieces add up to exactly the IG integral of the whole path (additivity of path
  integrals), only the quadrature differs. Why: every tokenizer starts with a bias-free conv followed by
  InstanceNorm, which is scale invariant, so ``F(alpha * x)`` is nearly constant for ``alpha > 1e-3`` and
  the whole ``F(x) - F(0)`` accrues at ``alpha ~ 1e-9 .. 1e-3`` (the three InstanceNorms leave their linear
  regime one after the other), which uniform Gauss-Legendre points on [0, 1] almost all miss. The
  remaining error varies widely between studies and weights (largest where ``F(x) - F(0)`` is small) and
  more decades do not fix it consistently. From a blurred baseline the path never comes near the zero
  image and ``F`` changes over a short stretch of it: the Predictor scans the path instead
  (:mod:`model_core.engine.ig_scan`). ``decades=0`` is plain captum IG over [0, 1].
* **Completeness**: captum's convergence delta ``sum(attr) - (F(x) - F(b))`` is reported, with
  ``relative_error = |delta| / |F(x) - F(b)|`` (``F(x)`` and ``F(b)`` are the two forwards captum runs for
  the delta).
* **Maps**: attributions ``(C, X, Y, Z)`` per modality are summed over channels to ``(X, Y, Z)`` on the
  canvas, then :func:`to_native` maps each back through flip/pad/resize/crop/resampling
  (:func:`model_core.preprocessing.inverse.canvas_to_native`) onto the grid of the modality's reference volume, with its
  affine (voxel -> RAS mm), so the overlay sits on the layer it explains.

Progress/cancellation: one step per internal batch (stage ``"explain"``), checked before each batch.
On CPU the computation is deterministic (bitwise) for a fixed thread count.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from model_core.engine.ig_scan import refine, scan_path
from model_core.engine.progress import Steps
from model_core.engine.result import Saliency
from model_core.network.config import MODALITIES
from model_core.preprocessing.canvas import CanvasRecord
from model_core.preprocessing.inverse import canvas_to_native

log = logging.getLogger(__name__)

TARGET = "logit margin (logit[1] - logit[0])"
BASELINE = "zeros in standardised space"
"""The default baseline in words."""


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 2) -> (B,)``: ``logit_1 - logit_0``."""
    return logits[:, 1] - logits[:, 0]


def path_segments(n_steps: int, decades: int = 6) -> list[tuple[float, float, int]]:
    """``(alpha_start, alpha_stop, steps)`` of the graded path: ``[0, 1e-decades]``, then one piece per decade
    up to 1; the steps are shared out as evenly as possible (earlier pieces get the remainder), at least 1
    each (fewer pieces when ``n_steps <= decades``)."""
    decades = max(0, min(int(decades), n_steps - 1))
    bounds = [0.0] + [10.0 ** (k - decades) for k in range(decades)] + [1.0]
    pieces = len(bounds) - 1
    per, rest = divmod(n_steps, pieces)
    return [(bounds[i], bounds[i + 1], per + (1 if i < rest else 0)) for i in range(pieces)]


def n_batches(n_steps: int, internal_batch_size: int, decades: int = 6, scan: int = 0) -> int:
    """How many forward/backward passes IG runs for one input (captum's internal batching, per piece; with
    a scan, all points are batched together; a refinement adds its passes when it starts)."""
    if scan:
        return math.ceil(n_steps / max(1, internal_batch_size))
    return sum(math.ceil(n / max(1, internal_batch_size)) for _, _, n in path_segments(n_steps, decades))


@dataclass(eq=False)
class IGResult:
    """Attributions on the canvas.

    Attributes:
        canvas: modality -> float32 ``(X, Y, Z)`` attribution summed over channels.
        delta: captum's convergence delta ``sum(attr) - (F(x) - F(b))``.
        f_input, f_baseline: ``F(x)``, ``F(b)`` (logit margins).
        n_steps, internal_batch_size, method, decades: the IG settings.
        seconds: wall time.
        baseline: the baseline in words.
        segments: the path's pieces ``(alpha_start, alpha_stop, steps)``.
        scan: intervals of the forward-only scan that placed them (0: :func:`path_segments`).
    """

    canvas: dict[str, np.ndarray]
    delta: float
    f_input: float
    f_baseline: float
    n_steps: int
    internal_batch_size: int
    method: str
    decades: int = 6
    seconds: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)
    baseline: str = BASELINE
    segments: list[tuple[float, float, int]] = field(default_factory=list)
    scan: int = 0

    @property
    def relative_error(self) -> float:
        """``|delta| / |F(x) - F(b)|`` (inf when the two are equal but delta is not 0)."""
        span = abs(self.f_input - self.f_baseline)
        if span == 0.0:
            return 0.0 if self.delta == 0.0 else math.inf
        return abs(self.delta) / span

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no arrays)."""
        return {
            "method": "integrated gradients (captum)", "target": TARGET, "baseline": self.baseline,
            "n_steps": self.n_steps, "internal_batch_size": self.internal_batch_size,
            "approximation": self.method,
            "path": "straight, graded" if self.decades and not self.scan else "straight",
            "path_scan": self.scan, "path_segments": [[a, b, n] for a, b, n in (
                self.segments or path_segments(self.n_steps, self.decades))], "convergence_delta": self.delta,
            "relative_error": self.relative_error, "f_input": self.f_input, "f_baseline": self.f_baseline,
            "completeness_error": self.delta,
            "attribution_totals": dict(self.totals), "seconds": round(self.seconds, 4),
        }


@contextlib.contextmanager
def _no_param_grads(model: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on the parameters for the duration (gradients w.r.t. inputs only)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def integrated_gradients(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor | None],
    *,
    n_steps: int = 32, internal_batch_size: int = 4, method: str = "gausslegendre", decades: int = 6,
    steps: Steps | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    baselines: Mapping[str, torch.Tensor] | None = None,
    baseline_text: str = BASELINE,
    scan: int = 0, target_error: float = 0.0, max_steps: int = 0,
) -> IGResult:
    """IG of the logit margin w.r.t. the canvases of one study.

    Args:
        model: ``model(dce=, dwi=, t2=) -> logits (B, 2)`` (a :class:`~model_core.network.mome.Mome`), eval mode.
        inputs: modality -> ``(1, C, X, Y, Z)`` canvas (absent: missing or ``None``).
        n_steps, internal_batch_size: integration points; scaled inputs per forward/backward (memory).
        method: captum approximation method (per piece).
        decades: graded path pieces below ``alpha = 0.1`` (0: plain captum IG); steps: progress/stop
            counter (plan :func:`n_batches` steps).
        autocast: optional context-manager factory wrapping each forward (bf16 autocast).
        baselines, baseline_text: modality -> baseline ``(1, C, X, Y, Z)`` (missing: zeros;
            :mod:`model_core.engine.baselines`) and the baseline in words.
        scan: when > 0, the steps go where a forward-only scan of ``scan + 1`` points finds ``F`` changing
            (:mod:`model_core.engine.ig_scan`; ``decades`` unused); needs ``n_steps >= scan``.
        target_error, max_steps: with a scan, the steps are doubled up to ``max_steps`` while the relative
            completeness error is above ``target_error`` (:func:`~model_core.engine.ig_scan.refine`).
    """
    if n_steps < 1 or internal_batch_size < 1:
        raise ValueError("n_steps and internal_batch_size must be >= 1")
    present, xs, base = _inputs_and_baselines(inputs, baselines)
    ctx = autocast or contextlib.nullcontext
    evals: list[float] = []
    grad_calls = [0]

    def forward(*args: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            if steps is not None:
                if grad_calls[0] > 0:  # the previous batch's backward has finished
                    steps.advance("explain")
                steps.check("explain")
            grad_calls[0] += 1
        with ctx():
            out = logit_margin(model(**dict(zip(present, args, strict=True)))).float()
        # every input joins the graph (a model may ignore one: its attribution is then exactly 0)
        out = out + sum(a.reshape(a.shape[0], -1)[:, 0] * 0.0 for a in args)
        if not torch.is_grad_enabled():
            evals.extend(out.detach().double().tolist())
        return out

    t0 = time.perf_counter()
    segments = path_segments(n_steps, decades)
    with _no_param_grads(model):
        if scan:
            scanned = scan_path(model, base, xs, present, scan, internal_batch_size, ctx, steps)
            attrs, d, n_steps, segments = refine(
                forward, base, xs, scanned, n_steps, internal_batch_size, target_error, max_steps,
                None if steps is None else lambda n: steps.add(n_batches(n, internal_batch_size, scan=scan)))
            evals[:] = [scanned[0], scanned[-1]]
            delta = torch.tensor(d)
        else:
            attrs, delta = _captum_pieces(forward, base, xs, segments, method, internal_batch_size)
        if steps is not None and grad_calls[0] > 0:
            steps.advance("explain")
    canvas = {m: a[0].detach().float().sum(0).cpu().numpy() for m, a in zip(present, attrs, strict=True)}
    totals = {m: float(a.detach().double().sum()) for m, a in zip(present, attrs, strict=True)}
    d = float(delta.detach().double().reshape(-1)[0])
    if len(evals) == 2:  # captum evaluated F(b), then F(x), for the delta
        f_base, f_in = evals
    else:  # pragma: no cover - captum changed its delta computation
        f_in = sum(totals.values()) - d
        f_base = 0.0
    res = IGResult(canvas, d, f_in, f_base, n_steps, internal_batch_size, method, decades,
                   time.perf_counter() - t0, totals, baseline_text, segments, scan)
    log.debug("IG: %d steps, delta %.3g (relative %.3g) in %.2f s", n_steps, d, res.relative_error, res.seconds)
    return res


def _inputs_and_baselines(inputs: Mapping[str, torch.Tensor | None], baselines: Mapping[str, torch.Tensor] | None
                          ) -> tuple[list[str], tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Present modalities, their inputs and baselines (zeros where none is given), checked."""
    present = [m for m in MODALITIES if inputs.get(m) is not None]
    if not present:
        raise ValueError("integrated gradients needs at least one modality")
    xs = tuple(inputs[m].detach() for m in present)  # type: ignore[union-attr]
    if any(x.shape[0] != 1 for x in xs):
        raise ValueError("integrated gradients explains one study at a time (batch 1)")
    base = tuple(torch.zeros_like(x) if baselines is None or baselines.get(m) is None
                 else baselines[m].detach().to(x) for m, x in zip(present, xs, strict=True))
    if any(b.shape != x.shape for b, x in zip(base, xs, strict=True)):
        raise ValueError("each baseline must have its canvas's shape")
    return present, xs, base


def _captum_pieces(forward: Callable[..., torch.Tensor], base: tuple[torch.Tensor, ...],
                   xs: tuple[torch.Tensor, ...], segments: Sequence[tuple[float, float, int]], method: str,
                   batch: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """captum IG over each piece of the straight path ``b + alpha (x - b)``, summed; and captum's delta."""
    from captum.attr import IntegratedGradients  # here: importing captum costs ~1 s (it loads matplotlib)

    def point(alpha: float) -> tuple[torch.Tensor, ...]:
        if alpha == 0.0:
            return base
        if alpha == 1.0:
            return xs
        return tuple(b + alpha * (x - b) for b, x in zip(base, xs, strict=True))

    ig = IntegratedGradients(forward)
    attrs: tuple[torch.Tensor, ...] | None = None
    for a, b, n in segments:
        part = ig.attribute(point(b), baselines=point(a), n_steps=n, method=method,
                            internal_batch_size=min(batch, n))
        attrs = tuple(part) if attrs is None else tuple(p + q for p, q in zip(attrs, part, strict=True))
    assert attrs is not None
    return attrs, ig.compute_convergence_delta(attrs, start_point=base, end_point=xs)


def to_native(
    ig: IGResult, prepared: Any, canvas_records: Mapping[str, CanvasRecord]
) -> dict[str, Saliency]:
    """Map each canvas map back to its modality's native grid (see the module docstring).

    Args:
        ig: the attributions.
        prepared: the :class:`~model_core.preprocessing.preprocess.Prepared` (or its records).
        canvas_records: modality -> the canvas record of the explained canvas.
    Returns:
        modality -> :class:`Saliency` ``(X, Y, Z)`` float32 on the reference volume's grid + affine.
    """
    out: dict[str, Saliency] = {}
    records = getattr(prepared, "records", prepared)
    for m, cmap in ig.canvas.items():
        data, affine = canvas_to_native(cmap, m, prepared, canvas_records[m])
        out[m] = Saliency(m, data, affine, records[m].reference, "native")
    return out


def on_canvas(ig: IGResult) -> dict[str, Saliency]:
    """The canvas maps as :class:`Saliency` with an identity affine (for inputs given as ready tensors)."""
    return {m: Saliency(m, a, np.eye(4), "canvas", "canvas") for m, a in ig.canvas.items()}
