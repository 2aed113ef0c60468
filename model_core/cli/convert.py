"""``mome convert``: the authors' ``.pth`` -> native safetensors + model card."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from model_core.cli.common import emit

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from model_core.network.config import MomeConfig
    from model_core.weights.convert import convert_official

    base = MomeConfig.from_dict(json.loads(Path(args.config).read_text())) if args.config \
        else MomeConfig.preset(args.preset)
    report = convert_official(args.src, args.dst, base, args.num_heads)
    emit({"source": args.src, "weights": args.dst, "loaded": len(report.loaded),
           "tied_modules": len(report.tied), "untied_modules": len(report.untied)}, None)
    return 0


def add_subparser(subparsers: Any) -> None:
    """Register the subcommand on the ``mome`` sub-parsers."""
    c = subparsers.add_parser("convert", help="the authors' .pth -> native safetensors + model card")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--preset", default="base", help="config preset giving canvas sizes and heads (default base)")
    c.add_argument("--config", help="JSON MomeConfig instead of a preset")
    c.add_argument("--num-heads", type=int, help="attention heads (cannot be read from shapes)")
    c.set_defaults(func=run)
