"""The network's structure, counts, missing-modality semantics and parameter groups."""

from __future__ import annotations

import pytest
import torch

from model_core import Mome, MomeConfig
from model_core.errors import ConfigError, InputShapeError


def _inputs(cfg: MomeConfig, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, cfg.in_chans[m], *cfg.sizes[m], generator=g) for m in ("dce", "dwi", "t2")}


def _randomise(model: Mome, seed: int = 1) -> Mome:
    """Re-draw every parameter so that adapters and head matter (the official init zeroes them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() < 2 else p.shape[-1] ** -0.5))
    return model


def test_base_parameter_counts_match_the_spec() -> None:
    with torch.device("meta"):  # shapes only: no 1 GB allocation
        counts = Mome(MomeConfig(), init=False).parameter_counts()
    assert counts.authors_total == 290_751_362
    assert counts.authors_trainable == 35_311_490
    assert counts.unique_total == 120_458_114  # frozen A/B/C stored once
    assert counts.unique_trainable == 35_311_490


def test_untied_base_stores_every_copy() -> None:
    model = Mome(MomeConfig.preset("fixture"), tied=False)
    counts = model.parameter_counts()
    assert counts.unique_total == counts.authors_total == 3_347_234


def test_official_init_outputs_near_zero_adapters() -> None:
    cfg = MomeConfig.preset("tiny")
    model = Mome(cfg).eval()
    x = _inputs(cfg)
    h = torch.randn(1, 5, cfg.embed_dim)
    assert torch.equal(model.beit3.encoder.layers[0].MLP_Adapter.A(h), torch.zeros_like(h))
    assert model(**x).abs().max() < 1e-2  # head scaled by 1e-3


@torch.no_grad()
def test_every_subset_runs_and_dce_absent_keeps_cls_row_1() -> None:
    cfg = MomeConfig.preset("tiny")
    model = _randomise(Mome(cfg, tied=False)).eval()
    x = _inputs(cfg, batch=2)
    outs = {}
    for subset in ["dce", "dwi", "t2", "dce+dwi", "dce+t2", "dwi+t2", "dce+dwi+t2", ""]:
        kw = {m: x[m] for m in subset.split("+") if m}
        outs[subset] = model(**kw, batch_size=2)
        assert outs[subset].shape == (2, 2) and torch.isfinite(outs[subset]).all()
    assert len({tuple(v.flatten().tolist()) for v in outs.values()}) == 8  # all distinct
    # prior: the CLS token alone, at position row 1 of table A
    segs = model.encode(batch_size=2)
    assert segs[0].shape == (2, 1, cfg.embed_dim) and segs[1] is None and segs[2] is None
    expected = model.beit3.dce_embed.cls_token + model.beit3.encoder.embed_positions.A.weight[1]
    x0, lengths = model.embed(batch_size=2)
    assert lengths == (1, 0, 0) and torch.equal(x0, expected.expand(2, 1, -1))
    assert torch.equal(outs[""][0], outs[""][1])  # the prior does not depend on the sample


@torch.no_grad()
def test_segments_after_split_layers_are_independent_of_other_modalities() -> None:
    cfg = MomeConfig.preset("tiny")
    model = _randomise(Mome(cfg, tied=False)).eval()
    x = _inputs(cfg)
    full = model.encode(**x)
    alone = [model.encode(dce=x["dce"])[0], model.encode(dwi=x["dwi"])[1], model.encode(t2=x["t2"])[2]]
    for a, b in zip(full, alone, strict=True):
        assert (a - b).abs().max() < 1e-5


def test_input_validation_names_the_problem() -> None:
    cfg = MomeConfig.preset("tiny")
    model = Mome(cfg)
    x = _inputs(cfg)
    with pytest.raises(InputShapeError, match="dwi"):
        model(dce=x["dce"], dwi=torch.zeros(1, 1, 8, 8, 8))
    with pytest.raises(InputShapeError, match="batch"):
        model(dce=x["dce"], t2=torch.cat([x["t2"], x["t2"]]))
    with pytest.raises(ConfigError, match="multiple of 16"):
        MomeConfig(sizes={"dce": (100, 64, 32), "dwi": (64, 32, 16), "t2": (96, 64, 16)})
    with pytest.raises(ConfigError, match="num_heads"):
        MomeConfig(embed_dim=100, num_heads=12)


def test_parameter_groups_follow_the_paper() -> None:
    model = Mome(MomeConfig.preset("tiny"))
    groups = model.named_parameter_groups()
    tr = {n for n, _ in groups["trainable"]}
    fr = {n for n, _ in groups["frozen"]}
    assert not tr & fr
    assert any("MLP_Adapter.moe.phi" in n for n in tr) and "head.weight" in tr and "fc_norm.weight" in tr
    assert "beit3.dce_embed.cls_token" in tr and "beit3.encoder.embed_positions.B.weight" in tr
    assert any("self_attn.q_proj" in n for n in fr) and any(".ffn." in n for n in fr)
    model.freeze_backbone()
    assert all(p.requires_grad == (n in tr) for n, p in model.named_parameters())
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_backbone_gets_no_gradient_and_adapters_do() -> None:
    cfg = MomeConfig.preset("tiny")
    model = _randomise(Mome(cfg, tied=False))
    model.freeze_backbone()
    model(**_inputs(cfg))[:, 1].sum().backward()
    for n, p in model.named_parameters():
        if p.requires_grad and "embed_positions.A" not in n:
            assert p.grad is not None, n
        if not p.requires_grad:
            assert p.grad is None, n


def test_drop_path_only_in_training() -> None:
    cfg = MomeConfig.preset("tiny").replace(drop_path_rate=0.5)
    model = _randomise(Mome(cfg, tied=False))
    x = _inputs(cfg, batch=4)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**x), model(**x))
        model.train()
        a, b = model(**x), model(**x)
    assert not torch.equal(a, b)


def test_tie_and_untie_keep_values() -> None:
    cfg = MomeConfig.preset("tiny")
    model = _randomise(Mome(cfg)).eval()  # tied by default
    assert all(mw.is_tied for _, mw in model.frozen_multiways())
    x = _inputs(cfg)
    with torch.no_grad():
        before = model(**x)
        model.untie_frozen()
        assert all(not mw.is_tied for _, mw in model.frozen_multiways())
        # same maths; tied runs one matmul over the joined sequence, untied one per segment
        assert (model(**x) - before).abs().max() < 1e-5
        model.beit3.encoder.layers[0].ffn.B.fc1.weight.add_(1.0)
        assert not torch.equal(model(**x), before)


@torch.no_grad()
def test_tokenizer_normalisation_paths_agree(monkeypatch) -> None:
    """Batch-norm (B=1), instance-norm (B>1) and the in-place path for huge maps compute the same."""
    import model_core.network.tokenizer as tok

    cfg = MomeConfig.preset("tiny")
    stem = Mome(cfg).beit3.dce_embed
    x = _inputs(cfg, batch=2)["dce"]
    batched = stem(x)
    single = torch.cat([stem(x[:1]), stem(x[1:])])
    monkeypatch.setattr(tok, "_INPLACE_BYTES", 0)
    inplace = torch.cat([stem(x[:1]), stem(x[1:])])
    assert (batched - single).abs().max() < 1e-5
    assert (inplace - single).abs().max() < 1e-5
