from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome, is_trainable_key
from model_core.train.options import InitSpec, TrainError, TrainOptions
from model_core.train.recipe import build_model, class_weights, loss_fn, make_optimizer, make_scheduler
from model_core.weights.native import ModelCard, save_native


def test_adam_coupled_l2_and_per_epoch_cosine(tiny_cfg: MomeConfig) -> None:
    model, _ = build_model(tiny_cfg, InitSpec())
    opts = TrainOptions(epochs=10)
    opt = make_optimizer(model, opts)
    assert type(opt) is torch.optim.Adam  # coupled L2, not AdamW
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (1e-4, (0.9, 0.999), 1e-8, 5e-4)
    assert sum(p.numel() for p in g["params"]) == sum(p.numel() for p in model.parameters())
    sched = make_scheduler(opt, opts)
    for e in range(10):
        want = 1e-6 + (1e-4 - 1e-6) * (1 + math.cos(math.pi * e / 10)) / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(want, rel=1e-9)
        opt.step()
        sched.step()


def test_class_weights_and_weighted_loss() -> None:
    w = class_weights(np.array([0, 0, 0, 1]), balanced=True)
    assert w is not None and torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    assert class_weights(np.array([0, 1]), balanced=False) is None
    with pytest.raises(TrainError):
        class_weights(np.zeros(3, dtype=int), balanced=True)
    logits, y = torch.tensor([[0.3, -0.2]]), torch.tensor([1])
    assert loss_fn(logits, y, w) == pytest.approx(2.0 * F.cross_entropy(logits, y).item())
    assert TrainOptions(task="tnbc").weighted_loss and not TrainOptions().weighted_loss
    assert not TrainOptions(task="pcr", class_weights="none").weighted_loss


def test_scratch_unties_and_trains_everything(tiny_cfg: MomeConfig) -> None:
    model, report = build_model(tiny_cfg, InitSpec(), seed=4)
    assert not report.frozen_backbone and all(p.requires_grad for p in model.parameters())
    assert all(not mw.is_tied for _, mw in model.frozen_multiways())
    again, _ = build_model(tiny_cfg, InitSpec(), seed=4)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                  strict=True))


def test_xavier_scratch_init(tiny_cfg: MomeConfig) -> None:
    authors, _ = build_model(tiny_cfg, InitSpec(), seed=4)
    model, report = build_model(tiny_cfg, InitSpec(scheme="xavier"), seed=4)
    assert "Xavier init" in report.notes[0] and all(p.requires_grad for p in model.parameters())
    named = dict(model.named_modules())
    q = named["beit3.encoder.layers.0.self_attn.q_proj.A"]
    assert isinstance(q, torch.nn.Linear)
    bound = math.sqrt(6.0 / (q.in_features + q.out_features))  # Xavier-uniform
    assert q.weight.abs().max() <= bound and q.weight.std() > 0.5 * bound / math.sqrt(3)
    q_authors = dict(authors.named_modules())["beit3.encoder.layers.0.self_attn.q_proj.A"]
    assert isinstance(q_authors, torch.nn.Linear) and q.weight.std() > 5 * q_authors.weight.std()
    head_bound = 0.1 * math.sqrt(6.0 / (model.head.in_features + model.head.out_features))
    assert 0.5 * head_bound < model.head.weight.abs().max() <= head_bound
    assert authors.head.weight.abs().max() <= 0.02 * 0.001
    for name, m in model.named_modules():
        if name.endswith("D_fc2"):
            assert isinstance(m, torch.nn.Linear) and not m.weight.any() and not m.bias.any()
    # LayerNorms and convs keep the authors' init: same seed, same values
    sd_a, sd_x = authors.state_dict(), model.state_dict()
    conv = next(k for k in sd_a if k.endswith("stem.0.weight"))
    assert torch.equal(sd_a[conv], sd_x[conv])
    with pytest.raises(TrainError, match="scheme"):
        InitSpec(scheme="kaiming")  # type: ignore[arg-type]
    with pytest.raises(TrainError, match="from scratch only"):
        InitSpec("mome", "m.safetensors", scheme="xavier")


def test_beit3_init_freezes_the_backbone(tiny_cfg: MomeConfig, tmp_path: Path) -> None:
    src = Mome(tiny_cfg)
    sd = {k: v + 1.0 for k, v in src.state_dict().items() if ".A." in k and not is_trainable_key(k)}
    torch.save(sd, tmp_path / "beit3.pth")
    model, report = build_model(tiny_cfg, InitSpec("beit3", str(tmp_path / "beit3.pth")))
    assert report.frozen_backbone
    for n, p in model.named_parameters():
        assert p.requires_grad == is_trainable_key(n), n
    assert torch.equal(model.beit3.encoder.layers[0].ffn.C.fc1.weight, sd["beit3.encoder.layers.0.ffn.A.fc1.weight"])


def test_mome_init_keeps_every_branch_and_the_head(tiny_cfg: MomeConfig, tmp_path: Path) -> None:
    src, _ = build_model(tiny_cfg, InitSpec(), seed=1)
    with torch.no_grad():  # make the DWI and T2 branches differ from DCE, as after training from scratch
        src.beit3.encoder.layers[0].self_attn.q_proj.B.weight.add_(0.25)
        src.beit3.encoder.layers[1].MLP_Adapter.C.D_fc1.weight.add_(0.5)
        src.head.bias.add_(0.1)
    save_native(src, tmp_path / "diag.safetensors", ModelCard(config={}))
    model, report = build_model(tiny_cfg, InitSpec("mome", str(tmp_path / "diag.safetensors")))
    assert report.frozen_backbone and not report.head_reinitialised
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not model.beit3.encoder.layers[0].self_attn.q_proj.B.weight.requires_grad
    assert model.head.weight.requires_grad
    three, rep3 = build_model(tiny_cfg, InitSpec("mome", str(tmp_path / "diag.safetensors")), num_classes=3)
    assert rep3.head_reinitialised and three.head.out_features == 3 and three.cfg.num_classes == 3
    assert torch.equal(three.fc_norm.weight, src.fc_norm.weight)
