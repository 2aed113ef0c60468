"""The model side of the dock widget, without Qt: which model, how to load it, and one analysis.

:func:`analyse` is what the widget's thread worker runs: it loads the Predictor when needed and calls
:meth:`Predictor.run` with the progress and stop callbacks. A cancelled run returns ``None`` (cancelling is
not an error); any other exception propagates to the worker, which reports it once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_core.engine.options import TTA, RunOptions
from model_core.engine.predictor import Predictor
from model_core.engine.progress import ProgressFn, StopFn
from model_core.engine.result import Result
from model_core.errors import Cancelled, ConfigError
from model_core.runtime import Runtime
from model_core.studies.study import Study

TTA_LEVELS: dict[str, TTA] = {"none": "none", "interactive (6)": "interactive", "full (54)": "full"}
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def preload() -> None:
    """Import what a Run imports lazily (captum, which imports matplotlib.pyplot and IPython), here on the
    GUI thread when the widget opens: an import in the worker holds the interpreter lock for up to a
    second (unmarshalling bytecode) and would freeze the viewer mid-run."""
    import captum.attr  # noqa: F401


def default_threads() -> int:
    """CPU threads for the model: all cores but one, which stays free for the viewer."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class ModelChoice:
    """Which weights and how to run them. ``path=None``: the bundled demo model."""

    path: str | None = None
    device: str = "auto"
    dtype: str = "fp32"

    @property
    def is_demo(self) -> bool:
        """The bundled demo weights, chosen as the default or picked as a file."""
        from model_core.engine.demo import demo_weights_path

        demo = demo_weights_path()
        return self.path is None or (demo is not None and Path(self.path).resolve() == demo.resolve())


def load_predictor(choice: ModelChoice) -> tuple[Predictor, str]:
    """The Predictor for ``choice`` and its notice (the demo notice, or ``""`` for a user checkpoint).

    Raises:
        ConfigError, CheckpointError: unknown file type, unreadable or unsafe checkpoint.
    """
    from model_core.engine.demo import demo_predictor

    kw: dict[str, Any] = {"runtime": Runtime(choice.device, choice.dtype, default_threads())}  # type: ignore[arg-type]
    if choice.path is None:
        return demo_predictor(**kw)
    path = Path(choice.path)
    if path.suffix in (".pth", ".pt"):
        return Predictor.from_official(path, **kw), ""
    if path.suffix == ".safetensors":
        return Predictor.from_native(path, **kw), ""
    raise ConfigError(f"{path.name}: choose a .safetensors model (with its .card.json) or the authors' .pth")


def card_line(card: Any, sha256: str | None, source: str) -> str:
    """One line: model name, training data (studies and cohorts from the card), sha256 prefix."""
    sha = f"sha256 {sha256[:12]}" if sha256 else "sha256 computed at the first Run"
    if card is None:
        return f"{source} | no model card | {sha}"
    tr = card.training or {}
    cohorts = [f"{Path(str(c.get('csv', ''))).parent.name or '?'} ({c.get('n', '?')})"
               for c in tr.get("train_cohorts", []) if isinstance(c, dict)]
    training = f"{tr['n_train']} studies" if "n_train" in tr else "training data not recorded"
    if cohorts:
        training += ": " + ", ".join(cohorts)
    return f"{card.name} | trained on {training} | {sha}"


def choice_card_line(choice: ModelChoice) -> str:
    """The card line of a model choice before its weights are loaded (reads only the card file)."""
    from model_core.engine.demo import demo_weights_path
    from model_core.weights.native import read_card

    path = Path(choice.path) if choice.path is not None else demo_weights_path()
    if path is None:
        return "untrained demo network (no weights installed) | numbers are meaningless"
    if path.suffix == ".safetensors":
        card = read_card(path)
        return card_line(card, card.weights_sha256, path.name)
    return card_line(None, None, path.name)


@dataclass(frozen=True)
class Job:
    """One Run: the study, the settings and the BI-RADS category."""

    study: Study
    options: RunOptions
    birads: str | None


def analyse(predictor: Predictor, job: Job, progress: ProgressFn, should_stop: StopFn) -> Result | None:
    """Run ``job``; ``None`` when ``should_stop`` cancelled it."""
    try:
        return predictor.run(job.study, options=job.options, birads=job.birads, progress=progress,
                             should_stop=should_stop)
    except Cancelled:
        return None
