"""``mome predict``: a phantom cohort CSV to JSON lines, resumable, bad cases recorded not fatal."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from model_core import MomeConfig
from model_core.cli.main import main
from model_core.errors import MomeError
from model_core.evaluation.predict import finished_cases, read_cohort
from model_core.network.factory import untrained_model
from model_core.phantom import write_cohort
from model_core.weights.native import ModelCard, save_native


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("cohort")
    csv_path = write_cohort(2, "ds1", seed=3, out_dir=root, scale=0.5, formats=("nifti",), progress=False)
    save_native(untrained_model(MomeConfig.preset("tiny")), root / "m.safetensors", ModelCard(config={}))
    return csv_path, root / "m.safetensors"


def test_predict_cohort_is_resumable_and_records_bad_cases(cohort, tmp_path, capsys) -> None:
    csv_path, weights = cohort
    rows = read_cohort(csv_path)
    assert len(rows) == 2 and all(r.path.is_dir() for r in rows)
    bad = tmp_path / "cohort.csv"  # the two cases plus one that does not exist
    with bad.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["case_id", "path"])
        w.writeheader()
        for r in rows:
            w.writerow({"case_id": r.case_id, "path": str(r.path)})
        w.writerow({"case_id": "missing", "path": "nowhere"})
    out = tmp_path / "preds.jsonl"
    args = ["predict", str(bad), "--checkpoint", str(weights), "--out", str(out), "--device", "cpu",
            "--explain", "--ig-steps", "2", "--saliency-dir", str(tmp_path / "sal")]
    assert main(args) == 1  # one case failed
    summary = json.loads(capsys.readouterr().out)
    assert summary["done"] == 2 and summary["errors"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["case_id"] for x in lines] == [rows[0].case_id, rows[1].case_id, "missing"]
    assert "probability" in lines[0] and lines[2]["error"].startswith("StudyReadError")
    assert (tmp_path / "sal" / rows[0].case_id / "saliency_dce.nii.gz").is_file()
    assert finished_cases(out) == {rows[0].case_id, rows[1].case_id}
    main(args)  # resume: only the failed case is tried again
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == 2 and again["done"] == 0 and again["errors"] == 1


def test_cohort_csv_needs_a_path_column(tmp_path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("case_id,file\n1,x\n")
    with pytest.raises(MomeError, match="'path' column"):
        read_cohort(p)
    p.write_text("case_id,path\n1,x\n1,y\n")
    with pytest.raises(MomeError, match="duplicate"):
        read_cohort(p)
