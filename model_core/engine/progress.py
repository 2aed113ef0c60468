"""Progress and cancellation as plain callbacks, for any front end (CLI bar, napari worker, a test).

A long computation takes two optional callables:

* ``progress(done: int, total: int, stage: str) -> None``: called after each step;
* ``should_stop() -> bool``: called before each step; when it returns True the computation raises
  :class:`~model_core.errors.Cancelled` without starting that step (so a stop takes effect at the next
  step boundary: per TTA batch, per subset, per integrated-gradients batch).

:class:`Steps` holds both plus the step count; computations call :meth:`Steps.check` before and
:meth:`Steps.advance` after each step. No threads, no Qt: a napari generator worker simply yields from
``progress`` and returns True from ``should_stop`` after ``quit()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from model_core.errors import Cancelled

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, stage)``: ``done`` steps of ``total`` finished; ``stage`` names the last one."""

StopFn = Callable[[], bool]
"""``should_stop()``: True asks the computation to stop at the next step boundary."""


def check_stop(should_stop: StopFn | None, where: str = "") -> None:
    """Raise :class:`Cancelled` when ``should_stop`` says so (``None`` never stops)."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"cancelled{' before ' + where if where else ''}")


class Steps:
    """A step counter wired to the two callbacks.

    Args:
        total: the number of steps planned (may be raised later with :meth:`add`).
        progress: called after every step, ``progress(done, total, stage)``.
        should_stop: polled by :meth:`check`.
    """

    def __init__(self, total: int = 0, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> None:
        self.total = int(total)
        self.done = 0
        self.progress = progress
        self.should_stop = should_stop

    def add(self, n: int) -> None:
        """Plan ``n`` more steps."""
        self.total += int(n)

    def check(self, stage: str = "") -> None:
        """Raise :class:`Cancelled` if a stop was requested (call before starting a step)."""
        if self.should_stop is not None and self.should_stop():
            log.info("stop requested: cancelled after %d of %d steps (next: %s)", self.done, self.total, stage)
            raise Cancelled(f"cancelled after {self.done} of {self.total} steps (before {stage or 'next step'})")

    def advance(self, stage: str, n: int = 1) -> None:
        """Record ``n`` finished steps of ``stage`` and report them."""
        self.done += int(n)
        self.total = max(self.total, self.done)
        if self.progress is not None:
            self.progress(self.done, self.total, stage)
