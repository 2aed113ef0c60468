"""Shapley's v(empty) from the model card's reference cohort, the CLS-only prior as an option, and the
sequences a model does not use (model_core.engine.reference); the shipped demo card's record."""

from __future__ import annotations

import re

import pytest
import torch

from model_core import MomeConfig
from model_core.engine.demo import DEMO_WEIGHTS, demo_predictor
from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.reference import (
    MIN_LOGIT_SD,
    NOT_USED,
    ShapleyReference,
    cohort_digest,
    empty_value,
    reference_from_card,
    sequence_use,
    store_reference,
    unused_modalities,
)
from model_core.engine.shapley import efficiency, shapley_values
from model_core.phantom import generate_study
from model_core.phantom.params import get_world
from model_core.weights.native import ModelCard, read_card, save_native
from tests.conftest import REPO
from tests.model_core.engine.test_subsets import trained_looking

CFG = MomeConfig.preset("tiny")
NO_IG = RunOptions(explain=False)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _ref(v: float = 0.3, t2_used: bool = False) -> ShapleyReference:
    seq = {m: {"used": True, "why": "fine"} for m in ("dce", "dwi")}
    seq["t2"] = {"used": t2_used, "why": "alone, constant"}
    return ShapleyReference(v_empty=v, n=10, cohort_digest="ab" * 32, sequences=seq)


def test_reference_value_replaces_the_prior_and_efficiency_holds_against_it() -> None:
    subsets = {"none": 0.40, "dce": 0.7, "dwi": 0.6, "t2": 0.41, "dce+dwi": 0.85, "dce+t2": 0.72,
               "dwi+t2": 0.6, "dce+dwi+t2": 0.9}
    v0, rec = empty_value("reference", subsets, _ref(0.3), "none")
    assert v0 == 0.3 and rec["kind"] == "reference" and rec["n"] == 10 and rec["note"] == ""
    game = {**subsets, "none": v0}
    phi = shapley_values(game)
    assert sum(phi.values()) == pytest.approx(0.9 - 0.3, abs=1e-12)
    assert efficiency(phi, game)["error"] == pytest.approx(0.0, abs=1e-12)
    # the prior gives other values: v(empty) enters every singleton's marginal contribution
    phi_prior = shapley_values(subsets)
    assert sum(phi_prior.values()) == pytest.approx(0.9 - 0.4, abs=1e-12)
    assert all(phi[m] - phi_prior[m] == pytest.approx((0.4 - 0.3) / 3, abs=1e-12) for m in phi)
    assert empty_value("prior", subsets, _ref(), "none")[1]["kind"] == "prior"
    fallback = empty_value("reference", subsets, None, "none")[1]
    assert fallback["kind"] == "prior" and "no reference cohort" in fallback["note"]
    assert "TTA" in empty_value("reference", subsets, _ref(), "interactive")[1]["note"]
    with pytest.raises(ValueError, match="shapley_empty"):
        empty_value("mean", subsets, None, "none")


def test_sequence_use_rule() -> None:
    assert sequence_use(MIN_LOGIT_SD / 2, 0.9, 0.8)[0] is False
    assert sequence_use(1.0, 0.57, 0.47) == (False, "alone, AUROC 0.570 with 95 % interval reaching 0.470 (<= 0.5)")
    assert sequence_use(1.0, 0.9, 0.85)[0] is True
    assert unused_modalities(_ref()) == {"t2": "alone, constant"} and unused_modalities(None) == {}
    assert unused_modalities(_ref(t2_used=True)) == {}
    assert NOT_USED == "not used by this model"


def test_cohort_digest_ignores_order() -> None:
    assert cohort_digest(["b", "a"]) == cohort_digest(["a", "b"]) != cohort_digest(["a", "c"])


