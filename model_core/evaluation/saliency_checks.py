"""Saliency checks on held-out phantoms: pointing game, completeness, model-randomisation sanity check.

* **Pointing game** (per cohort, malignant studies): whether the highest-saliency voxel of each sequence's
  map lies inside the lesion mask dilated by 5 mm (:mod:`model_core.evaluation.heldout`).
* **Completeness**: per study, ``F(x)``, ``F(b)``, ``delta = sum(attr) - (F(x) - F(b))`` and the relative
  error ``|delta| / |F(x) - F(b)|``, summarised for malignant and benign studies apart.
* **Model randomisation** (Adebayo et al. 2018, cascading): the network's weights are re-drawn layer by
  layer from the top (head, final norm, encoder layers 11 .. 0, position tables, tokenizers; each tensor
  ``N(0, sd of the trained tensor)``, seeded) and after each stage the saliency of the same study is
  compared with the trained model's by Spearman rank correlation (of ``|attr|`` and of the signed map)
  over the canvas voxels where the input differs from the baseline: elsewhere the attribution is 0 by
  construction for every model, and those ties alone would make any two maps look alike. A map that
  explains the model falls apart as its layers are randomised.

Run: ``python -m model_core.evaluation.saliency_checks resources/demo.safetensors --cohort ds1=CSV
--cohort ds2=CSV --randomise 3 --json out.json`` (JSON summary on stdout).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from model_core.engine.baselines import baselines_for, canvas_regions, describe
from model_core.engine.explain import integrated_gradients
from model_core.engine.predictor import Predictor, RunOptions
from model_core.evaluation.cases import CaseRef, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.evaluation.heldout import dilated_mask, mask_path, points_at
from model_core.network.mome import Mome
from model_core.preprocessing.tta import fit, tta_canvases
from model_core.studies import read_study, read_volume

log = logging.getLogger(__name__)


def check_study(predictor: Predictor, case: CaseRef, opts: RunOptions, radius_mm: float = 5.0) -> dict[str, Any]:
    """One study through the Predictor with saliency: completeness figures and (malignant) pointing hits."""
    study = read_study(case.path)
    r = predictor.run(study, options=opts)
    e = r.explain or {}
    row: dict[str, Any] = {"case_id": case.case_id, "label": case.label, "probability": r.probability,
                           "f_input": e.get("f_input"), "f_baseline": e.get("f_baseline"),
                           "delta": e.get("convergence_delta"), "relative_error": e.get("relative_error"),
                           "n_steps": e.get("n_steps"), "seconds": e.get("seconds"), "hits": {}}
    if case.label == 1:
        mask = read_volume(mask_path(case, study))
        region = dilated_mask(mask.data, mask.affine, radius_mm)
        row["hits"] = {m: points_at(s, region, mask.affine) for m, s in r.saliency.items()}
    return row


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pointing-game hit rates (malignant) and completeness quantiles (malignant, benign)."""
    out: dict[str, Any] = {}
    mal = [r for r in rows if r["label"] == 1]
    for m in ("dce", "dwi", "t2"):
        got = [r["hits"][m] for r in mal if m in r["hits"]]
        if got:
            out[f"pointing_{m}"] = {"hit_rate": float(np.mean(got)), "n": len(got)}
    for name, label in (("malignant", 1), ("benign", 0)):
        err = np.asarray([r["relative_error"] for r in rows if r["label"] == label], dtype=np.float64)
        d = np.asarray([abs(r["delta"]) for r in rows if r["label"] == label], dtype=np.float64)
        span = np.asarray([abs(r["f_input"] - r["f_baseline"]) for r in rows if r["label"] == label])
        if err.size:
            out[f"completeness_{name}"] = {
                "n": int(err.size), "relative_error_median": float(np.median(err)),
                "relative_error_p90": float(np.quantile(err, 0.9)), "share_below_5pct": float(np.mean(err < 0.05)),
                "abs_delta_median": float(np.median(d)), "span_median": float(np.median(span))}
    return out


def _stages(model: Mome) -> list[tuple[str, list[str]]]:
    """Parameter-name prefixes of each cascading stage, top first."""
    depth = len(list(model.beit3.encoder.layers))
    stages = [("head", ["head."]), ("fc_norm", ["fc_norm."])]
    stages += [(f"layer {i}", [f"beit3.encoder.layers.{i}."]) for i in reversed(range(depth))]
    stages += [("positions", ["beit3.encoder.embed_positions."]),
               ("tokenizers", ["beit3.dce_embed.", "beit3.dwi_embed.", "beit3.t2_embed."])]
    return stages


