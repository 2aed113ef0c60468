"""Typed exceptions raised by :mod:`model_core`.

Every failure a user can cause (a bad file, a wrong checkpoint, an impossible request) raises one of
these, with a message that names the file or key and the problem. ``ValueError`` subclasses are used for
bad inputs so that callers catching ``ValueError`` keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


class MomeError(Exception):
    """Base class of every error raised on purpose by model_core."""


class ConfigError(MomeError, ValueError):
    """An impossible or inconsistent model configuration."""


class InputShapeError(MomeError, ValueError):
    """A tensor given to the model has the wrong rank, channel count or spatial size."""


class CheckpointError(MomeError, ValueError):
    """A checkpoint cannot be loaded: unsafe content, missing / unexpected / mis-shaped keys."""


class UnsafeCheckpointError(CheckpointError):
    """The file would need arbitrary unpickling (code execution) to load; it was refused."""


class IntegrityError(CheckpointError):
    """A weights file does not match the sha256 recorded in its model card."""


class StudyReadError(MomeError, ValueError):
    """A study file or folder cannot be read: truncated, malformed, unsupported or inconsistent.

    The message always names the offending file (or folder) and the problem.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class GeometryError(StudyReadError):
    """Volumes that must share a grid (e.g. DCE phases) do not."""


class PreprocessError(MomeError, ValueError):
    """A study cannot be turned into model inputs (e.g. no DCE and no other modality present)."""


class Cancelled(MomeError):
    """Raised when a ``should_stop`` callback asked a long computation to stop."""


class TrainError(MomeError, ValueError):
    """A training run or a labelled cohort cannot be used: bad cohort, labels, options or resume state."""


def known_fields(cls: type, d: Mapping[str, Any], error: type[MomeError]) -> dict[str, Any]:
    """``d`` as a dict of the dataclass ``cls``'s fields; ``error`` names any key that is not one."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise error(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return dict(d)


class CardIntegrityError(IntegrityError):
    """A model card's content does not match its seal (``card_sha256``): it was edited after sealing,
    or it was never sealed. Re-seal a deliberate edit with ``mome card seal PATH``."""


class BudgetError(MomeError, ValueError):
    """An input or configuration would need more memory than the stated budget allows.

    The message names the limit, the amount asked for and how to raise the limit.
    """
