"""Data parallel under torchrun: 2 CPU processes on gloo (loopback TCP; a subprocess, so pytest-socket's
ban on sockets in the test process does not apply)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from model_core.train.state import model_from_state, read_state


def test_torchrun_two_gloo_processes(cohorts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "model_core.train", "--train-csv", str(cohorts["train"]), "--val-csv", str(cohorts["val"]),
           "--preset", "tiny", "--epochs", "1", "--accumulation", "4", "--seed", "5", "--out", str(out),
           "--cache", str(cohorts["cache"]), "--no-progress", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 replicas bitwise identical" in proc.stderr  # rank 0 checked every rank's weights digest
    assert proc.stderr.count("rank 0 of 2") == 1 and proc.stderr.count("rank 1 of 2") == 1
    summary = json.loads(proc.stdout)  # rank 0 alone prints the summary
    assert summary[str(out)]["finished"]
    state = read_state(out / "train_state.pt")
    assert state["key"]["world_size"] == 2 and state["history"][0]["train_samples"] == 8
    assert state["history"][0]["optimizer_steps"] == 2  # 4 local cases per rank, 2 per rank per step
    model = model_from_state(state)
    best = load_file(str(out / "best.safetensors"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best.items())
