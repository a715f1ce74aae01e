"""The Inspect tab's "Pick a test image" panel: an index into the bundled MNIST test
subset, a Random button, and what is shown (index, true label).

The subset is read in a background thread the first time the tab is shown
(:meth:`TestImagePanel.start_loading`); until then the controls are disabled and say
so. A picked image is announced with ``picked(ndarray)`` (28x28 float32 in [0, 1]);
the view makes it the input. Drawing over it, or using a photo, makes the panel
:meth:`TestImagePanel.forget` it (the label says so).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QSpinBox

from .inspect_common import _BOX_STYLE, _Loader, _TestSet

__all__ = ["TestImagePanel"]


class TestImagePanel(QGroupBox):
    picked = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__("Pick a test image", parent)
        self.setStyleSheet(_BOX_STYLE)
        self.index: int | None = None      # the test image shown, None once drawn over
        self._waiting = False
        lay = QGridLayout(self)
        lay.setContentsMargins(8, 14, 8, 8)
        lay.setHorizontalSpacing(6)
        lay.addWidget(QLabel("index"), 0, 0)
        self.test_spin = QSpinBox()
        self.test_spin.setRange(0, 0)
        self.test_spin.setEnabled(False)
        self.test_spin.setToolTip("An image of the bundled MNIST test subset")
        self.test_spin.valueChanged.connect(self.show_image)
        lay.addWidget(self.test_spin, 0, 1)
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Show a random test image")
        self.random_button.clicked.connect(self.show_random)
        lay.addWidget(self.random_button, 0, 2)
        self.test_label = QLabel("the test set loads when this tab is shown")
        self.test_label.setStyleSheet("color: #555555;")
        self.test_label.setWordWrap(True)
        lay.addWidget(self.test_label, 1, 0, 1, 3)
        lay.setColumnStretch(1, 1)

    def start_loading(self) -> None:
        """Read the subset in the background (once), or enable the controls if it is."""
        if _TestSet.images is None and _TestSet.error is None:
            if not self._waiting:
                self._waiting = True
                self.test_label.setText("loading the bundled test set…")
                loader = _Loader.instance()
                loader.done.connect(self._ready)
                loader.start()
        else:
            self._ready()

    def show_image(self, index: int) -> None:
        """Show test image ``index`` (reads the subset now if needed); ValueError for
        an index outside it."""
        if not _TestSet.load():
            self.test_label.setText(f"cannot load the test set: {_TestSet.error}")
            return
        self._ready()
        index = int(index)
        n = len(_TestSet.images)
        if not 0 <= index < n:
            raise ValueError(f"test image index must be in 0..{n - 1}, got {index}")
        if self.test_spin.value() != index:
            self.test_spin.blockSignals(True)
            self.test_spin.setValue(index)
            self.test_spin.blockSignals(False)
        self.index = index
        self.picked.emit(_TestSet.images[index])
        self.test_label.setText(self.text())

    def show_random(self) -> None:
        if not _TestSet.load():
            self.test_label.setText(f"cannot load the test set: {_TestSet.error}")
            return
        self.show_image(int(np.random.default_rng().integers(len(_TestSet.images))))

    def forget(self, why: str = "") -> None:
        """The input is no longer the test image (``why``: e.g. "drawn over")."""
        if self.index is None and why:
            return
        shown = self.text()
        self.index = None
        self.test_label.setText(f"{shown} ({why})" if why else self.text())

    def text(self) -> str:
        if _TestSet.images is None:
            return ("loading the bundled test set…" if self._waiting
                    else "the test set loads when this tab is shown")
        n = len(_TestSet.images)
        if self.index is None:
            return f"{n} test images: choose an index or press Random"
        return (f"test image {self.index} of {n} · true label "
                f"<b>{int(_TestSet.labels[self.index])}</b>")

    def _ready(self) -> None:
        if _TestSet.images is None:
            self.test_label.setText(f"cannot load the test set: {_TestSet.error}")
            self.test_spin.setEnabled(False)
            self.random_button.setEnabled(False)
            return
        if not self.test_spin.isEnabled():
            self.test_spin.blockSignals(True)
            self.test_spin.setRange(0, len(_TestSet.images) - 1)
            self.test_spin.blockSignals(False)
            self.test_spin.setEnabled(True)
            self.test_label.setText(self.text())