def test_predictor_uses_the_cards_reference_and_marks_unused_sequences(tmp_path) -> None:  # noqa: ANN001
    case = generate_study(4, scale=0.5)
    model = trained_looking(CFG)
    card = ModelCard(config={}, provenance={"synthetic_training_data": True}, intended_use="Research use only.")
    store_reference(card, _ref(0.25))
    save_native(model, tmp_path / "m.safetensors", card)
    assert reference_from_card(read_card(tmp_path / "m.safetensors")) == _ref(0.25)
    pred = Predictor.from_native(tmp_path / "m.safetensors", device="cpu", audit_log=None)
    r = pred.run(case.study, options=NO_IG)
    assert r.shapley_empty["kind"] == "reference" and r.shapley_check["v_empty"] == 0.25
    assert sum(r.shapley.values()) == pytest.approx(r.probability - 0.25, abs=1e-9)
    assert r.subsets["none"] != 0.25  # the CLS-only prior is still reported as a subset value
    assert r.unused_modalities == {"t2": "alone, constant"}
    assert "synthetic" in r.intended_use.lower()
    d = r.to_dict()
    assert d["shapley_empty"]["v_empty"] == 0.25 and d["unused_modalities"] == {"t2": "alone, constant"}
    assert type(r).from_dict(d).shapley_empty == r.shapley_empty
    prior = pred.run(case.study, options=RunOptions(explain=False, shapley_empty="prior"))
    assert prior.shapley_empty["kind"] == "prior" and prior.shapley_check["v_empty"] == r.subsets["none"]
    assert sum(prior.shapley.values()) == pytest.approx(r.probability - r.subsets["none"], abs=1e-9)


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="resources/demo.safetensors is not installed")
def test_shipped_card_reference_is_from_a_fresh_cohort_and_marks_unused_sequences() -> None:
    card = read_card(DEMO_WEIGHTS)
    ref = reference_from_card(card)
    assert ref is not None and ref.n >= 100 and re.fullmatch(r"[0-9a-f]{64}", ref.cohort_digest)
    text = (REPO / "scripts" / "train_demo.sh").read_text() + (REPO / "docs" / "demo_model.md").read_text()
    own = {int(s) for s in re.findall(r"(?:cohort \S+ ds\d |seed )(\d{4})", text)}
    assert {1001, 3001, 6001, 5001} <= own  # training, test, large test and selection cohorts are all read
    seeds = {c["seed"] for c in ref.cohorts}
    assert seeds and not seeds & own and sum(c["n"] for c in ref.cohorts) == ref.n
    assert 0.0 < ref.v_empty < 1.0 and ref.v_empty == ref.subsets["dce+dwi+t2"]
    assert ref.sequences["dce"]["used"] and ref.sequences["dwi"]["used"]
    unused = {m for m, s in ref.sequences.items() if not s["used"]}
    pred, _ = demo_predictor(device="cpu", threads=1, audit_log=None)
    r = pred.run(generate_study(15, params=get_world(card.phantom_world)).study, options=NO_IG)
    assert r.shapley_empty["kind"] == "reference" and r.shapley_empty["v_empty"] == ref.v_empty
    assert abs(r.shapley_check["error"]) < 1e-9 and set(r.unused_modalities) == unused
    assert "synthetic" in r.intended_use.lower()


@pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="resources/demo.safetensors is not installed")
def test_shipped_card_records_the_test_cohorts_seeds_and_digests() -> None:
    card = read_card(DEMO_WEIGHTS)
    tc = card.metrics["test_cohorts"]
    assert tc["world_commit"].startswith("f2e3a90") and "mome reference" in tc["command"]
    got = {(c["site"], c["seed"], c["n"]) for c in tc["cohorts"]}
    assert got == {("ds1", 3001, 150), ("ds2", 3002, 150), ("ds3", 3003, 150), ("ds1", 6001, 1000)}
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["cohort_digest"]) and c["n_read"] == c["n"] for c in tc["cohorts"])
    assert card.training["history"] and "val_auroc" in card.training["history"][0]  # the training history
