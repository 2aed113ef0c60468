"""Saliency checks: cascading randomisation order and effect, and the per-class summary."""

from __future__ import annotations

import pytest
import torch

from model_core import MomeConfig
from model_core.evaluation.saliency_checks import _randomise, _stages, summarise
from tests.model_core.engine.test_subsets import trained_looking


def test_stages_go_from_the_top_and_cover_every_parameter() -> None:
    cfg = MomeConfig.preset("tiny")
    model = trained_looking(cfg)
    stages = _stages(model)
    names = [s for s, _ in stages]
    assert names[:3] == ["head", "fc_norm", f"layer {cfg.depth - 1}"] and names[-1] == "tokenizers"
    prefixes = [p for _, ps in stages for p in ps]
    assert all(any(n.startswith(p) for p in prefixes) for n, _ in model.named_parameters() if "cls_token" not in n)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _randomise(model, ["head."], torch.Generator().manual_seed(0))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"head.weight", "head.bias"}


def test_summary_splits_classes_and_counts_hits() -> None:
    rows = [{"label": 1, "relative_error": 0.01, "delta": 0.05, "f_input": 4.0, "f_baseline": -1.0,
             "hits": {"dce": True, "dwi": False}},
            {"label": 1, "relative_error": 0.2, "delta": 1.0, "f_input": 3.0, "f_baseline": -2.0,
             "hits": {"dce": True, "dwi": True}},
            {"label": 0, "relative_error": 0.5, "delta": 0.01, "f_input": -3.0, "f_baseline": -3.02, "hits": {}}]
    s = summarise(rows)
    assert s["pointing_dce"] == {"hit_rate": 1.0, "n": 2} and s["pointing_dwi"]["hit_rate"] == 0.5
    assert s["completeness_malignant"]["share_below_5pct"] == 0.5 and s["completeness_benign"]["n"] == 1
    assert s["completeness_benign"]["span_median"] == pytest.approx(0.02)
