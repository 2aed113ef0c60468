"""``mome reproduce-paper``: phantom cohorts of the three sites -> predict -> evaluate -> report
(:mod:`model_core.evaluation.reproduction`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from model_core.cli.common import emit


def run(args: argparse.Namespace) -> int:
    from model_core.engine.demo import DEMO_WEIGHTS
    from model_core.errors import MomeError
    from model_core.evaluation.reproduction import SIZES, ReproduceOptions, reproduce

    sizes = dict(SIZES[args.size])
    for site in sizes:
        n = getattr(args, f"n_{site}")
        if n is not None:
            sizes[site] = n
    weights = args.weights or DEMO_WEIGHTS
    if not weights or not str(weights).strip():
        raise MomeError("no model: give --weights (the demo weights are not installed)")
    opts = ReproduceOptions(sizes, args.bootstrap, args.seed, args.tta, args.threads, args.workers, args.scale,
                            args.discard_studies, args.update_card, args.world)
    emit(reproduce(args.out, weights, opts, "mome " + " ".join(shlex.quote(a) for a in sys.argv[1:])), None)
    return 0


def add_subparser(sub: Any) -> None:
    from model_core.phantom.params import WORLDS

    r = sub.add_parser("reproduce-paper", help="the paper's evaluation on phantom cohorts of ds1, ds2, ds3 "
                       "with the demo model: predict, evaluate, report")
    r.add_argument("--out", required=True, help="folder for cohorts, predictions and report/ (resumable)")
    r.add_argument("--size", choices=("paper", "ci"), default="paper",
                   help="paper: 307 / 735 / 2661 cases (the paper's test cohorts); ci: 8 per site")
    for site in ("ds1", "ds2", "ds3"):
        r.add_argument(f"--n-{site}", type=int, help=f"cases of {site} (overrides --size)")
    r.add_argument("--weights", help="native model (default: the shipped demo model)")
    r.add_argument("--bootstrap", type=int, default=1000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--tta", default="none", choices=("none", "interactive", "full"),
                   help="test-time augmentation of predict (the paper: full, 54 versions)")
    r.add_argument("--threads", type=int, default=1, help="torch threads of predict")
    r.add_argument("--workers", type=int, default=1, help="processes of phantom generation")
    r.add_argument("--scale", type=float, default=1.0, help="phantom matrix scale")
    r.add_argument("--world", choices=sorted(WORLDS),
                   help="phantom world of the cohorts (default: the one the model was trained on, from its card)")
    r.add_argument("--update-card", action="store_true",
                   help="record the AUROC of every subset of sequences per site in the model's card "
                        "(metrics.subsets; the weights and the card's seal are untouched)")
    r.add_argument("--discard-studies", action="store_true",
                   help="delete each site's images once predicted (keeps labels and predictions; the full size "
                        "then needs ~43 GB of disk instead of ~75 GB)")
    r.set_defaults(func=run)
