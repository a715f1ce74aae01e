"""A 28x28 drawing canvas with a soft round brush, for drawing digits like MNIST's.

The image is white ink on black (what an MNIST model reads), values in [0, 1]. A
stroke is the union (per-cell maximum) of its segments, each a capsule with a
Gaussian edge, added on top of what was there before the stroke and clipped to 1:
crossing an earlier stroke brightens it, a slow stroke does not pile up ink. The
profile (full ink within about one cell of the pen, half at 1.5 cells, nearly none
past 3) gives MNIST-like strokes 3-4 px wide with soft edges.

``changed`` fires at most every :data:`EMIT_INTERVAL_MS` while drawing (the last
state always follows when the mouse is released), and once on ``clear`` or
``set_image``.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

__all__ = ["DigitCanvas", "SIDE", "CELL_PX", "EMIT_INTERVAL_MS", "brush_profile", "stroke_layer"]

SIDE = 28            # cells per side (MNIST)
CELL_PX = 10         # screen pixels per cell
EMIT_INTERVAL_MS = 16  # at most ~60 "changed" signals per second while drawing
BRUSH_SIGMA = 1.0    # cells: Gaussian falloff of the pen's edge
BRUSH_PEAK = 1.6     # > 1 so the centre line saturates (clipped to 1)

_CENTRES = np.arange(SIDE, dtype=np.float32) + 0.5  # cell centres, in cells


def brush_profile(d: np.ndarray) -> np.ndarray:
    """Ink added at distance ``d`` (cells) from the pen: ``min(1, 1.6 exp(-d^2 / 2))``.

    1 up to ~1 cell, 0.52 at 1.5, 0.22 at 2, 0.02 at 3, exactly 0 beyond ~3.7.
    """
    d = np.asarray(d, np.float32)
    ink = np.minimum(1.0, BRUSH_PEAK * np.exp(-0.5 * (d / BRUSH_SIGMA) ** 2))
    # the tail below half an 8-bit level is cut: MNIST's background is exactly 0
    return np.where(ink < 0.5 / 255, 0.0, ink).astype(np.float32)


def stroke_layer(p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """Ink of one pen segment from ``p0`` to ``p1`` ((x, y) in cells) as a (28, 28) array."""
    x0, y0 = p0
    x1, y1 = p1
    dx, dy = x1 - x0, y1 - y0
    px = _CENTRES[None, :] - x0          # (1, W)
    py = _CENTRES[:, None] - y0          # (H, 1)
    length2 = dx * dx + dy * dy
    if length2 > 1e-12:
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)  # nearest point on the segment
        px = px - t * dx
        py = py - t * dy
    return brush_profile(np.sqrt(px * px + py * py))


class DigitCanvas(QWidget):
    """Draw with the left mouse button; the right button erases everything.

    Signals
    -------
    changed(ndarray)
        The image, float32 of shape (28, 28) in [0, 1] (a copy).
    """

    changed = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._image = np.zeros((SIDE, SIDE), np.float32)
        self._base = self._image        # the image when the current stroke began
        self._stroke: np.ndarray | None = None
        self._last: tuple[float, float] | None = None
        self._qimage = QImage()
        self._dirty = False             # changed since the last emission
        self._emit_timer = QTimer(self)
        self._emit_timer.setSingleShot(True)
        self._emit_timer.setInterval(EMIT_INTERVAL_MS)
        self._emit_timer.timeout.connect(self._on_emit_timer)
        self.setFixedSize(SIDE * CELL_PX, SIDE * CELL_PX)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw a digit with the left mouse button; the right button clears")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._refresh_qimage()

    # ------------------------------------------------------------------ public
    def image(self) -> np.ndarray:
        """The drawing: float32 (28, 28) in [0, 1] (a copy)."""
        return self._image.copy()

    def set_image(self, arr) -> None:
        """Show ``arr`` (28, 28) with values in [0, 1]; emits ``changed`` once.

        Raises ValueError for another shape, non-finite values, or values outside
        [0, 1] (by more than rounding).
        """
        a = np.asarray(arr, dtype=np.float32)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.shape != (SIDE, SIDE):
            raise ValueError(f"the canvas image must be {SIDE}x{SIDE}, got shape {np.shape(arr)}")
        if not np.all(np.isfinite(a)):
            raise ValueError("the canvas image contains non-finite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"canvas values must lie in [0, 1], got {lo:g}..{hi:g}")
        self._end_stroke()
        self._image = np.clip(a, 0.0, 1.0)
        self._base = self._image
        self._refresh_qimage()
        self._emit_now()

    def clear(self) -> None:
        """Erase everything; emits ``changed`` once."""
        self._end_stroke()
        self._image = np.zeros((SIDE, SIDE), np.float32)
        self._base = self._image
        self._refresh_qimage()
        self._emit_now()

    def is_drawing(self) -> bool:
        return self._stroke is not None

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(SIDE * CELL_PX, SIDE * CELL_PX)

    # ------------------------------------------------------------------ mouse
    def _cell_pos(self, pos: QPointF) -> tuple[float, float]:
        return (pos.x() * SIDE / max(self.width(), 1), pos.y() * SIDE / max(self.height(), 1))

    def mousePressEvent(self, ev):  # noqa: N802 (Qt API)
        if ev.button() == Qt.MouseButton.RightButton:
            self.clear()
            ev.accept()
            return
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(ev)
            return
        self._base = self._image.copy()
        self._stroke = np.zeros((SIDE, SIDE), np.float32)
        p = self._cell_pos(ev.position())
        self._last = p
        self._add_segment(p, p)
        ev.accept()

    def mouseMoveEvent(self, ev):  # noqa: N802 (Qt API)
        if self._stroke is None:
            super().mouseMoveEvent(ev)
            return
        p = self._cell_pos(ev.position())
        self._add_segment(self._last, p)
        self._last = p
        ev.accept()

    def mouseReleaseEvent(self, ev):  # noqa: N802 (Qt API)
        if ev.button() == Qt.MouseButton.LeftButton and self._stroke is not None:
            p = self._cell_pos(ev.position())
            if p != self._last:
                self._add_segment(self._last, p)
            self._end_stroke()
            if self._dirty:
                self._emit_now()  # the final state, not throttled
            ev.accept()
            return
        super().mouseReleaseEvent(ev)

    def _add_segment(self, p0, p1) -> None:
        np.maximum(self._stroke, stroke_layer(p0, p1), out=self._stroke)
        self._image = np.minimum(self._base + self._stroke, 1.0)
        self._refresh_qimage()
        self._dirty = True
        if not self._emit_timer.isActive():
            self._emit_now()  # leading edge: the first change is shown at once

    def _end_stroke(self) -> None:
        self._stroke = None
        self._last = None

    # ------------------------------------------------------------------ signals
    def _emit_now(self) -> None:
        self._dirty = False
        self._emit_timer.start()  # a quiet period before the next throttled emission
        self.changed.emit(self._image.copy())

    def _on_emit_timer(self) -> None:
        if self._dirty:
            self._emit_now()

    # ------------------------------------------------------------------ paint
    def _refresh_qimage(self) -> None:
        self._levels = np.ascontiguousarray(np.round(self._image * 255).astype(np.uint8))
        self._qimage = QImage(self._levels.data, SIDE, SIDE, SIDE,
                              QImage.Format.Format_Grayscale8)
        self.update()

    def paintEvent(self, ev):  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        rect = QRectF(self.rect())
        p.drawImage(rect, self._qimage)
        pen = QPen(QColor(255, 255, 255, 28))
        pen.setWidth(1)
        p.setPen(pen)
        sx, sy = rect.width() / SIDE, rect.height() / SIDE
        for i in range(1, SIDE):
            x, y = round(i * sx), round(i * sy)
            p.drawLine(x, 0, x, self.height())
            p.drawLine(0, y, self.width(), y)
        # the 20x20 box MNIST digits are fitted into
        box = QPen(QColor(90, 160, 255, 90))
        box.setStyle(Qt.PenStyle.DashLine)
        p.setPen(box)
        p.drawRect(QRectF(4 * sx, 4 * sy, 20 * sx, 20 * sy))
        p.end()