@torch.no_grad()
def _randomise(model: Mome, prefixes: Sequence[str], gen: torch.Generator) -> None:
    for name, p in model.named_parameters():
        if any(name.startswith(q) for q in prefixes):
            sd = float(p.detach().float().std()) if p.numel() > 1 else 0.0
            p.copy_(torch.randn(p.shape, generator=gen) * (sd if sd > 0 else 0.02))


def _canvas_map(model: Mome, x: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor],
                opts: RunOptions) -> np.ndarray:
    ig = integrated_gradients(model, x, n_steps=opts.ig_steps, internal_batch_size=opts.ig_internal_batch,
                              decades=opts.ig_decades, baselines=base, scan=opts.scan)
    return np.concatenate([ig.canvas[m].ravel() for m in sorted(ig.canvas)])


def _support(x: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Canvas voxels (all modalities, sorted, flattened like :func:`_canvas_map`) where ``x != b``."""
    return np.concatenate([(x[m] != base[m])[0].any(0).numpy().ravel() for m in sorted(x)])


def randomisation_check(predictor: Predictor, case: CaseRef, opts: RunOptions, seed: int = 0) -> list[dict[str, Any]]:
    """Spearman correlation of the saliency after each cascading stage with the trained model's."""
    prepared = predictor.prepare(read_study(case.path))
    cfg = predictor.cfg
    x, _ = tta_canvases(fit(prepared.arrays, cfg.sizes, opts.resize), [(0, -1)])
    base = baselines_for(x, opts.ig_baseline, canvas_regions(prepared, cfg.sizes, opts.resize), opts.ig_sigma)
    model = copy.deepcopy(predictor.model).eval()
    keep = _support(x, base)
    ref = _canvas_map(model, x, base, opts)[keep]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for stage, prefixes in _stages(model):
        _randomise(model, prefixes, gen)
        cur = _canvas_map(model, x, base, opts)[keep]
        out.append({"stage": stage, "voxels": int(keep.sum()),
                    "spearman_abs": float(spearmanr(np.abs(ref), np.abs(cur))[0]),
                    "spearman": float(spearmanr(ref, cur)[0])})
        log.info("%s: randomised up to %s: rank correlation |attr| %.3f", case.case_id, stage, out[-1]["spearman_abs"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_core.evaluation.saliency_checks")
    ap.add_argument("weights")
    ap.add_argument("--cohort", action="append", required=True, help="NAME=CSV (held-out phantom cohort)")
    ap.add_argument("--ig-steps", type=int, default=RunOptions().ig_steps)
    ap.add_argument("--max-steps", type=int, default=RunOptions().ig_max_steps, help="double the steps up to this "
                    "many while the relative completeness error is above 5 %% (default: the Run's; 0: never)")
    ap.add_argument("--malignant-only", action="store_true", help="only the malignant studies")
    ap.add_argument("--randomise-only", action="store_true", help="skip the pointing game and completeness")
    ap.add_argument("--randomise", type=int, default=0, help="malignant studies per cohort for the sanity check")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the report (with per-study rows) here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    pred = Predictor.from_native(args.weights, device="cpu", threads=args.threads, audit_log=None)
    opts = RunOptions(ig_steps=args.ig_steps, ig_max_steps=args.max_steps)
    report: dict[str, Any] = {"options": {"ig_steps": opts.ig_steps, "scan": opts.scan, "max_steps": opts.ig_max_steps,
                                          "baseline": describe(opts.ig_baseline, opts.ig_sigma)}}
    for spec in args.cohort:
        name, csv = spec.split("=", 1)
        cases = [c for c in read_cohort(csv, get_task("malignancy")) if c.label == 1 or not args.malignant_only]
        rows: list[dict[str, Any]] = []
        for i, c in enumerate([] if args.randomise_only else cases):
            rows.append(check_study(pred, c, opts))
            log.info("%s %d/%d: label %d, relative error %.4f", name, i + 1, len(cases), c.label,
                     rows[-1]["relative_error"])
        rand = [randomisation_check(pred, c, opts) for c in [c for c in cases if c.label == 1][: args.randomise]]
        report[name] = {"summary": summarise(rows), "randomisation": rand, "rows": rows}
    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    sys.stdout.write(json.dumps({k: v.get("summary", v) if isinstance(v, dict) else v
                                 for k, v in report.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
