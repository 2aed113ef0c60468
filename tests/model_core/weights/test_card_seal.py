"""Hardening item 3 (and the card half of items 4 and 5): the model card's seal and typed card errors.

A card edit that changes a result (a threshold, the config, the preprocessing, a field added later) is
refused on load unless re-sealed with ``mome card seal``; descriptive fields may change freely; card
defects give one typed error; configs beyond the memory budget are refused before anything is allocated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_core import MomeConfig
from model_core.cli.main import main
from model_core.engine.decision import Birads4Threshold, CalibrationError
from model_core.engine.demo import DEMO_WEIGHTS
from model_core.errors import BudgetError, CardIntegrityError, CheckpointError, ConfigError, MomeError
from model_core.network.mome import Mome
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.weights.card_seal import SEAL_KEY, UNSEALED_FIELDS, card_digest
from model_core.weights.native import ModelCard, card_path_for, load_native, read_card, save_native

THRESHOLD = {"tau": 0.03, "cohort": "cal", "n": 40, "n_malignant": 20, "n_downgraded": 3,
             "downgrade_rate": 0.075}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("card") / "m.safetensors"
    save_native(Mome(MomeConfig.preset("tiny")).eval(), path, ModelCard(config={}, thresholds={"birads4": THRESHOLD}))
    return path


def _edit(weights: Path, tmp_path: Path, change: Any) -> Path:
    """A copy of the model whose card was edited by ``change(doc)`` (and not re-sealed)."""
    dst = tmp_path / "e.safetensors"
    dst.write_bytes(weights.read_bytes())
    doc = json.loads(card_path_for(weights).read_text())
    change(doc)
    card_path_for(dst).write_text(json.dumps(doc, indent=2))
    return dst


def test_shipped_demo_card_is_sealed() -> None:
    doc = json.loads(card_path_for(DEMO_WEIGHTS).read_text())
    assert doc[SEAL_KEY] == card_digest(doc)
    assert read_card(DEMO_WEIGHTS).thresholds["birads4"]["tau"] == doc["thresholds"]["birads4"]["tau"]


@pytest.mark.parametrize("change", [
    lambda d: d["thresholds"]["birads4"].__setitem__("tau", 1.01),  # the downgrade the issue found
    lambda d: d["thresholds"]["birads4"].__setitem__("tau", 0.031),
    lambda d: d["config"].__setitem__("drop_path_rate", 0.1),
    lambda d: d.__setitem__("preprocess", {"normalize": "channel"}),
    lambda d: d.__setitem__("reference", {"v_empty": 0.5}),  # a result-changing field added later
    lambda d: d.pop(SEAL_KEY),
])
def test_result_changing_edit_is_refused(weights: Path, tmp_path: Path, change: Any) -> None:
    with pytest.raises(CardIntegrityError, match="mome card seal"):
        load_native(_edit(weights, tmp_path, change))


def test_descriptive_edit_keeps_the_seal(weights: Path, tmp_path: Path) -> None:
    assert {"metrics", "description", "notes"} <= UNSEALED_FIELDS

    def describe(d: dict[str, Any]) -> None:
        d["metrics"] = {"test": {"auroc": 0.5}}
        d["description"] = "edited by hand"
        d["notes"] = "free text"

    _, card = load_native(_edit(weights, tmp_path, describe))
    assert card.metrics == {"test": {"auroc": 0.5}}


def test_seal_cli_reseals_a_deliberate_edit(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    edited = _edit(weights, tmp_path, lambda d: d["thresholds"]["birads4"].__setitem__("tau", 0.05))
    card = str(card_path_for(edited))
    assert main(["card", "verify", card]) == 1
    assert main(["card", "seal", card]) == 0
    assert main(["card", "verify", card]) == 0
    capsys.readouterr()
    _, loaded = load_native(edited)
    assert loaded.thresholds["birads4"]["tau"] == 0.05
    with pytest.raises(SystemExit):
        main(["card", "seal", "--help"])
    assert "not for authenticity" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("card", "error"), [
    ([1, 2], CheckpointError),                                         # a list instead of an object
    ({"format": "napari-mome-model-card"}, CheckpointError),          # missing config
    ({"format": "napari-mome-model-card", "config": [1]}, CheckpointError),
    ({"format": "napari-mome-model-card", "config": {}, "thresholds": []}, CheckpointError),
])
def test_card_shape_defects_are_typed(card: Any, error: type) -> None:
    with pytest.raises(error):
        ModelCard.from_dict(card)


@pytest.mark.parametrize(("change", "error"), [
    ({"num_heads": 0}, ConfigError),
    ({"ffn_dim": -5}, ConfigError),
    ({"embed_dim": "64"}, ConfigError),
    ({"depth": 200_000}, ConfigError),
    ({"embed_dim": 2**20, "num_heads": 1}, BudgetError),
    ({"sizes": {"dce": [4096, 4096, 4096], "dwi": [16, 16, 16], "t2": [16, 16, 16]}}, BudgetError),
    ({"sizes": {"dce": ["a", 16, 16], "dwi": [16, 16, 16], "t2": [16, 16, 16]}}, ConfigError),
    ({"in_chans": [6, 1, 1]}, ConfigError),
])
def test_config_defects_and_budget_are_typed_before_allocating(change: dict[str, Any], error: type) -> None:
    cfg = {**MomeConfig.preset("tiny").to_dict(), **change}
    with pytest.raises(error) as info:
        MomeConfig.checked_from_dict(cfg, "card config")
    if error is BudgetError:
        assert "limit" in str(info.value) and "MOME_MAX_" in str(info.value)


def test_base_model_fits_the_budget() -> None:
    assert 1e8 < MomeConfig().estimated_parameters() < 1e9
    n_real = sum(p.numel() for p in Mome(MomeConfig.preset("tiny")).parameters())
    assert MomeConfig.preset("tiny").estimated_parameters() >= n_real


@pytest.mark.parametrize("options", [{"dce_phases": 20_000_000}, {"t2_matrix": [100000, 100000, 32]},
                                     {"dce_phases": "6"}, {"mask_options": [1]}, {"pet": 1}])
def test_preprocess_options_defects_are_typed(options: dict[str, Any]) -> None:
    with pytest.raises(MomeError):
        PreprocessOptions.from_dict(options)


@pytest.mark.parametrize("record", [{}, {**THRESHOLD, "tau": "abc"}, {**THRESHOLD, "tau": 1.01}, [0.1]])
def test_threshold_defects_are_typed(record: Any) -> None:
    with pytest.raises(CalibrationError):
        Birads4Threshold.from_dict(record)


def test_integer_weights_are_refused(tmp_path: Path) -> None:
    import torch

    from model_core.weights.official import load_official_state_dict

    model = Mome(MomeConfig.preset("tiny")).eval()
    sd = {k: (v.to(torch.int8) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="integer, boolean or 8-bit"):
        load_official_state_dict(Mome(MomeConfig.preset("tiny")), sd)


def test_unknown_card_fields_survive_an_update_and_stay_sealed(weights: Path, tmp_path: Path) -> None:
    from model_core.evaluation.evaluate_model import update_card
    from model_core.weights.card_seal import seal_card_file

    edited = _edit(weights, tmp_path, lambda d: d.update(notes="hand note", reference={"v_empty": 0.4}))
    seal_card_file(card_path_for(edited))

    class Report:
        metrics = {"auroc": 0.7}

    update_card(edited, Report())  # type: ignore[arg-type]
    doc = json.loads(card_path_for(edited).read_text())
    assert doc["notes"] == "hand note" and doc["reference"] == {"v_empty": 0.4}
    assert doc["metrics"]["test"] == {"auroc": 0.7} and read_card(edited).extras["reference"] == {"v_empty": 0.4}
