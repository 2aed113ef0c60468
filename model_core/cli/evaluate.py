"""``mome evaluate``: the paper's statistics for prediction files (``mome predict`` JSON lines or a CSV of
scores) against a labelled manifest; writes ``evaluation.json``, figures and an HTML/Markdown report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from model_core.cli.common import emit
from model_core.errors import MomeError

log = logging.getLogger("model_core")


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    a, s, b = text.partition(sep)
    if not s or not a or not b:
        raise MomeError(f"{what} {text!r}: expected A{sep}B")
    return a, b


def _named(text: str) -> tuple[str, str]:
    name, s, path = text.partition("=")
    return (name, path) if s and name and not Path(text).exists() else (Path(text).stem, text)


def _subgroup(text: str) -> tuple[str, list[float] | None]:
    col, s, edges = text.partition("=")
    try:
        return col, [float(e) for e in edges.split(",")] if s else None
    except ValueError as exc:
        raise MomeError(f"--subgroup {text!r}: bin edges must be numbers ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    from model_core.evaluation.cohort_eval import EvaluateSettings
    from model_core.evaluation.evaluation_run import Inputs, evaluate_inputs, write_evaluation

    st = EvaluateSettings(args.bootstrap, args.seed, args.level, args.threshold,
                          dict(_subgroup(s) for s in args.subgroup), tuple(args.reader), args.birads_column,
                          tuple(_pair(c, ",", "--compare") for c in args.compare))
    inp = Inputs([_named(p) for p in args.predictions], tuple(args.labels), args.label_column, args.cohort_by,
                 tuple(_pair(t, ":", "--transfer") for t in args.transfer),
                 tuple(_pair(k, "=", "--kfold") for k in args.kfold), args.model,
                 "mome " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                 others=tuple(_pair(o, "=", "--other") for o in args.other))
    doc = evaluate_inputs(inp, st)
    paths = write_evaluation(doc, args.out, plots=not args.no_plots)
    summary: dict[str, Any] = {k: str(v) for k, v in paths.items()}
    summary["cohorts"] = {k: {"n": c["n"], "auroc": c["model"]["auroc"]} for k, c in doc["cohorts"].items()}
    emit(summary, None)
    return 0


def add_subparser(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="AUROC/AUPRC/pAUROC, threshold metrics, subsets, decision curves, "
                       "subgroups, readers, BI-RADS 4 transfer -> JSON, plots, HTML report")
    e.add_argument("predictions", nargs="+", help="[NAME=]FILE: mome predict JSON lines or a CSV of scores")
    e.add_argument("--labels", action="append", default=[], help="manifest CSV (one for all, or one per file)")
    e.add_argument("--label-column", help="0/1 label column (default malignant, else label)")
    e.add_argument("--cohort-by", help="split each file's cases into cohorts by this manifest column")
    e.add_argument("--out", default="evaluation", help="output folder (default ./evaluation)")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--level", type=float, default=0.95)
    e.add_argument("--threshold", type=float, help="a second operating point besides 0.5")
    e.add_argument("--subgroup", action="append", default=[],
                   help="COLUMN[=EDGE,EDGE...]: subgroups by a manifest column (e.g. age=40,60; 'birads4')")
    e.add_argument("--reader", action="append", default=[], help="a reader BI-RADS column (positive >= 4b)")
    e.add_argument("--birads-column", default="birads")
    e.add_argument("--other", action="append", default=[],
                   help="NAME=FILE: another model's predictions for the same cases, added as score column NAME")
    e.add_argument("--compare", action="append", default=[],
                   help="A,B: score columns for a paired AUROC p-value (model, subset:dce, subset:dce+dwi, an "
                        "--other NAME ...); every subset is compared with model anyway")
    e.add_argument("--transfer", action="append", default=[], help="SOURCE:TARGET cohorts, BI-RADS 4 threshold")
    e.add_argument("--kfold", action="append", default=[], help="TASK=cv_summary.json from mome train --fold all")
    e.add_argument("--model", help="native weights whose model card is summarised in the report")
    e.add_argument("--no-plots", action="store_true")
    e.set_defaults(func=run)
