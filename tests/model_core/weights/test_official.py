"""Checkpoint safety and strictness: authors' .pth, BEiT-3 import, native safetensors + model card."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from model_core import Mome, MomeConfig, load_official_state_dict
from model_core.errors import CheckpointError, IntegrityError, UnsafeCheckpointError
from model_core.weights.beit3 import load_beit3_pretrained
from model_core.weights.convert import convert_official
from model_core.weights.native import ModelCard, card_path_for, load_native, save_native
from model_core.weights.official import infer_config, safe_torch_load

SENTINEL_ENV = "MOME_TEST_SENTINEL"


class Payload:
    """A pickle payload: unpickling it would create a file (code execution)."""

    def __reduce__(self):  # noqa: D105
        return (os.system, (f"touch {os.environ[SENTINEL_ENV]}",))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def _tiny() -> Mome:
    return Mome(MomeConfig.preset("tiny"), tied=False).eval()


@pytest.mark.parametrize("where", ["top", "args", "state_dict"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, monkeypatch, where: str) -> None:
    sentinel = tmp_path / "pwned"
    monkeypatch.setenv(SENTINEL_ENV, str(sentinel))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # must not re-enable unpickling
    sd = _tiny().state_dict()
    obj = {"top": Payload(), "args": {"state_dict": sd, "args": Payload()},
           "state_dict": {"state_dict": {**sd, "evil": Payload()}}}[where]
    path = tmp_path / "evil.pth"
    torch.save(obj, path)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_official_state_dict(_tiny(), path)
    assert not sentinel.exists()


def test_argparse_namespace_is_allowed(tmp_path: Path) -> None:
    import argparse

    model = _tiny()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    target = Mome(MomeConfig.preset("tiny")).eval()
    load_official_state_dict(target, path)
    assert _same_weights(target, model)


def test_wrappers_and_dataparallel_prefix(tmp_path: Path) -> None:
    sd = _tiny().state_dict()
    for obj in ({"model": sd}, {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, sd):
        target = _tiny()
        load_official_state_dict(target, obj)
        assert torch.equal(target.head.weight, sd["head.weight"])


def test_missing_unexpected_and_misshaped_keys_are_all_named() -> None:
    sd = dict(_tiny().state_dict())
    del sd["beit3.encoder.layers.1.ffn.B.fc1.weight"]
    sd["beit3.encoder.layers.0.MLP_Adapter.A.D_fc1.weight"] = torch.zeros(3, 3)
    sd["surplus.weight"] = torch.zeros(1)
    target = _tiny()
    before = target.head.weight.clone()
    with pytest.raises(CheckpointError) as err:
        load_official_state_dict(target, sd)
    msg = str(err.value)
    assert "missing: beit3.encoder.layers.1.ffn.B.fc1.weight" in msg
    assert "unexpected: surplus.weight" in msg
    assert re.search(r"mis-shaped: beit3\.encoder\.layers\.0\.MLP_Adapter\.A\.D_fc1\.weight: checkpoint \(3, 3\)", msg)
    assert torch.equal(target.head.weight, before)  # nothing half-loaded


def test_equal_copies_load_tied_unequal_untied() -> None:
    src = Mome(MomeConfig.preset("tiny")).eval()  # tied: A == B == C
    target = Mome(MomeConfig.preset("tiny"), tied=False)
    report = load_official_state_dict(target, src.state_dict())
    assert report.untied == [] and all(mw.is_tied for _, mw in target.frozen_multiways())
    src.untie_frozen()
    with torch.no_grad():
        src.beit3.encoder.layers[2].self_attn.q_proj.C.bias.add_(0.5)
    report = load_official_state_dict(target, src.state_dict())
    assert report.untied == ["beit3.encoder.layers.2.self_attn.q_proj"]
    assert torch.equal(target.beit3.encoder.layers[2].self_attn.q_proj.C.bias,
                       src.beit3.encoder.layers[2].self_attn.q_proj.C.bias)


def _beit3_state_dict(cfg: MomeConfig, width: int | None = None) -> dict[str, torch.Tensor]:
    """A synthetic BEiT-3 checkpoint: vision (.A.) and language (.B.) experts plus pretraining extras."""
    d = width or cfg.embed_dim
    g = torch.Generator().manual_seed(3)
    sd: dict[str, torch.Tensor] = {
        "vision_embed.proj.weight": torch.randn(d, 3, 16, 16, generator=g),
        "vision_embed.cls_token": torch.randn(1, 1, d, generator=g),
        "text_embed.weight": torch.randn(10, d, generator=g),
        "encoder.embed_positions.A.weight": torch.randn(199, d, generator=g),
        "encoder.layer_norm.weight": torch.ones(d),
    }
    for i in range(cfg.depth):
        p = f"encoder.layers.{i}."
        for e in ("A", "B"):
            for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                sd[f"{p}self_attn.{name}.{e}.weight"] = torch.randn(d, d, generator=g)
                sd[f"{p}self_attn.{name}.{e}.bias"] = torch.randn(d, generator=g)
            for ln, n in (("self_attn.inner_attn_ln", d), ("self_attn_layer_norm", d), ("final_layer_norm", d),
                          ("ffn", None)):
                if n is None:
                    sd[f"{p}ffn.{e}.fc1.weight"] = torch.randn(cfg.ffn_dim, d, generator=g)
                    sd[f"{p}ffn.{e}.fc1.bias"] = torch.randn(cfg.ffn_dim, generator=g)
                    sd[f"{p}ffn.{e}.fc2.weight"] = torch.randn(d, cfg.ffn_dim, generator=g)
                    sd[f"{p}ffn.{e}.fc2.bias"] = torch.randn(d, generator=g)
                    sd[f"{p}ffn.{e}.ffn_layernorm.weight"] = torch.randn(cfg.ffn_dim, generator=g)
                    sd[f"{p}ffn.{e}.ffn_layernorm.bias"] = torch.randn(cfg.ffn_dim, generator=g)
                else:
                    sd[f"{p}{ln}.{e}.weight"] = torch.randn(n, generator=g)
                    sd[f"{p}{ln}.{e}.bias"] = torch.randn(n, generator=g)
    return sd


def test_beit3_import_loads_vision_expert_everywhere(tmp_path: Path) -> None:
    cfg = MomeConfig.preset("tiny")
    sd = _beit3_state_dict(cfg)
    path = tmp_path / "beit3_base_patch16_224.pth"
    torch.save({"model": sd}, path)
    model = Mome(cfg, tied=False)
    adapter_before = model.beit3.encoder.layers[0].MLP_Adapter.B.D_fc1.weight.clone()
    report = load_beit3_pretrained(model, path)
    layer = model.beit3.encoder.layers[1]
    assert all(mw.is_tied for _, mw in model.frozen_multiways())
    assert torch.equal(layer.self_attn.q_proj.C.weight, sd["encoder.layers.1.self_attn.q_proj.A.weight"])
    assert torch.equal(layer.ffn.B.fc2.weight, sd["encoder.layers.1.ffn.A.fc2.weight"])
    assert torch.equal(model.beit3.encoder.layers[0].MLP_Adapter.B.D_fc1.weight, adapter_before)
    assert "encoder.layers.0.self_attn.q_proj.B.weight" in report.discarded  # language expert
    assert "encoder.embed_positions.A.weight" in report.discarded
    assert "head.weight" in report.fresh and "beit3.dce_embed.cls_token" in report.fresh
    assert not any(".B." in k or ".C." in k for k in report.loaded)


def test_beit3_with_other_width_is_refused_before_loading() -> None:
    cfg = MomeConfig.preset("tiny")
    model = Mome(cfg, tied=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_beit3_pretrained(model, _beit3_state_dict(cfg, width=48))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_native_round_trip_and_card(tmp_path: Path) -> None:
    model = Mome(MomeConfig.preset("tiny")).eval()  # tied: stored once
    card = save_native(model, tmp_path / "m.safetensors",
                       ModelCard(config={}, metrics={"auroc": 0.9}, thresholds={"birads4": {"tau": 0.1}}))
    assert card_path_for(tmp_path / "m.safetensors").name == "m.card.json"
    data = json.loads((tmp_path / "m.card.json").read_text())
    assert data["weights_sha256"] == card.weights_sha256 and data["tied_modules"]
    assert "Research use only" in data["intended_use"]
    loaded, card2 = load_native(tmp_path / "m.safetensors")
    assert card2.thresholds == {"birads4": {"tau": 0.1}} and loaded.cfg == model.cfg
    assert _same_weights(loaded, model)
    x = {m: torch.randn(1, model.cfg.in_chans[m], *model.cfg.sizes[m]) for m in ("dce", "dwi", "t2")}
    with torch.no_grad():
        assert torch.equal(loaded(**x), model(**x))


def test_one_flipped_byte_is_caught_by_sha256(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_native(_tiny(), path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="sha256"):
        load_native(path)


def test_card_is_required(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_native(_tiny(), path)
    card_path_for(path).unlink()
    with pytest.raises(CheckpointError, match="card"):
        load_native(path)


def test_convert_authors_pth_to_native(tmp_path: Path) -> None:
    src = _tiny()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    torch.save({"epoch": 1, "state_dict": src.state_dict(), "optimizer": {}}, tmp_path / "a.pth")
    convert_official(tmp_path / "a.pth", tmp_path / "a.safetensors", base=MomeConfig.preset("tiny"))
    model, card = load_native(tmp_path / "a.safetensors")
    assert card.provenance["converted_from"] == "a.pth"
    assert _same_weights(model, src)


def test_infer_config_from_the_fixture_shapes() -> None:
    from tests.conftest import shared_path

    sd = torch.load(shared_path("fixtures", "mome_parity", "mome_small_state_dict.pt"), weights_only=True)
    assert infer_config(sd, MomeConfig.preset("fixture")) == MomeConfig.preset("fixture")
    with pytest.raises(CheckpointError, match="position tables"):
        infer_config(sd, MomeConfig())  # base canvases do not fit the fixture's tables


def test_not_a_checkpoint_gives_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="junk.pth"):
        safe_torch_load(bad)
    with pytest.raises(CheckpointError, match="no such"):
        safe_torch_load(tmp_path / "absent.pth")
