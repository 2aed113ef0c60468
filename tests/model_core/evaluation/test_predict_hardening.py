"""Hardening items 5 and 7 in ``mome predict``: every bad study recorded with a typed error and the cohort
goes on, whatever the exception; one output line and one audit line per case; torn tails repaired; output
names confined; folder paths hashed in error lines and logs by default."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from model_core import MomeConfig
from model_core.cli.main import main
from model_core.engine.audit import read_audit
from model_core.engine.predictor import Predictor, RunOptions
from model_core.evaluation import predict as cohort_mod
from model_core.evaluation.predict import (
    CohortError,
    case_dir,
    case_dir_name,
    path_token,
    predict_cohort,
    read_cohort,
)
from model_core.network.factory import untrained_model
from model_core.phantom import write_cohort
from model_core.runtime import Runtime
from model_core.weights.native import ModelCard, save_native


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hard")
    good_csv = write_cohort(2, "ds1", seed=5, out_dir=root / "good", scale=0.5, formats=("nifti",), progress=False)
    weights = root / "m.safetensors"
    save_native(untrained_model(MomeConfig.preset("tiny")), weights, ModelCard(config={}))
    bad = root / "bad"
    loop = bad / "Doe^Jane_loop"
    loop.mkdir(parents=True)
    (loop / "a.nii.gz").symlink_to(loop / "a.nii.gz")
    (loop / "study.json").write_text(json.dumps({"dce": ["a.nii.gz", "b.nii.gz"]}))
    (bad / "empty").mkdir()
    return {"root": root, "good_csv": good_csv, "weights": weights, "loop": loop, "empty": bad / "empty"}


def _predictor(world: dict[str, Path], audit: Path | None = None) -> Predictor:
    return Predictor.from_native(world["weights"], runtime=Runtime("cpu", threads=1), audit_log=audit)


def _mixed_csv(world: dict[str, Path], tmp_path: Path) -> tuple[Path, list[str]]:
    good = read_cohort(world["good_csv"])
    rows = [("..", world["loop"]), (good[0].case_id, good[0].path), ("gone", tmp_path / "nowhere"),
            ("boom", good[1].path), ("empty", world["empty"]), (good[1].case_id, good[1].path)]
    path = tmp_path / "mixed.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "path"])
        w.writerows([(cid, str(p)) for cid, p in rows])
    return path, [good[0].case_id, good[1].case_id]


def test_mixed_cohort_finishes_every_good_study_and_records_every_bad_one(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    real = cohort_mod.read_study

    def read_or_explode(path, limits=None):  # noqa: ANN001, ANN202
        """The first read of the second good study (row "boom") raises an untyped MemoryError."""
        if path == read_cohort(world["good_csv"])[1].path and explode:
            explode.pop()
            raise MemoryError("simulated")
        return real(path, limits)

    explode = [True]
    monkeypatch.setattr(cohort_mod, "read_study", read_or_explode)
    mixed, good_ids = _mixed_csv(world, tmp_path)
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "out.jsonl"
    opts = RunOptions(tta="none", explain=False)
    with caplog.at_level(logging.INFO):
        counts = predict_cohort(_predictor(world, audit), mixed, out, options=opts)
    assert counts == {"cases": 6, "skipped": 0, "done": 2, "errors": 4}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["case_id"] for x in lines] == ["..", good_ids[0], "gone", "boom", "empty", good_ids[1]]
    errors = {x["case_id"]: x for x in lines if "error" in x}
    assert errors["boom"]["error_type"] == "MemoryError" and "unexpected" in errors["boom"]["error"]
    assert errors[".."]["error_type"] == "StudyReadError" and "symlink loop" in errors[".."]["error"]
    assert errors["gone"]["error_type"] == errors["empty"]["error_type"] == "StudyReadError"
    # the folder names (patient names) never reach the output or the logs
    assert "Doe^Jane" not in out.read_text() and "Doe^Jane" not in caplog.text
    assert path_token(world["loop"]) in errors[".."]["error"]
    # exactly one audit line per case, failed reads included
    assert len(read_audit(audit)) == 6 and "Doe^Jane" not in audit.read_text()
    # the good studies give what they give when run alone
    alone_csv = tmp_path / "alone.csv"
    alone_csv.write_text("case_id,path\n" + "".join(f"{r.case_id},{r.path}\n" for r in read_cohort(world["good_csv"])))
    alone = tmp_path / "alone.jsonl"
    predict_cohort(_predictor(world), alone_csv, alone, options=opts)
    probs = {x["case_id"]: x["probability"] for x in map(json.loads, alone.read_text().splitlines())}
    assert probs == {x["case_id"]: x["probability"] for x in lines if "probability" in x}


def test_resume_repairs_a_torn_tail_and_keeps_one_line_per_case(world: dict[str, Path], tmp_path: Path) -> None:
    good = read_cohort(world["good_csv"])
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(f"case_id,path\na,{good[0].path}\nb,{tmp_path / 'later'}\n")
    out = tmp_path / "o.jsonl"
    out.write_text('{"case_id": "x", "probab')  # an interrupted write
    pred = _predictor(world)
    opts = RunOptions(tta="none", explain=False)
    assert predict_cohort(pred, csv_path, out, options=opts)["errors"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]  # every line is JSON again
    assert [x["case_id"] for x in lines] == ["a", "b"] and "error" in lines[1]
    (tmp_path / "later").symlink_to(good[1].path)  # case b becomes readable
    assert predict_cohort(pred, csv_path, out, options=opts) == {"cases": 2, "skipped": 1, "done": 1, "errors": 0}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["case_id"] for x in lines] == ["a", "b"] and all("probability" in x for x in lines)


@pytest.mark.parametrize("case_id", ["..", ".", "../../etc", "a/b", "/abs", "x\x00y", "é"])
def test_saliency_names_are_sanitised_and_confined(tmp_path: Path, case_id: str) -> None:
    folder = case_dir(tmp_path / "sal", case_id)
    assert folder.parent == (tmp_path / "sal").resolve()
    assert case_dir_name(case_id) not in (".", "..") and "/" not in case_dir_name(case_id)
    assert case_dir_name("case_001") == "case_001" and case_dir_name("a/b") != case_dir_name("a_b")


def test_cli_input_errors_are_one_typed_line(world: dict[str, Path], tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("case_id,path\nJosé,x\n".encode("latin-1"))
    base = ["predict", "--checkpoint", str(world["weights"]), "--device", "cpu"]
    with caplog.at_level(logging.ERROR):
        assert main([*base[:1], str(latin), *base[1:], "--out", str(tmp_path / "o.jsonl")]) == 2
        assert main([*base[:1], str(tmp_path / "missing.csv"), *base[1:], "--out", str(tmp_path / "o.jsonl")]) == 2
        assert main([*base[:1], str(world["good_csv"]), *base[1:], "--out", str(tmp_path)]) == 2
    text = caplog.text
    assert "not UTF-8" in text and "no such cohort CSV" in text and "not a folder" in text
    assert "Traceback" not in text
    with pytest.raises(CohortError):
        read_cohort(latin)
    assert cohort_mod.CohortError is CohortError
