#!/usr/bin/env python
"""Large seeded fuzz run of the study readers; prints outcome counts per format.

Usage::

    python scripts/fuzz_readers.py                 # 3,000 cases each of nii, nii.gz, nrrd, mha, dicom, ...
    python scripts/fuzz_readers.py --memory        # also each case's peak memory (tracemalloc)
    python scripts/fuzz_readers.py -n 500 --formats nrrd mha --seed 3 --json counts.json

Outcomes (see tests/model_core/studies/fuzzlib.py): ``loaded`` (checked volume), ``rejected:<cause>`` (a
StudyReadError; cause = library exception, ``check`` for our own checks, ``sitk-*`` for the isolated
SimpleITK child), and the contract violations ``ESCAPED:*`` / ``BAD:*``. Exit status 1 when any
violation occurred. Cases are written to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.model_core.studies.fuzzlib import failures, fuzz  # noqa: E402

FORMATS = ["nii", "nii.gz", "nrrd", "mha", "dicom", "mha-unchecked", "hostile"]
log = logging.getLogger("fuzz_readers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="cases per format (default 3000)")
    parser.add_argument("--formats", nargs="+", default=FORMATS, choices=FORMATS)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", type=Path, help="also write the counts here")
    parser.add_argument("--memory", action="store_true",
                        help="measure every case's peak memory (tracemalloc); over 64 MiB counts as BAD:memory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for name in ("model_core", "nibabel", "pydicom"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    report: dict[str, dict[str, int]] = {}  # outcome counts (and peak memory figures with --memory)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="mome-fuzz-") as tmp:
        for fmt in args.formats:
            t0 = time.perf_counter()
            peaks: list[int] | None = [] if args.memory else None
            counts = fuzz(fmt, args.n, Path(tmp) / fmt.replace(".", "_"), seed=args.seed, peaks=peaks)
            report[fmt] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
            if peaks:
                report[fmt]["peak_kib_max"] = max(peaks) >> 10
                report[fmt]["peak_kib_median"] = sorted(peaks)[len(peaks) // 2] >> 10
            bad += sum(failures(counts).values())
            log.info("%s: %d cases in %.1f s", fmt, args.n, time.perf_counter() - t0)
            for outcome, n in report[fmt].items():
                log.info("    %-40s %6d", outcome, n)
    log.info("contract violations (ESCAPED, BAD incl. BAD:memory): %d", bad)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
