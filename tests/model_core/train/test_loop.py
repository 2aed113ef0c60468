from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_core.config import MomeConfig
from model_core.native import load_native
from model_core.train import loop
from model_core.train.options import TrainError, TrainOptions
from model_core.train.run import RunSpec, train
from model_core.train.state import read_state


def _spec(cohorts: dict[str, Path], cfg: MomeConfig, out: Path, **kw: object) -> RunSpec:
    base = dict(train_csvs=(str(cohorts["train"]),), out_dir=str(out), val_csvs=(str(cohorts["val"]),),
                config=cfg, cache_dir=str(cohorts["cache"]), progress=False)
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def test_interrupted_and_resumed_run_is_bitwise_identical(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                          tmp_path: Path) -> None:
    # 8 cases, accumulation 3: two gradients carry across each epoch boundary (and across the resume)
    opts = TrainOptions(epochs=2, accumulation=3, seed=7)
    full = train(_spec(cohorts, tiny_cfg, tmp_path / "full"), opts)
    assert full.finished and len(full.progress.history) == 2
    part = train(_spec(cohorts, tiny_cfg, tmp_path / "part"), dataclasses.replace(opts, stop_after=1))
    assert not part.finished and part.progress.epoch == 1
    state = read_state(tmp_path / "part" / loop.STATE_FILE)
    assert state["carried_grads"] and state["epoch"] == 1 and state["rng"]["seed"] == 7
    with pytest.raises(TrainError, match="--resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "part"), opts)
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), TrainOptions(epochs=2, accumulation=3, seed=8))
    resumed = train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), opts)
    assert resumed.finished
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["val_auroc"] for r in full.progress.history] == [r["val_auroc"] for r in resumed.progress.history]
    fa = load_file(str(tmp_path / "full" / loop.BEST_FILE))
    fb = load_file(str(tmp_path / "part" / loop.BEST_FILE))
    assert all(torch.equal(fa[k], fb[k]) for k in fa)
    model, card = load_native(tmp_path / "part" / loop.BEST_FILE)
    assert "synthetic phantoms" in card.intended_use and card.training["seed"] == 7
    assert card.metrics["validation"]["auroc"] == full.progress.best_auroc
    assert card.training["train_cohorts"][0]["seed"] == 1 and card.training["train_cohorts"][0]["site"] == "ds1"
    assert json.loads((tmp_path / "part" / loop.HISTORY_FILE).read_text())[1]["epoch"] == 2


def test_ties_go_to_the_later_epoch(cohorts: dict[str, Path], tiny_cfg: MomeConfig, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "auroc", lambda y, s: 0.75)
    res = train(_spec(cohorts, tiny_cfg, tmp_path / "tie"), TrainOptions(epochs=2, accumulation=4, epoch_end="step"))
    assert res.progress.best_epoch == 2 and [r["best"] for r in res.progress.history] == [True, True]
    assert res.progress.history[0]["optimizer_steps"] == 2


def test_cli_kfold_fold_and_tnbc_guard(cohorts: dict[str, Path], tmp_path: Path) -> None:
    from model_core.cli import main

    out = tmp_path / "cv"
    rc = main(["train", "--train-csv", str(cohorts["train"]), str(cohorts["val"]), "--folds", "2", "--fold", "1",
               "--preset", "tiny", "--epochs", "1", "--accumulation", "2", "--out", str(out), "--cache",
               str(cohorts["cache"]), "--no-progress", "--threads", "1"])
    assert rc == 0
    card = json.loads((out / "best.card.json").read_text())
    assert card["training"]["folds"] == 2 and card["training"]["n_val"] == 7 and card["training"]["n_train"] == 7
    assert card["training"]["command"].startswith("mome train")
    # every malignant phantom here is non-TNBC: a balanced loss cannot be built
    rc = main(["train", "--task", "tnbc", "--train-csv", str(cohorts["train"]), "--val-csv", str(cohorts["val"]),
               "--preset", "tiny", "--epochs", "1", "--out", str(tmp_path / "t"), "--cache", str(cohorts["cache"]),
               "--no-progress"])
    assert rc == 2


def test_dropout_subset_draws_every_proper_subset_and_nothing_at_zero() -> None:
    import numpy as np

    assert len(loop.DROPOUT_SUBSETS) == 6 and ("dce", "dwi", "t2") not in loop.DROPOUT_SUBSETS
    rng = np.random.default_rng(0)
    draws = [loop.dropout_subset(rng, 0.5) for _ in range(2000)]
    shown = [d for d in draws if d is not None]
    assert 0.45 < len(shown) / len(draws) < 0.55 and set(shown) == set(loop.DROPOUT_SUBSETS)
    rng0, ref = np.random.default_rng(1), np.random.default_rng(1)
    assert all(loop.dropout_subset(rng0, 0.0) is None for _ in range(10))
    assert rng0.random() == ref.random()  # p = 0 consumed no random numbers
    with pytest.raises(TrainError, match="modality_dropout"):
        TrainOptions(modality_dropout=1.0)
    # without dropout the resume key is the one states saved before the option existed carry
    assert "modality_dropout" not in TrainOptions().resume_key()
    assert TrainOptions(modality_dropout=0.5).resume_key()["modality_dropout"] == 0.5


def test_modality_dropout_shows_subsets_deterministically(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_core.mome import Mome

    seen: list[tuple[str, ...]] = []
    forward = Mome.forward

    def spy(self: Mome, dce=None, dwi=None, t2=None, **kw):  # type: ignore[no-untyped-def]
        if self.training:
            seen.append(tuple(m for m, v in (("dce", dce), ("dwi", dwi), ("t2", t2)) if v is not None))
        return forward(self, dce, dwi, t2, **kw)

    monkeypatch.setattr(Mome, "forward", spy)
    opts = TrainOptions(epochs=2, accumulation=2, seed=3, modality_dropout=0.6, weight_decay=0.0)
    a = train(_spec(cohorts, tiny_cfg, tmp_path / "a"), opts)
    first, seen[:] = list(seen), []
    b = train(_spec(cohorts, tiny_cfg, tmp_path / "b"), opts)
    assert seen == first and len(first) == 16
    subsets = [s for s in first if s != ("dce", "dwi", "t2")]
    assert subsets and all(s in loop.DROPOUT_SUBSETS for s in subsets)
    assert sum(r["subset_samples"] for r in a.progress.history) == len(subsets)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    card = json.loads((tmp_path / "a" / "best.card.json").read_text())
    assert card["training"]["options"]["modality_dropout"] == 0.6
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "a", resume=True), dataclasses.replace(opts, modality_dropout=0.0))
