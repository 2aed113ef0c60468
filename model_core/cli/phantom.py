"""``mome phantom``: write a synthetic cohort (NIfTI and/or DICOM studies plus a label CSV).

The main ``mome`` CLI registers it with :func:`add_subparser`; ``python -m model_core.cli.phantom`` runs
it alone. Example::

    mome phantom --n 200 --site ds2 --seed 7 --out cohorts/ds2 --formats nifti,dicom --workers 2
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from model_core.cli.common import run_alone
from model_core.phantom.params import WORLDS
from model_core.phantom.sites import SITES
from model_core.phantom.writers import FORMATS

log = logging.getLogger(__name__)


def _formats(text: str) -> tuple[str, ...]:
    fmts = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = sorted(set(fmts) - set(FORMATS))
    if bad or not fmts:
        raise argparse.ArgumentTypeError(f"formats must be a comma list of {FORMATS}, got {text!r}")
    return fmts


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``phantom`` arguments to ``parser``."""
    parser.add_argument("--n", type=_positive(int), default=20, help="number of cases (default 20)")
    parser.add_argument("--site", choices=sorted(SITES), default="ds1", help="site profile (default ds1)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--out", required=True, help="output folder (created; existing cases are kept)")
    parser.add_argument("--formats", type=_formats, default=FORMATS, help="nifti,dicom (default both)")
    parser.add_argument("--workers", type=_positive(int), default=1, help="processes (default 1)")
    parser.add_argument("--scale", type=_positive(float), default=1.0, help="matrix-size factor (default 1)")
    parser.add_argument("--uncompressed", action="store_true",
                        help="write .nii instead of .nii.gz (faster to write and read, more disk)")
    parser.add_argument("--world", choices=sorted(WORLDS), default="v1",
                        help="phantom world: v2 gives lesions their breast-MRI T2 appearance (default v1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Write the cohort described by ``args``; returns the exit code (0 on success)."""
    from model_core.phantom.cohort import write_cohort

    if args.seed < 0:
        log.error("--seed must be >= 0")
        return 2
    t0 = time.perf_counter()
    try:
        path = write_cohort(
            args.n, args.site, args.seed, args.out, args.workers,
            scale=args.scale, formats=args.formats, compress=not args.uncompressed,
            progress=not args.no_progress, world=args.world,
        )  # fmt: skip
    except ValueError as exc:  # e.g. --out holds a cohort of another world
        log.error("%s", exc)
        return 2
    log.info("cohort manifest: %s (%.1f s)", path, time.perf_counter() - t0)
    return 0


def add_subparser(subparsers: Any) -> None:
    """Register ``phantom`` on an ``argparse`` sub-parsers object (sets ``func=run``)."""
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic multiparametric breast MRI cohort (labelled phantom data)",
        description=__doc__.splitlines()[0],
    )
    configure(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    return run_alone("mome-phantom", __doc__.splitlines()[0], configure, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
