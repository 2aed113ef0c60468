"""``mome reproduce-paper``: the paper's evaluation on phantom cohorts of the three site profiles, with the
demo model (or any native model): phantom cohorts -> ``mome predict`` -> ``mome evaluate`` -> report.

Cohorts: internal test ``ds1`` and external ``ds2`` and ``ds3`` (fixed seeds 3001-3003, the demo model's
test-cohort seeds), and ``ds1+ds2`` (the paper's subgroup analyses pool DS1 internal test 1 and DS2).
Evaluated: every statistic of :mod:`model_core.evaluation.cohort_eval` (all eight modality subsets from
one predict run), subgroups by age (<40 / 40-60 / >=60), background enhancement, BI-RADS 4 vs others and
field strength, the BI-RADS 4 operating point from ds1 applied to ds2, and decision curves. Sizes:
``paper`` = the paper's test cohorts (DS1 internal test 1: 307, DS2: 735, DS3: 2661); ``ci`` = 8 per site.
Every step resumes: existing phantom cases and finished predictions are kept. With ``discard_studies`` a
site's image files are deleted once its predictions are written (labels, ``truth.json`` and the manifest
stay, so a resumed run neither regenerates nor re-predicts them): the full size then needs the disk of
its largest cohort (ds3: ~43 GB uncompressed) instead of all three (~75 GB).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
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
from model_core.weights.card_seal import write_card
from model_core.weights.native import card_path_for, read_card

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
    discard_studies: bool = False
    update_card: bool = False
    world: str | None = None
    """Phantom world of the cohorts; ``None``: the one the model was trained on (its card)."""


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


def discard_images(manifest: Path) -> int:
    """Delete the image folders (the manifest's ``path`` column) of a predicted phantom cohort; returns how
    many were removed. Only folders inside the manifest's own folder are touched."""
    root = manifest.parent.resolve()
    removed = 0
    with manifest.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            folder = (root / row["path"]).resolve()
            if folder.is_dir() and folder.is_relative_to(root) and folder != root:
                shutil.rmtree(folder)
                removed += 1
    log.info("discarded the images of %d studies under %s", removed, root)
    return removed


def subset_table(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The AUROC of every subset of sequences per site cohort of an evaluation document:
    ``{site: {"n", "n_positive", "dce" | "dwi" | ... | "dce+dwi+t2": {"auroc", "ci_lower", "ci_upper"}}}``
    (``dce+dwi+t2`` is the model with every sequence; the pooled ``ds1+ds2`` cohort is left out)."""
    def rec(a: Mapping[str, Any]) -> dict[str, float]:
        return {"auroc": a["value"], "ci_lower": a["ci_lower"], "ci_upper": a["ci_upper"]}

    out: dict[str, dict[str, Any]] = {}
    for name, c in doc["cohorts"].items():
        if name not in SITE_SEEDS:
            continue
        entry: dict[str, Any] = {"n": c["n"], "n_positive": c["n_positive"], "dce+dwi+t2": rec(c["model"]["auroc"])}
        entry.update({row["subset"]: rec(row["auroc_a"]) for row in c["subsets"]})
        out[name] = entry
    return out


def record_subsets(weights: str | os.PathLike[str], doc: Mapping[str, Any], opts: ReproduceOptions,
                   command: str) -> Path:
    """Write :func:`subset_table` into the card beside ``weights`` as ``metrics["subsets"]``, with how it was
    made (``metrics["subsets_protocol"]``: command, cohort sizes and seeds, TTA, bootstrap). The weights and
    the card's seal are untouched (``metrics`` is outside the seal)."""
    card = read_card(weights)
    protocol = {"command": command, "sizes": dict(opts.sizes), "seeds": {s: SITE_SEEDS[s] for s in opts.sizes},
                "phantom_scale": opts.scale, "world": doc.get("settings", {}).get("world", "v1"),
                "tta": opts.tta, "bootstrap": opts.n_resamples,
                "bootstrap_seed": opts.seed, "source": "mome reproduce-paper (predict with the Predictor, no saliency)"}
    card.metrics = {**card.metrics, "subsets": subset_table(doc), "subsets_protocol": protocol}
    path = card_path_for(weights)
    write_card(path, card.to_dict())
    log.info("recorded the subset AUROCs in %s", path)
    return path


def reproduce(out_dir: str | os.PathLike[str], weights: str | os.PathLike[str], opts: ReproduceOptions,
              command: str = "") -> dict[str, Any]:
    """Run the whole reproduction into ``out_dir``; returns ``{"report", "seconds", "cohorts"}``."""
    from model_core.phantom.cohort import write_cohort

    out = Path(out_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pred = Predictor.from_native(weights, runtime=Runtime("cpu", threads=opts.threads))
    world = opts.world or (pred.card.phantom_world if pred.card is not None else "v1")
    log.info("phantom world %s", world)
    run = RunOptions(tta=opts.tta, explain=False)  # type: ignore[arg-type]
    files: dict[str, tuple[Path, Path]] = {}
    timings: dict[str, float] = {}
    for site, n in opts.sizes.items():
        t = time.perf_counter()
        manifest = write_cohort(n, site, SITE_SEEDS[site], out / "cohorts" / site, opts.workers, scale=opts.scale,
                                formats=("nifti",), compress=False, progress=False, world=world)
        timings[f"phantom_{site}"] = time.perf_counter() - t
        t = time.perf_counter()
        preds = out / "predictions" / f"{site}.jsonl"
        counts = predict_cohort(pred, manifest, preds, options=run)
        timings[f"predict_{site}"] = time.perf_counter() - t
        log.info("%s: %s", site, counts)
        files[site] = (preds, manifest)
        if opts.discard_studies:
            discard_images(manifest)
    pooled = [files[s] for s in ("ds1", "ds2") if s in files]
    names = list(files)
    if len(pooled) == 2:
        files["ds1+ds2"] = _pool(out, pooled)
        names.append("ds1+ds2")
    st = EvaluateSettings(n_resamples=opts.n_resamples, seed=opts.seed, subgroups=SUBGROUPS)
    transfers = (("ds1", "ds2"),) if len(pooled) == 2 else ()
    inp = Inputs([(k, str(files[k][0])) for k in names], tuple(str(files[k][1]) for k in names),
                 transfers=transfers, model=str(weights), command=command,
                 extra={"sizes": dict(opts.sizes), "tta": opts.tta, "phantom_scale": opts.scale, "world": world})
    t = time.perf_counter()
    doc = evaluate_inputs(inp, st)
    paths = write_evaluation(doc, out / "report")
    timings["evaluate"] = time.perf_counter() - t
    if opts.update_card:
        record_subsets(weights, doc, opts, command)
    total = time.perf_counter() - t0
    log.info("reproduction in %.0f s: %s", total, paths["html"])
    return {"report": str(paths["html"]), "markdown": str(paths["markdown"]), "seconds": round(total, 1),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "cohorts": {k: {"n": c["n"], "auroc": c["model"]["auroc"]} for k, c in doc["cohorts"].items()}}
