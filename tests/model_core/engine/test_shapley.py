"""Exact Shapley values: efficiency, null player, symmetry; global Shapley split by predicted class."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from model_core.engine.shapley import efficiency, global_shapley, shapley_values
from model_core.engine.subsets import SUBSETS, build_cache, subset_key, subset_values


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)


class ToyFusion(nn.Module):
    """A stand-in with Mome's encode/fuse API: each modality is reduced to one token (its mean times a
    weight); the fusion reads the segments it is told to, with pairwise interactions. ``ignore`` names a
    modality whose segment the fusion never reads (a null player by construction)."""

    def __init__(self, weights: dict[str, float], ignore: str | None = None) -> None:
        super().__init__()
        self.w = weights
        self.ignore = ignore
        self.cls = nn.Parameter(torch.tensor([[[0.3]]]))

    def encode(self, dce=None, dwi=None, t2=None, *, batch_size=None):  # noqa: ANN001, ANN201
        b = next((x.shape[0] for x in (dce, dwi, t2) if x is not None), batch_size or 1)
        tok = {m: None if x is None else (x.mean(dim=(1, 2, 3, 4)) * self.w[m]).reshape(b, 1, 1)
               for m, x in (("dce", dce), ("dwi", dwi), ("t2", t2))}
        a = self.cls.expand(b, 1, 1)
        if tok["dce"] is not None:
            a = torch.cat([a, tok["dce"]], dim=1)
        return [a, tok["dwi"], tok["t2"]]

    def fuse(self, segments):  # noqa: ANN001, ANN201
        a, b, c = segments
        vals = {"dce": a[:, 1:].sum((1, 2)) if a.shape[1] > 1 else None,
                "dwi": None if b is None else b.sum((1, 2)), "t2": None if c is None else c.sum((1, 2))}
        if self.ignore:
            vals[self.ignore] = None
        z = a[:, 0, 0].clone()
        present = [v for v in vals.values() if v is not None]
        for v in present:
            z = z + v
        for u, v in itertools.combinations(present, 2):
            z = z + 0.5 * u * v
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _inputs(same_dwi_t2: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = {"dce": torch.rand(1, 2, 4, 4, 4, generator=g) + 0.5, "dwi": torch.rand(1, 1, 4, 4, 4, generator=g)}
    x["t2"] = x["dwi"].clone() if same_dwi_t2 else torch.rand(1, 1, 4, 4, 4, generator=g) - 0.7
    return x


def _game(model: nn.Module, x: dict[str, torch.Tensor]) -> dict[str, float]:
    cache = build_cache(model, [([(0, -1)], x)])  # type: ignore[arg-type]
    return {k: float(v.mean()) for k, v in subset_values(model, cache).items()}  # type: ignore[arg-type, union-attr]


def test_efficiency_identity_within_1e6() -> None:
    values = _game(ToyFusion({"dce": 2.0, "dwi": -1.5, "t2": 0.8}), _inputs())
    phi = shapley_values(values)
    chk = efficiency(phi, values)
    assert abs(sum(phi.values()) - (values["dce+dwi+t2"] - values["none"])) <= 1e-6
    assert abs(chk["error"]) <= 1e-6 and chk["v_full"] == values["dce+dwi+t2"] and chk["v_empty"] == values["none"]
    assert all(abs(v) > 1e-4 for v in phi.values())


def test_ignored_modality_gets_exactly_zero() -> None:
    values = _game(ToyFusion({"dce": 2.0, "dwi": -1.5, "t2": 0.8}, ignore="dwi"), _inputs())
    phi = shapley_values(values)
    assert phi["dwi"] == 0.0
    assert phi["dce"] != 0.0 and phi["t2"] != 0.0


def test_interchangeable_modalities_get_equal_values() -> None:
    values = _game(ToyFusion({"dce": 2.0, "dwi": 1.1, "t2": 1.1}), _inputs(same_dwi_t2=True))
    assert values["dwi"] == values["t2"] and values["dce+dwi"] == values["dce+t2"]
    phi = shapley_values(values)
    assert phi["dwi"] == phi["t2"] and phi["dwi"] != 0.0


def test_hand_computed_two_player_values() -> None:
    v = {"none": 0.1, "dce": 0.5, "dwi": 0.2, "dce+dwi": 0.9}
    phi = shapley_values(v, players=("dce", "dwi"))
    assert phi["dce"] == pytest.approx(0.5 * (0.4 + 0.7))
    assert phi["dwi"] == pytest.approx(0.5 * (0.1 + 0.4))


def test_absent_modality_is_a_null_player() -> None:
    v = {subset_key(s): (None if "t2" in s else 0.1 * len(s) + 0.05 * ("dce" in s)) for s in SUBSETS}
    phi = shapley_values(v, available=("dce", "dwi"))
    assert phi["t2"] == 0.0
    assert sum(phi.values()) == pytest.approx(v["dce+dwi"] - v["none"], abs=1e-12)  # type: ignore[operator]
    with pytest.raises(ValueError, match="missing"):
        shapley_values(v)  # all three asked for, t2 subsets missing


def test_global_shapley_splits_by_predicted_class() -> None:
    results = [{"probability": 0.9, "shapley": {"dce": 0.3, "dwi": 0.1, "t2": 0.0}},
               {"probability": 0.7, "shapley": {"dce": 0.1, "dwi": 0.3, "t2": 0.2}},
               {"probability": 0.2, "shapley": {"dce": -0.2, "dwi": 0.0, "t2": -0.1}}]
    g = global_shapley(results)
    assert g["all"]["n"] == 3 and g["predicted_malignant"]["n"] == 2 and g["predicted_benign"]["n"] == 1
    assert g["predicted_malignant"]["mean"]["dce"] == pytest.approx(0.2)
    assert g["predicted_benign"]["mean_abs"]["dce"] == pytest.approx(0.2)
    assert g["all"]["mean"]["t2"] == pytest.approx(0.1 / 3)
    assert g["all"]["share_negative"] == pytest.approx({"dce": 1 / 3, "dwi": 0.0, "t2": 1 / 3})
    empty = global_shapley([results[2]])
    assert empty["predicted_malignant"] == {"n": 0, "mean": {}, "mean_abs": {}, "std": {}, "share_negative": {}}
