"""The widget under stress: Cancel within 2 s, an injected error gives one notification and the viewer
keeps working, a corrupt file gives one notification, and a second study or another model leaks no
layers, widgets or threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import QEvent, Qt, QThreadPool
from qtpy.QtWidgets import QApplication, QWidget

import napari_mome._analysis as analysis
from model_core.engine.demo import demo_weights_path
from napari_mome import _widget
from tests.napari_mome.conftest import RUN_TIMEOUT_MS, click_run, set_fast

CANCEL_LIMIT_S = 2.0


def _records() -> list[Any]:
    from napari.utils.notifications import notification_manager

    return list(notification_manager.records)


@pytest.mark.parametrize("when", ["at once", "during saliency"])
def test_cancel_takes_effect_within_2_s(sample_viewer: Any, qtbot: Any, when: str) -> None:
    viewer, widget = sample_viewer
    set_fast(widget, explain=True, steps=128)
    n_layers, n_notes = len(viewer.layers), len(_records())
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.run_button.text() == "Cancel"
    if when == "during saliency":
        qtbot.waitUntil(lambda: "explain" in widget.status.text(), timeout=RUN_TIMEOUT_MS)
    t0 = time.perf_counter()
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=10_000)
    took = time.perf_counter() - t0
    assert took < CANCEL_LIMIT_S, f"cancel took {took:.2f} s"
    assert widget.result is None and widget.status.text() == "cancelled"
    assert widget.run_button.text() == "Run" and widget.run_button.isEnabled()
    assert len(viewer.layers) == n_layers and len(_records()) == n_notes


def test_injected_error_gives_one_notification_and_the_viewer_survives(
        sample_viewer: Any, qtbot: Any, monkeypatch: Any) -> None:
    viewer, widget = sample_viewer
    set_fast(widget, explain=False)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(analysis.Predictor, "run", broken)
    n = len(_records())
    click_run(qtbot, widget)
    qtbot.wait(100)
    new = _records()[n:]
    assert len(new) == 1 and "injected failure" in str(new[0].message)
    assert widget.result is None and "injected failure" in widget.status.text()
    assert widget.run_button.text() == "Run" and widget.run_button.isEnabled()
    monkeypatch.undo()
    click_run(qtbot, widget)  # the same widget and viewer analyse normally afterwards
    assert widget.result is not None and len(_records()) == n + 1


@pytest.mark.qt_no_exception_capture
def test_corrupt_file_gives_one_notification(sample_viewer: Any, qtbot: Any, tmp_path: Path,
                                             monkeypatch: Any) -> None:
    """File > Open runs from the Qt event loop, where napari's exception hook turns the reader's typed error
    into a notification; the same path here: the hook installed, the open queued on the event loop."""
    import sys

    import nibabel as nib
    import numpy as np
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import QTimer

    viewer, _ = sample_viewer
    path = tmp_path / "broken.nii"
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:2000])  # header intact, data truncated
    n_layers, n = len(viewer.layers), len(_records())
    monkeypatch.setattr(sys, "excepthook", notification_manager.receive_error)
    QTimer.singleShot(0, lambda: viewer.window._qt_viewer._qt_open([str(path)], stack=False, plugin="napari-mome"))
    qtbot.waitUntil(lambda: len(_records()) > n, timeout=10_000)
    qtbot.wait(200)
    new = _records()[n:]
    assert len(new) == 1 and "broken.nii" in str(new[0].message) and "truncated" in str(new[0].message)
    assert len(viewer.layers) == n_layers
    for record in new:  # the error's traceback holds the viewer: napari's leak check would see it
        exc = getattr(record, "exception", None)
        if exc is not None:
            exc.__traceback__ = None
            exc.__context__ = exc.__cause__ = None
    del notification_manager.records[n:], new
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):  # set by Qt's error path
        if hasattr(sys, name):
            delattr(sys, name)



def _counts(viewer: Any, widget: Any) -> dict[str, int]:
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    python_threads = [t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)]
    return {"layers": len(viewer.layers), "widgets": len(widget.findChildren(QWidget)),
            "top_level": len(QApplication.topLevelWidgets()), "threads": len(python_threads),
            "running_workers": QThreadPool.globalInstance().activeThreadCount()}


def test_second_study_and_model_switch_leak_nothing(sample_viewer: Any, qtbot: Any, monkeypatch: Any) -> None:
    viewer, widget = sample_viewer
    set_fast(widget, explain=True, steps=4)
    click_run(qtbot, widget)
    assert widget.result is not None
    first = _counts(viewer, widget)
    assert first["running_workers"] == 0 and len(widget.saliency_layer_list()) == 3
    # a second study: the old layers go, the sample opens again, pickers refill, Run again
    viewer.layers.clear()
    assert widget.result is None and widget.input_choice().dce == []
    viewer.open_sample("napari-mome", "mome_demo")
    assert widget.input_choice().dce == [f"DCE_t{i}" for i in range(7)]
    click_run(qtbot, widget)
    assert widget.result is not None and _counts(viewer, widget) == first
    # another model (the demo weights picked as a checkpoint file), then back to the bundled one
    weights = demo_weights_path()
    assert weights is not None
    monkeypatch.setattr(_widget.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(weights), "")))
    widget.model_source.setCurrentIndex(1)
    widget.model_source.activated.emit(1)
    assert widget.result is None and widget.predictor is None and not widget.saliency_layer_list()
    assert widget.demo_banner.isVisibleTo(widget)  # the demo weights, whichever way they were chosen
    click_run(qtbot, widget)
    assert widget.result is not None and widget.predictor.source == weights.name
    assert _counts(viewer, widget) == first
    widget.device.setCurrentText("cpu")
    assert widget.predictor is None
    click_run(qtbot, widget)
    assert widget.result is not None and _counts(viewer, widget) == first


def test_layers_opened_any_other_way_are_picked_by_hand(sample_viewer: Any, qtbot: Any) -> None:
    """Plain layers (no metadata, placed only by scale/translate) are offered, kept once picked by hand,
    and give the Study the reader's layers give (same voxels, same RAS affine)."""
    import numpy as np

    from napari_mome._inputs import build_study

    viewer, widget = sample_viewer
    for name in ("DCE_t0", "DCE_t1", "DCE_t2", "T2"):
        src = viewer.layers[name]
        viewer.add_image(np.asarray(src.data), name=f"plain {name}", scale=src.scale, translate=src.translate)
    pick = widget.pickers
    for i in range(pick.dce.count()):
        item = pick.dce.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text().startswith("plain DCE") else Qt.CheckState.Unchecked)
    pick.t2.setCurrentText("plain T2")
    pick.t2.activated.emit(pick.t2.currentIndex())
    pick.dwi.setCurrentText("")
    pick.t1.setCurrentText("")
    viewer.add_image(np.zeros((2, 2, 2)), name="unrelated")  # a new layer does not undo the hand pick
    choice = widget.input_choice()
    assert choice.dce == ["plain DCE_t0", "plain DCE_t1", "plain DCE_t2"] and choice.t2 == "plain T2"
    assert choice.dwi is None and choice.t1 is None
    study = build_study(viewer.layers, choice, "4")
    assert study.modalities == ("dce", "t2") and study.clinical.birads == "4"
    for vol, ref in ((study.dce[1], "DCE_t1"), (study.t2, "T2")):
        ref_layer = viewer.layers[ref]
        assert np.allclose(vol.affine, ref_layer.metadata["affine"], atol=1e-9)
        assert np.array_equal(vol.data, np.asarray(ref_layer.data).transpose(2, 1, 0))
