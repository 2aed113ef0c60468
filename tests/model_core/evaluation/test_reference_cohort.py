"""mome reference: v_empty, per-sequence figures and digests over a cohort, written through the card API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_core import MomeConfig
from model_core.cli.main import main
from model_core.engine.predictor import Predictor
from model_core.engine.reference import reference_from_card
from model_core.evaluation.reference_cohort import cohort_digests, reference_values
from model_core.weights.native import ModelCard, read_card, save_native, sha256_file
from tests.model_core.engine.test_subsets import trained_looking


def test_reference_values_over_a_cohort(cohorts: dict[str, Path], tiny_cfg: MomeConfig, tmp_path: Path) -> None:
    model = trained_looking(tiny_cfg)
    weights = tmp_path / "m.safetensors"
    save_native(model, weights, ModelCard(config={}))
    pred = Predictor.from_native(weights, device="cpu", audit_log=None)
    ref = reference_values(pred, [cohorts["train"]], n_bootstrap=50)
    assert ref.n == 8 and ref.cohorts[0]["seed"] == 1 and ref.cohorts[0]["site"] == "ds1"
    assert "csv" not in ref.cohorts[0] and ref.cohorts[0]["name"] == Path(cohorts["train"]).parent.name
    assert 0.0 < ref.v_empty < 1.0 and ref.v_empty == ref.subsets["dce+dwi+t2"]
    assert set(ref.sequences) == {"dce", "dwi", "t2"}
    for s in ref.sequences.values():
        assert s["bootstrap_resamples"] == 50 and isinstance(s["used"], bool) and s["why"]
    digests = cohort_digests([cohorts["train"]])
    assert digests[0]["cohort_digest"] == ref.cohort_digest and digests[0]["n_read"] == 8


def test_cli_updates_the_card_and_leaves_the_weights(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "m.safetensors"
    save_native(trained_looking(tiny_cfg), weights, ModelCard(config={}))
    before = sha256_file(weights)
    assert main(["reference", str(weights), "--cohort", str(cohorts["train"]), str(cohorts["val"]),
                 "--bootstrap", "20", "--update-card"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = reference_from_card(read_card(weights))
    assert ref is not None and ref.n == 14 and out["v_empty"] == ref.v_empty and sha256_file(weights) == before
    assert ref.command.startswith("mome reference ") and "--update-card" in ref.command
    assert main(["reference", str(weights), "--cohort", str(cohorts["val"]), "--digests-only", "--update-card",
                 "--world-commit", "abc1234"]) == 0
    card = read_card(weights)
    tc = card.metrics["test_cohorts"]
    assert tc["world_commit"] == "abc1234" and tc["cohorts"][0]["seed"] == 2 and np.isfinite(tc["cohorts"][0]["n"])
    assert reference_from_card(card) == ref  # the earlier entry is kept
