"""The subset cache: every subset from the cache equals the full forward on that subset."""

from __future__ import annotations

import pytest
import torch

from model_core import Mome, MomeConfig
from model_core.engine.progress import Steps
from model_core.engine.subsets import (
    PRIOR_KEY,
    SUBSETS,
    build_cache,
    canonical,
    n_available,
    subset_key,
    subset_logits,
    subset_values,
)
from model_core.errors import Cancelled


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)


def trained_looking(cfg: MomeConfig, seed: int = 1) -> Mome:
    """The authors' init plus non-zero adapters and head (as ``mome bench`` does), so every part matters."""
    torch.manual_seed(seed)
    model = Mome(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and float(p.abs().max()) == 0.0:
                p.normal_(0.0, 0.02, generator=g)
        model.head.weight.normal_(0.0, 0.5, generator=g)
    return model.eval()


def canvases(cfg: MomeConfig, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, cfg.in_chans[m], *cfg.sizes[m], generator=g) for m in ("dce", "dwi", "t2")}


@pytest.fixture(scope="module")
def tiny() -> tuple[Mome, dict[str, torch.Tensor]]:
    cfg = MomeConfig.preset("tiny")
    return trained_looking(cfg), canvases(cfg, 3)


def test_the_eight_subsets_and_their_keys() -> None:
    assert len(SUBSETS) == len(set(SUBSETS)) == 8
    assert SUBSETS[0] == () and SUBSETS[-1] == ("dce", "dwi", "t2")
    assert subset_key(()) == PRIOR_KEY == "none" and canonical("none") == canonical("") == ()
    assert subset_key(["t2", "dce"]) == "dce+t2" and canonical("t2+dwi") == ("dwi", "t2")
    assert {subset_key(s) for s in SUBSETS} == {"none", "dce", "dwi", "t2", "dce+dwi", "dce+t2", "dwi+t2",
                                                 "dce+dwi+t2"}
    for bad in ("flair", "dce+dce", ["dce", "x"]):
        with pytest.raises(ValueError):
            canonical(bad)


def test_every_subset_from_the_cache_equals_the_full_forward(tiny) -> None:
    model, x = tiny
    cache = build_cache(model, [([(0, k) for k in range(3)], x)])
    assert cache.modalities == ("dce", "dwi", "t2") and cache.n_versions == 3
    for sub in SUBSETS:
        with torch.inference_mode():
            ref = model(**{m: x[m] for m in sub}, batch_size=3)
        got = subset_logits(model, cache, sub)
        assert got.shape == (3, 2)
        assert torch.allclose(got, ref, atol=1e-5, rtol=0), subset_key(sub)


def test_cache_built_in_batches_matches_one_batch(tiny) -> None:
    model, x = tiny
    whole = build_cache(model, [([(0, 0), (0, 1), (0, 2)], x)])
    parts = build_cache(model, [([(0, 0), (0, 1)], {m: v[:2] for m, v in x.items()}),
                                ([(0, 2)], {m: v[2:] for m, v in x.items()})])
    assert parts.versions == whole.versions
    for sub in SUBSETS:
        assert torch.allclose(subset_logits(model, parts, sub), subset_logits(model, whole, sub), atol=1e-5)
    # chunked fusion gives the same rows
    assert torch.allclose(subset_logits(model, whole, SUBSETS[-1], chunk=1),
                          subset_logits(model, whole, SUBSETS[-1]), atol=1e-6)


def test_missing_modality_leaves_its_subsets_unavailable(tiny) -> None:
    model, x = tiny
    cache = build_cache(model, [([(0, -1)], {"dce": x["dce"][:1], "t2": x["t2"][:1]})])
    assert cache.modalities == ("dce", "t2")
    assert n_available(cache.modalities) == 4  # none, dce, t2, dce+t2
    values = subset_values(model, cache)
    assert [k for k, v in values.items() if v is None] == ["dwi", "dce+dwi", "dwi+t2", "dce+dwi+t2"]
    with pytest.raises(ValueError, match="not in the cache"):
        cache.segments_for("dwi")
    with torch.inference_mode():
        ref = model(dce=x["dce"][:1], t2=x["t2"][:1]).softmax(-1)[:, 1]
    assert abs(float(values["dce+t2"][0]) - float(ref[0])) < 1e-6  # type: ignore[index]


def test_prior_is_input_free_and_repeated_per_version(tiny) -> None:
    model, x = tiny
    cache = build_cache(model, [([(0, 0), (0, 1), (0, 2)], x)])
    prior = subset_logits(model, cache, ())
    assert prior.shape == (3, 2) and torch.equal(prior[0], prior[2])
    with torch.inference_mode():
        assert torch.allclose(prior[:1], model(batch_size=1), atol=1e-6)


def test_encode_stops_between_batches(tiny) -> None:
    model, x = tiny
    calls: list[int] = []
    steps = Steps(2, progress=lambda d, t, s: calls.append(d), should_stop=lambda: len(calls) >= 1)
    one = {m: v[:1] for m, v in x.items()}
    with pytest.raises(Cancelled):
        build_cache(model, [([(0, 0)], one), ([(0, 1)], one)], steps=steps)
    assert calls == [1]
