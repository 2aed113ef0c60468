"""``mome reproduce-paper`` at CI size: phantom cohorts of the three sites, the demo model, the report."""

from __future__ import annotations

import json
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
