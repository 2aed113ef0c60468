from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_core.network.config import MomeConfig
from model_core.train import loop
from model_core.train.ema import WeightAverage
from model_core.train.options import TrainError, TrainOptions
from model_core.train.run import RunSpec, train
from model_core.train.state import read_state


def _spec(cohorts: dict[str, Path], cfg: MomeConfig, out: Path, **kw: object) -> RunSpec:
    base = dict(train_csvs=(str(cohorts["train"]),), out_dir=str(out), val_csvs=(str(cohorts["val"]),),
                config=cfg, cache_dir=str(cohorts["cache"]), progress=False)
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def test_average_follows_the_warmed_up_decay_and_swaps_back() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    avg = WeightAverage([("w", w)], decay=0.9)
    expected = w.detach().clone()
    for t, value in enumerate([3.0, 5.0, -1.0, 2.0, 7.0, 0.5, 4.0, 4.0, 1.0, -3.0, 2.0, 6.0]):
        with torch.no_grad():
            w.fill_(value)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * torch.full((2,), value)
        avg.update()
    assert avg.steps == 12 and avg.current_decay() == pytest.approx(13 / 22)
    assert torch.allclose(avg.average["w"], expected, atol=1e-6)
    with avg.swapped():
        assert torch.equal(w.detach(), avg.average["w"])
    assert torch.equal(w.detach(), torch.full((2,), 6.0))
    with pytest.raises(TrainError, match="decay"):
        WeightAverage([("w", w)], decay=1.0)
    other = WeightAverage([("w", w)], decay=0.5)
    with pytest.raises(TrainError, match="decay"):
        other.load_state_dict(avg.state_dict())


def test_ema_training_saves_the_average_and_resumes_bitwise(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "auroc", lambda y, s: 0.75)  # a tie every epoch: the last epoch is the best
    opts = TrainOptions(epochs=2, accumulation=2, seed=3, ema=0.8)
    full = train(_spec(cohorts, tiny_cfg, tmp_path / "full"), opts)
    state = read_state(tmp_path / "full" / loop.STATE_FILE)
    assert state["ema"]["steps"] == 8 and state["key"]["options"]["ema"] == 0.8
    raw = full.model.state_dict()
    assert all(torch.equal(raw[k], state["model"][k]) for k in raw)  # the state holds the raw weights
    best = load_file(str(tmp_path / "full" / loop.BEST_FILE))
    assert full.progress.best_epoch == 2  # the checkpoint is the average, not the raw weights
    avg = state["ema"]["average"]
    shared = [k for k in avg if k in best]
    assert shared and all(torch.equal(best[k], avg[k]) for k in shared)
    assert any(not torch.equal(best[k], raw[k]) for k in shared)
    train(_spec(cohorts, tiny_cfg, tmp_path / "part"), dataclasses.replace(opts, stop_after=1))
    assert read_state(tmp_path / "part" / loop.STATE_FILE)["ema"]["steps"] == 4
    resumed = train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), opts)
    assert all(torch.equal(resumed.model.state_dict()[k], raw[k]) for k in raw)
    again = read_state(tmp_path / "part" / loop.STATE_FILE)["ema"]["average"]
    assert all(torch.equal(again[k], state["ema"]["average"][k]) for k in again)
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), dataclasses.replace(opts, ema=0.9))
    plain = train(_spec(cohorts, tiny_cfg, tmp_path / "plain"), dataclasses.replace(opts, ema=0.0))
    assert "ema" not in read_state(tmp_path / "plain" / loop.STATE_FILE)
    assert "ema" not in TrainOptions().resume_key()
    assert all(torch.equal(plain.model.state_dict()[k], raw[k]) for k in raw)  # averaging leaves training alone
    with pytest.raises(TrainError, match="ema"):
        TrainOptions(ema=-0.1)
