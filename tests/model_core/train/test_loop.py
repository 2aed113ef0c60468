from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from model_core.network.config import MomeConfig
from model_core.train import loop
from model_core.train.options import TrainError, TrainOptions
from model_core.train.run import RunSpec, train
from model_core.train.state import read_state
from model_core.weights.native import load_native


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
    assert card.provenance["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
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
    from model_core.cli.main import main

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
    from model_core.network.mome import Mome

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


def test_single_losses_are_the_losses_of_each_present_sequence_alone(tiny_cfg: MomeConfig) -> None:
    from model_core.network.mome import Mome
    from model_core.train.recipe import loss_fn

    torch.manual_seed(0)
    model = Mome(tiny_cfg)
    model.untie_frozen()
    x = {k: torch.randn(1, tiny_cfg.in_chans[k], *tiny_cfg.sizes[k]) for k in ("dce", "dwi", "t2")}
    y, w = torch.tensor([1]), torch.tensor([0.3, 1.7])

    def alone(**kw: torch.Tensor | None) -> torch.Tensor:
        return loss_fn(model(**kw), y, w)

    main, single, _, _ = loop.single_losses(model, x, y, w)
    torch.testing.assert_close(main, alone(**x), rtol=1e-5, atol=1e-6)
    assert single is not None
    want = (alone(dce=x["dce"]) + alone(dwi=x["dwi"]) + alone(t2=x["t2"])) / 3
    torch.testing.assert_close(single, want, rtol=1e-5, atol=1e-6)
    # without DCE the singles are fused with the CLS-only segment, as at missing-modality inference
    main2, single2, _, _ = loop.single_losses(model, {**x, "dce": None}, y, w)
    torch.testing.assert_close(main2, alone(dwi=x["dwi"], t2=x["t2"]), rtol=1e-5, atol=1e-6)
    assert single2 is not None
    torch.testing.assert_close(single2, (alone(dwi=x["dwi"]) + alone(t2=x["t2"])) / 2, rtol=1e-5, atol=1e-6)
    # one present sequence is its own single: no auxiliary term
    assert loop.single_losses(model, {"dce": None, "dwi": x["dwi"], "t2": None}, y, w)[1:] == (None, None, None)
    # the auxiliary term reaches the DWI tokenizer through the DWI-only fusion
    model.zero_grad()
    single.backward()
    assert model.beit3.dwi_embed.stem[0].weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_poe_log_odds_adds_each_sequences_evidence_to_the_prior() -> None:
    prior = 0.4
    odds = [torch.tensor([prior + 1.0, prior]), torch.tensor([prior - 0.25, prior + 2.0])]
    torch.testing.assert_close(loop.poe_log_odds(odds, prior), torch.tensor([prior + 0.75, prior + 2.0]))
    # one expert is itself; uninformative experts leave the prior
    torch.testing.assert_close(loop.poe_log_odds(odds[:1], prior), odds[0])
    torch.testing.assert_close(loop.poe_log_odds([torch.tensor([prior])] * 3, prior), torch.tensor([prior]))
    assert loop._log_odds_of(np.array([1, 1, 1, 0])) == pytest.approx(np.log(3.0))
    assert loop._log_odds_of(np.array([1, 1])) == 0.0


def test_poe_loss_is_the_fused_output_against_the_detached_product_of_the_singles(tiny_cfg: MomeConfig) -> None:
    from model_core.network.mome import Mome

    torch.manual_seed(1)
    model = Mome(tiny_cfg)
    model.untie_frozen()
    x = {k: torch.randn(1, tiny_cfg.in_chans[k], *tiny_cfg.sizes[k]) for k in ("dce", "dwi", "t2")}
    y, prior = torch.tensor([0]), 0.3

    def odds(**kw: torch.Tensor | None) -> torch.Tensor:
        z = model(**kw)
        return z[:, 1] - z[:, 0]

    poe = loop.single_losses(model, x, y, None, prior).poe
    assert poe is not None
    with torch.no_grad():
        soft = torch.sigmoid(prior + sum(odds(**{m: x[m]}) - prior for m in ("dce", "dwi", "t2")))
        want = F.binary_cross_entropy_with_logits(odds(**x), soft)
    torch.testing.assert_close(poe, want, rtol=1e-5, atol=1e-6)
    # the target is detached: its gradient moves the fused output only, so it equals that of BCE(l_all, soft)
    model.zero_grad()
    poe.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    F.binary_cross_entropy_with_logits(odds(**x), soft).backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[n], p.grad, rtol=1e-4, atol=1e-7)


