"""The explain panel: "where does this number come from?" for one clicked pixel.

The panel shows a :class:`core.explain.Explanation` and nothing else: every number
on it was computed by :func:`core.explain.explain` (the GUI only formats). In the
spirit of CNN Explainer's formula views and Setosa's hover arithmetic:

* convolution: for each input map read, the input window, the weights and the
  element-wise products as three small shaded grids (window x weights = products;
  padding cells greyed and italic), the arithmetic written out, then
  ``sum S + bias B = value V``. Hovering a cell outlines the same cell in all three
  grids and its tooltip spells out the term.
* activation: ``f(x) = y`` with the function's formula and the pre-activation value.
* pooling: the window with the winning cell outlined (max/min), or the divisor
  (average), and the arithmetic.
* input: the pixel value.

If the engine's value and the explanation's float64 recomputation disagree, an
orange warning says so (it should never happen: it would be an engine bug).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QFontDatabase, QFontMetrics, QPainter, QPen
from PyQt6.QtWidgets import (
    QComboBox, QFrame, QGroupBox, QHBoxLayout, QLabel, QLayout, QLayoutItem, QScrollArea,
    QSizePolicy, QToolTip, QVBoxLayout, QWidget,
)

from ..core.explain import Explanation, explain, format_arithmetic, format_number

__all__ = ["ExplainPanel", "ValueGrid", "FlowLayout", "format_number", "HINT"]

HINT = "Click a pixel of any map to see how it was computed"

#: More input maps than this are shown one at a time behind a selector.
MAX_INLINE_INPUTS = 3
#: while the step-through plays, the explanation catches up this often (ms)
PLAY_REFRESH_MS = 250

_KIND_TITLES = {"input": "input pixel", "conv": "convolution", "activation": "activation",
                "pool": "pooling"}
_ACTIVATION_FORMULAS = {
    "none": "f(x) = x  (no activation)",
    "relu": "ReLU:  f(x) = max(0, x)",
    "leaky_relu": "leaky ReLU:  f(x) = x if x > 0, else alpha * x",
    "sigmoid": "sigmoid:  f(x) = 1 / (1 + e^-x)",
    "tanh": "tanh:  f(x) = (e^x - e^-x) / (e^x + e^-x)",
    "abs": "absolute value:  f(x) = |x|",
}

_WARN_STYLE = ("QLabel { background: #fff1e0; color: #8a4b00; border: 1px solid #f0a040;"
               " border-radius: 3px; padding: 4px 6px; }")
_BOX_STYLE = ("QGroupBox#explainBox { border: 1px solid #c4c4c4; border-radius: 4px;"
              " margin-top: 1.1em; }"
              "QGroupBox#explainBox::title { subcontrol-origin: margin; left: 8px;"
              " padding: 0 4px; color: #333333; }")
_PADDING_BG = QColor("#ececec")
_PADDING_FG = QColor("#8c8c8c")
_GRID_LINE = QColor("#b8b8b8")
_WINNER = QColor("#f08c00")
_HOVER = QColor("#202020")
_BLUE = np.array([33, 102, 172], float)    # ColorBrewer RdBu ends
_RED = np.array([178, 24, 43], float)
_WHITE = np.array([255, 255, 255], float)


def _text_color(bg: QColor) -> QColor:
    lum = 0.299 * bg.red() + 0.587 * bg.green() + 0.114 * bg.blue()
    return QColor("#ffffff") if lum < 140 else QColor("#111111")


def _gray_colors(values: np.ndarray, real: np.ndarray) -> list[list[QColor]]:
    """Gray ramp over the real cells' range (extended to include 0): dark = low."""
    finite = values[real & np.isfinite(values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 1.0
    span = hi - lo if hi > lo else 1.0
    out = []
    for row in values:
        line = []
        for v in row:
            t = 0.5 if not np.isfinite(v) else min(max((float(v) - lo) / span, 0.0), 1.0)
            g = int(round(35 + t * (250 - 35)))
            line.append(QColor(g, g, g))
        out.append(line)
    return out


def _diverging_colors(values: np.ndarray) -> list[list[QColor]]:
    """Blue (negative) / white (0) / red (positive), scaled by the grid's max |value|."""
    finite = np.abs(values[np.isfinite(values)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    out = []
    for row in values:
        line = []
        for v in row:
            t = 0.0 if not np.isfinite(v) else max(-1.0, min(1.0, float(v) / bound))
            end = _RED if t > 0 else _BLUE
            rgb = _WHITE + (end - _WHITE) * (abs(t) * 0.85)
            line.append(QColor(*(int(round(c)) for c in rgb)))
        out.append(line)
    return out


class ValueGrid(QWidget):
    """A small painted grid of numbers with shaded cells.

    Parameters
    ----------
    values : ndarray of shape (rows, cols)
    shading : "gray" or "diverging"
    padding : ndarray of bool (rows, cols), optional
        True where a cell is padding: drawn greyed and italic, tooltip "padding".
    padding_text : str, optional
        Text shown in padding cells instead of their value (e.g. "pad").
    tooltips : list of list of str, optional
        A tooltip per cell (padding cells get "padding: ..." prepended).

    Everything is formatted and coloured once here; ``paintEvent`` only draws.
    """

    hovered = pyqtSignal(int, int)  # (row, col) under the mouse, (-1, -1) on leave

    CELL_W = 40
    CELL_H = 22

    def __init__(self, values, *, shading: str = "gray", padding=None,
                 padding_text: str | None = None, tooltips=None, parent=None):
        super().__init__(parent)
        vals = np.asarray(values, dtype=np.float64)
        if vals.ndim != 2:
            raise ValueError(f"ValueGrid needs a 2-D array, got shape {vals.shape}")
        if shading not in ("gray", "diverging"):
            raise ValueError(f"shading must be 'gray' or 'diverging', got {shading!r}")
        self._values = vals
        self._padding = np.zeros(vals.shape, bool) if padding is None \
            else np.asarray(padding, bool)
        real = ~self._padding
        self._texts = [[padding_text if (padding_text is not None and self._padding[r, c])
                        else format_number(vals[r, c], 3)
                        for c in range(vals.shape[1])] for r in range(vals.shape[0])]
        colors = _gray_colors(vals, real) if shading == "gray" else _diverging_colors(vals)
        self._bg = [[_PADDING_BG if self._padding[r, c] else colors[r][c]
                     for c in range(vals.shape[1])] for r in range(vals.shape[0])]
        self._fg = [[_PADDING_FG if self._padding[r, c] else _text_color(self._bg[r][c])
                     for c in range(vals.shape[1])] for r in range(vals.shape[0])]
        tips = tooltips or [[""] * vals.shape[1] for _ in range(vals.shape[0])]
        self._tips = [[("padding" + (f": {tips[r][c]}" if tips[r][c] else ""))
                       if self._padding[r, c] else tips[r][c]
                       for c in range(vals.shape[1])] for r in range(vals.shape[0])]
        self._highlight: tuple[int, int] | None = None
        self._hover: tuple[int, int] | None = None

        font = QFont(self.font())
        font.setPointSizeF(9)
        self._font = font
        self._italic = QFont(font)
        self._italic.setItalic(True)
        self._bold = QFont(font)
        self._bold.setBold(True)
        fm = QFontMetrics(self._bold)
        widest = max((fm.horizontalAdvance(t) for line in self._texts for t in line), default=0)
        self._cw = max(self.CELL_W, widest + 10)
        self._ch = max(self.CELL_H, fm.height() + 6)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setFixedSize(self.sizeHint())

    # ---------------------------------------------------------------- queries
    def texts(self) -> list[list[str]]:
        """The text of every cell, row by row."""
        return [list(line) for line in self._texts]

    def padding_cells(self) -> set[tuple[int, int]]:
        """(row, col) of the cells drawn as padding."""
        return {(int(r), int(c)) for r, c in np.argwhere(self._padding)}

    def tooltip_at(self, row: int, col: int) -> str:
        return self._tips[row][col]

    def highlighted(self) -> tuple[int, int] | None:
        return self._highlight

    def cell_rect(self, row: int, col: int) -> QRect:
        return QRect(1 + col * self._cw, 1 + row * self._ch, self._cw, self._ch)

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        r, c = (pos.y() - 1) // self._ch, (pos.x() - 1) // self._cw
        rows, cols = self._values.shape
        if 0 <= r < rows and 0 <= c < cols and pos.x() >= 1 and pos.y() >= 1:
            return int(r), int(c)
        return None

    # ---------------------------------------------------------------- state
    def set_highlight(self, cell: tuple[int, int] | None) -> None:
        """Outline one cell (the pooling winner); None removes the outline."""
        self._highlight = None if cell is None else (int(cell[0]), int(cell[1]))
        self.update()

    def set_hover(self, cell: tuple[int, int] | None) -> None:
        if cell != self._hover:
            self._hover = cell
            self.update()

    # ---------------------------------------------------------------- Qt
    def sizeHint(self) -> QSize:
        rows, cols = self._values.shape
        return QSize(cols * self._cw + 2, rows * self._ch + 2)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, event):
        p = QPainter(self)
        rows, cols = self._values.shape
        for r in range(rows):
            for c in range(cols):
                rect = self.cell_rect(r, c)
                p.fillRect(rect, self._bg[r][c])
                win = self._highlight == (r, c)
                p.setFont(self._bold if win else self._italic if self._padding[r, c]
                          else self._font)
                p.setPen(self._fg[r][c])
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._texts[r][c])
        p.setPen(QPen(_GRID_LINE, 1))
        for r in range(rows + 1):
            y = 1 + r * self._ch
            p.drawLine(1, y, 1 + cols * self._cw, y)
        for c in range(cols + 1):
            x = 1 + c * self._cw
            p.drawLine(x, 1, x, 1 + rows * self._ch)
        if self._hover is not None:
            p.setPen(QPen(_HOVER, 1.5))
            p.drawRect(self.cell_rect(*self._hover).adjusted(1, 1, -1, -1))
        if self._highlight is not None:
            p.setPen(QPen(_WINNER, 3))
            p.drawRect(self.cell_rect(*self._highlight).adjusted(1, 1, -1, -1))
        p.end()

    def event(self, ev):
        if ev.type() == QEvent.Type.ToolTip:
            cell = self.cell_at(ev.pos())
            text = self._tips[cell[0]][cell[1]] if cell is not None else ""
            if text:
                QToolTip.showText(ev.globalPos(), text, self)
            else:
                QToolTip.hideText()
                ev.ignore()
            return True
        return super().event(ev)

    def mouseMoveEvent(self, ev):
        cell = self.cell_at(ev.position().toPoint())
        self.hovered.emit(*(cell if cell is not None else (-1, -1)))
        super().mouseMoveEvent(ev)

    def leaveEvent(self, ev):
        self.hovered.emit(-1, -1)
        super().leaveEvent(ev)


class FlowLayout(QLayout):
    """Lays widgets out left to right, wrapping to a new line when out of width.

    (Qt's flow-layout example, trimmed.) It reports its height for a given width,
    so a scroll area around it grows instead of squeezing the rows.
    """

    def __init__(self, parent: QWidget | None = None, *, spacing: int = 12,
                 line_spacing: int = 8):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._hspace = spacing
        self._vspace = line_spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line_h = area.x(), area.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, line_h = area.x(), y + line_h + self._vspace, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._hspace
            line_h = max(line_h, hint.height())
        return y + line_h - rect.y() + m.bottom()


def _caption(text: str) -> QLabel:
    lab = QLabel(text)
    f = lab.font()
    f.setPointSizeF(8.5)
    lab.setFont(f)
    lab.setStyleSheet("color: #555555;")
    return lab


def _mono(text: str, *, bold: bool = False, size: float = 9.5) -> QLabel:
    lab = QLabel(text)
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    f.setPointSizeF(size)
    f.setBold(bold)
    lab.setFont(f)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.setTextFormat(Qt.TextFormat.PlainText)
    lab.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return lab


def _plain(text: str, *, size: float | None = None, bold: bool = False,
           color: str | None = None) -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.TextFormat.PlainText)
    lab.setWordWrap(True)
    lab.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    f = lab.font()
    if size is not None:
        f.setPointSizeF(size)
    f.setBold(bold)
    lab.setFont(f)
    if color:
        lab.setStyleSheet(f"color: {color};")
    return lab


def _rule() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setStyleSheet("color: #d0d0d0;")
    return line


class ExplainPanel(QWidget):
    """Shows how one output value was computed (a :class:`core.explain.Explanation`).

    Public API
    ----------
    show_explanation(ex, input_labels=None)
        Show ``ex``. ``input_labels`` (optional) names the previous level's maps, so
        a convolution's inputs read "R", "G", "B" rather than "map 0, 1, 2".
    clear()
        Back to the hint.
    explanation() -> Explanation | None
    plain_text() -> str
        All text on the panel, top to bottom (for tests and copying).
    grid(name, index=0) / grid_texts(name, index=0) / grid_count(name)
        The grids shown: ``name`` is "window", "weights" or "products"; ``index``
        counts the input maps shown (0 = first).
    winner_cell() -> (row, col) | None
        The highlighted cell of a max/min pooling window.
    mismatch() -> bool
        Whether the engine/recomputation warning is shown.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._ex: Explanation | None = None
        self._labels: list[str] | None = None
        self._grids: dict[str, list[ValueGrid]] = {}
        self._mismatch = False
        self._selector: QComboBox | None = None
        self._input_host: QWidget | None = None

        self._box = QGroupBox("Where does this number come from?")
        self._box.setObjectName("explainBox")
        self._box.setStyleSheet(_BOX_STYLE)
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        box_layout = QVBoxLayout(self._box)
        box_layout.setContentsMargins(6, 10, 6, 6)
        box_layout.addWidget(self._scroll)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._box)
        self.setMinimumWidth(300)
        self._builders = {"input": self._build_input, "conv": self._build_conv,
                          "activation": self._build_activation, "pool": self._build_pool}
        self.clear()

    # ------------------------------------------------------------------ public
    def bind_document(self, doc) -> None:
        """Explain ``doc``'s selected cell (core.explain): the cell clicked, the cell the
        step-through shows, and the same cell again on each new result. While the
        step-through plays, the explanation catches up every :data:`PLAY_REFRESH_MS`
        (an explanation takes ~12 ms to lay out: at 30 steps/s it stalled the window
        past 50 ms)."""
        catch_up = QTimer(self)
        catch_up.setSingleShot(True)
        catch_up.setInterval(PLAY_REFRESH_MS)

        def latest():
            if doc.selection is not None and doc.output is not None:
                level, label, row, col = doc.selection
                labels = doc.output.result.level(level).labels
                if label in labels:
                    follow((level, labels.index(label), row, col), "latest")

        catch_up.timeout.connect(latest)

        def follow(sel, source):
            if sel is not None and source == "play":
                if not catch_up.isActive():
                    catch_up.start()
                return
            catch_up.stop()
            if sel is None:
                self.clear()
            elif doc.output is not None:
                res = doc.output.result
                level, m, row, col = sel
                try:
                    ex = explain(res, level, m, row, col)
                except IndexError:   # the cell is gone (a smaller output)
                    doc.clear_selection()
                    return
                self.show_explanation(ex, input_labels=res.level(level - 1).labels
                                      if level >= 0 else None)
        doc.selectionChanged.connect(follow)

    def clear(self) -> None:
        """Show the hint instead of an explanation."""
        self._ex = None
        self._labels = None
        self._mismatch = False
        content = QWidget()
        lay = QVBoxLayout(content)
        hint = _plain(HINT, color="#777777")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setObjectName("hint")
        lay.addStretch(1)
        lay.addWidget(hint)
        lay.addStretch(2)
        self._reset()
        self._install(content)

    def show_explanation(self, ex: Explanation,
                         input_labels: Sequence[str] | None = None) -> None:
        """Show how ``ex.value`` was computed."""
        builder = self._builders.get(ex.kind)
        if builder is None:
            raise ValueError(f"unknown explanation kind {ex.kind!r} (expected one of "
                             f"{sorted(self._builders)})")
        self._ex = ex
        self._labels = list(input_labels) if input_labels is not None else None
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        self._reset()
        self._add_header(lay, ex)
        self._mismatch = self._differs(ex)
        if self._mismatch:
            warn = _plain(f"\u26a0 engine and recomputation differ: the engine gave "
                          f"{format_number(ex.value, 7)}, recomputing in float64 gives "
                          f"{format_number(ex.recomputed, 7)}")
            warn.setObjectName("mismatch")
            warn.setStyleSheet(_WARN_STYLE)
            lay.addWidget(warn)
        lay.addWidget(_rule())
        builder(lay, ex)
        lay.addStretch(1)
        self._install(content)  # once complete, so the scroll area sizes it right

    def explanation(self) -> Explanation | None:
        return self._ex

    def plain_text(self) -> str:
        """Every label's text, top to bottom, one per line (grids not included)."""
        widget = self._scroll.widget()
        if widget is None:
            return ""
        labels = [lab for lab in widget.findChildren(QLabel) if lab.isVisibleTo(widget)]
        labels.sort(key=lambda lab: (lab.mapTo(widget, QPoint(0, 0)).y(),
                                     lab.mapTo(widget, QPoint(0, 0)).x()))
        return "\n".join(lab.text() for lab in labels)

    def grid(self, name: str, index: int = 0) -> ValueGrid:
        grids = self._grids.get(name, [])
        if not 0 <= index < len(grids):
            raise IndexError(f"no {name!r} grid number {index}: {len(grids)} shown")
        return grids[index]

    def grid_texts(self, name: str, index: int = 0) -> list[list[str]]:
        """Cell texts of the ``index``-th ``name`` grid ("window", "weights", "products")."""
        return self.grid(name, index).texts()

    def grid_count(self, name: str) -> int:
        return len(self._grids.get(name, []))

    def winner_cell(self) -> tuple[int, int] | None:
        """(row, col) in the pooling window of the highlighted winner, if any."""
        for g in self._grids.get("window", []):
            if g.highlighted() is not None:
                return g.highlighted()
        return None

    def mismatch(self) -> bool:
        return self._mismatch

    def input_selector(self) -> QComboBox | None:
        """The input-map selector (only when more than 3 maps are read), else None."""
        return self._selector

    def sizeHint(self) -> QSize:
        return QSize(340, 600)

    # ----------------------------------------------------------------- building
    def _reset(self) -> None:
        self._grids = {}
        self._selector = None
        self._input_host = None

    def _install(self, content: QWidget) -> None:
        old = self._scroll.takeWidget()
        if old is not None:
            old.hide()  # deleteLater waits for the event loop; don't show it meanwhile
            old.deleteLater()
        self._scroll.setWidget(content)

    @staticmethod
    def _differs(ex: Explanation) -> bool:
        a, b = float(ex.value), float(ex.recomputed)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) != math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a != b
        return abs(b - a) > 1e-3 * max(1.0, abs(a))

    def _level_name(self, level: int) -> str:
        return "input" if level < 0 else f"stage {level + 1}"

    def _input_name(self, m: int) -> str:
        if self._labels is not None and 0 <= m < len(self._labels):
            return f"map {m}: {self._labels[m]}"
        return f"map {m}"

    def _add_header(self, lay: QVBoxLayout, ex: Explanation) -> None:
        title = _plain(ex.label or f"map {ex.map_index}", size=11, bold=True)
        title.setObjectName("title")
        where = _plain(f"{self._level_name(ex.level)}  \u00b7  map {ex.map_index}  \u00b7  "
                       f"row {ex.row}, col {ex.col}  \u00b7  {_KIND_TITLES[ex.kind]}",
                       color="#555555")
        where.setObjectName("where")
        value = QLabel(f"value {format_number(ex.value)}")
        value.setObjectName("value")
        f = value.font()
        f.setPointSizeF(14)
        f.setBold(True)
        value.setFont(f)
        value.setToolTip(f"{float(ex.value)!r}")
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(title)
        lay.addWidget(where)
        lay.addWidget(value)

    # input ------------------------------------------------------------------
    def _build_input(self, lay: QVBoxLayout, ex: Explanation) -> None:
        lay.addWidget(_plain(f"An image pixel: pixel value {format_number(ex.value)}. "
                             "It is read from the image, nothing is computed."))
        lay.addWidget(_mono(ex.text))

    # activation -------------------------------------------------------------
    def _build_activation(self, lay: QVBoxLayout, ex: Explanation) -> None:
        formula = _ACTIVATION_FORMULAS.get(ex.function, f"f = {ex.function}")
        lay.addWidget(_plain(formula, color="#333333"))
        pre = "?" if ex.pre_activation is None else format_number(ex.pre_activation)
        src = self._input_name(ex.inputs[0]) if ex.inputs else "the previous map"
        lay.addWidget(_plain(f"pre-activation x = {pre}   (same position of "
                             f"{self._level_name(ex.level - 1)}, {src})"))
        lay.addWidget(_mono(ex.text, bold=True, size=11))

    # convolution ------------------------------------------------------------
    def _build_conv(self, lay: QVBoxLayout, ex: Explanation) -> None:
        n = len(ex.inputs)
        kh, kw = ex.window.shape[1:]
        lay.addWidget(_plain(f"A {kh}x{kw} kernel over {n} input map{'s' if n != 1 else ''}: "
                             "each output is the sum of window \u00d7 weights, plus the bias.",
                             color="#333333"))
        if n > MAX_INLINE_INPUTS:
            row = QHBoxLayout()
            row.addWidget(_caption("input map"))
            sel = QComboBox()
            sel.addItems([self._input_name(m) for m in ex.inputs])
            row.addWidget(sel, 1)
            lay.addLayout(row)
            host = QWidget()
            QVBoxLayout(host).setContentsMargins(0, 0, 0, 0)
            lay.addWidget(host)
            self._input_host = host
            self._selector = sel
            sel.currentIndexChanged.connect(self._show_input)
            self._show_input(0)
        else:
            for p in range(n):
                lay.addWidget(self._conv_section(ex, p, n))
        lay.addWidget(_rule())
        lay.addWidget(_caption("arithmetic" + (" (all input maps)" if n > 1 else "")))
        lay.addWidget(_mono(ex.text))
        total = _mono(f"sum {format_number(ex.total)} + bias {format_number(ex.bias)} = "
                      f"value {format_number(ex.value)}", bold=True, size=10.5)
        total.setObjectName("total")
        lay.addWidget(total)

    def _show_input(self, p: int) -> None:
        host, ex = self._input_host, self._ex
        if host is None or ex is None or p < 0:
            return
        hl = host.layout()
        while hl.count():
            item = hl.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()
        for name in ("window", "weights", "products"):
            self._grids[name] = []
        hl.addWidget(self._conv_section(ex, p, len(ex.inputs)))

    def _conv_section(self, ex: Explanation, p: int, n: int) -> QWidget:
        window, weights, products = ex.window[p], ex.weights[p], ex.products[p]
        pad = ~np.asarray(ex.in_input, bool)
        kh, kw = window.shape
        wtips, ktips, ptips = [], [], []
        for a in range(kh):
            wl, kl, pl = [], [], []
            for b in range(kw):
                r, c = int(ex.rows[a]), int(ex.cols[b])
                here = f"input row {r}, col {c}" if not pad[a, b] else "outside the input"
                wl.append(f"{here}: {format_number(window[a, b], 7)}")
                kl.append(f"weight [{a}, {b}] = {format_number(weights[a, b], 7)}")
                pl.append(f"{format_number(window[a, b], 7)} \u00d7 "
                          f"{format_number(weights[a, b], 7)} = "
                          f"{format_number(products[a, b], 7)}")
            wtips.append(wl)
            ktips.append(kl)
            ptips.append(pl)
        grids = [
            ("window", ValueGrid(window, shading="gray", padding=pad, tooltips=wtips)),
            ("weights", ValueGrid(weights, shading="diverging", tooltips=ktips)),
            ("products", ValueGrid(products, shading="diverging", padding=pad,
                                   tooltips=ptips)),
        ]
        captions = {"window": "window", "weights": "\u00d7 weights", "products": "= products"}
        for name, g in grids:
            self._grids.setdefault(name, []).append(g)
        self._link_hover([g for _, g in grids])

        section = QWidget()
        v = QVBoxLayout(section)
        v.setContentsMargins(0, 2, 0, 2)
        v.setSpacing(3)
        if 1 < n <= MAX_INLINE_INPUTS:  # (beyond that the selector names the map)
            v.addWidget(_plain(self._input_name(ex.inputs[p]), bold=True))
        v.addWidget(self._grid_row([(captions[name], g) for name, g in grids]))
        if n > 1:
            partial = format_arithmetic(window, weights, 0.0, float(products.sum()))
            v.addWidget(_mono(f"partial sum: {partial}", size=9))
        return section

    @staticmethod
    def _grid_row(blocks: list[tuple[str, ValueGrid]]) -> QWidget:
        """Captioned grids side by side, wrapping onto the next line when narrow."""
        holder = QWidget()
        flow = FlowLayout(holder, spacing=12, line_spacing=8)
        for caption, g in blocks:
            block = QWidget()
            col = QVBoxLayout(block)
            col.setContentsMargins(0, 0, 0, 0)
            col.setSpacing(2)
            col.addWidget(_caption(caption))
            col.addWidget(g)
            block.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            flow.addWidget(block)
        return holder

    @staticmethod
    def _link_hover(grids: list[ValueGrid]) -> None:
        def on_hover(r: int, c: int) -> None:
            cell = None if r < 0 else (r, c)
            for g in grids:
                g.set_hover(cell)
        for g in grids:
            g.hovered.connect(on_hover)

    # pooling ----------------------------------------------------------------
    def _build_pool(self, lay: QVBoxLayout, ex: Explanation) -> None:
        window = ex.window[0]
        pad = ~np.asarray(ex.in_input, bool)
        kh, kw = window.shape
        mode = self._pool_mode(ex)
        tips = [[f"input row {int(ex.rows[a])}, col {int(ex.cols[b])}: "
                 f"{format_number(window[a, b], 7)}" if not pad[a, b]
                 else "outside the input (never wins; average pooling counts it only "
                      "with count_include_pad)"
                 for b in range(kw)] for a in range(kh)]
        winner = self._winner_in_window(ex)
        if winner is not None:
            tips[winner[0]][winner[1]] += "  (the winner)"
        grid = ValueGrid(window, shading="gray", padding=pad, padding_text="pad", tooltips=tips)
        grid.set_highlight(winner)
        self._grids["window"] = [grid]
        describe = {"max": "keeps the largest value of the window",
                    "min": "keeps the smallest value of the window",
                    "avg": "averages the window",
                    "l2": "takes the root of the sum of squares of the window"}[mode]
        lay.addWidget(_plain(f"{kh}x{kw} {mode} pooling {describe}.", color="#333333"))
        if ex.inputs:
            lay.addWidget(_caption(f"window on {self._level_name(ex.level - 1)}, "
                                   f"{self._input_name(ex.inputs[0])}"))
        row = QHBoxLayout()
        row.addWidget(grid)
        row.addStretch(1)
        lay.addLayout(row)
        if winner is not None:
            note = _plain(f"winner (outlined): input row {ex.winner[0]}, col {ex.winner[1]}",
                          color="#9a5a00")
            note.setObjectName("winner")
            lay.addWidget(note)
        if pad.any():
            lay.addWidget(_plain("grey cells lie in the padding, outside the input",
                                 color="#777777"))
        lay.addWidget(_rule())
        lay.addWidget(_caption("arithmetic"))
        lay.addWidget(_mono(ex.text))
        if ex.divisor is not None:
            div = _mono(f"sum {format_number(ex.total)} / divisor {ex.divisor} = value "
                        f"{format_number(ex.value)}", bold=True, size=10.5)
            div.setObjectName("total")
            lay.addWidget(div)
            lay.addWidget(_plain(f"divisor {ex.divisor}: the number of cells averaged "
                                 f"({int((~pad).sum())} inside the input)", color="#555555"))

    @staticmethod
    def _pool_mode(ex: Explanation) -> str:
        if ex.winner is not None:
            return "min" if ex.text.startswith("min(") else "max"
        return "avg" if ex.divisor is not None else "l2"

    @staticmethod
    def _winner_in_window(ex: Explanation) -> tuple[int, int] | None:
        """The window cell of ``ex.winner`` (given in input coordinates)."""
        if ex.winner is None:
            return None
        real = np.asarray(ex.in_input, bool)
        hits = np.argwhere((np.asarray(ex.rows)[:, None] == ex.winner[0])
                           & (np.asarray(ex.cols)[None, :] == ex.winner[1]) & real)
        if not len(hits):
            return None
        return int(hits[0][0]), int(hits[0][1])
