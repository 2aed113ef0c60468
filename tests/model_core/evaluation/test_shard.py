"""``mome predict`` under torchrun: 2 CPU processes on gloo (a subprocess, so pytest-socket's ban on sockets
in the test process does not apply) give the same merged file as one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from model_core import MomeConfig
from model_core.engine.result import VOLATILE
from model_core.evaluation.shard import merge_parts, part_path
from model_core.network.factory import untrained_model
from model_core.phantom import write_cohort
from model_core.weights.native import ModelCard, save_native


def _stable(path: Path) -> list[dict]:
    """The lines without the fields that differ between identical runs."""
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        for k in VOLATILE:
            rec.pop(k, None)
        out.append(rec)
    return out


def test_merge_parts_keeps_manifest_order_and_the_last_result(tmp_path: Path) -> None:
    man = tmp_path / "m.csv"
    man.write_text("case_id,path\na,x\nb,x\nc,x\nd,x\n")
    out = tmp_path / "p.jsonl"
    out.write_text('{"case_id": "c", "error": "E: old"}\n')
    p0, p1 = part_path(out, 0, 2), part_path(out, 1, 2)
    p0.write_text('{"case_id": "c", "probability": 0.3}\n{"case_id": "a", "probability": 0.1}\n{"case_id": "a", "pr')
    p1.write_text('{"case_id": "b", "error": "E: bad"}\n')
    assert merge_parts(man, out, [p0, p1]) == 3
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        {"case_id": "a", "probability": 0.1}, {"case_id": "b", "error": "E: bad"}, {"case_id": "c", "probability": 0.3}]
    assert not p0.exists() and not p1.exists()


def test_torchrun_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    csv_path = write_cohort(5, "ds2", seed=4, out_dir=root, scale=0.5, formats=("nifti",), progress=False)
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with csv_path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writerow({**rows[0], "case_id": "missing", "path": "nowhere"})
    weights = tmp_path / "m.safetensors"
    save_native(untrained_model(MomeConfig.preset("tiny")), weights, ModelCard(config={}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    args = ["predict", str(csv_path), "--checkpoint", str(weights), "--device", "cpu", "--threads", "1",
            "--tta", "interactive"]
    one = subprocess.run([sys.executable, "-m", "model_core.cli.main", *args, "--out", str(tmp_path / "one.jsonl")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 1, one.stderr[-3000:]  # the missing case failed, the rest finished
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "model_core.cli.main", *args, "--out", str(tmp_path / "two.jsonl")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.stderr.count("rank 0 of 2") == 1 and two.stderr.count("rank 1 of 2") == 1, two.stderr[-3000:]
    summary = json.loads(two.stdout)  # rank 0 alone prints
    assert summary["merged_lines"] == 6 and summary["cases"] == 3
    a, b = _stable(tmp_path / "one.jsonl"), _stable(tmp_path / "two.jsonl")
    assert [r["case_id"] for r in a] == [r["case_id"] for r in b] and len(a) == 6
    assert a == b
    assert all(len(r["subsets"]) == 8 for r in a if "probability" in r) and "error" in a[-1]
    assert not list(tmp_path.glob("two.jsonl.part*"))