def test_single_loss_training_is_deterministic_and_keyed(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                         tmp_path: Path) -> None:
    opts = TrainOptions(epochs=2, accumulation=2, seed=3, single_loss=1.0, weight_decay=0.0)
    a = train(_spec(cohorts, tiny_cfg, tmp_path / "a"), opts)
    b = train(_spec(cohorts, tiny_cfg, tmp_path / "b"), opts)
    plain = train(_spec(cohorts, tiny_cfg, tmp_path / "p"), dataclasses.replace(opts, single_loss=0.0))
    sa, sb, sp = a.model.state_dict(), b.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sp[k]) for k in sa)
    assert all(r["single_loss"] > 0 for r in a.progress.history)
    assert all(r["single_loss"] == 0 for r in plain.progress.history)
    assert "single_loss" not in TrainOptions().resume_key()
    card = json.loads((tmp_path / "a" / "best.card.json").read_text())
    assert card["training"]["options"]["single_loss"] == 1.0
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "a", resume=True), dataclasses.replace(opts, single_loss=0.0))
    with pytest.raises(TrainError, match="single_loss"):
        TrainOptions(single_loss=-1.0)


def test_poe_loss_training_changes_the_weights_and_is_keyed(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                            tmp_path: Path) -> None:
    opts = TrainOptions(epochs=2, accumulation=2, seed=3, single_loss=1.0, weight_decay=0.0)
    base = train(_spec(cohorts, tiny_cfg, tmp_path / "s"), opts)
    poe = train(_spec(cohorts, tiny_cfg, tmp_path / "q"), dataclasses.replace(opts, poe_loss=2.0))
    sa, sq = base.model.state_dict(), poe.model.state_dict()
    assert not all(torch.equal(sa[k], sq[k]) for k in sa)
    assert all(r["poe_loss"] > 0 for r in poe.progress.history)
    # the term is computed and logged with the single losses even when its weight is 0
    assert all(r["poe_loss"] > 0 for r in base.progress.history)
    assert "poe_loss" not in TrainOptions().resume_key()
    assert json.loads((tmp_path / "q" / "best.card.json").read_text())["training"]["options"]["poe_loss"] == 2.0
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "q", resume=True), opts)
    with pytest.raises(TrainError, match="poe_loss"):
        TrainOptions(poe_loss=-0.5)


def _record_training_inputs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Patch :meth:`Mome.encode` to record, per training-mode call, which sequences were given."""
    from model_core.network.mome import Mome

    seen: list[tuple[str, ...]] = []
    encode = Mome.encode

    def spy(self: Mome, dce=None, dwi=None, t2=None, **kw):  # type: ignore[no-untyped-def]
        present = tuple(m for m, v in (("dce", dce), ("dwi", dwi), ("t2", t2)) if v is not None)
        if self.training and present:
            seen.append(present)
        return encode(self, dce, dwi, t2, **kw)

    monkeypatch.setattr(Mome, "encode", spy)
    return seen


def test_branch_warmup_hides_dce_in_its_first_epochs(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_training_inputs(monkeypatch)
    opts = TrainOptions(epochs=3, accumulation=2, seed=3, branch_warmup=2, single_loss=0.5, weight_decay=0.0)
    run = train(_spec(cohorts, tiny_cfg, tmp_path / "w"), opts)
    assert seen == [("dwi", "t2")] * 16 + [("dce", "dwi", "t2")] * 8
    assert [r["epoch"] for r in run.progress.history] == [1, 2, 3]
    assert run.progress.history[0]["single_loss"] > 0  # the DWI-alone and T2-alone losses of the warm-up
    assert TrainOptions(epochs=3, branch_warmup=2).resume_key()["branch_warmup"] == 2
    assert "branch_warmup" not in TrainOptions().resume_key()
    with pytest.raises(TrainError, match="branch_warmup"):
        TrainOptions(epochs=3, branch_warmup=3)


def test_t2_warmup_shows_t2_alone_then_dwi_and_t2_then_all(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_training_inputs(monkeypatch)
    opts = TrainOptions(epochs=3, accumulation=2, seed=3, branch_warmup=2, t2_warmup=1, single_loss=0.5,
                        weight_decay=0.0, shared_pad=True)
    train(_spec(cohorts, tiny_cfg, tmp_path / "w"), opts)
    # 8 training cases per epoch, one encode of the present sequences each
    assert seen == [("t2",)] * 8 + [("dwi", "t2")] * 8 + [("dce", "dwi", "t2")] * 8
    key = opts.resume_key()
    assert key["t2_warmup"] == 1 and key["shared_pad"] is True
    assert "t2_warmup" not in TrainOptions().resume_key() and "shared_pad" not in TrainOptions().resume_key()
    with pytest.raises(TrainError, match="t2_warmup"):
        TrainOptions(epochs=3, branch_warmup=1, t2_warmup=2)
