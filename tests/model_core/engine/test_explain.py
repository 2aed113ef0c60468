"""Integrated gradients: locality, left-right flips, completeness, the graded path, cancellation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from model_core import MomeConfig
from model_core.engine.explain import integrated_gradients, logit_margin, n_batches, path_segments, to_native
from model_core.engine.progress import Steps
from model_core.errors import Cancelled
from model_core.network.mome import Mome
from model_core.phantom import generate_study
from model_core.preprocessing.inverse import native_to_canvas_index
from model_core.preprocessing.preprocess import PreprocessOptions, preprocess
from model_core.preprocessing.tta import fit, tta_canvases
from model_core.studies.study import Study, Volume


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)

CFG = MomeConfig.preset("tiny")


class RegionModel(nn.Module):
    """Depends on the DCE canvas inside ``box`` only (a conv on the masked input, a masked mean, a linear
    read-out); DWI and T2 are ignored."""

    def __init__(self, shape: tuple[int, int, int], box: tuple[slice, slice, slice]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv3d(6, 4, 3, padding=1)
        self.read = nn.Linear(4, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        mask = torch.zeros(1, 1, *shape)
        mask[(0, 0, *box)] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, dce=None, dwi=None, t2=None):  # noqa: ANN001, ANN201
        h = torch.tanh(self.conv(dce * self.mask))
        z = self.read((h * self.mask).mean((2, 3, 4)))[:, 0]
        return torch.stack([-z / 2, z / 2], dim=1)


class Pointwise(nn.Module):
    """``F = 0.01 * sum tanh(x)`` over every voxel of every modality: each voxel's attribution depends only
    on its own value, so the saliency must follow any rearrangement of the voxels."""

    def forward(self, dce=None, dwi=None, t2=None):  # noqa: ANN001, ANN201
        z = sum(torch.tanh(x).sum((1, 2, 3, 4)) for x in (dce, dwi, t2) if x is not None) * 0.01
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture(scope="module")
def case():  # noqa: ANN201
    return generate_study(4, scale=0.5)


def _centred(prepared):  # noqa: ANN001, ANN202
    tensors, records = tta_canvases(fit(prepared.arrays, CFG.sizes), [(0, -1)])
    return tensors, records[0]


def test_region_model_attribution_stays_in_the_region_on_canvas_and_native_grid(case) -> None:
    prep = preprocess(case.study, CFG)
    x, rec = _centred(prep)
    (x0, y0, z0), (x1, y1, z1) = rec["dce"].region()
    box = (slice(x0 + 4, x1 - 4), slice(y0 + 1, y1 - 1), slice(z0 + 2, z1 - 2))
    ig = integrated_gradients(RegionModel(CFG.sizes["dce"], box), x, n_steps=16, decades=0)
    a = np.abs(ig.canvas["dce"])
    assert a[box].sum() >= 0.9 * a.sum() > 0
    assert np.abs(ig.canvas["dwi"]).max() == 0 and np.abs(ig.canvas["t2"]).max() == 0
    sal = to_native(ig, prep, rec)["dce"]
    assert sal.data.shape == case.study.dce[0].spatial_shape
    assert np.allclose(sal.affine, case.study.dce[0].affine, atol=1e-9)
    idx = np.argwhere(np.abs(sal.data) > 0)
    c = native_to_canvas_index(idx, "dce", prep, rec["dce"])
    lo = np.array([s.start for s in box]) - 1.0  # one canvas voxel of interpolation margin
    hi = np.array([s.stop for s in box])
    inside = np.all((c >= lo) & (c <= hi), axis=1)
    w = np.abs(sal.data[tuple(idx.T)])
    assert w[inside].sum() >= 0.9 * w.sum()


def _flip_lr(study: Study) -> Study:
    """The mirrored patient: every array reversed along i (right-left), affines unchanged."""
    def f(v: Volume) -> Volume:
        return Volume(np.ascontiguousarray(v.data[::-1]), v.affine.copy(), v.source, dict(v.meta))

    return dataclasses.replace(
        study, dce=[f(v) for v in study.dce or []], dwi={b: f(v) for b, v in study.dwi.items()},
        t2=None if study.t2 is None else f(study.t2), t1=None if study.t1 is None else f(study.t1))


def test_flipping_the_input_left_right_flips_the_saliency(case) -> None:
    opts = PreprocessOptions(mask=False)
    maps = []
    for study in (case.study, _flip_lr(case.study)):
        prep = preprocess(study, CFG, opts)
        x, rec = _centred(prep)
        maps.append(to_native(integrated_gradients(Pointwise(), x, n_steps=8), prep, rec))
    for m in ("dce", "dwi", "t2"):
        a, b = maps[0][m].data, maps[1][m].data
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(b, a[::-1], atol=1e-5 * np.abs(a).max(), rtol=0)


def test_completeness_reported_and_small_at_32_steps() -> None:
    torch.manual_seed(0)
    model = Mome(CFG).eval()
    g = torch.Generator().manual_seed(5)
    x = {m: torch.randn(1, CFG.in_chans[m], *CFG.sizes[m], generator=g) for m in ("dce", "dwi", "t2")}
    ig = integrated_gradients(model, x, n_steps=32)
    with torch.no_grad():
        fx, f0 = float(logit_margin(model(**x))[0]), float(logit_margin(model(**{m: v * 0 for m, v in x.items()}))[0])
    assert ig.f_input == pytest.approx(fx, abs=1e-5) and ig.f_baseline == pytest.approx(f0, abs=1e-5)
    total = sum(ig.totals.values())
    assert ig.delta == pytest.approx(total - (fx - f0), abs=1e-5)
    assert ig.relative_error < 0.05
    s = ig.summary()
    assert s["n_steps"] == 32 and s["convergence_delta"] == ig.delta and len(s["path_segments"]) == 7
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_graded_path_partitions_the_steps_and_plain_path_is_captum() -> None:
    seg = path_segments(32, 6)
    assert seg[0][0] == 0.0 and seg[-1][1] == 1.0 and sum(n for *_, n in seg) == 32
    assert all(a < b for a, b, _ in seg) and [b for _, b, _ in seg[:-1]] == [a for a, _, _ in seg[1:]]
    assert path_segments(3, 6) == [(0.0, 0.01, 1), (0.01, 0.1, 1), (0.1, 1.0, 1)]
    assert n_batches(32, 4, 6) == 11 and n_batches(32, 4, 0) == 8
    model = Pointwise()
    x = {"dce": torch.randn(1, 6, 8, 8, 8), "t2": torch.randn(1, 1, 8, 8, 8)}
    ours = integrated_gradients(model, x, n_steps=10, decades=0, internal_batch_size=10)
    ref = IntegratedGradients(lambda d, t: logit_margin(model(dce=d, t2=t))).attribute(
        (x["dce"], x["t2"]), baselines=(x["dce"] * 0, x["t2"] * 0), n_steps=10)
    np.testing.assert_allclose(ours.canvas["dce"], ref[0][0].sum(0).numpy(), rtol=1e-5, atol=1e-7)
    # a separable smooth function: graded and plain paths agree (same integral, different quadrature)
    graded = integrated_gradients(model, x, n_steps=32)
    np.testing.assert_allclose(graded.canvas["t2"], ours.canvas["t2"], atol=1e-4)


def test_explain_is_bitwise_deterministic_on_cpu() -> None:
    torch.manual_seed(0)
    model = Mome(CFG).eval()
    x = {m: torch.randn(1, CFG.in_chans[m], *CFG.sizes[m]) for m in ("dce", "t2")}
    a, b = (integrated_gradients(model, x, n_steps=8) for _ in range(2))
    assert all(np.array_equal(a.canvas[m], b.canvas[m]) for m in ("dce", "t2")) and a.delta == b.delta


def test_cancel_between_ig_batches() -> None:
    done: list[int] = []
    steps = Steps(n_batches(8, 2, 0), progress=lambda d, t, s: done.append(d), should_stop=lambda: len(done) >= 1)
    x = {"dce": torch.randn(1, 6, 8, 8, 8)}
    with pytest.raises(Cancelled):
        integrated_gradients(Pointwise(), x, n_steps=8, internal_batch_size=2, decades=0, steps=steps)
    assert done == [1]
