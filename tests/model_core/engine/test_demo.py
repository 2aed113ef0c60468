"""``mome demo``: the whole pipeline on a phantom, loud about untrained or phantom-trained weights."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import model_core.engine.demo as demo
from model_core import MomeConfig
from model_core.cli.main import main
from model_core.engine.result import Result
from model_core.network.factory import untrained_model
from model_core.weights.native import ModelCard, save_native


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)


def test_cli_demo_untrained_writes_result_and_saliency(tmp_path, monkeypatch, capsys, caplog) -> None:
    monkeypatch.setattr(demo, "DEMO_WEIGHTS", tmp_path / "absent.safetensors")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        rc = main(["demo", "--out", str(out), "--preset", "tiny", "--scale", "0.5", "--ig-steps", "4",
                   "--audit", str(tmp_path / "audit.jsonl"), "--stdout"])
    assert rc == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert captured.err.rstrip().endswith(f"*** {demo.UNTRAINED} ***")  # the summary comes last
    assert d["schema"] == "napari-mome-result/1" and set(d["saliency"]) == {"dce", "dwi", "t2"}
    assert d["provenance"]["demo"]["notice"] == demo.UNTRAINED and d["provenance"]["demo"]["synthetic"] is True
    assert "UNTRAINED network: numbers are meaningless" in caplog.text
    assert "Shapley" in captured.err and "BI-RADS" in captured.err
    back = Result.read(out)
    assert back.probability == d["probability"] and set(back.saliency) == {"dce", "dwi", "t2"}
    assert (tmp_path / "audit.jsonl").read_text().count("\n") == 1


def test_cli_demo_writes_its_study_and_prints_the_summary_last(tmp_path, monkeypatch, capsys) -> None:
    """Without --stdout the JSON goes only to the file; the analysed study lies beside it, its saliency
    NIfTIs on the grids (affines) of that study's files; the summary is the last thing on stdout."""
    import nibabel as nib
    import numpy as np

    from model_core.studies import read_study

    monkeypatch.setattr(demo, "DEMO_WEIGHTS", tmp_path / "absent.safetensors")
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--preset", "tiny", "--scale", "0.5", "--ig-steps", "4"]) == 0
    text = capsys.readouterr().out
    assert not text.lstrip().startswith("{") and text.rstrip().endswith(f"*** {demo.UNTRAINED} ***")
    assert str(out / "result.json") in text and "Shapley" in text
    study = read_study(out / demo.STUDY_FOLDER)
    assert study.clinical.extra["mask"] == "lesion_mask.nii.gz"
    refs = {"dce": study.dce[0], "dwi": study.dwi[max(study.dwi)], "t2": study.t2}
    for mod, ref in refs.items():
        sal = nib.load(str(out / f"saliency_{mod}.nii.gz"))
        assert sal.shape == ref.data.shape
        assert np.allclose(sal.affine, ref.affine, atol=1e-5)


def test_demo_with_weights_says_phantom_trained(tmp_path, caplog) -> None:
    model = untrained_model(MomeConfig.preset("tiny"), seed=3)
    save_native(model, tmp_path / "demo.safetensors", ModelCard(config={}, training={"data": "phantoms"}))
    with caplog.at_level(logging.INFO):
        result, notice = demo.run_demo(None, weights=tmp_path / "demo.safetensors", scale=0.5, explain=False)
    assert notice == demo.TRAINED_ON_PHANTOMS == "demo weights trained on synthetic phantoms, not for clinical use"
    assert notice in caplog.text and result.explain is None
    assert result.provenance["model"]["source"] == "demo.safetensors" and result.provenance["model"]["trained"]


@pytest.mark.parametrize("tta", ["none", "interactive"])
def test_summary_lines_mention_the_notice(tmp_path, monkeypatch, tta: str) -> None:
    monkeypatch.setattr(demo, "DEMO_WEIGHTS", tmp_path / "absent.safetensors")
    result, notice = demo.run_demo(None, preset="tiny", scale=0.5, explain=False, tta=tta)
    lines = demo.summary_lines(result, notice)
    assert lines[0] == lines[-1] == f"*** {demo.UNTRAINED} ***"
    assert any(line.startswith("malignancy probability") for line in lines)


def test_untrained_demo_preset_uses_the_demo_preprocessing(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "DEMO_WEIGHTS", tmp_path / "absent.safetensors")
    pred, notice = demo.demo_predictor()
    assert notice == demo.UNTRAINED and pred.preprocess_options.crop == ("dce", "dwi", "t2")
    tiny, _ = demo.demo_predictor(preset="tiny")
    assert tiny.preprocess_options.crop == ("dce", "t2")  # other presets: the paper's preprocessing
