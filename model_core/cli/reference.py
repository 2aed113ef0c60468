"""``mome reference``: a native model's Shapley reference value and per-sequence figures on a reference
cohort, or only cohorts' voxel-data digests (:mod:`model_core.evaluation.reference_cohort`)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from model_core.cli.common import emit, progress_logger


def run(args: argparse.Namespace) -> int:
    from model_core.engine.predictor import Predictor
    from model_core.evaluation.reference_cohort import (
        cohort_digests,
        reference_values,
        summary,
        update_card_reference,
        update_card_test_cohorts,
    )

    command = "mome " + shlex.join(getattr(args, "argv", []) or ["reference", args.weights])
    if args.digests_only:
        cohorts = cohort_digests(args.cohort, progress=progress_logger("digest"))
        if args.update_card:
            update_card_test_cohorts(args.weights, cohorts, args.world_commit, command)
        emit(cohorts, args.json)
        return 0
    pred = Predictor.from_native(args.weights, device=args.device, threads=args.threads, audit_log=None)
    ref = reference_values(pred, args.cohort, n_bootstrap=args.bootstrap, seed=args.seed,
                           progress=progress_logger("reference"), command=command)
    if args.update_card:
        update_card_reference(args.weights, ref)
    emit(summary(ref), args.json)
    return 0


def add_subparser(subparsers: Any) -> None:
    """Register the subcommand on the ``mome`` sub-parsers."""
    r = subparsers.add_parser("reference", help="Shapley reference value v(empty) and per-sequence figures of a "
                              "native model on a reference cohort (JSON on stdout; --update-card stores them)")
    r.add_argument("weights", help="native .safetensors (+ card)")
    r.add_argument("--cohort", nargs="+", required=True,
                   help="cohort CSVs (columns case_id, path, malignant), none of the model's own cohorts")
    r.add_argument("--bootstrap", type=int, default=1000, help="AUROC bootstrap resamples (default 1000)")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--update-card", action="store_true", help="write the record into the model card")
    r.add_argument("--digests-only", action="store_true",
                   help="only the cohorts' voxel-data digests (no model run); with --update-card they go into "
                        "the card's metrics['test_cohorts']")
    r.add_argument("--world-commit", default="", help="git commit of the phantom world the cohorts come from")
    r.add_argument("--json", help="also write the summary to this file")
    r.set_defaults(func=run)
