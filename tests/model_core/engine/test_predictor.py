"""The Predictor end to end on a phantom study (tiny preset): result contents, determinism, TTA, missing
modalities, cancellation, provenance, audit, the model card's threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_core import MomeConfig
from model_core.engine.audit import read_audit, validate_record
from model_core.engine.decision import calibrate_birads4, store_threshold
from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.subsets import subset_key
from model_core.errors import Cancelled
from model_core.phantom import generate_study
from model_core.preprocessing.tta import fit, tta_canvases
from model_core.weights.native import ModelCard, save_native
from tests.model_core.engine.test_subsets import trained_looking


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: on a busy shared 2-core machine two threads stall at every OpenMP barrier (measured
    40x slower); results do not depend on it."""
    torch.set_num_threads(1)

CFG = MomeConfig.preset("tiny")
FAST = RunOptions(ig_steps=8, ig_decades=3, ig_max_steps=0)  # no doubling: keeps the tests fast


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(trained_looking(CFG), device="cpu", threads=1)


@pytest.fixture(scope="module")
def case():  # noqa: ANN201
    return generate_study(4, scale=0.5)


@pytest.fixture(scope="module")
def result(predictor, case):  # noqa: ANN001, ANN201
    return predictor.run(case.study, options=FAST)


def test_result_is_complete_and_consistent(result, case) -> None:
    assert result.modalities == ("dce", "dwi", "t2") and len(result.subsets) == 8
    assert result.subsets["dce+dwi+t2"] == result.probability and 0.0 < result.probability < 1.0
    assert all(v is not None for v in result.subsets.values())
    phi = result.shapley
    assert abs(sum(phi.values()) - (result.probability - result.subsets["none"])) <= 1e-6
    assert abs(result.shapley_check["error"]) <= 1e-6
    assert result.tta["kind"] == "none" and result.tta["n_versions"] == 1 and result.tta["std"] == 0.0
    refs = {"dce": case.study.dce[0], "dwi": case.study.dwi[max(case.study.dwi)], "t2": case.study.t2}
    for m, vol in refs.items():
        sal = result.saliency[m]
        assert sal.data.shape == vol.spatial_shape and np.allclose(sal.affine, vol.affine, atol=1e-9)
        assert sal.space == "native" and np.isfinite(sal.data).all()
    e = result.explain
    assert e["n_steps"] == 8 and "convergence_delta" in e and e["target"].startswith("logit margin")
    d = json.loads(result.to_json())
    assert d["decision"]["birads"] == case.study.clinical.birads
    assert d["decision"]["status"] in ("not_applicable", "no_calibrated_threshold")  # no threshold in card


def test_provenance_names_model_versions_device_and_settings(result, predictor) -> None:
    p = result.provenance
    assert p["model"]["sha256"] == predictor.model_sha256 and len(p["model"]["sha256"]) == 64
    assert {"torch", "numpy", "nibabel", "pydicom", "captum", "python", "model_core"} <= set(p["versions"])
    assert p["device"] == "cpu" and p["dtype"] == "fp32" and p["threads"] == 1
    assert p["determinism"]["cpu_fixed_threads"] is True and "deterministic_algorithms" in p["determinism"]
    assert p["settings"]["ig_steps"] == 8 and p["settings"]["tta"] == "none" and "preprocess" in p["settings"]
    assert set(result.timings) >= {"prepare", "encode", "subsets", "explain", "map", "total"}
    assert result.study["study_key"] and "ds1" not in json.dumps(result.study)  # hashed label only


def test_two_cpu_runs_are_bitwise_identical(predictor, case, result) -> None:
    again = predictor.run(case.study, options=FAST)
    assert again.to_dict(volatile=False) == result.to_dict(volatile=False)
    for m, s in result.saliency.items():
        assert np.array_equal(again.saliency[m].data, s.data)


def test_tta_averages_probabilities_over_the_versions(predictor, case) -> None:
    r = predictor.run(case.study, options=RunOptions(tta="interactive", explain=False))
    assert r.tta["n_versions"] == 6 and r.explain is None and r.saliency == {}
    fitted = fit(predictor.prepare(case.study).arrays, CFG.sizes)
    x, _ = tta_canvases(fitted, [tuple(v) for v in r.tta["versions"]])
    with torch.no_grad():
        direct = predictor.model(**x).softmax(-1)[:, 1].double().numpy()
    np.testing.assert_allclose(r.tta["per_version"], direct, atol=1e-5)
    assert r.probability == pytest.approx(float(np.mean(r.tta["per_version"])), abs=1e-12)
    assert r.tta["min"] <= r.probability <= r.tta["max"] and r.tta["std"] > 0
    # toggles from the cache of that run equal the stored subset values
    for key in ("dce", "dwi+t2", "none"):
        assert predictor.subset_probability(None, key) == pytest.approx(r.subsets[key], abs=1e-6)
        assert predictor.subset_probability(r, key) == r.subsets[key]


def test_missing_modality(predictor, case) -> None:
    r = predictor.run(case.study.without("dwi"), options=FAST)
    assert r.modalities == ("dce", "t2") and r.shapley["dwi"] == 0.0
    assert [k for k, v in r.subsets.items() if v is None] == ["dwi", "dce+dwi", "dwi+t2", "dce+dwi+t2"]
    assert r.probability == r.subsets["dce+t2"] and set(r.saliency) == {"dce", "t2"}
    assert abs(r.shapley_check["error"]) <= 1e-6
    assert predictor.subset_probability(None, "dwi") is None


