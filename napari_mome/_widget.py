"""The MOME dock widget: model, inputs, settings, Run/Cancel, result, sequence toggles, Shapley bars,
saliency, BI-RADS 4 recommendation, export, and DCE kinetics (PRODUCT §2 flow 1).

Threading: the analysis runs in a napari thread worker (:func:`napari_mome._analysis.analyse`). The
worker never touches layers or widgets; progress reaches the GUI thread through a queued Qt signal, the
stop request through a ``threading.Event`` the engine polls between steps, and the Result through the
worker's ``returned`` signal. Errors are reported once, by napari's worker error relay (a notification).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from model_core.engine.options import RunOptions
from model_core.engine.predictor import Predictor
from model_core.engine.result import Result
from model_core.weights.native import RESEARCH_USE
from napari_mome import _panels
from napari_mome._analysis import (
    DEVICES,
    PRECISIONS,
    TTA_LEVELS,
    Job,
    ModelChoice,
    analyse,
    card_line,
    choice_card_line,
    load_predictor,
    preload,
)
from napari_mome._display import saliency_layers
from napari_mome._inputs import InputChoice, build_study, study_birads
from napari_mome._pickers import InputPickers
from napari_mome._qt_helpers import Relay, banner, own_error_reporting

log = logging.getLogger(__name__)

MASK_CONTOUR = 1
"""Contour width (pixels) of mask layers."""
IG_BATCH = 2
"""Scaled inputs per IG forward/backward: a cancel waits for at most one such batch (~0.2 s on the demo
model on one CPU thread)."""
DEMO_BANNER = "Demo model trained on synthetic phantoms: its numbers say nothing about patients."


def _quiet_gc() -> None:
    """Collect once, then move every live object (napari, Qt, torch, captum: ~0.5 million) out of the
    collector's view (``gc.freeze``): a full collection then scans only what was made afterwards instead
    of taking ~0.4 s with the interpreter lock held, which would stall the viewer."""
    gc.collect()
    gc.freeze()


class MomeWidget(QWidget):
    """The dock panel. ``napari_viewer`` is injected by napari."""

    result_shown = Signal(object)

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: Result | None = None
        self.predictor: Predictor | None = None
        self._predictor_choice: ModelChoice | None = None
        self._notice = ""
        self._choice = ModelChoice()
        self._worker: Any = None
        self._loader: Any = None
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._relay = Relay()
        self._relay.progress.connect(self._on_progress)
        self.timings: dict[str, float] = {}
        preload()
        _quiet_gc()
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_inputs)
        self.viewer.layers.events.removed.connect(self._refresh_inputs)
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self._refresh_inputs()
        self._on_model_changed()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        inner = QWidget()
        lay = QVBoxLayout(inner)
        self.research_banner = banner(RESEARCH_USE, "#8a6d3b")
        self.demo_banner = banner(DEMO_BANNER, "#a94442")
        lay.addWidget(self.research_banner)
        lay.addWidget(self.demo_banner)
        lay.addWidget(self._model_box())
        self.pickers = InputPickers()
        lay.addWidget(self.pickers)
        lay.addWidget(self._settings_box())
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.progress = QProgressBar()
        self.status = QLabel("")  # one line, fixed height: a label that re-wraps resizes the dock and so
        self.status.setFixedHeight(self.status.sizeHint().height())  # repaints the whole canvas per message
        for w in (self.run_button, self.progress, self.status):
            w.setFixedHeight(w.sizeHint().height())  # no relayout of the dock while running
            lay.addWidget(w)
        self.panels = _panels.ResultPanels(self.viewer, self)
        lay.addWidget(self.panels)
        self.kinetics = _panels.KineticsPanel(self.viewer, self)
        lay.addWidget(self.kinetics)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._inner, self._scroll = inner, scroll
        self._fit_width()

    def _fit_width(self) -> None:
        """Wide enough for the content (the dock never scrolls sideways)."""
        bar = self._scroll.verticalScrollBar()
        need = self._inner.minimumSizeHint().width() + (bar.sizeHint().width() if bar else 0) + 4
        self.setMinimumWidth(max(400, self.minimumWidth(), need))

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        lay = QVBoxLayout(box)
        self.model_source = QComboBox()
        self.model_source.addItems(["Bundled demo model", "Checkpoint file…"])
        self.model_source.activated.connect(self._on_source_activated)
        self.card_label = QLabel("")
        self.card_label.setWordWrap(True)
        row = QHBoxLayout()
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        for label, w in (("device", self.device), ("precision", self.precision)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
            w.currentTextChanged.connect(self._on_model_changed)
        lay.addWidget(self.model_source)
        lay.addWidget(self.card_label)
        lay.addLayout(row)
        return box

    def _settings_box(self) -> QGroupBox:
        box = QGroupBox("Settings")
        lay = QHBoxLayout(box)
        self.tta = QComboBox()
        self.tta.addItems(list(TTA_LEVELS))
        self.saliency_on = QCheckBox("saliency")
        self.saliency_on.setChecked(True)
        self.ig_steps = QSpinBox()
        self.ig_steps.setRange(4, 256)
        self.ig_steps.setValue(32)
        for w in (QLabel("TTA"), self.tta, self.saliency_on, QLabel("steps"), self.ig_steps):
            lay.addWidget(w)
        return box

    # ------------------------------------------------------------------ model
    def _on_source_activated(self, index: int) -> None:
        path: str | None = None
        if index == 1:
            path, _ = QFileDialog.getOpenFileName(self, "MOME checkpoint", "",
                                                  "MOME weights (*.safetensors *.pth *.pt)")
            if not path:
                self.model_source.setCurrentIndex(0 if self._choice.path is None else 1)
                return
        self._on_model_changed(path=path)

    def _on_model_changed(self, *_: Any, path: str | None | bool = False) -> None:
        """A new model, device or precision: drop the loaded model and the result it gave."""
        new_path = self._choice.path if path is False else path
        self._choice = ModelChoice(new_path if isinstance(new_path, str) else None, self.device.currentText(),
                                   self.precision.currentText())
        if self._predictor_choice != self._choice:
            with self._load_lock:
                self.predictor, self._predictor_choice = None, None
            self.clear_result()
            self._start_loading()
        try:
            self.card_label.setText(choice_card_line(self._choice))
        except Exception as exc:  # noqa: BLE001 - any unreadable card is reported, the widget stays usable
            self.card_label.setText(f"model card unreadable: {exc}")
        self.demo_banner.setVisible(self._choice.is_demo)

    def _start_loading(self) -> None:
        """Load the chosen model in a thread worker now, so that Run does not wait for it."""
        from napari.qt.threading import create_worker

        worker = create_worker(self._predictor_for, self._choice, _start_thread=False, _ignore_errors=True)
        own_error_reporting(worker)
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(self._on_loader_finished)
        self._loader = worker
        worker.start()

    def _on_load_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import notification_manager

        self.card_label.setText(f"model not loaded: {type(exc).__name__}: {exc}")
        notification_manager.receive_error(type(exc), exc, exc.__traceback__)

    def _on_loader_finished(self) -> None:
        self._loader = None
        if self.model_ready and self.predictor is not None:
            self.card_label.setText(card_line(self.predictor.card, self.predictor.model_sha256,
                                              self.predictor.source))

    @property
    def model_ready(self) -> bool:
        """The chosen model is loaded."""
        return self.predictor is not None and self._predictor_choice == self._choice

    def _predictor_for(self, choice: ModelChoice) -> Predictor:
        """Worker thread: the loaded Predictor for ``choice`` (loaded once per choice; a Run started while
        the loader works waits for it instead of loading a second copy)."""
        with self._load_lock:
            if self.predictor is None or self._predictor_choice != choice:
                predictor, self._notice = load_predictor(choice)
                predictor.model_sha256  # noqa: B018 - computed here, off the GUI thread
                self.predictor, self._predictor_choice = predictor, choice
            return self.predictor

    # ------------------------------------------------------------------ inputs
    def _refresh_inputs(self, *_: Any) -> None:
        """Refill the pickers; a shown result whose input layers were closed is cleared; masks opened by
        this plugin are drawn as contours."""
        for lay in self.viewer.layers:
            if (lay.metadata or {}).get("role") == "mask" and hasattr(lay, "contour") and not lay.contour:
                lay.contour = MASK_CONTOUR
                lay.opacity = 1.0
        used = self.pickers.used()
        imgs = self.pickers.refresh(self.viewer.layers)
        birads = study_birads(self.viewer.layers)
        if birads and (not self.pickers.hand_picked or not self.panels.birads.text()):
            self.panels.birads.setText(birads)
        if self.result is not None and any(name not in imgs for name in used):
            self.clear_result()

    def input_choice(self) -> InputChoice:
        return self.pickers.choice()

    # ------------------------------------------------------------------ run / cancel
    def _on_run_clicked(self) -> None:
        if self._worker is not None:
            self.cancel()
            return
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        try:
            study = build_study(self.viewer.layers, self.input_choice(), self.panels.birads.text().strip())
        except ValueError as exc:
            show_error(str(exc))
            return
        options = RunOptions(tta=TTA_LEVELS[self.tta.currentText()], explain=self.saliency_on.isChecked(),
                             ig_steps=self.ig_steps.value(), ig_internal_batch=IG_BATCH)
        job = Job(study, options, study.clinical.birads)
        self._stop.clear()
        self.timings = {"clicked": time.perf_counter()}
        worker = create_worker(self._work, self._choice, job, _start_thread=False, _ignore_errors=True)
        own_error_reporting(worker)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        gc.disable()  # a full collection of the viewer's heap holds the interpreter lock ~0.4 s: not mid-run
        self.run_button.setText("Cancel")
        self.progress.setRange(0, 1)  # not the busy animation: it repaints the window ~60 times a second
        self.progress.setValue(0)
        self.status.setText("running…")
        worker.start()

    def _work(self, choice: ModelChoice, job: Job) -> Result | None:
        """Worker thread only: no layers, no widgets."""
        predictor = self._predictor_for(choice)
        if self._stop.is_set():
            return None
        return analyse(predictor, job, self._relay.progress.emit, self._stop.is_set)

    def cancel(self) -> None:
        """Ask the running analysis to stop at its next step."""
        if self._worker is not None:
            self._stop.set()
            self.timings["cancel_clicked"] = time.perf_counter()
            self.run_button.setText("Cancelling…")
            self.run_button.setEnabled(False)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def _on_progress(self, done: int, total: int, stage: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{stage} ({done}/{total})")

    def _on_returned(self, result: Result | None) -> None:
        self.timings["received"] = time.perf_counter()
        if result is None:
            self.status.setText("cancelled")
            return
        self.show_result(result)
        self.timings["shown"] = time.perf_counter()
        self.result_shown.emit(result)

    def _on_errored(self, exc: BaseException) -> None:
        """One notification per failed Run (the viewer and the widget stay usable)."""
        from napari.utils.notifications import notification_manager

        self.status.setText(f"failed: {type(exc).__name__}: {exc}")
        notification_manager.receive_error(type(exc), exc, exc.__traceback__)

    def _on_finished(self) -> None:
        gc.enable()
        self._worker = None
        self.timings["finished"] = time.perf_counter()
        self.run_button.setText("Run")
        self.run_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0 if self.result is None else 1)

    # ------------------------------------------------------------------ result
    def show_result(self, result: Result) -> None:
        """Saliency layers, probability, toggles, subset table, Shapley bars, recommendation (GUI thread)."""
        self.clear_result(blank_plot=False)
        self.result = result
        if self.predictor is not None:
            self.card_label.setText(card_line(self.predictor.card, self.predictor.model_sha256,
                                              self.predictor.source))
        for data, kwargs, _ in saliency_layers(result, self.panels.signed.isChecked(), self.panels.opacity()):
            self.viewer.add_image(data, **kwargs)
        self.panels.show(result, self.predictor.threshold if self.predictor is not None else None)
        self._fit_width()
        self.status.setText(f"done in {result.timings.get('total', 0.0):.1f} s")

    def saliency_layer_list(self) -> list[Any]:
        return [lay for lay in self.viewer.layers if (lay.metadata or {}).get("mome_output") == "saliency"]

    def clear_result(self, *_: Any, blank_plot: bool = True) -> None:
        """Remove this widget's result layers and empty the result panels."""
        for lay in self.saliency_layer_list():
            self.viewer.layers.remove(lay)
        self.result = None
        if hasattr(self, "panels"):
            self.panels.clear(blank_plot)

    def export_to(self, folder: str) -> dict[str, Any]:
        """Export the shown result into ``folder`` (see :mod:`napari_mome._export`)."""
        from napari_mome._export import export_all

        if self.result is None:
            raise ValueError("run an analysis first")
        images = {}
        choice = self.input_choice()
        for mod, name in (("dce", choice.dce[0] if choice.dce else None), ("dwi", choice.dwi), ("t2", choice.t2)):
            if name and name in self.viewer.layers and mod in self.result.saliency:
                from napari_mome._inputs import layer_volume

                images[mod] = layer_volume(self.viewer.layers[name])
        banners = [RESEARCH_USE, *([DEMO_BANNER] if self.demo_banner.isVisibleTo(self) else [])]
        return export_all(self.result, folder, images, banners, self.card_label.text(), self.panels.decision)

    # ------------------------------------------------------------------ kinetics
    def _on_click(self, viewer: Any, event: Any) -> None:
        if self.kinetics.enabled.isChecked():
            self.kinetics.curve_at(self.input_choice().dce, event.position)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.disconnect_viewer()
        super().closeEvent(event)

    def disconnect_viewer(self) -> None:
        """Detach from the viewer's events (the widget is being removed)."""
        self.viewer.layers.events.inserted.disconnect(self._refresh_inputs)
        self.viewer.layers.events.removed.disconnect(self._refresh_inputs)
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)
