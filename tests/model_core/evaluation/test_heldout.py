"""Held-out checks through the Predictor: pointing game geometry, BI-RADS 4 report, card entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_core.engine.result import Saliency
from model_core.evaluation.heldout import (
    CaseCheck,
    birads4_report,
    dilated_mask,
    pointing_game,
    points_at,
)
from model_core.network.config import MomeConfig
from model_core.train.options import InitSpec
from model_core.train.recipe import build_model
from model_core.weights.native import ModelCard, load_native, save_native


def test_dilation_is_in_millimetres_on_anisotropic_grids() -> None:
    mask = np.zeros((21, 21, 11), dtype=np.uint8)
    mask[10, 10, 5] = 1
    aff = np.diag([1.0, 2.0, 4.0, 1.0])
    d = dilated_mask(mask, aff, 5.0)
    assert d[15, 10, 5] and not d[16, 10, 5]  # 5 mm along x = 5 voxels
    assert d[10, 12, 5] and not d[10, 13, 5]  # 2 mm voxels: 4 mm in, 6 mm out
    assert d[10, 10, 6] and not d[10, 10, 7]  # 4 mm voxels
    assert not dilated_mask(np.zeros((3, 3, 3)), np.eye(4), 5.0).any()


def test_points_at_maps_through_world_space() -> None:
    region = np.zeros((20, 20, 20), dtype=bool)
    region[4:7, 4:7, 4:7] = True
    region_aff = np.diag([2.0, 2.0, 2.0, 1.0])  # region voxel 5 = 10 mm
    sal = np.zeros((10, 10, 10), dtype=np.float32)
    sal[2, 2, 2] = 3.0  # saliency grid 4 mm: voxel 2 = 8 mm + 2 mm offset = 10 mm
    sal[8, 8, 8] = -5.0
    aff = np.diag([4.0, 4.0, 4.0, 1.0])
    aff[:3, 3] = 2.0
    s = Saliency("dce", sal, aff, "dce[0]")
    assert points_at(s, region, region_aff)  # signed maximum at 10 mm: inside
    assert not points_at(s, region, region_aff, use_abs=True)  # |-5| at 34 mm: outside
    far = Saliency("dce", sal, np.diag([40.0, 40.0, 40.0, 1.0]), "dce[0]")
    assert not points_at(far, region, region_aff)  # maps outside the region's grid


def _row(cohort: str, label: int, p: float, birads: str = "4", hit: bool | None = None) -> CaseCheck:
    hits = {} if hit is None else {"dce": hit, "t2": not hit}
    return CaseCheck(f"{cohort}-{p}", cohort, label, birads, p, None, {"dce": 0.1, "dwi": 0.0, "t2": 0.0},
                     hits=hits, hits_abs=dict(hits), ig_relative_error=0.01 if hits else None)


def test_birads4_threshold_and_downgrades_on_another_cohort() -> None:
    rows = [_row("cal", 1, 0.4), _row("cal", 1, 0.9), _row("cal", 0, 0.1), _row("cal", 0, 0.5),
            _row("cal", 0, 0.05, birads="2"),
            _row("ext", 0, 0.2), _row("ext", 0, 0.39), _row("ext", 1, 0.3), _row("ext", 1, 0.8),
            _row("ext", 0, 0.01, birads="3")]
    rep = birads4_report(rows, "cal", ["ext"])
    assert rep["threshold"]["tau"] == 0.4 and rep["threshold"]["n"] == 4 and rep["threshold"]["n_downgraded"] == 1
    ext = rep["applied"]["ext"]
    counts = (ext["n_birads4"], ext["n_downgraded"], ext["benign_downgraded"], ext["malignant_downgraded"])
    assert counts == (4, 3, 2, 1)
    assert ext["downgrade_rate"] == 0.75 and ext["sensitivity"] == 0.5
    # the paper's denominators: 2 of 2 benign BI-RADS 4 downgraded, 1 of 2 cancers missed
    assert ext["benign_downgraded_of_benign"]["k"] == 2 and ext["benign_downgraded_of_benign"]["n"] == 2
    assert ext["cancers_missed_of_malignant"]["value"] == 0.5 and ext["cancers_missed_of_malignant"]["n"] == 2


def test_pointing_game_counts_explained_malignant_cases_only() -> None:
    rows = [_row("a", 1, 0.9, hit=True), _row("a", 1, 0.8, hit=False), _row("a", 1, 0.7, hit=True),
            _row("a", 0, 0.2), _row("b", 1, 0.6, hit=True), _row("b", 1, 0.6)]
    pg = pointing_game(rows, "a")
    assert pg["n"] == 3 and pg["dce"]["hit_rate"] == pytest.approx(2 / 3)
    assert pg["t2"]["hit_rate"] == pytest.approx(1 / 3)
    assert pointing_game(rows)["n"] == 4 and pointing_game(rows, "b")["dce"]["n"] == 1


def test_evaluate_model_checks_write_the_card(cohorts: dict[str, Path], tiny_cfg: MomeConfig, tmp_path: Path) -> None:
    """End to end on phantom studies read from disk: IG maps on native grids, masks from study.json."""
    from model_core.cli.main import main

    model, _ = build_model(tiny_cfg, InitSpec(scheme="xavier"), seed=3)
    weights = tmp_path / "m.safetensors"
    save_native(model, weights, ModelCard(config={}))
    rc = main(["evaluate-model", str(weights), "--cohort", f"cal={cohorts['val']}", "--cohort",
               f"ext={cohorts['train']}", "--cache", str(cohorts["cache"]), "--bootstrap", "50", "--update-card",
               "--no-progress", "--threads", "1", "--checks", "--calibrate-on", "cal", "--ig-steps", "4"])
    assert rc == 0
    rows = [json.loads(line) for line in (tmp_path / "checks.jsonl").read_text().splitlines()]
    assert len(rows) == 14 and {r["cohort"] for r in rows} == {"cal", "ext"}
    for r in rows:
        assert 0.0 <= r["probability"] <= 1.0 and set(r["shapley"]) == {"dce", "dwi", "t2"}
        assert bool(r["hits"]) == (r["label"] == 1)  # IG on malignant cases only
        if r["label"] == 1:
            assert set(r["hits"]) == {"dce", "dwi", "t2"} and r["ig_relative_error"] is not None
    # the Predictor's probability is the training loop's val/test score (same preprocessing, same canvas)
    import csv

    with (tmp_path / "predictions.csv").open() as fh:
        pred = {row["case_id"]: float(row["p_multiparametric"]) for row in csv.DictReader(fh)}
    for r in rows:
        assert r["probability"] == pytest.approx(pred[r["case_id"]], abs=1e-5)
    _, card = load_native(weights)
    assert card.thresholds["birads4"]["cohort"] == "cal" and card.thresholds["birads4"]["sensitivity"] == 1.0
    assert set(card.metrics["birads4_downgrade"]) == {"ext"}
    assert card.metrics["pointing_game"]["cal"]["n"] == 3 and card.metrics["global_shapley"]["all"]["all"]["n"] == 14
    by_class = card.metrics["global_shapley"]["by_true_class"]
    n_malignant = sum(r["label"] for r in rows)
    assert by_class["malignant"]["n"] == n_malignant and by_class["benign"]["n"] == 14 - n_malignant
    negative_t2 = sum(r["shapley"]["t2"] < 0 for r in rows if r["label"] == 0) / (14 - n_malignant)
    assert by_class["benign"]["share_negative"]["t2"] == pytest.approx(negative_t2)


def test_calibrate_on_needs_checks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from model_core.cli.main import main

    rc = main(["evaluate-model", str(tmp_path / "absent.safetensors"), "--cohort", "a=x.csv", "--calibrate-on", "a"])
    assert rc == 2 and "--calibrate-on needs --checks" in caplog.text
