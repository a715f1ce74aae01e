"""The Inspect tab's widgets: the drawing canvas and its controls, the photo
thumbnails, the per-layer maps and the probabilities. Mixed into
:class:`app.inspect_view.InspectView`."""

from __future__ import annotations

from .inspect_photo import PhotoPanel
from .inspect_testset import TestImagePanel
from .inspect_common import (DigitCanvas, ExplainPanel, FeatureGrid, LEFT_WIDTH, MNIST_MEAN,
                             MNIST_STD, NO_MODEL_HINT, ProbabilityChart, QFont,
                             QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                             QStackedWidget, QVBoxLayout, QWidget, Qt, RIGHT_WIDTH,
                             _group)


class InspectLayoutMixin:
    # ------------------------------------------------------------------ building
    @staticmethod
    def _column(width: int) -> tuple[QWidget, QVBoxLayout]:
        """A fixed-width column of group boxes (the tab's left and right sides)."""
        col = QWidget()
        col.setFixedWidth(width)
        lay = QVBoxLayout(col)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        return col, lay

    def _build_left(self) -> QWidget:
        col, lay = self._column(LEFT_WIDTH)

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

        self.test_panel = TestImagePanel()       # app/inspect_testset.py
        self.test_panel.picked.connect(self.set_input)
        self.test_spin, self.random_button = self.test_panel.test_spin, self.test_panel.random_button
        self.test_label = self.test_panel.test_label
        lay.addWidget(self.test_panel)

        self.photo_panel = PhotoPanel()          # app/inspect_photo.py
        self.photo_panel.converted.connect(self._use_converted)
        self.photo_button = self.photo_panel.photo_button
        self.thumbs, self.thumb_captions = self.photo_panel.thumbs, self.photo_panel.thumb_captions
        lay.addWidget(self.photo_panel)

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
        col, lay = self._column(RIGHT_WIDTH)
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
