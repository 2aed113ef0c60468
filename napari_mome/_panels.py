"""Parts of the dock widget below Run: the result panels and the kinetics panel (Qt).

:class:`ResultPanels`: probability and class, one checkbox per present sequence (unticking looks the subset
up in ``Result.subsets``: no model call), the subset table with the current subset highlighted, Shapley
bars, saliency opacity and absolute/signed display, the BI-RADS field with the recommendation, Export.
:class:`KineticsPanel`: the time-intensity curve of a clicked DCE voxel and the subtraction MIP.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from model_core.engine.result import Result
from model_core.engine.subsets import subset_key
from napari_mome import _display
from napari_mome._kinetics import DELAYED_THRESHOLD, classify, roi_mean, subtraction_mip
from napari_mome._plots import ThemedCanvas

log = logging.getLogger(__name__)


class ResultPanels(QWidget):
    """Everything that shows a Result (see the module docstring)."""

    def __init__(self, viewer: Any, owner: Any) -> None:
        super().__init__()
        self.viewer, self.owner = viewer, owner
        self.result: Result | None = None
        self.threshold: Any = None
        self.decision: dict[str, Any] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.probability = QLabel("")
        self.probability.setStyleSheet("font-size: 14px; font-weight: bold;")
        self.toggle_row = QHBoxLayout()
        self.toggles: dict[str, QCheckBox] = {}
        self.subset_label = QLabel("")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["sequences used", "P(malignant)"])
        header = self.table.verticalHeader()
        if header is not None:
            header.setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(240)
        self.shapley = ThemedCanvas(viewer)
        lay.addWidget(self.probability)
        lay.addLayout(self.toggle_row)
        for part in (self.subset_label, self.table, self.shapley):
            lay.addWidget(part)
        lay.addWidget(self._saliency_box())
        lay.addWidget(self._decision_box())
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._on_export)
        lay.addWidget(self.export_button)
        self.clear()

    def _saliency_box(self) -> QGroupBox:
        box = QGroupBox("Saliency")
        row = QHBoxLayout(box)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(70)
        self.opacity_slider.valueChanged.connect(self._restyle_saliency)
        self.signed = QCheckBox("signed")
        self.signed.toggled.connect(self._restyle_saliency)
        for w in (QLabel("opacity"), self.opacity_slider, self.signed):
            row.addWidget(w)
        return box

    def _decision_box(self) -> QGroupBox:
        box = QGroupBox("BI-RADS 4 recommendation")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.birads = QLineEdit()
        self.birads.setPlaceholderText("e.g. 4, 4a, 4b")
        self.birads.textChanged.connect(self._update_decision)
        row.addWidget(QLabel("BI-RADS category"))
        row.addWidget(self.birads)
        self.decision_label = QLabel("")
        self.decision_label.setWordWrap(True)
        lay.addLayout(row)
        lay.addWidget(self.decision_label)
        return box

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    # ------------------------------------------------------------------ show / clear
    def clear(self, blank_plot: bool = True) -> None:
        """Empty every panel; ``blank_plot=False`` leaves the plot to the caller (about to draw it)."""
        self.result = None
        self.probability.setText("no result yet: choose the inputs and press Run")
        for box in self.toggles.values():
            self.toggle_row.removeWidget(box)
            box.deleteLater()
        self.toggles = {}
        self.subset_label.setText("")
        self.table.setRowCount(0)
        if blank_plot:
            self.shapley.blank()
        self.decision_label.setText("")
        self.export_button.setEnabled(False)

    def show(self, result: Result, threshold: Any) -> None:  # type: ignore[override]
        """Fill every panel from ``result`` (the panels were cleared with the previous result)."""
        self.result, self.threshold = result, threshold
        self.probability.setText(_display.probability_text(result))
        for mod in _display.present(result):
            box = QCheckBox(_display.LABELS[mod])
            box.setChecked(True)
            box.toggled.connect(self._on_toggle)
            self.toggles[mod] = box
            self.toggle_row.addWidget(box)
        rows = _display.subset_rows(result)
        self.table.setRowCount(len(rows))
        for i, (key, label, text) in enumerate(rows):
            name = QTableWidgetItem(label)
            name.setData(Qt.ItemDataRole.UserRole, key)
            self.table.setItem(i, 0, name)
            self.table.setItem(i, 1, QTableWidgetItem("n/a (sequence absent)" if text is None else text))
        self.table.resizeColumnsToContents()
        self.bars = self.shapley.redraw(lambda ax: _display.draw_shapley(ax, result))
        self._on_toggle()
        self._update_decision()
        self.export_button.setEnabled(True)

    # ------------------------------------------------------------------ interactions
    def current_subset(self) -> str:
        return subset_key([m for m, box in self.toggles.items() if box.isChecked()])

    def _on_toggle(self, *_: Any) -> None:
        """Look the ticked subset up in the Result (no model call) and highlight its table row."""
        if self.result is None:
            return
        key = self.current_subset()
        p = self.result.subsets.get(key)
        off = [_display.LABELS[m] for m, box in self.toggles.items() if not box.isChecked()]
        what = "all present sequences" if not off else "without " + ", ".join(off)
        self.subset_label.setText(f"{what}: P = {'n/a' if p is None else f'{p:.3f}'} (computed at Run)")
        hi = QColor(70, 110, 160)
        for i in range(self.table.rowCount()):
            item0 = self.table.item(i, 0)
            match = item0 is not None and item0.data(Qt.ItemDataRole.UserRole) == key
            for j in range(2):
                item = self.table.item(i, j)
                if item is not None:
                    item.setBackground(hi if match else QColor(0, 0, 0, 0))
            if match:
                self.table.selectRow(i)
        for lay in self.owner.saliency_layer_list():
            mod = lay.metadata.get("modality")
            if mod in self.toggles and not self.toggles[mod].isChecked():
                lay.visible = False

    def _restyle_saliency(self, *_: Any) -> None:
        if self.result is None:
            return
        for lay in self.owner.saliency_layer_list():
            sal = self.result.saliency[lay.metadata["modality"]]
            data, limits = _display.saliency_values(sal, self.signed.isChecked())
            lay.data = data
            lay.colormap = _display.saliency_colormap(self.signed.isChecked())
            lay.contrast_limits = limits
            lay.opacity = self.opacity()

    def _update_decision(self, *_: Any) -> None:
        if self.result is None:
            return
        self.decision = _display.decision_for(self.result, self.birads.text().strip(), self.threshold)
        self.decision_label.setText(_display.decision_text(self.decision))

    def _on_export(self) -> None:
        from napari.utils.notifications import show_info

        folder = QFileDialog.getExistingDirectory(self, "Export MOME result to folder")
        if folder:
            paths = self.owner.export_to(folder)
            show_info(f"MOME: exported {len(paths)} files to {folder}")


class KineticsPanel(QGroupBox):
    """Click a voxel to plot its DCE time-intensity curve; add a subtraction MIP layer on request."""

    def __init__(self, viewer: Any, owner: Any) -> None:
        super().__init__("DCE kinetics")
        self.viewer, self.owner = viewer, owner
        self.curve: Any = None
        lay = QVBoxLayout(self)
        self.enabled = QCheckBox("click a voxel to plot its curve (3x3x3 ROI mean)")
        self.enabled.setChecked(True)
        self.label = QLabel(f"classes: persistent / plateau / washout at \u00b1{100 * DELAYED_THRESHOLD:.0f} %")
        self.label.setWordWrap(True)
        self.canvas = ThemedCanvas(viewer, height=1.8)
        self.mip_button = QPushButton("Add subtraction MIP (first post - pre)")
        self.mip_button.clicked.connect(self.add_mip)
        self.canvas.blank()
        for w in (self.enabled, self.label, self.canvas, self.mip_button):
            lay.addWidget(w)

    def _phases(self, names: list[str]) -> list[Any]:
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def curve_at(self, dce_names: list[str], world: Any) -> Any:
        """Plot and classify the curve at world position ``world`` (None when outside the DCE grid)."""
        phases = self._phases(dce_names)
        if len(phases) < 3:
            return None
        idx = np.round(np.asarray(phases[0].world_to_data(world), dtype=np.float64)[-3:]).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(phases[0].data.shape)):
            return None
        found = [(p.metadata.get("volume_meta") or {}).get("time_s") for p in phases]
        times = [float(t) for t in found if t is not None] if all(t is not None for t in found) else None
        values = roi_mean([np.asarray(p.data) for p in phases], [int(i) for i in idx])
        curve = classify(values, times)
        self.curve = curve
        self.label.setText(f"voxel {tuple(int(i) for i in idx)}: {curve.describe()}")

        def draw(ax: Any) -> None:
            ax.plot(curve.times_s, curve.values, "o-", color="#f0ad4e")
            ax.set_xlabel("time after injection (s)" if times is not None else "phase")
            ax.set_title(curve.delayed, fontsize=9)

        self.canvas.redraw(draw)
        return curve

    def add_mip(self) -> Any:
        """A 2-D layer: the maximum over slices of (first post-contrast - pre-contrast)."""
        from napari.utils.notifications import show_warning

        phases = self._phases(self.owner.input_choice().dce)
        if len(phases) < 2:
            show_warning("MOME: the subtraction MIP needs a pre- and a post-contrast DCE layer")
            return None
        pre, post = phases[0], phases[1]
        mip = subtraction_mip(np.asarray(pre.data), np.asarray(post.data), axis=0)
        kwargs: dict[str, Any] = {"name": "DCE subtraction MIP", "colormap": "gray",
                                  "metadata": {"mome_output": "mip"},
                                  "scale": tuple(pre.scale[-2:]), "translate": tuple(pre.translate[-2:])}
        return self.viewer.add_image(mip, **kwargs)
