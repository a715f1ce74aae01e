"""The Train tab's hyper-parameters: epochs, batch size, learning rate, optimiser and
seed, two label/field pairs per row (the pane is narrow; the architecture table keeps
its room).

:meth:`HyperParameters.config` is the :class:`core.nn.train.TrainConfig` they make
(validated by core when a run starts); ``seedChanged`` tells the view to show the
untrained model of that seed (its first-layer kernels are the ones a run starts from).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QDoubleSpinBox, QGridLayout, QGroupBox, QLabel, QSpinBox

from .train_common import TrainConfig, _group

__all__ = ["HyperParameters"]


class HyperParameters(QGroupBox):
    seedChanged = pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__("Hyper-parameters", parent)
        self.setStyleSheet(_group("").styleSheet())   # the tab's group style
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(3)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 8192)
        self.batch_size.setValue(128)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 10.0)
        self.lr.setSingleStep(0.0001)
        self.lr.setValue(0.001)
        self.lr.setToolTip("Learning rate (adam: ~0.001, SGD: ~0.01)")
        self.optimizer = QComboBox()
        self.optimizer.addItems(["adam", "sgd"])
        self.optimizer.setToolTip("adam, or SGD with momentum 0.9")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Initial weights and batch order: the same seed gives the same run")
        self.seed.valueChanged.connect(self.seedChanged)
        for w in self.fields():
            w.setMinimumWidth(64)  # not the width of the largest value: the pane is narrow
            if w is not self.optimizer:
                w.setAlignment(Qt.AlignmentFlag.AlignRight)
        pairs = [("Epochs", self.epochs), ("Batch size", self.batch_size),
                 ("Learning rate", self.lr), ("Optimiser", self.optimizer), ("Seed", self.seed)]
        for n, (text, w) in enumerate(pairs):
            label = QLabel(text)
            label.setBuddy(w)
            r, c = divmod(n, 2)
            grid.addWidget(label, r, 2 * c)
            grid.addWidget(w, r, 2 * c + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

    def fields(self):
        return (self.epochs, self.batch_size, self.lr, self.seed, self.optimizer)

    def config(self) -> TrainConfig:
        """The run these settings describe (not validated here: core does that)."""
        return TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                           lr=float(self.lr.value()), optimizer=self.optimizer.currentText(),
                           seed=self.seed.value())

    def set_editable(self, on: bool) -> None:
        """Fields are read-only while a run trains (its settings are fixed)."""
        for w in self.fields():
            w.setEnabled(on)
