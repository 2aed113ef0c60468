"""The MOME dock widget: model, inputs, settings, Run/Cancel, result, sequence toggles, Shapley bars,
saliency, BI-RADS 4 recommendation, export, and DCE kinetics (PRODUCT §2 flow 1).

Threading: the analysis runs in a napari thread worker (:func:`napari_mome._analysis.analyse`). The
worker never touches layers or widgets; progress reaches the GUI thread through a queued Qt signal, the
stop request through a ``threading.Event`` the engine polls between steps, and the Result through the
worker's ``returned`` signal. Errors are reported once, by napari's worker error relay (a notification).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from qtpy.QtCore import QObject, Qt, Signal
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

from model_core.engine.predictor import Predictor, RunOptions
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
)
from napari_mome._display import saliency_layers
from napari_mome._inputs import InputChoice, build_study, guess_inputs, image_layers, study_birads

log = logging.getLogger(__name__)

DEMO_BANNER = "Demo model trained on synthetic phantoms: its numbers say nothing about patients."


class _Relay(QObject):
    """Carries the engine's progress from the worker thread to the GUI thread (queued connection)."""

    progress = Signal(int, int, str)


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
        self._stop = threading.Event()
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self.timings: dict[str, float] = {}
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
        self.research_banner = _banner(RESEARCH_USE, "#8a6d3b")
        self.demo_banner = _banner(DEMO_BANNER, "#a94442")
        lay.addWidget(self.research_banner)
        lay.addWidget(self.demo_banner)
        lay.addWidget(self._model_box())
        lay.addWidget(self._inputs_box())
        lay.addWidget(self._settings_box())
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        for w in (self.run_button, self.progress, self.status):
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
        self.setMinimumWidth(400)

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

    def _inputs_box(self) -> QGroupBox:
        box = QGroupBox("Inputs (layers)")
        lay = QVBoxLayout(box)
        self.dce_picker = _panels.LayerList()
        self.dwi_picker = QComboBox()
        self.t2_picker = QComboBox()
        self.t1_picker = QComboBox()
        lay.addWidget(QLabel("DCE phases, pre-contrast first (tick and drag to order)"))
        lay.addWidget(self.dce_picker)
        for label, w in (("DWI", self.dwi_picker), ("T2", self.t2_picker), ("T1 (breast mask)", self.t1_picker)):
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(w, 1)
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
            self.predictor, self._predictor_choice = None, None
            self.clear_result()
        try:
            self.card_label.setText(choice_card_line(self._choice))
        except Exception as exc:  # noqa: BLE001 - any unreadable card is reported, the widget stays usable
            self.card_label.setText(f"model card unreadable: {exc}")
        self.demo_banner.setVisible(self._choice.is_demo)

    def _predictor_for(self, choice: ModelChoice) -> Predictor:
        """Worker thread: the loaded Predictor for ``choice`` (loaded once per choice)."""
        if self.predictor is None or self._predictor_choice != choice:
            self.predictor, self._notice = load_predictor(choice)
            self._predictor_choice = choice
        return self.predictor

    # ------------------------------------------------------------------ inputs
    def _refresh_inputs(self, *_: Any) -> None:
        """Refill the pickers: a choice whose layers are still open is kept, otherwise the metadata guess."""
        used = self._inputs_used() if hasattr(self, "t1_picker") and self.dce_picker.count() else []
        imgs = [lay.name for lay in image_layers(self.viewer.layers)]
        guess = guess_inputs(self.viewer.layers)
        kept_dce = [n for n in self.dce_picker.checked() if n in imgs]
        reguess = not kept_dce or len(kept_dce) != len(self.dce_picker.checked())
        self.dce_picker.set_layers(imgs, guess.dce if reguess else kept_dce)
        for combo, guessed in ((self.dwi_picker, guess.dwi), (self.t2_picker, guess.t2), (self.t1_picker, guess.t1)):
            keep = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(["", *imgs])
            combo.setCurrentText(keep if keep in imgs else (guessed or ""))
            combo.blockSignals(False)
        birads = study_birads(self.viewer.layers)
        if birads and (reguess or not self.panels.birads.text()):
            self.panels.birads.setText(birads)
        if self.result is not None and any(name not in imgs for name in used):
            self.clear_result()

    def input_choice(self) -> InputChoice:
        return InputChoice(self.dce_picker.checked(), self.dwi_picker.currentText() or None,
                           self.t2_picker.currentText() or None, self.t1_picker.currentText() or None)

    def _inputs_used(self) -> list[str]:
        c = self.input_choice()
        return [*c.dce, *[n for n in (c.dwi, c.t2, c.t1) if n]]

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
                             ig_steps=self.ig_steps.value())
        job = Job(study, options, study.clinical.birads)
        self._stop.clear()
        self.timings = {"clicked": time.perf_counter()}
        worker = create_worker(self._work, self._choice, job, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.run_button.setText("Cancel")
        self.progress.setRange(0, 0)
        self.status.setText("running…")
        worker.start()

    def _work(self, choice: ModelChoice, job: Job) -> Result | None:
        """Worker thread only: no layers, no widgets."""
        return analyse(self._predictor_for(choice), job, self._relay.progress.emit, self._stop.is_set)

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
        self.status.setText(f"failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self.timings["finished"] = time.perf_counter()
        self.run_button.setText("Run")
        self.run_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0 if self.result is None else 1)

    # ------------------------------------------------------------------ result
    def show_result(self, result: Result) -> None:
        """Saliency layers, probability, toggles, subset table, Shapley bars, recommendation (GUI thread)."""
        self.clear_result()
        self.result = result
        if self.predictor is not None:
            self.card_label.setText(card_line(self.predictor.card, self.predictor.model_sha256,
                                              self.predictor.source))
        for data, kwargs, _ in saliency_layers(result, self.panels.signed.isChecked(), self.panels.opacity()):
            self.viewer.add_image(data, **kwargs)
        self.panels.show(result, self.predictor.threshold if self.predictor is not None else None)
        self.status.setText(f"done in {result.timings.get('total', 0.0):.1f} s")

    def saliency_layer_list(self) -> list[Any]:
        return [lay for lay in self.viewer.layers if (lay.metadata or {}).get("mome_output") == "saliency"]

    def clear_result(self) -> None:
        """Remove this widget's result layers and empty the result panels."""
        for lay in self.saliency_layer_list():
            self.viewer.layers.remove(lay)
        self.result = None
        if hasattr(self, "panels"):
            self.panels.clear()

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


def _banner(text: str, color: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(f"background-color: {color}; color: white; padding: 4px; font-weight: bold;")
    return label
