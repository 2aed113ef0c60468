"""The ``mome`` command line: one module per subcommand (``bench``, ``card``, ``convert``, ``demo``,
``predict``, ``phantom``, ``train``, ``evaluate-model``, ``evaluate``, ``reproduce-paper``, ``view``,
``reference``), each with ``add_subparser``.

Logging goes to stderr; machine-readable results (JSON) go to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from model_core.cli import (
    bench,
    card,
    convert,
    demo,
    evaluate,
    evaluate_model,
    phantom,
    predict,
    reference,
    reproduce,
    train,
    view,
)
from model_core.errors import MomeError

log = logging.getLogger("model_core")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mome", description="MOME for multiparametric breast MRI "
                                     "(research use only; not for clinical decisions).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (bench, card, convert, demo, predict, phantom, train, evaluate_model, evaluate, reproduce, view,
                   reference):
        module.add_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except MomeError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
