"""Preprocessing benchmark on a paper-size synthetic study; prints JSON (median of ``--repeats`` runs).

Usage: ``python scripts/bench_preprocess.py [--repeats 3]``. The same function backs ``mome bench``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from model_core.bench.preprocess import bench_preprocess


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    result = bench_preprocess(repeats=args.repeats)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
