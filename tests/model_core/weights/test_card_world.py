from __future__ import annotations

import pytest

from model_core.errors import CheckpointError
from model_core.weights.native import ModelCard


def _card(*worlds: str | None, synthetic: bool = True) -> ModelCard:
    cohorts = [{"csv": f"c{i}.csv", "synthetic": synthetic, **({} if w is None else {"world": w})}
               for i, w in enumerate(worlds)]
    return ModelCard(config={}, training={"train_cohorts": cohorts[:1], "val_cohorts": cohorts[1:]})


def test_the_card_names_the_phantom_world_its_model_was_trained_on() -> None:
    assert _card("v2", "v2").phantom_world == "v2"
    assert _card(None, None).phantom_world == "v1"  # cohorts from before worlds existed
    assert _card("v2", synthetic=False).phantom_world == "v1"  # not phantoms: nothing to generate from
    assert ModelCard(config={}).phantom_world == "v1"
    with pytest.raises(CheckpointError, match="several phantom worlds"):
        _ = _card("v1", "v2").phantom_world
