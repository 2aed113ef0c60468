"""The dock widget's input pickers (Qt): DCE phases (ticked, in list order), DWI, T2 and T1 layers.

They are filled from layer metadata (:func:`napari_mome._inputs.guess_inputs`) and settable by hand for
layers opened any other way. While the choice is the metadata guess it follows the open layers; once the
user edits a picker, that choice is kept while its layers stay open.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
)

from napari_mome._inputs import InputChoice, guess_inputs, image_layers


class LayerList(QListWidget):
    """Checkable, drag-orderable list of layer names (the DCE picker: ticked items in list order)."""

    def __init__(self) -> None:
        super().__init__()
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setMaximumHeight(110)

    def set_layers(self, names: list[str], checked: list[str]) -> None:
        """Show ``names``: the ``checked`` ones first, ticked, in their order; then the rest."""
        keep = [n for n in checked if n in names]
        self.clear()
        for name in [*keep, *[n for n in names if n not in keep]]:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in keep else Qt.CheckState.Unchecked)
            self.addItem(item)

    def checked(self) -> list[str]:
        items = (self.item(i) for i in range(self.count()))
        return [it.text() for it in items if it is not None and it.checkState() == Qt.CheckState.Checked]


class InputPickers(QGroupBox):
    """The four pickers and the rule that refills them (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("Inputs (layers)")
        self.hand_picked = False
        lay = QVBoxLayout(self)
        self.dce = LayerList()
        self.dce.itemChanged.connect(self._on_hand_pick)
        model = self.dce.model()
        if model is not None:
            model.rowsMoved.connect(self._on_hand_pick)
        self.dwi, self.t2, self.t1 = QComboBox(), QComboBox(), QComboBox()
        lay.addWidget(QLabel("DCE phases, pre-contrast first (tick and drag to order)"))
        lay.addWidget(self.dce)
        for label, combo in (("DWI", self.dwi), ("T2", self.t2), ("T1 (breast mask)", self.t1)):
            combo.activated.connect(self._on_hand_pick)
            row = QHBoxLayout()
            row.addWidget(QLabel(label))
            row.addWidget(combo, 1)
            lay.addLayout(row)

    def _on_hand_pick(self, *_: Any) -> None:
        self.hand_picked = True

    def choice(self) -> InputChoice:
        return InputChoice(self.dce.checked(), self.dwi.currentText() or None, self.t2.currentText() or None,
                           self.t1.currentText() or None)

    def used(self) -> list[str]:
        """Every layer name the current choice uses."""
        c = self.choice()
        return [*c.dce, *[n for n in (c.dwi, c.t2, c.t1) if n]]

    def refresh(self, layers: Any) -> list[str]:
        """Refill from ``layers`` (the viewer's layer list); returns the image layer names offered."""
        imgs = [lay.name for lay in image_layers(layers)]
        guess = guess_inputs(layers)
        kept = [n for n in self.dce.checked() if n in imgs]
        if len(kept) != len(self.dce.checked()):
            self.hand_picked = False  # a chosen layer was closed: back to the metadata guess
        auto = not self.hand_picked
        self.dce.blockSignals(True)
        self.dce.set_layers(imgs, guess.dce if auto else kept)
        self.dce.blockSignals(False)
        for combo, guessed in ((self.dwi, guess.dwi), (self.t2, guess.t2), (self.t1, guess.t1)):
            keep = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(["", *imgs])
            combo.setCurrentText((guessed or "") if auto or (keep and keep not in imgs) else keep)
            combo.blockSignals(False)
        return imgs
