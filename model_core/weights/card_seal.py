"""The model card's seal: a sha256 over everything in the card that can change a result.

The seal (``card_sha256``) covers the whole card (config, preprocessing, thresholds, reference values,
the weights' sha256, provenance, any field added later) except the descriptive fields listed in
:data:`UNSEALED_FIELDS`. It is written by :func:`write_card` (used by every API that saves a card) and
checked by :func:`verify_card_seal` when a card is read: a card edited by hand, or never sealed, is refused
with :class:`~model_core.errors.CardIntegrityError`. ``mome card seal PATH`` re-seals a deliberate edit.

What a seal vouches for: that the card was not changed unnoticed since it was last sealed (by this package
or by someone running ``mome card seal``). It is not a signature: anyone can re-seal a card, so it says
nothing about who made it (authenticity).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_core.errors import CardIntegrityError, CheckpointError

SEAL_KEY = "card_sha256"
"""Card field holding the seal."""

UNSEALED_FIELDS: frozenset[str] = frozenset({SEAL_KEY, "description", "notes", "metrics"})
"""Descriptive fields a seal does not cover: free text (``description``, ``notes``) and the evaluation
``metrics`` (reports of how the model did, which change no output). Everything else is covered."""


def card_digest(doc: Mapping[str, Any]) -> str:
    """sha256 of the card's canonical JSON without :data:`UNSEALED_FIELDS`.

    Raises:
        CheckpointError: the card holds values JSON cannot represent (NaN, non-string keys, objects).
    """
    sealed = {k: v for k, v in doc.items() if k not in UNSEALED_FIELDS}
    try:
        text = json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model card holds a value that is not plain JSON ({exc})") from exc
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def sealed(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with its seal set."""
    out = dict(doc)
    out[SEAL_KEY] = card_digest(out)
    return out


def verify_card_seal(doc: Mapping[str, Any], source: str) -> None:
    """Refuse a card whose seal is missing or does not match its content.

    Raises:
        CardIntegrityError: naming the card, what differs and how to re-seal a deliberate edit.
    """
    seal = doc.get(SEAL_KEY)
    if not isinstance(seal, str) or not seal:
        raise CardIntegrityError(
            f"{source}: the model card is not sealed ({SEAL_KEY} missing); its config, preprocessing and "
            "thresholds cannot be trusted. If its content is what you intend, seal it: mome card seal PATH"
        )
    digest = card_digest(doc)
    if digest != seal:
        raise CardIntegrityError(
            f"{source}: the model card was changed after it was sealed ({SEAL_KEY} {seal[:12]}..., content "
            f"{digest[:12]}...): a field that changes results (config, preprocessing, thresholds, reference "
            "values) may have been edited. If the edit is deliberate, re-seal it: mome card seal PATH"
        )


def write_card(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> dict[str, Any]:
    """Seal ``doc`` and write it to ``path`` (indented, sorted keys); returns the sealed dict."""
    out = sealed(doc)
    Path(path).write_text(json.dumps(out, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return out


def seal_card_file(path: str | os.PathLike[str]) -> str:
    """Re-seal the card file at ``path`` in place after a deliberate edit; returns the new seal.

    Raises:
        CheckpointError: the file is not a readable JSON object.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p}: unreadable model card ({exc})") from exc
    if not isinstance(doc, dict):
        raise CheckpointError(f"{p}: a model card must be a JSON object, got {type(doc).__name__}")
    return str(write_card(p, doc)[SEAL_KEY])
