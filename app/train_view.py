"""The "Train" tab: pick data and an architecture, train a CNN live, inspect the result.

The view computes nothing itself: :mod:`core.nn` builds, trains and evaluates, and
:mod:`app.train_worker` runs the training generator in a QThread. Batch events only
append to lists; a timer redraws the plots, the progress bar and the kernel grid at
most :data:`REFRESH_MS` apart, so the UI costs the same whether a batch takes 5 ms or
5 s. The model being trained is the worker's until the run ends; the kernel grid
shows copies the worker takes.

Layout: a splitter with the controls on the left (Data, Architecture,
Hyper-parameters, Training with the model's Save/Load) and the results on the right
(loss and accuracy plots, the first layer's kernels, the test accuracy with the
confusion matrix, misclassified test digits). The self-contained result widgets live in
:mod:`app.train_widgets` and are re-exported here.

Public API for the main window: signals :attr:`TrainView.sendKernel`,
:attr:`TrainView.modelChanged`, :attr:`TrainView.trainingRunning`; methods
:meth:`~TrainView.is_training`, :meth:`~TrainView.stop_training`,
:meth:`~TrainView.model`, :meth:`~TrainView.dataset`,
:meth:`~TrainView.load_model_file`, :meth:`~TrainView.start_training`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QCoreApplication, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QAbstractItemView, QAbstractScrollArea, QApplication, QComboBox,
                             QDialog, QDoubleSpinBox, QFileDialog, QFrame, QGraphicsItem,
                             QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                             QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
                             QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.nn.data import (Dataset, DatasetError, load_bundled_mnist, load_dataset,
                          load_idx_folder, load_image_folder)
from ..core.nn.model import (ARCHITECTURES, ModelFileError, Sequential, build, layer_from_config,
                           load_model, save_model)
from ..core.nn.train import CHECKPOINT, FINAL, TrainConfig

from .kernel_editor import signals_blocked
from .message_bar import MessageBar
from .train_widgets import (ERROR_RED, ArchitectureDialog, ConfusionTable, KernelGrid,
                            MisclassifiedGallery, digit_image, kernel_images)  # noqa: F401
from .train_worker import (GALLERY, DatasetLoader, Evaluation, TrainRun, evaluate_model,
                           first_conv)

__all__ = ["TrainView", "KernelGrid", "ConfusionTable", "MisclassifiedGallery",
           "ArchitectureDialog", "layer_label"]

BUNDLED_LABEL = "Bundled MNIST subset (10,000 / 2,000)"
IDX_LABEL = "IDX folder…"
IMAGES_LABEL = "Image folder…"
FROM_JSON = "From JSON file…"
REFRESH_MS = 200            # plots, progress and kernels redraw at most 5 times a second
GALLERY_SIZE = GALLERY     # misclassified digits shown
SMOOTHING = 0.9             # exponential smoothing of the loss curve (TensorBoard-style)
LEFT_WIDTH = 340
HISTORY_LOSS = "__history_loss__"      # extra arrays a model saved from this view carries
HISTORY_EPOCHS = "__history_epochs__"  # (E, 3): epoch, train accuracy, test accuracy


# ---------------------------------------------------------------------------- helpers

def layer_label(cfg: dict) -> str:
    """A short description of a layer config for the architecture table."""
    kind = cfg.get("type", "?")

    def pair(v):
        if isinstance(v, (list, tuple)):
            return "×".join(str(x) for x in v)
        return f"{v}×{v}"

    if kind == "conv2d":
        text = f"Conv2D {cfg['filters']}, {pair(cfg.get('kernel_size', 3))}"
        for key, short, default in (("stride", "stride", 1), ("padding", "pad", 0),
                                    ("dilation", "dil", 1)):
            v = cfg.get(key, default)
            if v not in (default, [default] * 2, (default,) * 2):
                text += f", {short} {v}"
        return text
    if kind in ("maxpool2d", "avgpool2d"):
        text = f"{'Max' if kind == 'maxpool2d' else 'Avg'}Pool {pair(cfg.get('kernel_size', 2))}"
        stride = cfg.get("stride")
        if stride is not None and stride != cfg.get("kernel_size"):
            text += f", stride {stride}"
        return text
    if kind == "activation":
        return {"relu": "ReLU", "leaky_relu": "LeakyReLU", "sigmoid": "Sigmoid",
                "tanh": "Tanh"}.get(cfg.get("function"), str(cfg.get("function")))
    if kind == "dense":
        return f"Dense {cfg['units']}"
    if kind == "dropout":
        return f"Dropout {cfg.get('p', 0.5):g}"
    if kind == "flatten":
        return "Flatten"
    if kind == "batchnorm2d":
        return "BatchNorm2D"
    return kind


def _canonical(spec: dict) -> list | None:
    """The layers of an architecture with every default spelled out (for comparisons)."""
    try:
        return [layer_from_config(c).config() for c in spec.get("layers", [])]
    except (ValueError, TypeError):
        return None


def _style_plot(pw: pg.PlotWidget, title: str, left: str, bottom: str):
    pi = pw.getPlotItem()
    pi.setTitle(title, color="#222", size="10pt")
    for name, text in (("left", left), ("bottom", bottom)):
        ax = pi.getAxis(name)
        ax.setPen(pg.mkPen("#666"))
        ax.setTextPen(pg.mkPen("#222"))
        pi.setLabel(name, text, color="#222")
    pi.showGrid(x=True, y=True, alpha=0.15)
    for name in ("left", "bottom"):
        # an axis whose range did not change is blitted, not re-rendered (text is slow)
        pi.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    pi.setMenuEnabled(False)
    pw.setMinimumHeight(180)


def _group(title: str) -> QGroupBox:
    box = QGroupBox(title)
    box.setStyleSheet("QGroupBox { font-weight: bold; } "
                      "QGroupBox > QWidget, QGroupBox QLabel { font-weight: normal; }")
    return box


# ---------------------------------------------------------------------------- widgets

class _RootLayout(QVBoxLayout):
    """A box layout that never reports height-for-width.

    Word-wrapped labels make a layout height-for-width, and a QScrollArea holding the
    view would then size it to its *preferred* height for the width (and scroll)
    instead of fitting it to the window down to its minimum size.
    """

    def hasHeightForWidth(self):  # noqa: N802 (Qt API)
        return False


# ---------------------------------------------------------------------------- the view

class TrainView(QWidget):
    """The Train tab (see the module docstring)."""

    sendKernel = pyqtSignal(object, str)      # (kh, kw) float64 weights, name
    modelChanged = pyqtSignal(object)         # Sequential, after training ends or a load
    trainingRunning = pyqtSignal(bool)
    # finer-grained notifications (tests, status bars)
    batchDone = pyqtSignal(object)            # BatchEvent
    epochDone = pyqtSignal(object)            # EpochEvent
    trainingFinished = pyqtSignal(object)     # model
    trainingStopped = pyqtSignal()
    trainingFailed = pyqtSignal(str)
    datasetChanged = pyqtSignal(object)       # Dataset
    datasetFailed = pyqtSignal(str)           # why a dataset could not be loaded

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        #: use only the first N training / test images (tests, quick looks); None = all
        self.limit_train: int | None = None
        self.limit_test: int | None = None
        #: per-run checkpoint folders are created in here
        self.runs_dir = Path(tempfile.gettempdir()) / "convscope-runs"
        self._data: Dataset | None = None
        self._data_source = 0                  # index in the data combo
        self._data_requests: dict[int, int] = {}   # loader token -> data combo index
        self._spec = dict(ARCHITECTURES["keras_mnist"])
        self._model: Sequential | None = None
        self._model_state = "untrained"        # untrained | trained | stopped | loaded
        self._model_file = ""
        self._evaluation: Evaluation | None = None
        self._run: TrainRun | None = None
        self._runs: list[TrainRun] = []        # alive until their threads ended
        self._run_dir = ""
        self._training = False
        self._t_start = 0.0
        self._reset_history()
        self._pending_kernels = None
        self._kernel_source = "model"          # name of the model whose kernels are shown
        self._last_batch = None
        self._rate = 0.0

        self._loader = DatasetLoader(self)
        self._loader.loaded.connect(self._on_data_loaded)
        self._loader.failed.connect(self._on_data_failed)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._data_timer = QTimer(self)
        self._data_timer.setSingleShot(True)
        self._data_timer.setInterval(0)
        self._data_timer.timeout.connect(self._ensure_data)

        self.message = MessageBar()
        controls = self._make_controls()
        results = self._make_results()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(controls)
        self.splitter.addWidget(results)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([LEFT_WIDTH, 940])
        self.splitter.setChildrenCollapsible(False)
        root = _RootLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(4)
        root.addWidget(self.message)
        root.addWidget(self.splitter, 1)

        self._set_architecture_preview()
        self._clear_results("Train or load a model to see the test digits it gets wrong.")
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _make_controls(self) -> QWidget:
        host = QWidget()
        lay = _RootLayout(host)  # the table shrinks (and scrolls) before the pane scrolls
        lay.setContentsMargins(0, 0, 6, 0)
        lay.setSpacing(6)

        # data
        box = _group("Data")
        v = QVBoxLayout(box)
        self.data_combo = QComboBox()
        self.data_combo.addItems([BUNDLED_LABEL, IDX_LABEL, IMAGES_LABEL])
        self.data_combo.setToolTip("The bundled MNIST subset, a folder with the four MNIST "
                                   "IDX files, or a folder with one sub-folder of images per "
                                   "class. You can also drop a folder on this tab.")
        self.data_combo.activated.connect(self._on_data_combo)
        self.data_info = QLabel("Not loaded yet")
        self.data_info.setWordWrap(True)
        self.data_info.setStyleSheet("color: #333;")
        v.addWidget(self.data_combo)
        v.addWidget(self.data_info)
        lay.addWidget(box)

        # architecture
        box = _group("Architecture")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.arch_combo = QComboBox()
        for name in ARCHITECTURES:
            self.arch_combo.addItem(name, ARCHITECTURES[name])
        self.arch_combo.addItem(FROM_JSON, None)
        self.arch_combo.setToolTip("A preset, or an architecture JSON file")
        self.arch_combo.activated.connect(self._on_arch_combo)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setToolTip("Edit the architecture as JSON")
        self.edit_button.clicked.connect(self.edit_architecture)
        row.addWidget(self.arch_combo, 1)
        row.addWidget(self.edit_button)
        v.addLayout(row)
        self.arch_table = QTableWidget(0, 4)
        self.arch_table.setHorizontalHeaderLabels(["#", "layer", "output", "params"])
        for c, tip in enumerate(["layer index (PyTorch state-dict prefix)", "layer",
                                 "output shape (channels×height×width)", "parameters"]):
            self.arch_table.horizontalHeaderItem(c).setToolTip(tip)
        self.arch_table.verticalHeader().hide()
        self.arch_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.arch_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.arch_table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.arch_table.setAlternatingRowColors(True)
        self.arch_table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.arch_table.verticalHeader().setDefaultSectionSize(19)
        self.arch_table.verticalHeader().setMinimumSectionSize(18)
        hh = self.arch_table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.arch_table.setMinimumHeight(110)
        # as tall as its rows (down to the minimum, then it scrolls)
        self.arch_table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.arch_table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.arch_total = QLabel()
        self.arch_total.setAlignment(Qt.AlignmentFlag.AlignRight)
        v.addWidget(self.arch_table)
        v.addWidget(self.arch_total)
        lay.addWidget(box)

        # hyper-parameters: two label/field pairs per row, so the table keeps its room
        box = _group("Hyper-parameters")
        grid = QGridLayout(box)
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
        # the untrained model shown (its kernels) is the one Start begins with
        self.seed.valueChanged.connect(lambda _: self._set_architecture_preview())
        for w in (self.epochs, self.batch_size, self.lr, self.seed, self.optimizer):
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
        lay.addWidget(box)

        # training and the model files
        box = _group("Training")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train the architecture above from new random weights")
        self.start_button.clicked.connect(self.start_training)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the last finished epoch's "
                                    "checkpoint is kept")
        self.stop_button.clicked.connect(lambda: self.stop_training(wait=False))
        for b in (self.start_button, self.pause_button, self.stop_button):
            row.addWidget(b)
        v.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        self.progress.setTextVisible(True)
        self.progress.setAlignment(Qt.AlignmentFlag.AlignCenter)
        v.addWidget(self.progress)
        self.speed_label = QLabel("–")
        self.speed_label.setStyleSheet("color: #333;")
        v.addWidget(self.speed_label)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Save the current model (weights + architecture, .npz)")
        self.save_button.clicked.connect(self.save_model_dialog)
        self.load_button = QPushButton("Load model…")
        self.load_button.setToolTip("Load a model saved by ConvScope and evaluate it")
        self.load_button.clicked.connect(self.load_model_dialog)
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        v.addLayout(row)
        lay.addWidget(box)
        lay.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(host)
        scroll.setMinimumWidth(300)
        return scroll

    def _make_results(self) -> QWidget:
        # plots
        self.loss_plot = pg.PlotWidget(background="w")
        _style_plot(self.loss_plot, "Training loss", "loss", "epoch")
        lpi = self.loss_plot.getPlotItem()
        lpi.addLegend(offset=(-8, 8), labelTextColor="#222", brush=(255, 255, 255, 200))
        self.loss_raw = lpi.plot(pen=pg.mkPen((70, 130, 200, 120), width=1), name="per batch")
        self.loss_smooth = lpi.plot(pen=pg.mkPen("#1f4e9c", width=2), name="smoothed")
        self.acc_plot = pg.PlotWidget(background="w")
        _style_plot(self.acc_plot, "Accuracy per epoch", "accuracy (%)", "epoch")
        api = self.acc_plot.getPlotItem()
        api.addLegend(offset=(-8, -8), labelTextColor="#222", brush=(255, 255, 255, 200))
        self.acc_train = api.plot(pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=6,
                                  symbolBrush="#1f77b4", symbolPen=None, name="train",
                                  connect="finite")
        self.acc_test = api.plot(pen=pg.mkPen("#e6730f", width=2), symbol="s", symbolSize=6,
                                 symbolBrush="#e6730f", symbolPen=None, name="test",
                                 connect="finite")
        self._loss_hint = pg.TextItem("Start training to see the loss", color="#888",
                                      anchor=(0.5, 0.5))
        self._loss_hint.setPos(0.5, 0.5)
        lpi.addItem(self._loss_hint, ignoreBounds=True)
        self._epoch_axis: dict = {}
        self._acc_hint = pg.TextItem("Accuracy appears after each epoch", color="#888",
                                     anchor=(0.5, 0.5))
        self._acc_hint.setPos(0.5, 0.5)
        api.addItem(self._acc_hint, ignoreBounds=True)

        # kernels
        kbox = _group("First-layer kernels")
        kv = QVBoxLayout(kbox)
        self.kernel_info = QLabel()
        self.kernel_info.setWordWrap(True)
        self.kernel_info.setStyleSheet("color: #333;")
        self.kernel_grid = KernelGrid()
        self.kernel_grid.selectionChanged.connect(self._on_kernel_selected)
        kscroll = QScrollArea()
        kscroll.setWidgetResizable(True)
        kscroll.setFrameShape(QFrame.Shape.NoFrame)
        kscroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        kwrap = QWidget()
        kw_lay = QHBoxLayout(kwrap)
        kw_lay.setContentsMargins(0, 0, 0, 0)
        kw_lay.addStretch(1)
        kw_lay.addWidget(self.kernel_grid, 0, Qt.AlignmentFlag.AlignTop)
        kw_lay.addStretch(1)
        kscroll.setWidget(kwrap)
        self.kernel_scale = QLabel()
        self.kernel_scale.setStyleSheet("color: #555; font-size: 11px;")
        self.kernel_scale.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.send_button = QPushButton("Send to kernel editor")
        self.send_button.setToolTip("Add the selected filter to the pipeline's convolution")
        self.send_button.clicked.connect(self.send_selected_kernel)
        kv.addWidget(self.kernel_info)
        kv.addWidget(kscroll, 1)
        kv.addWidget(self.kernel_scale)
        kv.addWidget(self.send_button)
        kbox.setFixedWidth(300)

        top = QWidget()
        th = QHBoxLayout(top)
        th.setContentsMargins(0, 0, 0, 0)
        th.setSpacing(6)
        th.addWidget(self.loss_plot, 1)
        th.addWidget(self.acc_plot, 1)
        th.addWidget(kbox)

        # test results
        cbox = _group("Test results")
        cv = QVBoxLayout(cbox)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setStyleSheet("color: #333;")
        cv.addWidget(self.model_info)
        self.accuracy_label = QLabel("No test results yet")
        f = QFont(self.accuracy_label.font())
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        self.accuracy_label.setFont(f)
        self.accuracy_detail = QLabel("")
        self.accuracy_detail.setStyleSheet("color: #555;")
        self.confusion = ConfusionTable()
        self.confusion_caption = axes = QLabel(
            "Confusion matrix · rows: true class · columns: predicted")
        axes.setStyleSheet("color: #555; font-size: 11px;")
        cv.addWidget(self.accuracy_label)
        cv.addWidget(self.accuracy_detail)
        cv.addWidget(axes)
        cv.addWidget(self.confusion, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        cv.addStretch(1)

        cbox.setMinimumWidth(370)
        gbox = _group(f"Misclassified test digits (first {GALLERY_SIZE})")
        gv = QVBoxLayout(gbox)
        self.gallery = MisclassifiedGallery()
        gv.addWidget(self.gallery)

        bottom = QWidget()
        bh = QHBoxLayout(bottom)
        bh.setContentsMargins(0, 0, 0, 0)
        bh.setSpacing(6)
        bh.addWidget(cbox, 0)
        bh.addWidget(gbox, 1)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setChildrenCollapsible(False)
        split.setSizes([300, 460])
        return split

    # ------------------------------------------------------------------ public API
    def model(self) -> Sequential | None:
        """The current model: trained, loaded, or (before either) the untrained preview."""
        return self._model

    def dataset(self) -> Dataset | None:
        """The loaded dataset (all of it, whatever :attr:`limit_train` says)."""
        return self._data

    def evaluation(self) -> Evaluation | None:
        return self._evaluation

    def is_training(self) -> bool:
        return self._training

    def run_folder(self) -> str:
        """The folder of the current or last run (checkpoint.npz, model.npz)."""
        return self._run_dir

    def start_training(self) -> bool:
        """Build the selected architecture and train it; False (with a message) if refused."""
        if self._training:
            return False
        data = self._ensure_data()
        if data is None:
            return False
        spec = dict(self._spec)
        spec["input_shape"] = list(data.input_shape)
        try:
            model = build(spec, seed=self.seed.value())
            config = TrainConfig(epochs=self.epochs.value(), batch_size=self.batch_size.value(),
                                 lr=float(self.lr.value()), optimizer=self.optimizer.currentText(),
                                 seed=self.seed.value())
            config.validate()
        except ValueError as exc:
            self.message.show_message(f"Cannot train: {exc}")
            return False
        problem = self._incompatible(model, data)
        if problem:
            self.message.show_message(f"Cannot train: {problem}")
            return False
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = re.sub(r"[^\w.-]+", "_", model.name)[:40]
            self._run_dir = tempfile.mkdtemp(prefix=f"{stamp}-{safe}-", dir=self.runs_dir)
        except OSError as exc:
            self.message.show_message(f"Cannot create a folder for the run's checkpoints in "
                                      f"'{self.runs_dir}': {exc}")
            return False
        config.out = self._run_dir
        run = TrainRun(model, self._limited(data), config)
        w = run.worker
        w.batch.connect(self._on_batch)
        w.epoch.connect(self._on_epoch)
        w.kernels.connect(self._on_kernels)
        w.evaluated.connect(self._on_evaluated)
        w.finished.connect(self._on_finished)
        w.stopped.connect(self._on_stopped)
        w.failed.connect(self._on_failed)
        run.thread.finished.connect(lambda r=run: self._on_thread_done(r))
        self._run = run
        self._runs.append(run)
        self._training = True
        self._reset_history()
        self._last_batch = None
        self._pending_kernels = None
        self._rate = 0.0
        self._epochs = config.epochs
        self._t_start = time.perf_counter()
        self.message.hide()
        conv = first_conv(model)
        self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
        self._show_kernel_info(model, conv, "training")
        self._update_model_info(training=model)
        self._clear_results("Training… the misclassified test digits appear when it ends.")
        self._set_epoch_axis(config.epochs)
        # fixed loss range while training (see _redraw_loss): no axis redraw per refresh
        self.loss_plot.getPlotItem().getViewBox().disableAutoRange(axis=pg.ViewBox.YAxis)
        self._redraw_plots()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(f"epoch 1/{config.epochs} · starting…")
        self.speed_label.setText("–")
        with signals_blocked(self.pause_button):
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
        self._update_buttons()
        self._timer.start()
        run.start()
        self.trainingRunning.emit(True)
        return True

    def pause_training(self, paused: bool = True):
        """Pause (or resume) between batches."""
        self.pause_button.setChecked(paused)

    def stop_training(self, wait: bool = True):
        """Stop after the current batch.

        With ``wait`` (the window is closing) this blocks until the thread ended, skips
        the final evaluation and delivers the run's last signals before returning.
        """
        run = self._run
        if run is not None and self._training:
            if wait:
                run.worker.skip_evaluation = True
            run.stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self.speed_label.setText("stopping after this batch…")
        if not wait:
            return
        for r in list(self._runs):  # also runs that reported their end but still exit
            r.wait()
        QCoreApplication.sendPostedEvents()  # the run's last signals, in order
        if self._training:  # not delivered (no event loop): end the UI state here
            self._end_training()

    def load_model_file(self, path) -> bool:
        """Load a model, evaluate it on the test data and show it; False + message if refused.

        Refused (the current model kept): while training, an unreadable file
        (:class:`core.nn.model.ModelFileError`), a model whose input shape differs from
        the data's, a model with fewer outputs than the data has classes.
        """
        path = os.fspath(path)
        if self._training:
            self.message.show_message("Stop the training before loading a model.")
            return False
        try:
            model, extra = load_model(path)
        except ModelFileError as exc:
            self.message.show_message(f"{exc}. The current model is kept.")
            return False
        data = self._ensure_data()
        if data is None:
            return False
        problem = self._incompatible(model, data)
        if problem:
            self.message.show_message(f"Cannot use '{os.path.basename(path)}': {problem}. "
                                      f"The current model is kept.")
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            evaluation = evaluate_model(model, self._limited(data))
        finally:
            QApplication.restoreOverrideCursor()
        self._model_file = path
        self._adopt(model, evaluation, "loaded")
        self._add_custom_arch(model.architecture(), os.path.basename(path))
        self._restore_history(extra)
        self.message.show_message(f"Loaded {os.path.basename(path)}: test accuracy "
                                  f"{evaluation.accuracy * 100:.2f} %", error=False)
        self.modelChanged.emit(model)
        return True

    def save_model_file(self, path) -> bool:
        if self._model is None:
            self.message.show_message("There is no model to save.")
            return False
        try:
            save_model(path, self._model, self._history_arrays())
        except OSError as exc:
            self.message.show_message(f"Could not save the model to '{path}': {exc}")
            return False
        self._model_file = os.fspath(path)
        self._update_model_info()
        self.message.show_message(f"Saved the model to {path}", error=False)
        return True

    def set_architecture(self, spec: dict, name: str | None = None) -> bool:
        """Use an architecture (JSON dict); False + message if core.nn.build refuses it."""
        spec = dict(spec)
        shape = self._data.input_shape if self._data is not None else \
            tuple(spec.get("input_shape", (1, 28, 28)))
        try:
            trial = dict(spec, input_shape=list(shape))
            build(trial)
        except (ValueError, TypeError) as exc:
            self.message.show_message(f"Bad architecture: {exc}. The previous one is kept.")
            self._select_arch_item()
            return False
        self._add_custom_arch(spec, name or str(spec.get("name", "custom")))
        return True

    def load_data_folder(self, folder, kind: str = "auto") -> int:
        """Load a dataset folder in the background (kind: auto | idx | images)."""
        folder = os.fspath(folder)
        fn = {"auto": load_dataset, "idx": load_idx_folder, "images": load_image_folder}[kind]
        if kind == "auto":
            is_idx = os.path.isdir(folder) and any(
                n.startswith("train-images") for n in os.listdir(folder))
            kind = "idx" if is_idx else "images"
        self.data_info.setText(f"Loading {folder}…")
        token = self._loader.load(fn, folder)
        self._data_requests = {token: 1 if kind == "idx" else 2}
        return token

    def use_bundled_data(self) -> bool:
        try:
            data = load_bundled_mnist()
        except DatasetError as exc:
            self.message.show_message(f"{exc}. The previous data is kept.")
            self.datasetFailed.emit(str(exc))
            self._select_data_item()
            return False
        self.set_dataset(data, 0)
        return True

    def set_dataset(self, data: Dataset, source: int = 0):
        """Use an already loaded dataset (source: index of the data combo entry to show)."""
        self._loader.cancel()  # a folder load in flight must not replace this
        self._set_data(data, source)

    def send_selected_kernel(self) -> bool:
        k = self.kernel_grid.selected_kernel()
        if k is None:
            return False
        i = self.kernel_grid.selected()
        self.sendKernel.emit(k, f"{self._kernel_source} conv filter {i + 1}")
        return True

    # ------------------------------------------------------------------ data
    def showEvent(self, ev):  # noqa: N802 (Qt API)
        super().showEvent(ev)
        if self._data is None:
            self._data_timer.start()  # the bundled data, once the tab is on screen

    def _ensure_data(self) -> Dataset | None:
        if self._data is None:
            self.use_bundled_data()
        return self._data

    def _limited(self, data: Dataset) -> Dataset:
        if self.limit_train is None and self.limit_test is None:
            return data
        return dataclasses.replace(data, x_train=data.x_train[:self.limit_train],
                                   y_train=data.y_train[:self.limit_train],
                                   x_test=data.x_test[:self.limit_test],
                                   y_test=data.y_test[:self.limit_test])

    def _on_data_combo(self, index: int):
        if index == 0:
            if self._data_source != 0 or self._data is None:
                self.use_bundled_data()
            return
        title = "IDX folder (the four MNIST files)" if index == 1 else \
            "Image folder (one sub-folder per class)"
        folder = QFileDialog.getExistingDirectory(self, title)
        if not folder:
            self._select_data_item()
            return
        self.load_data_folder(folder, "idx" if index == 1 else "images")

    def _select_data_item(self):
        with signals_blocked(self.data_combo):
            self.data_combo.setCurrentIndex(self._data_source)

    def _on_data_loaded(self, token: int, data):
        if token != self._loader.latest or data is None:
            return
        self._set_data(data, self._data_requests.pop(token, 1))

    def _on_data_failed(self, token: int, message: str):
        if token != self._loader.latest:
            return
        self.message.show_message(f"{message}. The previous data is kept.")
        self.datasetFailed.emit(message)
        self._show_data_info()
        self._select_data_item()
        self._update_buttons()

    def _set_data(self, data: Dataset, source: int):
        old = self._data
        self._data = data
        self._data_source = source
        self._select_data_item()
        self._show_data_info()
        if old is None or old.input_shape != data.input_shape:
            self._set_architecture_preview()
        if self._model is not None and self._model_state != "untrained" and not self._training:
            problem = self._incompatible(self._model, data)
            if problem:
                self._evaluation = None
                self._clear_results(f"The current model does not fit this data: {problem}.")
            else:
                self._show_evaluation(evaluate_model(self._model, self._limited(data)))
        self._update_buttons()
        self.datasetChanged.emit(data)

    def _show_data_info(self):
        d = self._data
        if d is None:
            self.data_info.setText("Not loaded yet")
            return
        shape = "×".join(map(str, d.input_shape))
        self.data_info.setText(f"<b>{d.name}</b><br>{len(d.x_train):,} training · "
                               f"{len(d.x_test):,} test images<br>{shape} · "
                               f"{len(d.classes)} classes")
        self.data_info.setToolTip(", ".join(d.classes))

    @staticmethod
    def _incompatible(model: Sequential, data: Dataset) -> str:
        if model.input_shape != data.input_shape:
            return (f"the model expects images of shape {model.input_shape} but the data's "
                    f"are {data.input_shape}")
        out = model.output_shape
        if len(out) != 1:
            return f"the model's output has shape {out}; it must end with a Dense layer"
        if out[0] < len(data.classes):
            return f"the model has {out[0]} outputs but the data has {len(data.classes)} classes"
        return ""

    # drag and drop a dataset folder
    def dragEnterEvent(self, ev):  # noqa: N802 (Qt API)
        md = ev.mimeData()
        if md.hasUrls() and any(u.isLocalFile() and os.path.isdir(u.toLocalFile())
                                for u in md.urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802 (Qt API)
        folders = [u.toLocalFile() for u in ev.mimeData().urls()
                   if u.isLocalFile() and os.path.isdir(u.toLocalFile())]
        if not folders:
            return
        ev.acceptProposedAction()
        if self._training:
            self.message.show_message("Stop the training before changing the data.")
            return
        self.load_data_folder(folders[0], "auto")

    # ------------------------------------------------------------------ architecture
    def _on_arch_combo(self, index: int):
        spec = self.arch_combo.itemData(index)
        if spec is None:  # From JSON file…
            path, _ = QFileDialog.getOpenFileName(self, "Architecture (JSON)", "",
                                                  "JSON (*.json);;All files (*)")
            if not path:
                self._select_arch_item()
                return
            self.load_architecture_file(path)
            return
        self.set_architecture(spec, self.arch_combo.itemText(index))

    def load_architecture_file(self, path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                spec = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.message.show_message(f"Cannot read '{path}': {exc}. The previous "
                                      f"architecture is kept.")
            self._select_arch_item()
            return False
        if not isinstance(spec, dict):
            self.message.show_message(f"'{path}' is not an architecture (a JSON object with "
                                      f"'layers'). The previous architecture is kept.")
            self._select_arch_item()
            return False
        return self.set_architecture(spec, Path(path).stem)

    def edit_architecture(self):
        shape = self._data.input_shape if self._data is not None else (1, 28, 28)
        dlg = ArchitectureDialog(self._spec, shape, self)
        if dlg.exec() == QDialog.DialogCode.Accepted and dlg.spec is not None:
            self.set_architecture(dlg.spec, str(dlg.spec.get("name", "custom")) + " (edited)")

    def _add_custom_arch(self, spec: dict, name: str):
        """Put a non-preset architecture in the combo (one custom entry, replaced)."""
        spec = {k: v for k, v in spec.items() if k not in ("input_shape", "format", "version")}
        layers = _canonical(spec)
        preset = next((n for n, s in ARCHITECTURES.items() if _canonical(s) == layers), None)
        if preset is not None:
            self._spec = dict(ARCHITECTURES[preset])
        else:
            self._spec = spec
            n = len(ARCHITECTURES)
            with signals_blocked(self.arch_combo):
                if self.arch_combo.count() > n + 1:
                    self.arch_combo.removeItem(n)
                self.arch_combo.insertItem(n, name, spec)
        self._select_arch_item()
        self._set_architecture_preview()

    def _select_arch_item(self):
        for i in range(self.arch_combo.count()):
            s = self.arch_combo.itemData(i)
            if s is not None and _canonical(s) == _canonical(self._spec):
                with signals_blocked(self.arch_combo):
                    self.arch_combo.setCurrentIndex(i)
                return

    def _set_architecture_preview(self):
        shape = self._data.input_shape if self._data is not None else (1, 28, 28)
        try:
            model = build(dict(self._spec, input_shape=list(shape)), seed=self.seed.value())
        except ValueError as exc:
            self.arch_table.setRowCount(0)
            self.arch_total.setText(f"<span style='color:{ERROR_RED}'>{exc}</span>")
            return
        rows = model.summary()
        self.arch_table.setRowCount(len(rows))
        layers = self._spec["layers"]
        for r, row in enumerate(rows):
            cells = [str(row["index"]), layer_label(layers[r]),
                     "×".join(map(str, row["output_shape"])), f"{row['params']:,}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(row["layer"])
                align = Qt.AlignmentFlag.AlignRight if c in (0, 3) else Qt.AlignmentFlag.AlignLeft
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                self.arch_table.setItem(r, c, item)
        self.arch_total.setText(f"Total parameters: <b>{model.n_params:,}</b>")
        if self._model is None or (self._model_state == "untrained" and not self._training):
            self._model = model
            self._model_state = "untrained"
            self._evaluation = None
            conv = first_conv(model)
            self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
            self._show_kernel_info(model, conv, "untrained")
            self._update_model_info()

    # ------------------------------------------------------------------ training events
    def _reset_history(self):
        had = bool(getattr(self, "_loss_x", True)), bool(getattr(self, "_acc", True))
        self._loss_x: list[float] = []
        self._loss_y: list[float] = []
        self._loss_s: list[float] = []
        self._ema = 0.0
        self._acc: list[tuple[float, float, float]] = []   # epoch, train %, test %
        self._loss_dirty, self._acc_dirty = had  # (re)draw only plots that showed something
        self._loss_top = 0.0

    def _on_batch(self, ev):
        self._loss_x.append(ev.epoch + (ev.batch + 1) / ev.batches)
        self._loss_y.append(ev.loss)
        self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * ev.loss
        self._loss_s.append(self._ema / (1 - SMOOTHING ** len(self._loss_y)))
        self._rate = ev.samples_per_s if self._rate == 0 else \
            0.9 * self._rate + 0.1 * ev.samples_per_s
        self._last_batch = ev
        self._loss_dirty = True
        self.batchDone.emit(ev)

    def _on_kernels(self, weights):
        self._pending_kernels = weights

    def _on_epoch(self, ev):
        x, train_acc = ev.epoch + 1, ev.train_accuracy * 100
        if ev.stopped:  # a partial epoch: plot it where it stopped
            last = self._last_batch
            frac = (last.batch + 1) / last.batches if last and last.epoch == ev.epoch else 0.0
            x = ev.epoch + frac
            if frac == 0:
                train_acc = float("nan")  # no batch of this epoch ran
        self._acc.append((x, train_acc, ev.test_accuracy * 100))
        self._acc_dirty = True
        classes = self._data.classes if self._data is not None else None
        self.confusion.set_matrix(ev.confusion, classes)
        self.confusion_caption.show()
        what = "stopped during" if ev.stopped else "after"
        self.accuracy_label.setText(f"Test accuracy {ev.test_accuracy * 100:.2f} %")
        self.accuracy_detail.setText(f"{what} epoch {ev.epoch + 1}/{ev.epochs} · test loss "
                                     f"{ev.test_loss:.4f} · {ev.seconds:.1f} s, "
                                     f"{ev.samples_per_s:,.0f} img/s")
        self._refresh()
        self.epochDone.emit(ev)

    def _on_evaluated(self, model, evaluation):
        self._refresh()
        self._model_file = ""
        self._adopt(model, evaluation, "stopped" if self._run is not None
                    and self._run.control.stopped else "trained")

    def _on_finished(self, model):
        secs = time.perf_counter() - self._t_start
        self._end_training()
        acc = f"test accuracy {self._evaluation.accuracy * 100:.2f} % · " \
            if self._evaluation is not None else ""
        self.message.show_message(f"Training finished: {acc}{secs:.1f} s. The model is in "
                                  f"{os.path.join(self._run_dir, FINAL)}; use Save model… to "
                                  f"keep it elsewhere.", error=False)
        self.modelChanged.emit(model)
        self.trainingFinished.emit(model)

    def _on_stopped(self):
        self._end_training()
        ckpt = os.path.join(self._run_dir, CHECKPOINT)
        kept = (f"The last finished epoch's checkpoint is kept in {ckpt}."
                if os.path.exists(ckpt) else "No epoch had finished, so there is no checkpoint.")
        self.message.show_message(f"Training stopped. {kept}", error=False)
        if self._model_state == "stopped":
            self.modelChanged.emit(self._model)
        self.trainingStopped.emit()

    def _on_failed(self, message: str):
        self._end_training()
        self.message.show_message(f"Training failed: {message}. The previous model is kept.")
        if self._model is not None:
            conv = first_conv(self._model)
            self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
            self._show_kernel_info(self._model, conv, self._model_state)
        if self._evaluation is not None:
            self._show_evaluation(self._evaluation)
        else:
            self._clear_results("Train or load a model to see the test digits it gets wrong.")
        self.trainingFailed.emit(message)

    def _end_training(self):
        self._timer.stop()
        self._training = False
        self._loss_dirty = True
        self._refresh()
        self.loss_plot.getPlotItem().getViewBox().enableAutoRange(axis=pg.ViewBox.YAxis)
        self.speed_label.setText(self._speed_text(final=True))
        self._update_model_info()
        with signals_blocked(self.pause_button):
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
        self._update_buttons()
        self.trainingRunning.emit(False)

    def _on_thread_done(self, run: TrainRun):
        run.wait()  # returns at once: the thread has ended
        if run in self._runs:
            self._runs.remove(run)
        if run is self._run and not self._training:
            self._run = None
        # the run (Python-owned, like its thread and worker) goes with its last reference;
        # it must not keep the dataset or the model alive meanwhile
        run.worker.model = run.worker.data = None

    def _on_pause_toggled(self, paused: bool):
        run = self._run
        self.pause_button.setText("Resume" if paused else "Pause")
        if run is None or not self._training:
            return
        if paused:
            run.pause()
            self.speed_label.setText("paused (after the current batch)")
        else:
            run.resume()
            self.speed_label.setText(self._speed_text())

    # ------------------------------------------------------------------ throttled redraw
    def _refresh(self):
        """Redraw what changed since the last refresh (timer: at most every REFRESH_MS)."""
        self._redraw_plots()
        ev = self._last_batch
        if ev is not None:
            total = self._epochs * ev.batches
            done = ev.epoch * ev.batches + ev.batch + 1
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"epoch {ev.epoch + 1}/{self._epochs} · "
                                    f"batch {ev.batch + 1}/{ev.batches}")
            if self._training and not (self._run and self._run.paused):
                self.speed_label.setText(self._speed_text())
        if self._pending_kernels is not None:
            self.kernel_grid.set_weights(self._pending_kernels)
            self._pending_kernels = None
            self._update_kernel_scale()

    def _speed_text(self, final: bool = False) -> str:
        ev = self._last_batch
        if ev is None:
            return "–"
        if final:
            secs = time.perf_counter() - self._t_start
            return f"{self._rate:,.0f} samples/s · took {secs:.1f} s"
        eta = ev.eta_s
        eta_text = "–" if not math.isfinite(eta) else \
            (f"{eta / 60:.0f} min {eta % 60:.0f} s" if eta >= 60 else f"{eta:.0f} s")
        return f"{self._rate:,.0f} samples/s · ETA {eta_text}"

    def _set_epoch_axis(self, epochs: float):
        """Both plots show epochs 0..``epochs`` (aligned, and fixed while training)."""
        epochs = max(epochs, 1)
        for pw, hint in ((self.loss_plot, self._loss_hint), (self.acc_plot, self._acc_hint)):
            vb = pw.getPlotItem().getViewBox()
            vb.disableAutoRange(axis=pg.ViewBox.XAxis)
            if self._epoch_axis.get(pw) != epochs:  # an unchanged axis is not re-rendered
                self._epoch_axis[pw] = epochs
                vb.setXRange(0, epochs, padding=0.05)
            hint.setPos(epochs / 2, 0.5)

    def _redraw_plots(self):
        if self._loss_dirty:
            self._redraw_loss()
        if self._acc_dirty:
            self._redraw_acc()

    def _redraw_loss(self):
        self._loss_dirty = False
        if not self._loss_x:
            self.loss_raw.setData([], [])
            self.loss_smooth.setData([], [])
            self._loss_hint.show()
            return
        x = np.asarray(self._loss_x)
        y = np.asarray(self._loss_y)
        if self._training:
            # fixed ranges while training: the axes are not redrawn on every refresh
            top = float(y.max())
            if top > self._loss_top:
                self._loss_top = top * 1.1
                self.loss_plot.getPlotItem().getViewBox().setYRange(0, self._loss_top,
                                                                   padding=0)
        self.loss_raw.setData(x, y)
        self.loss_smooth.setData(x, np.asarray(self._loss_s))
        self._loss_hint.hide()

    def _redraw_acc(self):
        self._acc_dirty = False
        if self._acc:
            a = np.asarray(self._acc)
            self.acc_train.setData(a[:, 0], a[:, 1])
            self.acc_test.setData(a[:, 0], a[:, 2])
            self._acc_hint.hide()
        else:
            self.acc_train.setData([], [])
            self.acc_test.setData([], [])
            self._acc_hint.show()

    def _history_arrays(self) -> dict[str, np.ndarray]:
        if not self._loss_x:
            return {}
        return {HISTORY_LOSS: np.array([self._loss_x, self._loss_y], np.float64),
                HISTORY_EPOCHS: np.array(self._acc, np.float64).reshape(-1, 3)}

    def _restore_history(self, extra: dict):
        self._reset_history()
        loss = extra.get(HISTORY_LOSS)
        if loss is not None and loss.ndim == 2 and loss.shape[0] == 2:
            for x, y in loss.T:
                self._loss_x.append(float(x))
                self._loss_y.append(float(y))
                self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * float(y)
                self._loss_s.append(self._ema / (1 - SMOOTHING ** len(self._loss_y)))
        acc = extra.get(HISTORY_EPOCHS)
        if acc is not None and acc.ndim == 2 and acc.shape[1] == 3:
            self._acc = [tuple(map(float, r)) for r in acc]
        self._loss_dirty = self._acc_dirty = True
        xs = self._loss_x + [a[0] for a in self._acc]
        self._set_epoch_axis(math.ceil(max(xs)) if xs else 1)
        self._last_batch = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        self.speed_label.setText("–")
        self._redraw_plots()

    # ------------------------------------------------------------------ results
    def _adopt(self, model: Sequential, evaluation: Evaluation, state: str):
        self._model = model
        self._model_state = state
        conv = first_conv(model)
        self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
        self._show_kernel_info(model, conv, state)
        self._show_evaluation(evaluation)
        self._update_model_info()
        self._update_buttons()

    def _show_kernel_info(self, model, conv, state: str):
        self._kernel_source = model.name
        if conv is None:
            self.kernel_info.setText("This model has no convolution layer.")
            self.kernel_scale.setText("")
            return
        i, layer = conv
        f, c, kh, kw = layer.params["weight"].shape
        chan = " (input channel 1 shown)" if c > 1 else ""
        when = {"training": "live while training", "untrained": "random initial weights"}.get(
            state, "learned")
        self.kernel_info.setText(f"Layer {i}: {f} filters {kh}×{kw}{chan} · {when}")
        self._update_kernel_scale()

    def _update_kernel_scale(self):
        v = self.kernel_grid.vmax
        self.kernel_scale.setText(f"blue −{v:.3g} · white 0 · red +{v:.3g}" if v else "")

    def _show_evaluation(self, ev: Evaluation):
        self._evaluation = ev
        classes = ev.classes
        self.accuracy_label.setText(f"Test accuracy {ev.accuracy * 100:.2f} %")
        self.accuracy_detail.setText(f"{ev.count:,} test images · {ev.wrong:,} wrong · "
                                     f"loss {ev.loss:.4f}")
        self.confusion.set_matrix(ev.confusion, classes)
        self.confusion_caption.show()
        names = classes

        def cname(k):
            return names[k] if k < len(names) else str(k)

        items = []
        for i, t, p, prob in ev.errors[:GALLERY_SIZE]:
            items.append((ev.images[i, 0], f"true {cname(t)} → pred {cname(p)} (p={prob:.2f})",
                          f"test image {i}: true {cname(t)}, predicted {cname(p)} with "
                          f"probability {prob:.3f}"))
        if items:
            self.gallery.set_items(items)
        else:
            self.gallery.clear("No test image is misclassified.")

    def _clear_results(self, text: str):
        self.accuracy_label.setText("No test results yet")
        self.accuracy_detail.setText("")
        self.confusion.set_matrix(None)
        self.confusion_caption.hide()
        self.gallery.clear(text)

    def _update_model_info(self, training: Sequential | None = None):
        if training is not None:
            self.model_info.setText(f"<b>{training.name}</b> · {training.n_params:,} "
                                    f"parameters · training…")
            return
        m = self._model
        if m is None:
            self.model_info.setText("No model")
            return
        state = {"untrained": "untrained (random initial weights)",
                 "trained": "trained here", "stopped": "trained here (stopped early)",
                 "loaded": "loaded"}[self._model_state]
        if self._model_file:
            state += f" {'from' if self._model_state == 'loaded' else 'as'} " \
                     f"{os.path.basename(self._model_file)}"
        self.model_info.setText(f"<b>{m.name}</b> · {m.n_params:,} parameters · {state}")
        self.model_info.setToolTip(self._model_file)

    def _on_kernel_selected(self, index: int):
        self._update_buttons()

    def _update_buttons(self):
        t = self._training
        self.start_button.setEnabled(not t)
        self.pause_button.setEnabled(t)
        self.stop_button.setEnabled(t)
        for w in (self.data_combo, self.arch_combo, self.edit_button, self.epochs,
                  self.batch_size, self.lr, self.optimizer, self.seed, self.load_button):
            w.setEnabled(not t)
        self.save_button.setEnabled(not t and self._model is not None)
        self.send_button.setEnabled(self.kernel_grid.selected() >= 0)

    # ------------------------------------------------------------------ model files
    def save_model_dialog(self):
        name = (self._model.name if self._model is not None else "model") + ".npz"
        path, _ = QFileDialog.getSaveFileName(self, "Save model", name, "Models (*.npz)")
        if path:
            if not path.lower().endswith(".npz"):
                path += ".npz"
            self.save_model_file(path)

    def load_model_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "",
                                              "Models (*.npz);;All files (*)")
        if path:
            self.load_model_file(path)

    def closeEvent(self, ev):  # noqa: N802 (Qt API)
        self.stop_training(wait=True)
        super().closeEvent(ev)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(1280, 760)

