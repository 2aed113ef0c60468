"""What the engine reads from a model card: the preprocessing the model was trained with."""

from __future__ import annotations

from model_core.errors import CheckpointError
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.weights.native import ModelCard


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
