"""Saliency baselines ("this study without its focal findings") and IG on a scanned path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from model_core import MomeConfig
from model_core.engine.baselines import baselines_for, canvas_regions, content_region, describe, make_baseline
from model_core.engine.explain import integrated_gradients, logit_margin, n_batches
from model_core.engine.ig_scan import quadrature, scanned_segments
from model_core.engine.predictor import Predictor, RunOptions
from model_core.phantom import generate_study
from model_core.preprocessing.tta import fit, tta_canvases
from tests.model_core.engine.test_subsets import trained_looking


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _canvas_with_blob() -> tuple[torch.Tensor, np.ndarray]:
    """A 2-channel canvas: padding (0), masked background (-0.5), smooth tissue, one bright 3^3 blob."""
    x = np.zeros((1, 2, 24, 24, 16), np.float32)
    region = np.zeros((24, 24, 16), bool)
    region[2:22, 2:22, 2:14] = True
    x[0, :, 1:23, 1:23, 1:15] = -0.5
    ramp = np.linspace(0.0, 1.0, 24, dtype=np.float32)[:, None, None]
    x[0, 0][region] = np.broadcast_to(ramp, region.shape)[region]
    x[0, 1][region] = 0.2
    x[0, :, 11:14, 11:14, 7:10] = 5.0
    return torch.from_numpy(x), region


def test_blur_removes_the_focal_finding_and_keeps_everything_outside_the_region() -> None:
    x, region = _canvas_with_blob()
    b = make_baseline(x, "blur", region, sigma=3.0)
    assert b.shape == x.shape and b.dtype == x.dtype
    assert torch.equal(b[..., ~torch.from_numpy(region)], x[..., ~torch.from_numpy(region)])
    blob = (0, slice(None), 12, 12, 8)
    assert float(b[blob].max()) < 1.0 < 5.0  # the blob is smeared into the tissue
    # far from the blob, the tissue's gross intensity (the ramp) survives
    assert float(b[0, 0, 4, 12, 8]) == pytest.approx(float(x[0, 0, 4, 12, 8]), abs=0.15)
    t = make_baseline(x, "tissue_mean", region)
    assert torch.allclose(t[0, 1][torch.from_numpy(region)], x[0, 1][torch.from_numpy(region)].mean())
    assert torch.count_nonzero(make_baseline(x, "zeros")) == 0
    with pytest.raises(ValueError, match="baseline"):
        make_baseline(x, "noise")
    with pytest.raises(ValueError, match="region"):
        make_baseline(x, "blur", region[:, :, :8])
    assert "focal" in describe("blur") and "6" in describe("blur", 6.0)


def test_content_region_excludes_padding_and_masked_background() -> None:
    x, region = _canvas_with_blob()
    assert np.array_equal(content_region(x), region)


def test_canvas_regions_follow_the_breast_mask_onto_the_canvas() -> None:
    cfg = MomeConfig.preset("tiny")
    pred = Predictor(trained_looking(cfg), device="cpu")
    prepared = pred.prepare(generate_study(4, scale=0.5).study)
    regions = canvas_regions(prepared, cfg.sizes)
    x, _ = tta_canvases(fit(prepared.arrays, cfg.sizes), [(0, -1)])
    assert set(regions) == set(prepared.masks)
    for m, r in regions.items():
        assert r.shape == tuple(cfg.sizes[m]) and r.any()
        content = content_region(x[m])  # the image itself: masked voxels are 0, then standardised
        assert np.mean(r == content) > 0.97 and not (r & (x[m][0] == 0).all(0).numpy()).any()


def test_scanned_segments_put_the_steps_where_f_changes() -> None:
    f = [1.0, 1.0, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    seg = scanned_segments(f, 16)
    assert sum(n for *_, n in seg) == 16 and len(seg) == 8 and all(n >= 1 for *_, n in seg)
    assert seg[0][0] == 0.0 and seg[-1][1] == 1.0 and seg[3][2] > seg[2][2] > seg[0][2]
    assert sum(n for *_, n in scanned_segments([0.0] * 9, 16)) == 16
    with pytest.raises(ValueError, match="n_steps"):
        scanned_segments(f, 4)
    a, w = quadrature(seg)
    assert a.size == 16 and w.sum() == pytest.approx(1.0) and np.all((a > 0) & (a < 1))
    assert n_batches(16, 4, scan=8) == 4


class Quadratic(nn.Module):
    """``F = sum(x^2) / n``, integrated exactly by Gauss-Legendre with 2 points per piece."""

    def forward(self, dce=None, dwi=None, t2=None):  # noqa: ANN001, ANN201
        z = sum((x ** 2).mean((1, 2, 3, 4)) for x in (dce, t2) if x is not None)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_scanned_ig_matches_captum_and_is_complete_from_a_baseline() -> None:
    g = torch.Generator().manual_seed(1)
    x = {"dce": torch.randn(1, 6, 6, 6, 4, generator=g), "t2": torch.randn(1, 1, 6, 6, 4, generator=g)}
    b = {m: v * 0.3 + 0.1 for m, v in x.items()}
    model = Quadratic()
    ours = integrated_gradients(model, x, n_steps=16, scan=8, baselines=b, baseline_text="test")
    assert ours.relative_error < 1e-5 and ours.scan == 8 and sum(n for *_, n in ours.segments) == 16
    with torch.no_grad():
        fx, fb = (float(logit_margin(model(**v))[0]) for v in (x, b))
    assert ours.f_input == pytest.approx(fx, rel=1e-6) and ours.f_baseline == pytest.approx(fb, rel=1e-6)
    ref = IntegratedGradients(lambda d, t: logit_margin(model(dce=d, t2=t))).attribute(
        (x["dce"], x["t2"]), baselines=(b["dce"], b["t2"]), n_steps=16)
    np.testing.assert_allclose(ours.canvas["dce"], ref[0][0].sum(0).numpy(), rtol=1e-4, atol=1e-7)
    s = ours.summary()
    assert s["baseline"] == "test" and s["path_scan"] == 8 and s["f_baseline"] == ours.f_baseline


def test_refinement_doubles_the_steps_until_complete() -> None:
    torch.manual_seed(0)
    cfg = MomeConfig.preset("tiny")
    model = trained_looking(cfg)
    g = torch.Generator().manual_seed(3)
    x = {m: torch.randn(1, cfg.in_chans[m], *cfg.sizes[m], generator=g) for m in ("dce", "dwi", "t2")}
    b = baselines_for(x, "tissue_mean")
    once = integrated_gradients(model, x, n_steps=4, scan=4, baselines=b)
    refined = integrated_gradients(model, x, n_steps=4, scan=4, baselines=b, target_error=1e-9, max_steps=16)
    assert once.n_steps == 4 and refined.n_steps == 16 and refined.f_input == once.f_input


def test_predictor_saliency_uses_the_blurred_baseline() -> None:
    cfg = MomeConfig.preset("tiny")
    pred = Predictor(trained_looking(cfg), device="cpu", audit_log=None)
    r = pred.run(generate_study(4, scale=0.5).study, options=RunOptions(ig_steps=8, ig_scan=4))
    e = r.explain
    assert e is not None and "blurred within its breast region" in e["baseline"] and e["path_scan"] == 4
    assert e["f_baseline"] != e["f_input"] and e["completeness_error"] == e["convergence_delta"]
    z = pred.run(generate_study(4, scale=0.5).study, options=RunOptions(ig_steps=8, ig_baseline="zeros",
                                                                          ig_decades=3))
    assert z.explain is not None and z.explain["path_scan"] == 0 and "zeros" in z.explain["baseline"]
