"""``mome bench evaluate``: ``mome evaluate`` on synthetic predictions (default 10,000 cases, 1000 bootstrap
replicates; the target is under 30 s on a 2-core CPU). The cohort is a prediction file as ``mome predict``
writes it (probability, the eight subset probabilities, Shapley values) and a manifest with labels, BI-RADS,
age and a reader column, so every statistic and figure of the report is timed."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SUBSETS = ("dce", "dwi", "t2", "dce+dwi", "dce+t2", "dwi+t2", "dce+dwi+t2", "none")


def synthetic_predictions(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``preds.jsonl`` and ``manifest.csv`` of ``n`` binormal cases (40 % malignant) under ``root``."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    z = rng.normal(size=(n, 1)) + 1.6 * y[:, None] + rng.normal(0, 0.6, size=(n, len(SUBSETS)))
    p = 1 / (1 + np.exp(-z))
    birads = rng.choice(["3", "4a", "4b", "4c", "5"], n)
    preds, manifest = root / "preds.jsonl", root / "manifest.csv"
    with preds.open("w", encoding="utf-8") as fh:
        for i in range(n):
            sub = dict(zip(SUBSETS, p[i].round(6).tolist(), strict=True))
            fh.write(json.dumps({"case_id": f"c{i}", "probability": sub["dce+dwi+t2"], "subsets": sub,
                                 "shapley": {"dce": float(z[i, 0] / 8), "dwi": float(z[i, 1] / 16), "t2": 0.01}})
                     + "\n")
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "path", "malignant", "birads", "age", "reader1"])
        for i in range(n):
            w.writerow([f"c{i}", f"s{i}", int(y[i]), birads[i], int(rng.integers(25, 85)),
                        birads[i] if rng.random() < 0.8 else "3"])
    return preds, manifest


def bench_evaluate(n: int = 10_000, n_resamples: int = 1000, plots: bool = True) -> dict[str, Any]:
    """Seconds to load, evaluate (every statistic) and write JSON, figures and report."""
    from model_core.evaluation.cohort_eval import EvaluateSettings
    from model_core.evaluation.evaluation_run import Inputs, evaluate_inputs, write_evaluation

    with tempfile.TemporaryDirectory(prefix="mome-bench-eval-") as tmp:
        root = Path(tmp)
        preds, manifest = synthetic_predictions(root, n)
        st = EvaluateSettings(n_resamples=n_resamples, subgroups={"age": (40, 60), "birads4": None},
                              readers=("reader1",))
        inp = Inputs([("bench", str(preds))], (str(manifest),))
        t0 = time.perf_counter()
        doc = evaluate_inputs(inp, st)
        t1 = time.perf_counter()
        write_evaluation(doc, root / "out", plots=plots)
        t2 = time.perf_counter()
    return {"cases": n, "bootstrap_resamples": n_resamples, "evaluate_s": round(t1 - t0, 2),
            "write_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2), "target_s": 30,
            "auroc": doc["cohorts"]["bench"]["model"]["auroc"]["value"]}
