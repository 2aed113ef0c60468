"""What the engine reads from a model card: the preprocessing the model was trained with, its intended use."""

from __future__ import annotations

from model_core.errors import CheckpointError
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.weights.native import RESEARCH_USE, SYNTHETIC_NOTE, ModelCard


def preprocess_options(card: ModelCard | None) -> PreprocessOptions:
    """The card's preprocessing as :class:`PreprocessOptions` (the defaults when there is no card or the card
    records none).

    Raises:
        CheckpointError: the recorded options are not valid :class:`PreprocessOptions`.
    """
    if card is None:
        return PreprocessOptions()
    try:
        return PreprocessOptions.from_dict(card.preprocess)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model card: invalid preprocessing options {card.preprocess!r} ({exc})") from exc


def intended_use(card: ModelCard | None) -> str:
    """The card's intended-use text; it says "synthetic" whenever the card records synthetic training data,
    so every Result made with such weights carries it. No card: the research-use text."""
    if card is None:
        return RESEARCH_USE
    text = card.intended_use or RESEARCH_USE
    if card.provenance.get("synthetic_training_data") and "synthetic" not in text.lower():
        text = f"{text} {SYNTHETIC_NOTE}"
    return text
