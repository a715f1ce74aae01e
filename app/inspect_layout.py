"""The Inspect tab's widgets: the drawing canvas and its controls, the photo
thumbnails, the per-layer maps and the probabilities. Mixed into
:class:`app.inspect_view.InspectView`."""

from __future__ import annotations

from .inspect_common import (DigitCanvas, ExplainPanel, FeatureGrid, LEFT_WIDTH, MNIST_MEAN,
                             MNIST_STD, NO_MODEL_HINT, ProbabilityChart, QFont, QGridLayout,
                             QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox,
                             QStackedWidget, QVBoxLayout, QWidget, Qt, RIGHT_WIDTH,
                             THUMB_PX, _group)


class InspectLayoutMixin:
    # ------------------------------------------------------------------ building
    def _build_left(self) -> QWidget:
        col = QWidget()
        col.setFixedWidth(LEFT_WIDTH)
        lay = QVBoxLayout(col)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)

        draw = _group("Draw a digit")
        dl = QVBoxLayout(draw)
        dl.setContentsMargins(8, 14, 8, 8)
        self.canvas = DigitCanvas()
        self.canvas.changed.connect(self._on_canvas_changed)
        dl.addWidget(self.canvas, 0, Qt.AlignmentFlag.AlignHCenter)
        row = QHBoxLayout()
        tip = QLabel("right-click also clears")
        tip.setStyleSheet("color: #666666;")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Erase the drawing")
        self.clear_button.clicked.connect(self.canvas.clear)
        row.addWidget(self.clear_button)
        row.addWidget(tip, 1)
        dl.addLayout(row)
        lay.addWidget(draw)

        pick = _group("Pick a test image")
        pl = QGridLayout(pick)
        pl.setContentsMargins(8, 14, 8, 8)
        pl.setHorizontalSpacing(6)
        pl.addWidget(QLabel("index"), 0, 0)
        self.test_spin = QSpinBox()
        self.test_spin.setRange(0, 0)
        self.test_spin.setEnabled(False)
        self.test_spin.setToolTip("An image of the bundled MNIST test subset")
        self.test_spin.valueChanged.connect(self.show_test_image)
        pl.addWidget(self.test_spin, 0, 1)
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Show a random test image")
        self.random_button.clicked.connect(self.show_random_test_image)
        pl.addWidget(self.random_button, 0, 2)
        self.test_label = QLabel("the test set loads when this tab is shown")
        self.test_label.setStyleSheet("color: #555555;")
        self.test_label.setWordWrap(True)
        pl.addWidget(self.test_label, 1, 0, 1, 3)
        pl.setColumnStretch(1, 1)
        lay.addWidget(pick)

        photo = _group("Use the loaded photo")
        phl = QVBoxLayout(photo)
        phl.setContentsMargins(8, 14, 8, 8)
        self.photo_button = QPushButton("Use the loaded photo")
        self.photo_button.setEnabled(False)
        self.photo_button.setToolTip("Convert the image of the main view like MNIST digits: "
                                     "gray, fitted into 20x20 in 28x28, white on black")
        self.photo_button.clicked.connect(self.use_photo)
        phl.addWidget(self.photo_button)
        thumbs = QHBoxLayout()
        thumbs.setSpacing(6)
        self.thumbs: list[QLabel] = []
        self.thumb_captions: list[QLabel] = []
        for caption in ("gray", "28x28", "inverted"):
            cell = QVBoxLayout()
            cell.setSpacing(2)
            img = QLabel()
            img.setFixedSize(THUMB_PX, THUMB_PX)
            img.setAlignment(Qt.AlignmentFlag.AlignCenter)
            img.setStyleSheet("background: #f2f2f2; border: 1px solid #d0d0d0;")
            cap = QLabel(caption)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet("color: #555555;")
            cell.addWidget(img, 0, Qt.AlignmentFlag.AlignHCenter)
            cell.addWidget(cap)
            thumbs.addLayout(cell)
            self.thumbs.append(img)
            self.thumb_captions.append(cap)
        phl.addLayout(thumbs)
        self.photo_note = QLabel("no photo loaded")
        self.photo_note.setStyleSheet("color: #777777;")
        self.photo_note.setWordWrap(True)
        phl.addWidget(self.photo_note)
        lay.addWidget(photo)

        about = _group("How to read this")
        al = QVBoxLayout(about)
        al.setContentsMargins(8, 14, 8, 8)
        note = QLabel("Each band of maps is one layer, its filters eight to a row. Hover a "
                      "map to read a value and see the region it depends on; click a pixel "
                      "to see how it was computed; right-click a map to send its filter to "
                      "the kernel editor.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555555;")
        al.addWidget(note)
        al.addStretch(1)
        lay.addWidget(about, 1)
        return col

    def _build_centre(self) -> QWidget:
        box = _group("Feature maps of every layer")
        lay = QVBoxLayout(box)
        lay.setContentsMargins(6, 14, 6, 6)
        lay.setSpacing(4)
        self._stack = QStackedWidget()
        self.hint_label = QLabel(NO_MODEL_HINT)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setWordWrap(True)
        self.hint_label.setStyleSheet("color: #666666; font-size: 15px;")
        self.grid = FeatureGrid()
        self.grid.max_columns = 8
        self.grid.input_note = (f"shown as drawn (0..1); the network reads "
                                f"(x − {MNIST_MEAN}) / {MNIST_STD}, the numbers in hovers "
                                f"and explanations")
        self.grid.hovered.connect(self._on_hover)
        self.grid.clicked.connect(self._on_click)
        self.grid.installEventFilter(self)
        self._stack.addWidget(self.hint_label)
        self._stack.addWidget(self.grid)
        lay.addWidget(self._stack, 1)
        self.hover_label = QLabel("Hover a map to read its values; click a pixel to explain it.")
        self.hover_label.setStyleSheet("color: #444444;")
        self.hover_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.hover_label)
        return box

    def _build_right(self) -> QWidget:
        col = QWidget()
        col.setFixedWidth(RIGHT_WIDTH)
        lay = QVBoxLayout(col)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        pred = _group("Prediction")
        pl = QVBoxLayout(pred)
        pl.setContentsMargins(8, 14, 8, 6)
        pl.setSpacing(2)
        head = QHBoxLayout()
        self.prediction_label = QLabel("–")
        f = QFont(self.prediction_label.font())
        f.setPointSizeF(26)
        f.setBold(True)
        self.prediction_label.setFont(f)
        self.prediction_label.setStyleSheet("color: #e8590c;")
        self.confidence_label = QLabel("")
        cf = QFont(self.confidence_label.font())
        cf.setPointSizeF(13)
        self.confidence_label.setFont(cf)
        self.confidence_label.setStyleSheet("color: #333333;")
        head.addWidget(self.prediction_label)
        head.addSpacing(6)
        head.addWidget(self.confidence_label, 1)
        pl.addLayout(head)
        self.chart = ProbabilityChart()
        self.chart.setFixedHeight(190)
        pl.addWidget(self.chart)
        lay.addWidget(pred)
        self.explain_panel = ExplainPanel()
        self.explain_panel.setSizePolicy(QSizePolicy.Policy.Preferred,
                                         QSizePolicy.Policy.Expanding)
        lay.addWidget(self.explain_panel, 1)
        return col
