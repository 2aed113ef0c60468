"""``mome reproduce-paper``: the paper's evaluation on phantom cohorts of the three site profiles, with the
demo model (or any native model): phantom cohorts -> ``mome predict`` -> ``mome evaluate`` -> report.

Cohorts: internal test ``ds1`` and external ``ds2`` and ``ds3`` (fixed seeds 3001-3003, the demo model's
test-cohort seeds), and ``ds1+ds2`` (the paper's subgroup analyses pool DS1 internal test 1 and DS2).
Evaluated: every statistic of :mod:`model_core.evaluation.cohort_eval` (all eight modality subsets from
one predict run), subgroups by age (<40 / 40-60 / >=60), background enhancement, BI-RADS 4 vs others and
field strength, the BI-RADS 4 operating point from ds1 applied to ds2, and decision curves. Sizes:
``paper`` = the paper's test cohorts (DS1 internal test 1: 307, DS2: 735, DS3: 2661); ``ci`` = 8 per site.
Every step resumes: existing phantom cases and finished predictions are kept.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_core.engine.predictor import Predictor, RunOptions
from model_core.evaluation.cohort_eval import EvaluateSettings
from model_core.evaluation.evaluation_run import Inputs, evaluate_inputs, write_evaluation
from model_core.evaluation.predict import predict_cohort
from model_core.runtime import Runtime

log = logging.getLogger(__name__)

SITE_SEEDS = {"ds1": 3001, "ds2": 3002, "ds3": 3003}
SIZES: dict[str, dict[str, int]] = {"paper": {"ds1": 307, "ds2": 735, "ds3": 2661},
                                    "ci": {"ds1": 8, "ds2": 8, "ds3": 8}}
SUBGROUPS: dict[str, tuple[float, ...] | None] = {"age": (40.0, 60.0), "bpe": None, "birads4": None,
                                                  "field_strength": None}


@dataclass(frozen=True)
class ReproduceOptions:
    """Sizes per site, bootstrap settings, predict settings (``tta``: the paper averages 54 versions)."""

    sizes: Mapping[str, int]
    n_resamples: int = 1000
    seed: int = 0
    tta: str = "none"
    threads: int = 1
    workers: int = 1
    scale: float = 1.0


def _pool(out: Path, parts: list[tuple[Path, Path]]) -> tuple[Path, Path]:
    """Concatenate prediction files and manifests (absolute study paths) into ``ds1+ds2`` ones."""
    preds, manifest = out / "predictions" / "ds1+ds2.jsonl", out / "cohorts" / "ds1+ds2.csv"
    preds.write_text("".join(p.read_text(encoding="utf-8") for p, _ in parts), encoding="utf-8")
    rows: list[dict[str, str]] = []
    for _, m in parts:
        with m.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                r["path"] = str((m.parent / r["path"]).resolve())
                rows.append(r)
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return preds, manifest


def reproduce(out_dir: str | os.PathLike[str], weights: str | os.PathLike[str], opts: ReproduceOptions,
              command: str = "") -> dict[str, Any]:
    """Run the whole reproduction into ``out_dir``; returns ``{"report", "seconds", "cohorts"}``."""
    from model_core.phantom.cohort import write_cohort

    out = Path(out_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pred = Predictor.from_native(weights, runtime=Runtime("cpu", threads=opts.threads))
    run = RunOptions(tta=opts.tta, explain=False)  # type: ignore[arg-type]
    files: dict[str, tuple[Path, Path]] = {}
    timings: dict[str, float] = {}
    for site, n in opts.sizes.items():
        t = time.perf_counter()
        manifest = write_cohort(n, site, SITE_SEEDS[site], out / "cohorts" / site, opts.workers, scale=opts.scale,
                                formats=("nifti",), compress=False, progress=False)
        timings[f"phantom_{site}"] = time.perf_counter() - t
        t = time.perf_counter()
        preds = out / "predictions" / f"{site}.jsonl"
        counts = predict_cohort(pred, manifest, preds, options=run)
        timings[f"predict_{site}"] = time.perf_counter() - t
        log.info("%s: %s", site, counts)
        files[site] = (preds, manifest)
    pooled = [files[s] for s in ("ds1", "ds2") if s in files]
    names = list(files)
    if len(pooled) == 2:
        files["ds1+ds2"] = _pool(out, pooled)
        names.append("ds1+ds2")
    st = EvaluateSettings(n_resamples=opts.n_resamples, seed=opts.seed, subgroups=SUBGROUPS)
    transfers = (("ds1", "ds2"),) if len(pooled) == 2 else ()
    inp = Inputs([(k, str(files[k][0])) for k in names], tuple(str(files[k][1]) for k in names),
                 transfers=transfers, model=str(weights), command=command,
                 extra={"sizes": dict(opts.sizes), "tta": opts.tta, "phantom_scale": opts.scale})
    t = time.perf_counter()
    doc = evaluate_inputs(inp, st)
    paths = write_evaluation(doc, out / "report")
    timings["evaluate"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    log.info("reproduction in %.0f s: %s", total, paths["html"])
    return {"report": str(paths["html"]), "markdown": str(paths["markdown"]), "seconds": round(total, 1),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "cohorts": {k: {"n": c["n"], "auroc": c["model"]["auroc"]} for k, c in doc["cohorts"].items()}}
