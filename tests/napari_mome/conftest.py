"""GUI test fixtures: napari under the Xvfb display that pytest-xvfb starts (xcb + Mesa llvmpipe).

``QT_QPA_PLATFORM=offscreen`` would give a black canvas (NAPARI_NOTES B2); pytest-xvfb sets ``DISPLAY``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("napari", reason="the napari extra is installed by scripts/bootstrap.sh (CI included)")

RUN_TIMEOUT_MS = 300_000


@pytest.fixture
def sample_viewer(make_napari_viewer: Any, qtbot: Any) -> tuple[Any, Any]:
    """A shown viewer with the sample study opened through the plugin and the MOME widget docked through
    napari (so the manifest's sample and widget contributions are what is tested)."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 1000)
    viewer.open_sample("napari-mome", "mome_demo")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mome", "MOME classifier")
    qtbot.waitUntil(lambda: widget.model_ready, timeout=60_000)  # the widget loads its model on opening
    return viewer, widget


def click_run(qtbot: Any, widget: Any, timeout_ms: int = RUN_TIMEOUT_MS) -> float:
    """Click Run and wait for the worker to finish; returns the seconds it took."""
    from qtpy.QtCore import Qt

    t0 = time.perf_counter()
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout_ms)
    return time.perf_counter() - t0


def set_fast(widget: Any, explain: bool = True, steps: int = 8) -> None:
    """Fewer IG steps for test speed, set through the widget's own controls."""
    widget.saliency_on.setChecked(explain)
    widget.ig_steps.setValue(steps)
