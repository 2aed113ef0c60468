"""Held-out checks of a trained model through the product's own inference path (:class:`Predictor`).

Every study is read from disk (``read_study``) and analysed exactly as the plugin would (no TTA, the 8
cached subset values, exact Shapley, integrated gradients). From the per-case results:

* **BI-RADS 4 threshold**: ``tau`` calibrated on one cohort (100 % sensitivity on its malignant
  BI-RADS 4 cases, :func:`model_core.engine.decision.calibrate_birads4`), then applied to other cohorts: how
  many BI-RADS 4 cases it downgrades, and how many of those are cancers (missed biopsies); also with the
  paper's denominators and exact intervals (:func:`paper_denominators`).
* **Global Shapley**: mean per-modality Shapley values (:func:`model_core.engine.shapley.global_shapley`).
* **IG pointing game**: for malignant cases, whether the highest-saliency voxel of a modality's map
  lies inside the lesion mask dilated by ``radius_mm`` (in world space, so any map grid works).

Nothing here trains or changes the model; results are JSON-serialisable for the model card.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt

from model_core.engine.decision import calibrate_birads4, is_birads4
from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.result import Saliency
from model_core.engine.shapley import global_shapley
from model_core.evaluation.binary import proportion
from model_core.evaluation.cases import CaseRef
from model_core.network.config import MODALITIES
from model_core.studies import read_study, read_volume
from model_core.studies.study import Study

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CheckOptions:
    """Settings of the checks.

    Attributes:
        ig_steps: integration points per explained case (the plugin's default Run uses 16).
        radius_mm: dilation of the lesion mask for the pointing game (5 mm in the acceptance).
        explain_malignant_only: run IG only on malignant cases (the pointing game uses no others).
    """

    ig_steps: int = 16
    radius_mm: float = 5.0
    explain_malignant_only: bool = True


@dataclass
class CaseCheck:
    """One analysed case: probability, subset values, Shapley and (if explained) pointing-game hits."""

    case_id: str
    cohort: str
    label: int
    birads: str
    probability: float
    p_dce_only: float | None
    shapley: dict[str, float]
    hits: dict[str, bool] = field(default_factory=dict)
    hits_abs: dict[str, bool] = field(default_factory=dict)
    ig_relative_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def mask_path(case: CaseRef, study: Study) -> Path:
    """The lesion mask the study's manifest names (``extra.mask``, kept by the reader in ``clinical.extra``).

    Raises:
        FileNotFoundError: the study names no mask (not a phantom study) or the file is missing.
    """
    name = study.clinical.extra.get("mask")
    path = Path(case.path) / str(name) if name else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{case.case_id}: no lesion mask named in the manifest of {case.path}")
    return path


def dilated_mask(mask: np.ndarray, affine: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels of ``mask (X, Y, Z)`` or within ``radius_mm`` of it (Euclidean, in mm, anisotropic grids)."""
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    m = np.asarray(mask) > 0
    if not m.any():
        return m
    return distance_transform_edt(~m, sampling=spacing) <= radius_mm  # type: ignore[no-any-return]


def points_at(saliency: Saliency, region: np.ndarray, region_affine: np.ndarray, use_abs: bool = False) -> bool:
    """Whether the highest-saliency voxel (signed maximum, or of ``|saliency|``) falls in ``region``.

    The voxel's centre is mapped to world (RAS mm) with the saliency map's affine and back to the nearest
    voxel of ``region (X, Y, Z)`` with ``region_affine``; a voxel outside the region's grid is a miss.
    """
    data = np.abs(saliency.data) if use_abs else saliency.data
    ijk = np.array(np.unravel_index(int(np.argmax(data)), data.shape), dtype=np.float64)
    world = saliency.affine @ np.r_[ijk, 1.0]
    idx = np.round(np.linalg.inv(region_affine) @ world)[:3].astype(int)
    if np.any(idx < 0) or np.any(idx >= region.shape):
        return False
    return bool(region[tuple(idx)])


def check_case(predictor: Predictor, case: CaseRef, cohort: str, opts: CheckOptions) -> CaseCheck:
    """Analyse one study as the plugin would and score it."""
    study = read_study(case.path)
    explain = case.label == 1 or not opts.explain_malignant_only
    result = predictor.run(study, options=RunOptions(tta="none", explain=explain, ig_steps=opts.ig_steps))
    birads = str(case.info.get("birads") or study.clinical.birads or "")
    out = CaseCheck(case.case_id, cohort, int(case.label), birads, float(result.probability),
                    result.subset_probability("dce"), {m: float(v) for m, v in result.shapley.items()})
    if explain and result.saliency:
        mask = read_volume(mask_path(case, study))
        region = dilated_mask(mask.data, mask.affine, opts.radius_mm)
        for m, sal in result.saliency.items():
            out.hits[m] = points_at(sal, region, mask.affine)
            out.hits_abs[m] = points_at(sal, region, mask.affine, use_abs=True)
        err = (result.explain or {}).get("relative_error")
        out.ig_relative_error = float(err) if err is not None else None
    return out


def run_checks(predictor: Predictor, cohorts: Mapping[str, Sequence[CaseRef]], opts: CheckOptions = CheckOptions(),
               progress: ProgressFn | None = None) -> list[CaseCheck]:
    """:func:`check_case` over every case of every cohort (``progress(done, total, cohort)`` after each)."""
    total = sum(len(v) for v in cohorts.values())
    rows: list[CaseCheck] = []
    for name, cases in cohorts.items():
        for c in cases:
            rows.append(check_case(predictor, c, name, opts))
            if progress is not None:
                progress(len(rows), total, name)
    return rows


def pointing_game(rows: Sequence[CaseCheck], cohort: str | None = None) -> dict[str, Any]:
    """Hit rates per modality over the explained malignant cases (of one cohort, or all)."""
    sel = [r for r in rows if r.label == 1 and r.hits and (cohort is None or r.cohort == cohort)]
    out: dict[str, Any] = {"n": len(sel)}
    for m in MODALITIES:
        got = [r for r in sel if m in r.hits]
        if got:
            out[m] = {"hit_rate": float(np.mean([r.hits[m] for r in got])),
                      "hit_rate_abs": float(np.mean([r.hits_abs[m] for r in got])), "n": len(got)}
    errs = [r.ig_relative_error for r in sel if r.ig_relative_error is not None]
    if errs:
        out["ig_relative_error_median"] = float(np.median(errs))
    return out


def birads4_report(rows: Sequence[CaseCheck], calibrate_on: str, apply_to: Sequence[str]) -> dict[str, Any]:
    """``tau`` from ``calibrate_on`` and, per cohort of ``apply_to``, what it does to BI-RADS 4 cases."""
    cal = [r for r in rows if r.cohort == calibrate_on]
    thr = calibrate_birads4([r.probability for r in cal], [r.label for r in cal], [r.birads for r in cal],
                            cohort=calibrate_on, tta="none")
    out: dict[str, Any] = {"threshold": thr.to_dict(), "applied": {}}
    for name in apply_to:
        b4 = [r for r in rows if r.cohort == name and is_birads4(r.birads)]
        down = [r for r in b4 if r.probability < thr.tau]
        n_mal = sum(r.label for r in b4)
        out["applied"][name] = {
            "n_birads4": len(b4), "n_malignant": n_mal, "n_downgraded": len(down),
            "downgrade_rate": len(down) / len(b4) if b4 else 0.0,
            "benign_downgraded": sum(1 - r.label for r in down),
            "malignant_downgraded": sum(r.label for r in down),
            "sensitivity": (1.0 - sum(r.label for r in down) / n_mal) if n_mal else None,
        }
        out["applied"][name].update(paper_denominators(out["applied"][name]))
    return out


def paper_denominators(applied: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's BI-RADS 4 figures from an ``applied`` record's counts, with exact 95 % intervals:
    ``benign_downgraded_of_benign`` (benign BI-RADS 4 downgraded / benign BI-RADS 4) and
    ``cancers_missed_of_malignant`` (malignant BI-RADS 4 downgraded / malignant BI-RADS 4)."""
    n_mal = int(applied["n_malignant"])
    return {"benign_downgraded_of_benign": _exact(int(applied["benign_downgraded"]),
                                                  int(applied["n_birads4"]) - n_mal),
            "cancers_missed_of_malignant": _exact(int(applied["malignant_downgraded"]), n_mal)}


def _exact(k: int, n: int) -> dict[str, Any]:
    """:func:`proportion` with ``None`` (JSON ``null``) instead of NaN when ``n = 0``."""
    rec = proportion(k, n)
    return rec if n else {**rec, "value": None, "ci_lower": None, "ci_upper": None}


def summarise(rows: Sequence[CaseCheck], calibrate_on: str | None, apply_to: Sequence[str]) -> dict[str, Any]:
    """Everything for the model card: global Shapley and pointing game per cohort, BI-RADS 4 report."""
    cohorts = list(dict.fromkeys(r.cohort for r in rows))
    out: dict[str, Any] = {
        "global_shapley": {c: global_shapley([r.__dict__ for r in rows if r.cohort == c]) for c in cohorts},
        "pointing_game": {c: pointing_game(rows, c) for c in cohorts},
    }
    out["global_shapley"]["all"] = global_shapley([r.__dict__ for r in rows])
    out["global_shapley"]["by_true_class"] = {
        name: global_shapley([r.__dict__ for r in rows if r.label == label])["all"]
        for name, label in (("benign", 0), ("malignant", 1))
    }
    out["pointing_game"]["all"] = pointing_game(rows)
    if calibrate_on:
        out["birads4"] = birads4_report(rows, calibrate_on, apply_to)
    return out


def write_rows(rows: Sequence[CaseCheck], path: str | os.PathLike[str]) -> None:
    """Per-case checks as JSON lines."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r.to_dict(), sort_keys=True) + "\n")
