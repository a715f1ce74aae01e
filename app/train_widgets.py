"""Self-contained result widgets of the "Train" tab (see :mod:`app.train_view`).

:class:`KernelGrid` (first-layer filters), :class:`ConfusionTable`,
:class:`MisclassifiedGallery` (misclassified test digits) and
:class:`ArchitectureDialog` (edit an architecture as JSON), with the small image
helpers only they use. They know nothing of the view; :mod:`app.train_view`
imports and re-exports them.
"""

from __future__ import annotations

import json

import numpy as np
from PyQt6.QtCore import QEvent, QRect, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFontDatabase, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (QAbstractItemView, QAbstractScrollArea, QDialog, QDialogButtonBox,
                             QFrame, QGridLayout, QHeaderView, QLabel, QPlainTextEdit,
                             QScrollArea, QSizePolicy, QTableWidget, QTableWidgetItem, QToolTip,
                             QVBoxLayout, QWidget)

from ..core.nn.data import MNIST_MEAN, MNIST_STD
from ..core.nn.model import build

from .grid import colormap

__all__ = ["KernelGrid", "ConfusionTable", "MisclassifiedGallery", "ArchitectureDialog",
           "kernel_images", "digit_image", "ERROR_RED"]

ERROR_RED = "#c62828"


# ---------------------------------------------------------------------------- helpers

