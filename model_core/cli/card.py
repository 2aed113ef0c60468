"""``mome card seal PATH`` / ``mome card verify PATH``: the model card's seal (:mod:`model_core.weights.card_seal`).

Sealing vouches for integrity only: that nothing in the card that can change a result (config,
preprocessing, thresholds, reference values, weights digest; everything except the descriptive fields
``description``, ``notes`` and ``metrics``) changed unnoticed since the card was last sealed. It is not a
signature and says nothing about who wrote the card (not authenticity): seal a card only after checking
that its content is what you intend.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

_SEAL_HELP = (
    "re-seal a model card after a deliberate edit. The seal is a sha256 over everything in the card that "
    "can change a result (all fields except description, notes and metrics); it lets napari-mome refuse "
    "cards changed unnoticed afterwards. It vouches for integrity against unnoticed edits, not for "
    "authenticity: anyone can seal a card, so check its content before sealing."
)


def _seal(args: argparse.Namespace) -> int:
    from model_core.weights.card_seal import seal_card_file

    for path in args.paths:
        digest = seal_card_file(path)
        log.info("sealed %s (card_sha256 %s)", path, digest[:12])
        sys.stdout.write(json.dumps({"card": path, "card_sha256": digest}) + "\n")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model_core.errors import CheckpointError
    from model_core.weights.card_seal import verify_card_seal

    bad = 0
    for path in args.paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise CheckpointError(f"{path}: a model card must be a JSON object")
            verify_card_seal(doc, path)
            sys.stdout.write(json.dumps({"card": path, "sealed": True}) + "\n")
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # CheckpointError is a ValueError
            bad += 1
            log.error("%s", exc)
            sys.stdout.write(json.dumps({"card": path, "sealed": False}) + "\n")
    return 1 if bad else 0


def add_subparser(subparsers: Any) -> None:
    """Register ``card seal`` and ``card verify`` on an ``argparse`` sub-parsers object."""
    card = subparsers.add_parser("card", help="model card seal: seal after a deliberate edit, verify",
                                 description=__doc__.splitlines()[0])
    sub = card.add_subparsers(dest="card_command", required=True)
    seal = sub.add_parser("seal", help=_SEAL_HELP, description=_SEAL_HELP)
    seal.add_argument("paths", nargs="+", metavar="PATH", help="model card(s) (*.card.json)")
    seal.set_defaults(func=_seal)
    verify = sub.add_parser("verify", help="check that model card(s) match their seal (exit 1 if not)")
    verify.add_argument("paths", nargs="+", metavar="PATH", help="model card(s) (*.card.json)")
    verify.set_defaults(func=_verify)
