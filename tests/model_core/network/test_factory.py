"""The untrained, seeded network."""

from __future__ import annotations

from model_core import MomeConfig
from model_core.network.factory import untrained_model


def test_untrained_model_is_seeded_and_not_trivial() -> None:
    a = untrained_model(MomeConfig.preset("tiny"), seed=0)
    b = untrained_model(MomeConfig.preset("tiny"), seed=0)
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    assert float(a.head.weight.detach().abs().max()) > 0.1
