"""The kernel editor's grid of weights: one cell per weight, tinted by sign and size.

:class:`WeightGrid` shows one 2-D slice of a :class:`core.kernel_draft.KernelDraft`
(:meth:`WeightGrid.show_weights`): each cell holds the exact text of its weight
(``1/16`` is shown short, the tooltip has the value), red for positive and blue for
negative weights, stronger for larger ones; a cell whose text is not a number keeps
the text, in red, with the reason as its tooltip. The grid fits its rows and columns
(up to :data:`VISIBLE_ROWS` rows and 7 columns without scrolling), Tab leaves it and
the arrow keys move inside it, and Ctrl+V / Ctrl+C act on the whole kernel.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
from PyQt6.QtCore import QEvent, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont, QKeySequence, QPalette
from PyQt6.QtWidgets import (QAbstractItemView, QHeaderView, QLineEdit, QSizePolicy,
                             QStyledItemDelegate, QTableWidget, QTableWidgetItem)

from ..core.kernel_draft import anchor, number_text
from .form_widgets import signals_blocked

__all__ = ["WeightGrid", "cell_width", "CELL_W", "CELL_H", "VISIBLE_ROWS"]

CELL_W, CELL_H = 48, 24   # kernel grid cell size in pixels
VISIBLE_ROWS = 9          # grid rows shown before it scrolls
POSITIVE, NEGATIVE = QColor(214, 39, 40), QColor(31, 119, 180)
BAD_BACKGROUND, BAD_TEXT = QColor("#ffb3b3"), QColor("#7f0000")


def cell_width(kw: int) -> int:
    """Column width for a kernel ``kw`` columns wide: narrower columns for wider kernels,
    so that grids up to 7x7 fit the pipeline dock without a sideways scroll (a 5x5
    grid scrolled); values that do not fit a cell are elided, whole in the tooltip."""
    return CELL_W if kw <= 4 else 40 if kw <= 5 else 29


def _mix(base: QColor, target: QColor, t: float) -> QColor:
    return QColor(round(base.red() + (target.red() - base.red()) * t),
                  round(base.green() + (target.green() - base.green()) * t),
                  round(base.blue() + (target.blue() - base.blue()) * t))


class _CellDelegate(QStyledItemDelegate):
    """Shows each weight in at most 6 characters (the cell keeps the exact text).

    The shortest exact form wins (``1/16`` rather than ``0.0625``); numbers with no
    short exact form are shown rounded, and the cell's tooltip has the exact value.
    """

    WIDTH = 6

    def displayText(self, value, locale):  # noqa: N802 (Qt API)
        text = str(value)
        try:
            v = float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            return text
        frac = Fraction(v).limit_denominator(4096)
        if float(frac) == v and frac.denominator > 1:
            short = f"{frac.numerator}/{frac.denominator}"
            if len(short) < len(text):
                text = short
        if len(text) <= self.WIDTH:
            return text
        for digits in (3, 2, 1):
            short = f"{v:.{digits}g}"
            if len(short) <= self.WIDTH:
                return short
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{v:.0e}")   # -5e-4

    def createEditor(self, parent, option, index):  # noqa: N802
        editor = QLineEdit(parent)
        editor.setAlignment(Qt.AlignmentFlag.AlignCenter)
        editor.setFrame(False)
        return editor


class WeightGrid(QTableWidget):
    """The weight grid; Ctrl+V / Ctrl+C act on the whole kernel while it has focus.

    Its height fits its rows (up to :data:`VISIBLE_ROWS`), plus a horizontal scroll
    bar only when the panel is narrower than the columns. Typing in a cell emits
    ``itemChanged`` as any QTableWidget does; :meth:`show_weights` writes values
    without emitting it.
    """

    pasteRequested = pyqtSignal()
    copyRequested = pyqtSignal()
    content_height = 0
    content_width = 0

    def __init__(self, parent=None):
        super().__init__(parent)
        # Tab leaves the grid (it cycled through the cells forever); arrows move inside
        self.setTabKeyNavigation(False)
        self.setItemDelegate(_CellDelegate(self))
        cell_font = QFont(self.font())
        cell_font.setPointSizeF(max(cell_font.pointSizeF() - 0.5, 7.0))
        self.setFont(cell_font)
        for header, size in ((self.horizontalHeader(), CELL_W),
                             (self.verticalHeader(), CELL_H)):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setMinimumSectionSize(min(size, 20))
            header.setDefaultSectionSize(size)
            header.setHighlightSections(False)
        self.verticalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCornerButtonEnabled(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                             | QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setToolTip("Weights: type a number or a fraction (1/16) in a cell. "
                        "Ctrl+V pastes a whole kernel, Ctrl+C copies it.")

    # ------------------------------------------------------------------ content
    def show_weights(self, w: np.ndarray, bad: dict[tuple[int, int], str]) -> None:
        """Show the 2-D weights ``w``: every cell's text (except the ``bad`` ones, which
        keep what was typed) and tint; the grid resizes to ``w``'s shape. The anchor's
        row and column (the tap over the output pixel, core.kernel_draft.anchor) have
        bold headers."""
        kh, kw = w.shape
        with signals_blocked(self):
            if self.rowCount() != kh or self.columnCount() != kw:
                self.setRowCount(kh)
                self.setColumnCount(kw)
                self._mark_anchor(kh, kw)
                self._fit_table()
            for r in range(kh):
                for c in range(kw):
                    item = self.item(r, c)
                    if item is None:
                        item = QTableWidgetItem()
                        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                        self.setItem(r, c, item)
                    if (r, c) not in bad and item.text() != number_text(w[r, c]):
                        item.setText(number_text(w[r, c]))
                    self.style_cell(r, c, w, bad.get((r, c)))

    def _mark_anchor(self, kh: int, kw: int) -> None:
        ar, ac = anchor(kh), anchor(kw)
        for n, a, set_item, what in ((kh, ar, self.setVerticalHeaderItem, "row"),
                                     (kw, ac, self.setHorizontalHeaderItem, "column")):
            for i in range(n):
                item = QTableWidgetItem(str(i + 1))
                if i == a:
                    font = QFont(self.font())
                    font.setBold(True)
                    item.setFont(font)
                    item.setToolTip(f"the anchor's {what}: this tap sits over the output "
                                    f"pixel ('same' padding)")
                set_item(i, item)

    def set_cell_text(self, r: int, c: int, text: str) -> None:
        """Replace a cell's text without emitting ``itemChanged`` (canonical form)."""
        with signals_blocked(self):
            self.item(r, c).setText(text)

    def style_cell(self, r: int, c: int, w: np.ndarray, reason: str | None) -> None:
        """Tint cell (r, c) by its weight relative to the largest of ``w``, or mark it
        invalid with ``reason``."""
        item = self.item(r, c)
        if item is None:
            return
        with signals_blocked(self):
            if reason:
                item.setBackground(QBrush(BAD_BACKGROUND))
                item.setForeground(QBrush(BAD_TEXT))
                item.setToolTip(reason)
                return
            base = self.palette().color(QPalette.ColorRole.Base)
            text = self.palette().color(QPalette.ColorRole.Text)
            v = float(w[r, c])
            scale = float(np.abs(w).max())
            if v == 0 or scale == 0:
                color = base
            else:
                t = 0.10 + 0.35 * min(abs(v) / scale, 1.0)
                color = _mix(base, POSITIVE if v > 0 else NEGATIVE, t)
            item.setBackground(QBrush(color))
            item.setForeground(QBrush(text))
            item.setToolTip(f"row {r + 1}, column {c + 1}: {number_text(v)}"
                            + (f" = {v:.6g}" if "/" in number_text(v) else ""))

    # ------------------------------------------------------------------ size
    def _fit_table(self) -> None:
        kh, kw = self.rowCount(), self.columnCount()
        frame = 2 * self.frameWidth()
        head_w = max(self.verticalHeader().sizeHint().width(), 22)
        head_h = max(self.horizontalHeader().sizeHint().height(), 20)
        self.verticalHeader().setFixedWidth(head_w)
        self.horizontalHeader().setFixedHeight(head_h)
        cw = cell_width(kw)
        self.horizontalHeader().setDefaultSectionSize(cw)
        for c in range(kw):
            self.horizontalHeader().resizeSection(c, cw)
        width = head_w + kw * cw + frame
        height = head_h + min(kh, VISIBLE_ROWS) * CELL_H + frame
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        if kh > VISIBLE_ROWS:
            width += bar
        self.setMaximumWidth(width)
        self.setMinimumWidth(min(width, head_w + 3 * cw + frame + bar))
        self.content_width, self.content_height = width, height
        self.updateGeometry()
        self.fit_height()

    def fit_height(self) -> None:
        height = self.content_height
        if self.width() < self.content_width:
            height += self.horizontalScrollBar().sizeHint().height()
        if self.height() != height or self.minimumHeight() != height:
            self.setFixedHeight(height)

    def sizeHint(self):  # noqa: N802
        hint = super().sizeHint()
        if self.content_width:
            hint.setWidth(self.content_width)
            hint.setHeight(self.height())
        return hint

    def resizeEvent(self, e):  # noqa: N802
        super().resizeEvent(e)
        if e.size().width() != e.oldSize().width():
            self.fit_columns()
            self.fit_height()

    def fit_columns(self) -> None:
        """Columns as wide as :func:`cell_width` allows, narrower (down to 26 px) when
        the panel is narrower, so that up to 7 columns never need a sideways scroll."""
        kw = self.columnCount()
        if not kw:
            return
        avail = self.viewport().width()
        if self.verticalScrollBar().isVisible() is False and self.rowCount() > VISIBLE_ROWS:
            avail -= self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        cw = min(cell_width(kw), max(26 if kw <= 7 else 36, avail // kw))
        head = self.horizontalHeader()
        if any(head.sectionSize(c) != cw for c in range(kw)):
            head.setDefaultSectionSize(cw)
            for c in range(kw):
                head.resizeSection(c, cw)

    # ------------------------------------------------------------------ keys
    def event(self, e):
        # take Ctrl+V / Ctrl+C before a window-wide shortcut (e.g. "paste image") does
        if e.type() == QEvent.Type.ShortcutOverride and (
                e.matches(QKeySequence.StandardKey.Paste)
                or e.matches(QKeySequence.StandardKey.Copy)):
            e.accept()
            return True
        return super().event(e)

    def keyPressEvent(self, e):  # noqa: N802
        if e.matches(QKeySequence.StandardKey.Paste):
            self.pasteRequested.emit()
            e.accept()
            return
        if e.matches(QKeySequence.StandardKey.Copy):
            self.copyRequested.emit()
            e.accept()
            return
        super().keyPressEvent(e)