def test_cancel_takes_effect_at_the_next_step(case, tmp_path) -> None:
    pred = Predictor(trained_looking(CFG), device="cpu", audit_log=tmp_path / "audit.jsonl")
    done: list[tuple[int, int, str]] = []
    with pytest.raises(Cancelled):
        pred.run(case.study, options=FAST, progress=lambda d, t, s: done.append((d, t, s)),
                 should_stop=lambda: len(done) >= 1)
    assert len(done) == 1 and done[0][0] == 1 and done[0][2] == "prepare"
    (line,) = read_audit(tmp_path / "audit.jsonl")
    assert line["status"] == "cancelled" and line["error"] == "Cancelled" and validate_record(line) == []


def test_progress_reaches_its_total_and_audit_line_is_written(case, tmp_path) -> None:
    pred = Predictor(trained_looking(CFG), device="cpu", audit_log=tmp_path / "audit.jsonl")
    seen: list[tuple[int, int, str]] = []
    r = pred.run(case.study, options=RunOptions(tta="interactive", ig_steps=4, ig_decades=1),
                 progress=lambda d, t, s: seen.append((d, t, s)))
    assert [d for d, _, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]
    assert {s for *_, s in seen} == {"prepare", "encode", "subsets", "explain", "map saliency"}
    (line,) = read_audit(tmp_path / "audit.jsonl")
    assert validate_record(line) == [] and len(line) >= 12 and line["status"] == "ok"
    assert line["outputs"]["probability"] == r.probability and line["run_id"] == r.run_id
    assert line["inputs"]["dce[0]"]["sha256"] and line["study_key"] == r.study["study_key"]


def test_native_model_card_threshold_drives_the_decision(case, tmp_path) -> None:
    model = trained_looking(CFG)
    base = Predictor(model, device="cpu").run(case.study, options=RunOptions(explain=False))
    card = ModelCard(config={})
    p = base.probability
    store_threshold(card, calibrate_birads4([p - 0.01, p + 0.01], [0, 1], cohort="unit"))  # tau above p
    save_native(model, tmp_path / "m.safetensors", card)
    pred = Predictor.from_native(tmp_path / "m.safetensors", device="cpu")
    prepared = pred.prepare(case.study)
    down = pred.run_prepared(prepared, birads="4b", options=RunOptions(explain=False))
    assert down.probability == pytest.approx(p, abs=1e-6)
    assert down.decision["status"] == "downgrade_candidate" and down.decision["tau"] == pytest.approx(p + 0.01)
    five = pred.run_prepared(prepared, birads="5", options=RunOptions(explain=False))
    assert five.decision["status"] == "not_applicable"
    assert down.provenance["model"]["sha256"] == card.weights_sha256
    assert down.provenance["model"]["source"] == "m.safetensors"


def test_bf16_autocast_stays_close_to_fp32(case, result) -> None:
    pred = Predictor(trained_looking(CFG), device="cpu", dtype="bf16")
    r = pred.run(case.study, options=RunOptions(explain=False))
    assert r.provenance["dtype"] == "bf16" and abs(r.probability - result.probability) <= 0.05
    assert subset_key(r.modalities) == "dce+dwi+t2"


def test_ready_canvases_run_without_preprocessing(predictor) -> None:
    g = torch.Generator().manual_seed(2)
    x = {"dce": torch.randn(1, 6, *CFG.sizes["dce"], generator=g),
         "t2": torch.randn(1, 1, *CFG.sizes["t2"], generator=g)}
    r = predictor.run_canvases(x, options=FAST, birads="4")
    with torch.no_grad():
        p = float(predictor.model(**x).softmax(-1)[0, 1])
    assert r.probability == pytest.approx(p, abs=1e-6) and r.modalities == ("dce", "t2")
    assert r.saliency["dce"].space == "canvas" and r.saliency["dce"].data.shape == CFG.sizes["dce"]
    assert r.decision["status"] == "no_calibrated_threshold"
    with pytest.raises(ValueError, match="tta='none'"):
        predictor.run_canvases(x, options=RunOptions(tta="interactive"))


def test_from_official_checkpoint(case, tmp_path, result) -> None:
    model = trained_looking(CFG)
    torch.save(model.state_dict(), tmp_path / "authors.pth")
    pred = Predictor.from_official(tmp_path / "authors.pth", CFG, device="cpu")
    r = pred.run(case.study, options=RunOptions(explain=False))
    assert r.probability == pytest.approx(result.probability, abs=1e-6)
    assert r.provenance["model"]["source"] == "authors.pth" and r.decision["status"] in (
        "not_applicable", "no_calibrated_threshold")


def test_stage_methods_one_by_one_give_the_run(predictor, case, result) -> None:
    """A GUI worker calls the stages one at a time; together they give what run() gives."""
    prepared = predictor.prepare(case.study)
    cache = predictor.encode(prepared, options=FAST)
    scores = predictor.subsets(cache, FAST)
    assert scores.probability == result.probability and scores.subsets == result.subsets
    assert scores.shapley == result.shapley and scores.tta == result.tta
    info, saliency = predictor.explain(prepared, FAST)
    assert info["n_steps"] == result.explain["n_steps"] and set(saliency) == set(result.saliency)
    for m, s in saliency.items():
        assert np.array_equal(s.data, result.saliency[m].data)
    assert predictor.decide(scores.probability, case.study.clinical.birads, FAST.tta) == result.decision
