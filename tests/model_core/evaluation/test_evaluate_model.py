from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from model_core.evaluation.evaluate_model import GAINS, SUBSETS
from model_core.evaluation.metrics import auroc
from model_core.network.config import MomeConfig
from model_core.train.options import InitSpec
from model_core.train.recipe import build_model
from model_core.weights.native import ModelCard, load_native, save_native


def test_evaluate_model_cli_writes_cis_and_keeps_the_card_valid(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                                 tmp_path: Path) -> None:
    from model_core.cli.main import main

    model, _ = build_model(tiny_cfg, InitSpec(), seed=2)
    weights = tmp_path / "m.safetensors"
    save_native(model, weights, ModelCard(config={}))
    rc = main(["evaluate-model", str(weights), "--cohort", f"ds2_test={cohorts['val']}", "--cache",
               str(cohorts["cache"]), "--bootstrap", "200", "--seed", "4", "--update-card", "--no-progress",
               "--threads", "1", "--export", str(tmp_path / "ship" / "demo.safetensors"), "--export-name", "mome-demo",
               "--export-fp16", "--reproduce", "bash scripts/train_demo.sh"])
    assert rc == 0
    _, card = load_native(weights)  # sha256 still matches: only the card changed
    m = card.metrics["test"]["ds2_test"]
    assert m["n"] == 6 and m["sites"] == ["ds2"]
    for s in SUBSETS:  # all seven subsets, each with its CI and the spread of its log-odds
        assert m[s]["bootstrap_resamples"] == 200 and m[s]["ci_lower"] <= m[s]["auroc"] <= m[s]["ci_upper"]
        assert m[s]["logit_sd"] > 0
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    y = np.array([int(r["label"]) for r in rows])
    for key, versus in GAINS.items():  # paired gains recomputed from the per-case scores
        gain = m[key]
        expected = auroc(y, np.array([float(r["p_multiparametric"]) for r in rows])) - auroc(
            y, np.array([float(r[f"p_{versus}"]) for r in rows]))
        assert gain["versus"] == versus and gain["value"] == pytest.approx(expected, abs=1e-12)
        assert gain["ci_lower"] <= gain["ci_upper"] and 0.0 < gain["p_value"] <= 1.0
    assert card.metrics["test_protocol"]["command"].startswith("mome evaluate-model")
    assert "--bootstrap 200" in card.metrics["test_protocol"]["command"]
    assert len(rows) == 6 and {"birads", *(f"p_{s}" for s in SUBSETS)} <= set(rows[0])
    assert json.loads((tmp_path / "eval.json").read_text())["ds2_test"]["n_positive"] == 3
    shipped, scard = load_native(tmp_path / "ship" / "demo.safetensors")
    assert scard.name == "mome-demo" and scard.weights_file == "demo.safetensors"
    assert scard.training["reproduce"] == "bash scripts/train_demo.sh" and scard.training["stored_dtype"] == "float16"
    assert scard.metrics["test"] == card.metrics["test"]
    assert (tmp_path / "ship" / "demo.safetensors").stat().st_size < weights.stat().st_size * 0.6


def test_a_card_section_adds_an_evaluation_and_keeps_the_test_one(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                                  tmp_path: Path) -> None:
    from model_core.cli.main import main
    from model_core.evaluation.evaluate_model import EvalReport, update_card
    from model_core.train.options import TrainError

    model, _ = build_model(tiny_cfg, InitSpec(), seed=2)
    weights = tmp_path / "m.safetensors"
    save_native(model, weights, ModelCard(config={}))
    common = ["--cache", str(cohorts["cache"]), "--bootstrap", "50", "--no-progress", "--threads", "1",
              "--out", str(tmp_path / "eval")]
    assert main(["evaluate-model", str(weights), "--cohort", f"ds2_test={cohorts['val']}", "--update-card",
                 *common]) == 0
    before = load_native(weights)[1].metrics
    assert main(["evaluate-model", str(weights), "--cohort", f"big={cohorts['val']}", "--update-card",
                 "--card-section", "test_big", *common]) == 0
    after = load_native(weights)[1].metrics
    assert after["test"] == before["test"] and after["test_protocol"] == before["test_protocol"]
    assert set(after["test_big"]) == {"big"} and after["test_big"]["big"]["n"] == 6
    assert "--card-section test_big" in after["test_big_protocol"]["command"]
    for bad in (["--card-section", "test_big"], ["--update-card", "--card-section", "x_protocol"],
                ["--update-card", "--checks", "--card-section", "test_big"]):
        assert main(["evaluate-model", str(weights), "--cohort", f"big={cohorts['val']}", *bad, *common]) == 2
        assert load_native(weights)[1].metrics == after
    with pytest.raises(TrainError, match="card section"):
        update_card(weights, EvalReport(), section="test-big")
