from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.train import loop
from model_core.train.options import TrainError, TrainOptions
from model_core.train.run import RunSpec, train
from model_core.train.state import read_state
from model_core.train.token_heads import TokenHeads


def _spec(cohorts: dict[str, Path], cfg: MomeConfig, out: Path, **kw: object) -> RunSpec:
    base = dict(train_csvs=(str(cohorts["train"]),), out_dir=str(out), val_csvs=(str(cohorts["val"]),),
                config=cfg, cache_dir=str(cohorts["cache"]), progress=False)
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def test_a_head_reads_the_maximum_of_its_own_sequences_tokens(tiny_cfg: MomeConfig) -> None:
    torch.manual_seed(0)
    model = Mome(tiny_cfg)
    x = {k: torch.randn(1, tiny_cfg.in_chans[k], *tiny_cfg.sizes[k]) for k in ("dce", "dwi", "t2")}
    segs = model.encode(x["dce"], x["dwi"], x["t2"])
    heads = TokenHeads(("dce", "t2"), tiny_cfg.embed_dim)
    y, w = torch.tensor([1]), torch.tensor([0.4, 1.6])
    t2_logits = heads.heads["t2"](segs[2].amax(dim=1))
    torch.testing.assert_close(heads.logits("t2", segs), t2_logits)
    dce_logits = heads.heads["dce"](segs[0][:, 1:].amax(dim=1))  # not the CLS token
    torch.testing.assert_close(heads.logits("dce", segs), dce_logits)
    want = (F.cross_entropy(t2_logits, y, weight=w) + F.cross_entropy(dce_logits, y, weight=w)) / 2
    got = heads.loss(segs, x, y, w)
    assert got is not None
    torch.testing.assert_close(got, want)
    # a sequence without a head, or an absent one, adds nothing; nothing present -> None
    torch.testing.assert_close(heads.loss(segs, {**x, "dce": None}, y, w), F.cross_entropy(t2_logits, y, weight=w))
    assert heads.loss(segs, {"dce": None, "dwi": x["dwi"], "t2": None}, y, w) is None
    # single_losses reads the heads from the same encoding
    out = loop.single_losses(model, x, y, w, heads=heads)
    assert out.token is not None
    torch.testing.assert_close(out.token, want)
    assert loop.single_losses(model, x, y, w).token is None
    with pytest.raises(TrainError, match="token heads"):
        TokenHeads(("flair",), tiny_cfg.embed_dim)


def test_token_head_options_are_checked_and_keyed() -> None:
    assert "token_head" not in TrainOptions().resume_key()
    key = TrainOptions(token_head=0.5, token_head_on=("t2", "dwi")).resume_key()
    assert key["token_head"] == 0.5 and key["token_head_on"] == ["t2", "dwi"]
    assert TrainOptions.from_dict(TrainOptions(token_head=1.0).to_dict()).token_head_on == ("t2",)
    with pytest.raises(TrainError, match="token_head must"):
        TrainOptions(token_head=-1.0)
    with pytest.raises(TrainError, match="token_head_on"):
        TrainOptions(token_head=1.0, token_head_on=("t2", "t2"))
    with pytest.raises(TrainError, match="token_head_on"):
        TrainOptions(token_head=1.0, token_head_on=())


def test_token_head_training_resumes_bitwise_and_exports_no_head(cohorts: dict[str, Path], tiny_cfg: MomeConfig,
                                                                 tmp_path: Path) -> None:
    # 8 cases, accumulation 3: the heads' gradients carry across the epoch boundary and the resume too
    opts = TrainOptions(epochs=2, accumulation=3, seed=5, weight_decay=0.0, token_head=1.0,
                        token_head_on=("dwi", "t2"))
    full = train(_spec(cohorts, tiny_cfg, tmp_path / "full"), opts)
    assert all(r["token_loss"] > 0 for r in full.progress.history)
    plain = train(_spec(cohorts, tiny_cfg, tmp_path / "plain"), dataclasses.replace(opts, token_head=0.0))
    assert all(r["token_loss"] == 0 for r in plain.progress.history)
    sf, sp = full.model.state_dict(), plain.model.state_dict()
    assert not all(torch.equal(sf[k], sp[k]) for k in sf)  # the heads' loss reaches the network
    train(_spec(cohorts, tiny_cfg, tmp_path / "part"), dataclasses.replace(opts, stop_after=1))
    state = read_state(tmp_path / "part" / loop.STATE_FILE)
    assert set(state["token_heads"]) == {"heads.dwi.0.weight", "heads.dwi.0.bias", "heads.dwi.1.weight",
                                         "heads.dwi.1.bias", "heads.t2.0.weight", "heads.t2.0.bias",
                                         "heads.t2.1.weight", "heads.t2.1.bias"}
    assert any(k.startswith("token_heads.") for k in state["carried_grads"])
    with pytest.raises(TrainError, match="cannot resume"):
        train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), dataclasses.replace(opts, token_head=2.0))
    resumed = train(_spec(cohorts, tiny_cfg, tmp_path / "part", resume=True), opts)
    sr = resumed.model.state_dict()
    assert all(torch.equal(sf[k], sr[k]) for k in sf)
    exported = load_file(str(tmp_path / "full" / loop.BEST_FILE))
    assert not any("head" in k and "token" in k for k in exported) and set(exported) == set(sf)
    card = json.loads((tmp_path / "full" / "best.card.json").read_text())
    assert card["training"]["options"]["token_head"] == 1.0
    assert card["training"]["options"]["token_head_on"] == ["dwi", "t2"]
