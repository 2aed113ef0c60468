"""``mome reproduce-paper`` at CI size: phantom cohorts of the three sites, the demo model, the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_core.engine.demo import DEMO_WEIGHTS


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="the demo weights ship with the package")
def test_reproduce_paper_ci_size_writes_the_report_and_resumes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from model_core.cli.main import main

    args = ["reproduce-paper", "--out", str(tmp_path), "--size", "ci", "--n-ds1", "10", "--bootstrap", "100"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: v["n"] for k, v in summary["cohorts"].items()} == {"ds1": 10, "ds2": 8, "ds3": 8, "ds1+ds2": 18}
    doc = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    ds1 = doc["cohorts"]["ds1"]
    assert len(ds1["subsets"]) == 7 and ds1["n_failed"] == 0
    assert set(ds1["subgroups"]) == {"age", "bpe", "birads4", "field_strength"}
    assert doc["birads4_transfer"][0]["source"] == "ds1" and doc["model_card"]["name"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "ds3" in html and "data:image/png;base64," in html
    lines = (tmp_path / "predictions" / "ds2.jsonl").read_text().splitlines()
    assert len(lines) == 8
    # a second run generates and predicts nothing again
    assert main(args) == 0
    assert (tmp_path / "predictions" / "ds2.jsonl").read_text().splitlines() == lines


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="the demo weights ship with the package")
def test_discard_studies_keeps_labels_and_predictions_and_resumes(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from model_core.cli.main import main
    from model_core.weights.native import card_path_for, load_native

    weights = tmp_path / "model" / "demo.safetensors"
    weights.parent.mkdir()
    shutil.copy(DEMO_WEIGHTS, weights)
    shutil.copy(card_path_for(DEMO_WEIGHTS), card_path_for(weights))
    out = tmp_path / "run"
    args = ["reproduce-paper", "--out", str(out), "--size", "ci", "--n-ds1", "10", "--scale", "0.5",
            "--bootstrap", "50", "--discard-studies", "--weights", str(weights), "--update-card"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["cohorts"]
    _, card = load_native(weights)  # the seal still holds: only metrics changed
    doc = json.loads((out / "report" / "evaluation.json").read_text())
    table = card.metrics["subsets"]
    assert set(table) == {"ds1", "ds2", "ds3"} and card.metrics["subsets_protocol"]["seeds"]["ds3"] == 3003
    # the cohorts come from the world the model was trained on
    assert card.metrics["subsets_protocol"]["world"] == card.phantom_world == doc["settings"]["world"]
    assert json.loads((out / "cohorts" / "ds2" / "cohort.json").read_text())["world"] == card.phantom_world
    for site, entry in table.items():
        assert {k for k in entry if "+" in k or k in ("dce", "dwi", "t2")} == {
            "dce", "dwi", "t2", "dce+dwi", "dce+t2", "dwi+t2", "dce+dwi+t2"}
        assert entry["dce+dwi+t2"]["auroc"] == pytest.approx(doc["cohorts"][site]["model"]["auroc"]["value"])
    for site in ("ds1", "ds2", "ds3"):
        root = out / "cohorts" / site
        n = 10 if site == "ds1" else 8
        assert not list(root.glob("case_*/nifti")) and len(list(root.glob("case_*/truth.json"))) == n
        assert len((out / "predictions" / f"{site}.jsonl").read_text().splitlines()) == n
    lines = (out / "predictions" / "ds3.jsonl").read_text()
    assert main(args) == 0  # resumed: the images are gone, nothing is regenerated or predicted again
    assert json.loads(capsys.readouterr().out)["cohorts"] == first
    assert (out / "predictions" / "ds3.jsonl").read_text() == lines
    assert not list((out / "cohorts" / "ds1").glob("case_*/nifti"))
