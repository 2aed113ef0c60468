"""Settings of one Run of the Predictor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from model_core.errors import ConfigError
from model_core.preprocessing.canvas import ResizeMethod
from model_core.preprocessing.tta import tta_versions

TTA = Literal["none", "interactive", "full"]


@dataclass(frozen=True)
class RunOptions:
    """Settings of one Run.

    Attributes:
        tta: ``"none"``, ``"interactive"`` (6 versions) or ``"full"`` (54).
        explain: compute integrated-gradients saliency.
        ig_steps: IG integration points; ig_internal_batch: scaled inputs per forward/backward;
            ig_decades: graded-path pieces (:func:`model_core.engine.explain.path_segments`; 0 = plain captum).
        tta_batch: versions encoded per batch (memory bound); fuse_chunk: versions per fusion call.
        resize: canvas resize backend (``"exact"``: scipy, the authors' values).
    """

    tta: TTA = "none"
    explain: bool = True
    ig_steps: int = 32
    ig_internal_batch: int = 4
    ig_decades: int = 6
    tta_batch: int = 2
    fuse_chunk: int = 8
    resize: ResizeMethod = "exact"

    def __post_init__(self) -> None:
        if self.tta not in ("none", "interactive", "full"):
            raise ConfigError(f"tta must be 'none', 'interactive' or 'full', got {self.tta!r}")
        if min(self.ig_steps, self.ig_internal_batch, self.tta_batch, self.fuse_chunk) < 1:
            raise ConfigError("ig_steps, ig_internal_batch, tta_batch and fuse_chunk must be >= 1")

    def versions(self) -> tuple[tuple[int, int], ...]:
        return ((0, -1),) if self.tta == "none" else tta_versions(self.tta)
