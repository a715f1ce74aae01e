"""The Train tab's widgets: the controls column (data, architecture,
hyper-parameters, training) and the results column (plots, kernels, evaluation).
Mixed into :class:`app.train_view.TrainView`."""

from __future__ import annotations

from .train_common import (ARCHITECTURES, BUNDLED_LABEL, ConfusionTable, FROM_JSON,
                            GALLERY_SIZE, IDX_LABEL, IMAGES_LABEL, KernelGrid,
                            MisclassifiedGallery, QAbstractItemView, QAbstractScrollArea,
                            QComboBox, QFont, QFrame,
                            QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                            QScrollArea, QSizePolicy, QSplitter, QTableWidget,
                            QVBoxLayout, QWidget, Qt, _RootLayout, _group)
from .train_curves import TrainingCurves
from .train_hyper import HyperParameters


class TrainLayoutMixin:
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

        # hyper-parameters (app/train_hyper.py)
        self.hyper = HyperParameters()
        self.epochs, self.batch_size, self.lr = (self.hyper.epochs, self.hyper.batch_size,
                                                 self.hyper.lr)
        self.optimizer, self.seed = self.hyper.optimizer, self.hyper.seed
        # the untrained model shown (its kernels) is the one Start begins with
        self.hyper.seedChanged.connect(lambda _: self._set_architecture_preview())
        lay.addWidget(self.hyper)

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
        # the loss and accuracy curves (app/train_curves.py)
        self.curves = TrainingCurves()
        self.loss_plot, self.acc_plot = self.curves.loss_plot, self.curves.acc_plot
        self.loss_raw, self.loss_smooth = self.curves.loss_raw, self.curves.loss_smooth
        self.acc_train, self.acc_test = self.curves.acc_train, self.curves.acc_test

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
        th.addWidget(self.curves, 2)
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
