"""Small Qt helpers of the dock widget: the progress relay, banners, worker error reporting."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QLabel


class Relay(QObject):
    """Carries the engine's progress from the worker thread to the GUI thread (queued connection)."""

    progress = Signal(int, int, str)


def own_error_reporting(worker: Any) -> None:
    """Detach napari's automatic error relay (present on its workers in some versions, not in others), so
    that the widget's own handler gives exactly one notification per error."""
    relay = getattr(worker, "_relay_error", None)
    if relay is not None:
        try:
            worker.errored.disconnect(relay)
        except (TypeError, RuntimeError):
            pass


def banner(text: str, color: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(f"background-color: {color}; color: white; padding: 4px; font-weight: bold;")
    return label
