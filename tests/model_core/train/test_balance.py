from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import TrainError
from model_core.evaluation import cases as train_data
from model_core.evaluation.cases import CaseRef, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.evaluation.metrics import auroc
from model_core.network.config import MomeConfig
from model_core.train.balance import balance_weights, balanced_order, column_values
from model_core.train.options import TrainOptions
from model_core.train.run import RunSpec, train


def _confounded(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(n,)`` and a column ``(n,)`` that predicts them (AUROC ~0.8), as lesion size does."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return rng.normal(labels * 1.2, 1.0), labels


def _spec(cohorts: dict[str, Path], cfg: MomeConfig, out: Path) -> RunSpec:
    return RunSpec(train_csvs=(str(cohorts["train"]),), out_dir=str(out), val_csvs=(str(cohorts["val"]),),
                   config=cfg, cache_dir=str(cohorts["cache"]), progress=False)


def test_weights_hide_the_column_from_the_label() -> None:
    values, labels = _confounded(3000, 0)
    assert auroc(labels, values) > 0.75
    w = balance_weights(values, labels, 8)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    which = np.argsort(np.argsort(values, kind="stable"), kind="stable") * 8 // len(values)
    for b in range(8):
        assert w[which == b].sum() == pytest.approx(1 / 8)
        assert w[(which == b) & (labels == 1)].sum() == pytest.approx(1 / 16)
    draws = balanced_order(w, seed=1, epoch=0)
    assert len(draws) == len(values)
    # what the network is shown: the column barely ranks the labels (the rest is within-bin spread)
    assert abs(auroc(labels[draws], values[draws]) - 0.5) < 0.06
    assert labels[draws].mean() == pytest.approx(0.5, abs=0.03)


def test_balanced_order_is_seeded_and_padded_for_processes() -> None:
    values, labels = _confounded(101, 2)
    w = balance_weights(values, labels, 2)
    a, b = balanced_order(w, 3, 4), balanced_order(w, 3, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, balanced_order(w, 3, 5))
    padded = balanced_order(w, 3, 4, world=2)
    assert len(padded) == 102 and np.array_equal(padded[:101], a) and padded[101] == a[0]


def test_bad_balancing_inputs_give_clear_errors() -> None:
    values = np.arange(8.0)
    with pytest.raises(TrainError, match="no class-1 case; use fewer bins"):
        balance_weights(values, np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2)
    with pytest.raises(TrainError, match="bins"):
        balance_weights(values, np.array([0, 1] * 4), 9)
    cases = [CaseRef("a", "/x", 1, info={"size": "12.5"}), CaseRef("b", "/y", 0, info={"size": "n/a"})]
    with pytest.raises(TrainError, match="'b' has 'n/a', not a number"):
        column_values(cases, "size")
    with pytest.raises(TrainError, match="no such cohort column"):
        column_values(cases, "diameter")
    assert column_values(cases[:1], "size").tolist() == [12.5]
    with pytest.raises(TrainError, match="balance_from"):
        TrainOptions(epochs=3, balance_by="size", balance_from=3)


def test_training_draws_the_balanced_order_from_balance_from(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    item = train_data.CaseDataset.train_item

    def spy(self: train_data.CaseDataset, i: int, rng: np.random.Generator,  # type: ignore[no-untyped-def]
            shared_pad: bool = False):
        seen.append(i)
        return item(self, i, rng, shared_pad)

    monkeypatch.setattr(train_data.CaseDataset, "train_item", spy)
    opts = TrainOptions(epochs=3, accumulation=2, seed=3, weight_decay=0.0, single_loss=1.0, poe_loss=1.0,
                        balance_by="age", balance_bins=2, balance_from=1)
    spec = _spec(cohorts, tiny_cfg, tmp_path / "b")
    run = train(spec, opts)
    cases = read_cohort(cohorts["train"], get_task("malignancy"))
    w = balance_weights(column_values(cases, "age"), np.array([c.label for c in cases]), 2)
    assert sorted(seen[:8]) == list(range(8))  # epoch 1: every case once
    assert seen[8:16] == balanced_order(w, 3, 1).tolist() and seen[16:] == balanced_order(w, 3, 2).tolist()
    assert len(set(seen[8:])) < 8 or len(set(seen[8:16])) < 8  # drawn with replacement
    assert run.progress.history[-1]["train_samples"] == 8
    key = opts.resume_key()
    assert key["balance_by"] == "age" and key["balance_from"] == 1
    assert "balance_by" not in dataclasses.replace(opts, balance_by=None).resume_key()
    with pytest.raises(TrainError, match="cannot resume"):
        train(dataclasses.replace(spec, resume=True), dataclasses.replace(opts, balance_from=2))


def test_balancing_with_a_class_weighted_loss_warns(cohorts: dict[str, Path], tiny_cfg: MomeConfig, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec(cohorts, tiny_cfg, tmp_path / "w")
    opts = TrainOptions(epochs=1, accumulation=2, class_weights="balanced", balance_by="age", balance_bins=2)
    with caplog.at_level("WARNING", logger="model_core.train.loop"):
        train(spec, opts)
    assert any("class-weighted loss weights the classes again" in r.getMessage() for r in caplog.records)
