"""A model's preprocessing travels with it: ``mome train --crop`` -> model card -> Predictor and evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from model_core.engine.card import preprocess_options
from model_core.engine.predictor import Predictor
from model_core.errors import CheckpointError, TrainError
from model_core.evaluation.cases import CaseCache, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.studies import read_study
from model_core.train.options import InitSpec
from model_core.train.recipe import build_model
from model_core.weights.native import ModelCard, load_native, save_native


def _train(cohorts: dict[str, Path], out: Path, *extra: str) -> int:
    from model_core.cli.main import main

    return main(["train", "--train-csv", str(cohorts["train"]), "--val-csv", str(cohorts["val"]), "--preset",
                 "tiny", "--epochs", "1", "--accumulation", "4", "--out", str(out), "--cache", str(cohorts["cache"]),
                 "--no-progress", "--threads", "1", *extra])


def test_crop_is_recorded_and_used_at_inference_and_evaluation(cohorts: dict[str, Path], tmp_path: Path) -> None:
    from model_core.cli.main import main

    out = tmp_path / "crop"
    assert _train(cohorts, out, "--crop", "dce", "dwi", "t2") == 0
    _, card = load_native(out / "best.safetensors")
    assert card.preprocess["crop"] == ["dce", "dwi", "t2"]
    assert "--crop dce dwi t2" in card.training["command"]
    pred = Predictor.from_native(out / "best.safetensors", device="cpu")
    assert pred.preprocess_options.crop == ("dce", "dwi", "t2")
    cases = read_cohort(cohorts["val"], get_task("malignancy"))
    study = read_study(cases[0].path)
    rec = pred.prepare(study).records["dwi"]
    assert rec.masked and rec.shape[1] < rec.native_shape[1]  # DWI cut to the breast box, not the whole FOV
    default = Predictor(pred.model, device="cpu").prepare(study).records["dwi"]
    assert not default.masked and default.shape == default.native_shape  # the paper: DWI standardised only

    # evaluate-model prepares the test studies with the card's options: their cache entries are those keys
    assert main(["evaluate-model", str(out / "best.safetensors"), "--cohort", f"v={cohorts['val']}", "--cache",
                 str(tmp_path / "ecache"), "--bootstrap", "20", "--no-progress", "--threads", "1",
                 "--out", str(tmp_path / "eval")]) == 0
    sizes = pred.model.cfg.sizes
    assert CaseCache(tmp_path / "ecache", sizes, preprocess_options(card)).missing(cases) == []
    assert len(CaseCache(tmp_path / "ecache", sizes).missing(cases)) == len(cases)


def test_default_training_records_the_papers_preprocessing(cohorts: dict[str, Path], tmp_path: Path) -> None:
    assert _train(cohorts, tmp_path / "plain") == 0
    card = json.loads((tmp_path / "plain" / "best.card.json").read_text())
    assert card["preprocess"] == PreprocessOptions().to_dict() and "--crop" not in card["training"]["command"]
    # a different crop cannot resume that state
    from model_core.cli.train import configure_train, run_train

    p = argparse.ArgumentParser()
    configure_train(p)
    with pytest.raises(TrainError, match="preprocess"):
        run_train(p.parse_args(["--train-csv", str(cohorts["train"]), "--val-csv", str(cohorts["val"]), "--preset",
                                "tiny", "--epochs", "2", "--accumulation", "4", "--out", str(tmp_path / "plain"),
                                "--cache", str(cohorts["cache"]), "--no-progress", "--threads", "1", "--resume",
                                "--crop", "dce", "dwi", "t2"]))


def test_cards_without_a_record_use_the_defaults_and_bad_records_are_refused(tiny_cfg, tmp_path: Path) -> None:
    model, _ = build_model(tiny_cfg, InitSpec(), seed=0)
    save_native(model, tmp_path / "old.safetensors", ModelCard(config={}))
    assert Predictor.from_native(tmp_path / "old.safetensors", device="cpu").preprocess_options == PreprocessOptions()
    save_native(model, tmp_path / "bad.safetensors", ModelCard(config={}, preprocess={"crop": ["pet"]}))
    with pytest.raises(CheckpointError, match="preprocessing"):
        Predictor.from_native(tmp_path / "bad.safetensors", device="cpu")
    explicit = PreprocessOptions(mask=False)
    pred = Predictor.from_native(tmp_path / "old.safetensors", device="cpu", preprocess_options=explicit)
    assert pred.preprocess_options is explicit


def test_fine_tuning_inherits_the_init_models_preprocessing(cohorts: dict[str, Path], tmp_path: Path) -> None:
    assert _train(cohorts, tmp_path / "base", "--crop", "dce", "dwi", "t2") == 0
    init = str(tmp_path / "base" / "best.safetensors")
    assert _train(cohorts, tmp_path / "ft", "--init", init) == 0
    assert load_native(tmp_path / "ft" / "best.safetensors")[1].preprocess["crop"] == ["dce", "dwi", "t2"]
    assert _train(cohorts, tmp_path / "ft2", "--init", init, "--crop", "dce", "t2") == 0  # an explicit choice wins
    assert load_native(tmp_path / "ft2" / "best.safetensors")[1].preprocess["crop"] == ["dce", "t2"]