def _qimage(rgb: np.ndarray) -> QImage:
    """uint8 (h, w, 3) -> QImage (copied, so the array may go)."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _scaled(img: QImage, width: int, height: int) -> QPixmap:
    return QPixmap.fromImage(img.scaled(width, height, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.FastTransformation))


_LUT: list = []


def _diverging_lut() -> np.ndarray:
    if not _LUT:
        _LUT.append(np.asarray(colormap("CET-D1A").getLookupTable(nPts=256), np.uint8)[:, :3])
    return _LUT[0]


def kernel_images(weights: np.ndarray) -> tuple[list[QImage], float]:
    """(F, kh, kw) filters -> one diverging-colour image each on a shared ±max scale."""
    w = np.nan_to_num(np.asarray(weights, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    vmax = float(np.max(np.abs(w))) if w.size else 0.0
    scale = vmax if vmax > 0 else 1.0
    lut = _diverging_lut()
    idx = np.clip(np.round((w / scale + 1.0) * 127.5), 0, 255).astype(np.intp)
    return [_qimage(lut[i]) for i in idx], vmax


def digit_image(x: np.ndarray) -> QImage:
    """A normalised (H, W) image back to gray levels (MNIST's normalisation undone)."""
    g = np.clip((np.asarray(x, np.float32) * MNIST_STD + MNIST_MEAN) * 255.0, 0, 255)
    g = g.astype(np.uint8)
    return _qimage(np.repeat(g[:, :, None], 3, axis=2))


# ---------------------------------------------------------------------------- widgets

class KernelGrid(QWidget):
    """First-layer filters as small diverging-colour tiles; click one to select it.

    One widget paints every tile (32 child labels with style sheets cost ~2 ms per
    refresh on the UI thread, time the training thread waits for the GIL).
    """

    selectionChanged = pyqtSignal(int)   # -1: none
    GAP = 4

    def __init__(self, parent=None):
        super().__init__(parent)
        self._images: list[QImage] = []
        self._weights: np.ndarray | None = None   # (F, kh, kw), channel 0
        self._selected = -1
        self._cols = 1
        self._size = 28
        self.vmax = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)

    def count(self) -> int:
        """Number of tiles (= filters shown)."""
        return len(self._images)

    def selected(self) -> int:
        return self._selected

    def weights(self) -> np.ndarray | None:
        return self._weights

    def tile_rect(self, i: int) -> QRect:
        r, c = divmod(i, self._cols)
        step = self._size + self.GAP
        return QRect(c * step + 1, r * step + 1, self._size, self._size)

    def tile_at(self, pos) -> int:
        for i in range(len(self._images)):
            if self.tile_rect(i).adjusted(-2, -2, 2, 2).contains(pos):
                return i
        return -1

    def set_weights(self, weights: np.ndarray | None):
        """(F, C, kh, kw) conv weights (input channel 0 is shown), or None (no conv layer)."""
        # a copy: the array may belong to a model that a worker thread is training
        w = None if weights is None else np.array(weights[:, 0], np.float32)
        n = 0 if w is None else len(w)
        self._weights = w
        if w is None:
            self._images, self.vmax = [], 0.0
        else:
            self._images, self.vmax = kernel_images(w)
        if n != getattr(self, "_n", None):
            self._n = n
            self._cols = 4 if n <= 16 else 8
            self._size = 52 if n <= 8 else 40 if n <= 16 else 28
            rows = -(-n // self._cols) if n else 0
            step = self._size + self.GAP
            self.setFixedSize(max(self._cols * step - self.GAP + 2, 1),
                              max(rows * step - self.GAP + 2, 1))
            if self._selected >= n:
                self._selected = -1
                self.selectionChanged.emit(-1)
        self.update()

    def select(self, index: int):
        if not 0 <= index < len(self._images):
            index = -1
        if index != self._selected:
            self._selected = index
            self.update()
            self.selectionChanged.emit(index)

    def selected_kernel(self) -> np.ndarray | None:
        if self._weights is None or self._selected < 0:
            return None
        return np.array(self._weights[self._selected], np.float64)

    def paintEvent(self, ev):  # noqa: N802 (Qt API)
        p = QPainter(self)
        frame = QPen(QColor("#c8c8c8"))
        frame.setWidth(1)
        for i, img in enumerate(self._images):
            r = self.tile_rect(i)
            if img.width() == img.height():
                target = r
            else:  # keep the kernel's aspect ratio inside the square tile
                sz = img.size().scaled(r.size(), Qt.AspectRatioMode.KeepAspectRatio)
                target = QRect(r.x() + (r.width() - sz.width()) // 2,
                               r.y() + (r.height() - sz.height()) // 2, sz.width(), sz.height())
            p.drawImage(target, img)
            p.setPen(frame)
            p.drawRect(r.adjusted(0, 0, -1, -1))
        if self._selected >= 0:
            pen = QPen(QColor("#f39c12"))
            pen.setWidth(3)
            p.setPen(pen)
            p.drawRect(self.tile_rect(self._selected).adjusted(-1, -1, 0, 0))
        p.end()

    def mousePressEvent(self, ev):  # noqa: N802 (Qt API)
        if ev.button() == Qt.MouseButton.LeftButton:
            i = self.tile_at(ev.position().toPoint())
            if i >= 0:
                self.select(i)
        super().mousePressEvent(ev)

    def event(self, ev):
        if ev.type() == QEvent.Type.ToolTip:
            i = self.tile_at(ev.pos())
            if i >= 0 and self._weights is not None:
                k = self._weights[i]
                QToolTip.showText(ev.globalPos(), f"filter {i + 1}: {k.shape[0]}×{k.shape[1]}, "
                                  f"min {k.min():.3g}, max {k.max():.3g}", self)
            else:
                QToolTip.hideText()
            return True
        return super().event(ev)


def _mix(t: float, target: tuple[int, int, int]) -> QColor:
    t = float(np.clip(t, 0.0, 1.0))
    return QColor(*(round(255 + (c - 255) * t) for c in target))


class ConfusionTable(QTableWidget):
    """Counts with rows = true class, columns = predicted; diagonal green, errors red."""

    CELL_W, CELL_H = 31, 23

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().setDefaultSectionSize(self.CELL_W)
        self.verticalHeader().setDefaultSectionSize(self.CELL_H)
        self.horizontalHeader().setMinimumSectionSize(20)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        self.setStyleSheet("QTableWidget { gridline-color: #d0d0d0; }")
        self._matrix: np.ndarray | None = None

    def matrix(self) -> np.ndarray | None:
        return None if self._matrix is None else self._matrix.copy()

    def set_matrix(self, m: np.ndarray | None, classes: list[str] | None = None):
        """Show counts ``m[true, predicted]``; None empties and hides the table."""
        self.setVisible(m is not None)
        if m is None:
            self._matrix = None
            self.setRowCount(0)
            self.setColumnCount(0)
            return
        m = np.asarray(m, np.int64)
        self._matrix = m.copy()
        k = m.shape[0]
        names = [str(c) for c in (classes or [])][:k]
        names += [str(i) for i in range(len(names), k)]
        short = [n if len(n) <= 4 else n[:3] + "…" for n in names]
        self.setRowCount(k)
        self.setColumnCount(k)
        self.setHorizontalHeaderLabels(short)
        self.setVerticalHeaderLabels(short)
        off = m.copy()
        np.fill_diagonal(off, 0)
        off_max = max(int(off.max()), 1) if off.size else 1
        rows = m.sum(axis=1)
        for i in range(k):
            for j in range(k):
                v = int(m[i, j])
                item = QTableWidgetItem(f"{v:,}" if v else "·")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if i == j:
                    t = v / rows[i] if rows[i] else 0.0
                    bg = _mix(0.15 + 0.75 * t, (46, 125, 50)) if v else _mix(0, (0, 0, 0))
                else:
                    t = v / off_max
                    bg = _mix(0.12 + 0.78 * t, (198, 40, 40)) if v else _mix(0, (0, 0, 0))
                item.setBackground(bg)
                dark = bg.lightness() < 150
                item.setForeground(QColor("white" if dark else ("#222" if v else "#aaa")))
                item.setToolTip(f"true {names[i]}, predicted {names[j]}: {v:,}")
                self.setItem(i, j, item)
        width = max(self.CELL_W, max(self.fontMetrics().horizontalAdvance(f"{int(v):,}")
                                     for v in m.ravel()) + 10)
        self.horizontalHeader().setDefaultSectionSize(width)
        self.updateGeometry()


class _GalleryTile(QWidget):
    def __init__(self, pixmap: QPixmap, caption: str, tooltip: str, width: int, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        self.image = QLabel()
        self.image.setPixmap(pixmap)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption = QLabel(caption)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setStyleSheet("font-size: 10px; color: #333;")
        lay.addWidget(self.image)
        lay.addWidget(self.caption)
        self.setToolTip(tooltip)
        self.setFixedWidth(width)


class MisclassifiedGallery(QScrollArea):
    """Small images of misclassified test digits with "true 3 → pred 5 (p=0.71)".

    As many columns as fit the width (re-laid out only when that number changes).
    """

    IMAGE = 52
    TILE_W = 132
    SPACING = 6

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._host = QWidget()
        self._grid = QGridLayout(self._host)
        self._grid.setContentsMargins(2, 2, 2, 2)
        self._grid.setHorizontalSpacing(self.SPACING)
        self._grid.setVerticalSpacing(8)
        self._grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.setWidget(self._host)
        self._tiles: list[_GalleryTile] = []
        self._columns = 0
        self._placeholder = QLabel()
        self._placeholder.setStyleSheet("color: #666;")
        self._placeholder.setWordWrap(True)
        self.clear("Train or load a model to see the test digits it gets wrong.")

    def captions(self) -> list[str]:
        return [t.caption.text() for t in self._tiles]

    def columns(self) -> int:
        return self._columns

    def _take_all(self):
        while self._grid.count():
            self._grid.takeAt(0)
        for t in self._tiles:
            t.deleteLater()
        self._tiles = []

    def clear(self, text: str):
        self._take_all()
        self._placeholder.setText(text)
        self._grid.addWidget(self._placeholder, 0, 0)
        self._placeholder.show()

    def set_items(self, items: list[tuple[np.ndarray, str, str]]):
        """(normalised (H, W) image, caption, tooltip) per digit."""
        self._take_all()
        self._placeholder.hide()
        for img, caption, tip in items:
            pix = _scaled(digit_image(img), self.IMAGE, self.IMAGE)
            self._tiles.append(_GalleryTile(pix, caption, tip, self.TILE_W, self._host))
        self._columns = 0
        self._relayout()

    def _fit_columns(self) -> int:
        avail = self.viewport().width() - 4
        return max(1, (avail + self.SPACING) // (self.TILE_W + self.SPACING))

    def _relayout(self):
        cols = self._fit_columns()
        if cols == self._columns or not self._tiles:
            return
        self._columns = cols
        while self._grid.count():
            self._grid.takeAt(0)
        for n, tile in enumerate(self._tiles):
            self._grid.addWidget(tile, n // cols, n % cols)

    def resizeEvent(self, ev):  # noqa: N802 (Qt API)
        super().resizeEvent(ev)
        self._relayout()


class ArchitectureDialog(QDialog):
    """Edit an architecture as JSON; OK only when :func:`core.nn.build` accepts it."""

    def __init__(self, spec: dict, input_shape, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Edit architecture")
        self.resize(520, 560)
        self.input_shape = tuple(input_shape)
        self.spec: dict | None = None
        lay = QVBoxLayout(self)
        shown = {k: v for k, v in spec.items() if k != "input_shape"}
        hint = QLabel("Layers as JSON: conv2d, maxpool2d, avgpool2d, activation, dropout, "
                      "flatten, dense, batchnorm2d. The input shape comes from the data "
                      f"({'×'.join(map(str, self.input_shape))}).")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #505050;")
        self.editor = QPlainTextEdit(json.dumps(shown, indent=2))
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {ERROR_RED};")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.try_accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(hint)
        lay.addWidget(self.editor, 1)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def validate(self) -> dict:
        """The edited spec, checked by building it; ValueError says what is wrong."""
        try:
            spec = json.loads(self.editor.toPlainText())
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise ValueError("an architecture must be a JSON object")
        spec = dict(spec)
        spec["input_shape"] = list(self.input_shape)
        build(spec)
        return spec

    def try_accept(self) -> bool:
        try:
            self.spec = self.validate()
        except ValueError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        self.accept()
        return True
