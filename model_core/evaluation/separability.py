"""How much each sequence says: hand-feature AUROCs and logistic DCE-only vs all-sequence AUROCs.

Run ``python -m model_core.evaluation.separability --site ds1 --n 300 --scale 0.6`` to print a JSON report
(per-feature AUROC, cross-validated logistic AUROC with DCE features only, DCE + DWI, DCE + T2, all,
the same inside BI-RADS 4, and the median generation time). The logistic model is a proxy for what a
network could learn; the phantom's parameters (:mod:`model_core.phantom.params`) were tuned with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

import numpy as np

from model_core.evaluation.logistic import cv_logistic_auroc
from model_core.evaluation.metrics import auroc
from model_core.phantom.features import FEATURES, lesion_features
from model_core.phantom.generate import generate_study

log = logging.getLogger(__name__)

SUBSETS: dict[str, tuple[str, ...]] = {
    "dce": ("dce",),
    "dce+dwi": ("dce", "dwi"),
    "dce+t2": ("dce", "t2"),
    "all": ("dce", "dwi", "t2"),
}


def collect(
    site: str, n: int, seed: int = 0, scale: float = 0.6
) -> tuple[np.ndarray, list[dict[str, Any]], list[float]]:
    """Features ``(n, len(FEATURES))``, label rows and generation times (s) of ``n`` cases."""
    rows, feats, times = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        case = generate_study(seed + i, site, scale=scale)
        times.append(time.perf_counter() - t0)
        f = lesion_features(case.study, case.mask)
        feats.append([f[k] for k in FEATURES])
        rows.append(case.labels())
    return np.asarray(feats, dtype=np.float64), rows, times


def report(x: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-feature and per-subset AUROCs for features ``x`` ``(N, F)`` and label rows."""
    y = np.array([r["malignant"] for r in rows])
    x = np.nan_to_num(x, nan=0.0)
    out: dict[str, Any] = {"n": int(len(y)), "prevalence": float(y.mean())}
    out["feature_auroc"] = {k: round(auroc(y, x[:, i]), 3) for i, k in enumerate(FEATURES)}
    names = list(FEATURES)
    for label, sel in (
        ("all_cases", np.ones(len(y), bool)),
        ("birads4", np.array([r["birads"] == "4" for r in rows])),
    ):
        res = {}
        for subset, mods in SUBSETS.items():
            cols = [names.index(k) for k in names if FEATURES[k] in mods]
            if sel.sum() >= 20 and 0 < y[sel].sum() < sel.sum():
                res[subset] = round(cv_logistic_auroc(x[sel][:, cols], y[sel]), 3)
        out[f"logistic_cv_auroc_{label}"] = res
    out["birads4_n"] = int(sum(r["birads"] == "4" for r in rows))
    # subtype / response signals among cancers (higher = more TNBC / more pCR)
    mal = y == 1
    tnbc = np.array([r["tnbc"] for r in rows])[mal]
    pcr = np.array([r["pcr"] == 1 for r in rows])[mal]
    col = {k: x[mal][:, names.index(k)] for k in names}
    out["tnbc_auroc_among_malignant"] = {
        "dce_rim": round(auroc(tnbc, col["dce_rim"]), 3),
        "t2_bright": round(auroc(tnbc, -col["t2_dark"]), 3),
    }
    out["pcr_auroc_among_malignant"] = {
        "dce_initial_rise": round(auroc(pcr, col["dce_initial_rise"]), 3),
        "dwi_low_adc": round(auroc(pcr, col["dwi_low_adc"]), 3),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="ds1")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.6)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    x, rows, times = collect(args.site, args.n, args.seed, args.scale)
    rep = report(x, rows)
    rep.update(site=args.site, scale=args.scale, median_generation_s=round(float(np.median(times)), 3))
    sys.stdout.write(json.dumps(rep, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
