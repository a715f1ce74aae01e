"""The kernel editor: a grid of weights with presets, paste, normalise, flip and randomise.

:class:`KernelEditor` edits one :class:`core.pipeline.Kernel`: its weights (one shared
2-D kernel, or one slice per incoming map), divisor, bias (GIMP's offset) and flip.
Every number is parsed and every operation computed by ``core.kernels``; this module
only shows the results.

Invalid text (a cell that is not a number, a divisor of 0) is marked where it was
typed and named in the red error line; the editor then keeps the last good kernel and
emits nothing until the text is fixed.

The small helpers at the top (:func:`signals_blocked`, :class:`FieldFrame`,
:data:`STYLE_SHEET`, :func:`form_label`) are shared with ``app.stage_editors``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
from PyQt6.QtCore import QEvent, Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont, QGuiApplication, QKeySequence, QPalette
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.kernels import (
    PRESETS,
    KernelParseError,
    format_kernel,
    gimp_normalise,
    parse_kernel,
    random_kernel,
)
from ..core.pipeline import CHANNEL_NAMES, MAX_KERNEL_SIDE, Kernel

__all__ = ["KernelEditor", "FieldFrame", "signals_blocked", "form_label", "STYLE_SHEET",
           "parse_number", "number_text"]

# ----------------------------------------------------------------------- shared helpers

ERROR_RED = "#c62828"
LABEL_WIDTH = 62          # one label column width for every form, so fields line up
CELL_W, CELL_H = 48, 24   # kernel grid cell size in pixels


def cell_width(kw: int) -> int:
    """Column width for a kernel ``kw`` columns wide: narrower columns for wider kernels,
    so that grids up to 7x7 fit the pipeline dock without a sideways scroll (a 5x5
    grid scrolled); values that do not fit a cell are elided, whole in the tooltip."""
    return CELL_W if kw <= 4 else 40 if kw <= 5 else 29
VISIBLE_ROWS = 9          # grid rows shown before it scrolls

STYLE_SHEET = f"""
QFrame#field {{ border: 1px solid transparent; border-radius: 3px; }}
QFrame#field[error="true"] {{ border: 1px solid {ERROR_RED}; background: #fdecea; }}
QLabel#errorLabel {{ color: {ERROR_RED}; }}
QLabel#hintLabel, QLabel#formulaLabel {{ color: #505050; }}
"""


@contextmanager
def signals_blocked(*objects):
    """Block the signals of ``objects`` while the model writes into them (no echo)."""
    previous = [o.blockSignals(True) for o in objects]
    try:
        yield
    finally:
        for o, p in zip(objects, previous):
            o.blockSignals(p)


def form_label(text: str, tooltip: str = "") -> QLabel:
    """A form label of the common width, so forms in different boxes align."""
    label = QLabel(text)
    label.setMinimumWidth(LABEL_WIDTH)
    if tooltip:
        label.setToolTip(tooltip)
    return label


class FieldFrame(QFrame):
    """The container of one form field; :meth:`set_error` marks it invalid.

    A mark is the dynamic property ``error`` (styled as a red border by
    :data:`STYLE_SHEET`) plus the reason as the tooltip of the frame and of the
    inputs inside it. Items of ``widgets`` are widgets, strings (small labels) or
    ``None`` (a stretch; a trailing ``None`` instead makes the frame hug its inputs).
    """

    def __init__(self, *widgets, tooltip: str = "", parent=None):
        super().__init__(parent)
        self.setObjectName("field")
        self.setProperty("error", False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(4)
        if widgets and widgets[-1] is None:
            # hug the inputs, so an error border surrounds them and not the whole row
            widgets = widgets[:-1]
            self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        for w in widgets:
            if w is None:
                lay.addStretch(1)
            elif isinstance(w, str):
                lay.addWidget(QLabel(w))
            else:
                lay.addWidget(w)
        self._tip = tooltip
        self._reason: str | None = None
        self.setToolTip(tooltip)

    def inputs(self) -> list[QWidget]:
        return [w for w in self.findChildren(QWidget) if not isinstance(w, QLabel)
                and w.parent() is self]

    def set_error(self, reason: str | None) -> None:
        if reason == self._reason:
            return
        self._reason = reason
        self.setProperty("error", bool(reason))
        self.setToolTip(reason if reason else self._tip)
        for w in self.inputs():
            base = w.property("baseToolTip")
            if base is None:
                base = w.toolTip()
                w.setProperty("baseToolTip", base)
            w.setToolTip(f"{reason}\n\n{base}" if reason and base else (reason or base))
        self.style().unpolish(self)
        self.style().polish(self)
        self.update()

    def error(self) -> str | None:
        return self._reason


def number_text(v: float) -> str:
    """A number as core.kernels.format_kernel writes a cell (exact: 16, 0.25, 1/9)."""
    return format_kernel(np.array([[float(v)]]))


def parse_number(text: str, where: str) -> float:
    """One finite number or fraction (``-0.5``, ``1/16``); ValueError naming ``where``."""
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"{where}: the cell is empty" if where.startswith("row")
                         else f"{where}: enter a number")
    try:
        w = parse_kernel(stripped, max_size=None)
    except KernelParseError as exc:
        # a single cell is always "row 1, column 1" to the parser: name ours instead
        reason = re.sub(r"^row \d+, column \d+: ", "", str(exc))
        raise ValueError(f"{where}: {reason}") from None
    if w.shape != (1, 1):
        raise ValueError(f"{where}: {stripped!r} is not a single number")
    return float(w[0, 0]) + 0.0    # -0.0 -> 0.0


def _row(*widgets) -> QHBoxLayout:
    """Widgets side by side, left-aligned."""
    lay = QHBoxLayout()
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(4)
    for w in widgets:
        lay.addWidget(w)
    lay.addStretch(1)
    return lay


def _mix(base: QColor, target: QColor, t: float) -> QColor:
    return QColor(round(base.red() + (target.red() - base.red()) * t),
                  round(base.green() + (target.green() - base.green()) * t),
                  round(base.blue() + (target.blue() - base.blue()) * t))


# ----------------------------------------------------------------------------- the grid


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


class _Grid(QTableWidget):
    """The weight grid; Ctrl+V / Ctrl+C act on the whole kernel while it has focus.

    Its height fits its rows (up to :data:`VISIBLE_ROWS`), plus a horizontal scroll
    bar only when the panel is narrower than the columns.
    """

    pasteRequested = pyqtSignal()
    copyRequested = pyqtSignal()
    content_height = 0
    content_width = 0

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


CATEGORY_TITLES = {"identity": "Identity", "blur": "Blur", "sharpen": "Sharpen",
                   "edge": "Edges (first differences)", "laplacian": "Second derivatives",
                   "emboss": "Emboss", "random-init": "Random initial weights"}


# ------------------------------------------------------------------------ the editor


class KernelEditor(QWidget):
    """Editor of one convolution kernel.

    Signals
    -------
    kernelChanged()
        Once per user edit that leaves the kernel valid (never while a cell or field
        holds invalid text, and never from :meth:`set_kernel`).
    """

    kernelChanged = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setStyleSheet(STYLE_SHEET)
        # the model: weights are (slices, kh, kw); one slice when shared
        self._w = np.zeros((1, 3, 3))
        self._w[0, 1, 1] = 1.0
        self._per_channel = False
        self._slice = 0
        self._bias = 0.0
        self._divisor = 1.0
        self._flip = False
        self._name = "kernel"
        self._n_maps = 3
        self._map_names = list(CHANNEL_NAMES[3])
        self._bad: dict[tuple[int, int], str] = {}        # cell -> reason
        self._field_errors: dict[str, str] = {}           # "divisor"/"bias" -> reason
        self._notice = ""                                 # e.g. a failed paste
        self._external: tuple[str | None, str] | None = None   # error from the pipeline
        self._dirty = False
        self.random_seed = 0
        """Seed of the next Randomise (increments on each use, so runs are reproducible)."""
        self._build()
        self._refresh()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Load a classic kernel; its weights are already divided, "
                                     "so divisor resets to 1 and bias to 0.")
        self.preset_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset_combo.setMinimumContentsLength(14)
        self.preset_combo.addItem("Custom", None)
        self.preset_combo.setItemData(0, "Your own weights: choose an entry to load a preset",
                                      Qt.ItemDataRole.ToolTipRole)
        bold = QFont(self.font())
        bold.setBold(True)
        category = None
        for name, p in PRESETS.items():
            if p.category != category:
                category = p.category
                self.preset_combo.insertSeparator(self.preset_combo.count())
                self.preset_combo.addItem(CATEGORY_TITLES.get(category, category), None)
                head = self.preset_combo.model().item(self.preset_combo.count() - 1)
                head.setEnabled(False)
                head.setFont(bold)
            self.preset_combo.addItem(p.label, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, p.description,
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.currentIndexChanged.connect(self._on_preset_index)

        self.hint_label = QLabel()
        self.hint_label.setObjectName("hintLabel")
        self.hint_label.setWordWrap(True)
        self.hint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.rows_spin = self._size_spin("Kernel height (rows), 1 to "
                                         f"{MAX_KERNEL_SIDE}; growing adds rows of 0")
        self.cols_spin = self._size_spin("Kernel width (columns), 1 to "
                                         f"{MAX_KERNEL_SIDE}; growing adds columns of 0")
        self.size_field = FieldFrame(self.rows_spin, "×", self.cols_spin, "rows × cols", None,
                                     tooltip="Kernel size; non-square kernels are allowed")

        self.table = _Grid()
        # Tab leaves the grid (it cycled through the cells forever); arrows move inside
        self.table.setTabKeyNavigation(False)
        self.table.setItemDelegate(_CellDelegate(self.table))
        cell_font = QFont(self.table.font())
        cell_font.setPointSizeF(max(cell_font.pointSizeF() - 0.5, 7.0))
        self.table.setFont(cell_font)
        for header, size in ((self.table.horizontalHeader(), CELL_W),
                             (self.table.verticalHeader(), CELL_H)):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setMinimumSectionSize(min(size, 20))
            header.setDefaultSectionSize(size)
            header.setHighlightSections(False)
        self.table.verticalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.table.setCornerButtonEnabled(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.table.setToolTip("Weights: type a number or a fraction (1/16) in a cell. "
                              "Ctrl+V pastes a whole kernel, Ctrl+C copies it.")
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.pasteRequested.connect(self.paste_clipboard)
        self.table.copyRequested.connect(self.copy_to_clipboard)

        self.paste_button = QPushButton("Paste…")
        self.paste_button.setToolTip("Type or paste a whole kernel as text, e.g. "
                                     "[1 2 1; 2 4 2; 1 2 1] / 16 or [[1, 0], [0, -1]]")
        self.paste_button.clicked.connect(lambda: self.open_paste_dialog())
        self.randomise_button = QPushButton("Randomise")
        self.randomise_button.setToolTip("Random normal weights as a CNN starts before "
                                         "training (He: std = sqrt(2 / inputs)); "
                                         "divisor 1, bias 0")
        self.randomise_button.clicked.connect(self.randomise)
        self.normalise_button = QPushButton("Normalise")
        self.normalise_button.setToolTip("GIMP's normalise: divisor = sum of the weights; "
                                         "a zero sum gets bias 0.5, a negative sum |sum| and "
                                         "bias 1")
        self.normalise_button.clicked.connect(self.normalise)

        self.divisor_edit = self._number_edit("Every weight is divided by this before use "
                                              "(GIMP's divisor); 0 is not allowed")
        self.divisor_edit.textChanged.connect(lambda t: self._on_number_text("divisor", t))
        self.divisor_field = FieldFrame(self.divisor_edit, tooltip=self.divisor_edit.toolTip())
        self.bias_edit = self._number_edit("Added to every output value after the weighted "
                                           "sum (GIMP's offset; 0.5 is mid-grey)")
        self.bias_edit.textChanged.connect(lambda t: self._on_number_text("bias", t))
        self.bias_field = FieldFrame(self.bias_edit, tooltip=self.bias_edit.toolTip())

        self.flip_check = QCheckBox("Flip (true convolution)")
        self.flip_check.setToolTip("True convolution: kernel flipped in both axes. Off, the "
                                   "kernel slides as shown (cross-correlation, as CNNs do)")
        self.flip_check.toggled.connect(self._on_flip)

        self.per_channel_check = QCheckBox("Per channel")
        self.per_channel_check.setToolTip("Off: one kernel shared by every incoming map. "
                                          "On: a separate kernel for each map (the grid edits "
                                          "the map chosen on the right)")
        self.per_channel_check.toggled.connect(self._on_per_channel)
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("Which incoming map's kernel the grid shows and edits")
        self.channel_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.channel_combo.setMinimumContentsLength(6)
        self.channel_combo.currentIndexChanged.connect(self._on_slice)
        self.channel_field = FieldFrame(self.per_channel_check, self.channel_combo, None,
                                        tooltip=self.per_channel_check.toolTip())

        self.error_label = QLabel()
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.addRow(form_label("Preset", self.preset_combo.toolTip()), self.preset_combo)
        form.addRow("", self.hint_label)
        form.addRow(form_label("Size", self.size_field.toolTip()), self.size_field)
        grid_row = QHBoxLayout()
        grid_row.setContentsMargins(1, 0, 0, 0)
        grid_row.addWidget(self.table)
        grid_row.addStretch(1)
        weights_label = form_label("Weights", self.table.toolTip())
        weights_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        form.addRow(weights_label, grid_row)
        actions = QHBoxLayout()
        actions.setSpacing(4)
        actions.addWidget(self.paste_button)
        actions.addWidget(self.randomise_button)
        actions.addStretch(1)
        form.addRow("", actions)
        form.addRow(form_label("Divisor", self.divisor_edit.toolTip()),
                    _row(self.divisor_field, self.normalise_button))
        form.addRow(form_label("Bias", self.bias_edit.toolTip()), _row(self.bias_field))
        form.addRow("", self.flip_check)
        form.addRow(form_label("Maps", self.per_channel_check.toolTip()), self.channel_field)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        outer.addLayout(form)
        outer.addWidget(self.error_label)

    def _size_spin(self, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(1, MAX_KERNEL_SIDE)
        spin.setToolTip(tip)
        # resizing drops values, so only act on Enter / arrows / focus-out, not on
        # every keystroke (typing "12" would otherwise pass through a 1-row kernel)
        spin.setKeyboardTracking(False)
        spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        spin.valueChanged.connect(self._on_size)
        return spin

    @staticmethod
    def _number_edit(tip: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setToolTip(tip)
        edit.setAlignment(Qt.AlignmentFlag.AlignRight)
        edit.setMaximumWidth(90)
        edit.setPlaceholderText("number")
        return edit

    # ------------------------------------------------------------------------- API

    def set_kernel(self, kernel: Kernel, n_maps: int = 3,
                   map_names: list[str] | None = None) -> None:
        """Show ``kernel`` (copied); no signal. ``n_maps`` incoming maps, named."""
        w = np.array(kernel.weights, dtype=np.float64)
        self._per_channel = w.ndim == 3
        self._w = w.copy() if w.ndim == 3 else w[None].copy()
        self._slice = 0
        self._bias = float(kernel.bias)
        self._divisor = float(kernel.divisor)
        self._flip = bool(kernel.flip)
        self._name = kernel.name
        self._set_maps(n_maps, map_names)
        self._clear_errors()
        self._external = None
        self._dirty = False
        self._refresh()

    def set_maps(self, n_maps: int, map_names: list[str] | None = None) -> None:
        """Tell the editor how many maps come in (used by the per-channel toggle)."""
        self._set_maps(n_maps, map_names)
        self._refresh()

    def kernel(self) -> Kernel:
        """A new Kernel with the current valid values (the last good ones while invalid)."""
        w = self._w.copy() if self._per_channel else self._w[0].copy()
        return Kernel(w, bias=self._bias, divisor=self._divisor, flip=self._flip,
                      name=self._name)

    def has_error(self) -> bool:
        """True while a cell or field holds text that is not a valid value."""
        return bool(self._bad or self._field_errors)

    def error_text(self) -> str:
        return self.error_label.text()

    def current_slice(self) -> int:
        return self._slice

    def set_cell(self, row: int, col: int, text: str) -> None:
        """Put ``text`` in a cell as a user's edit would (same path as typing)."""
        self.table.item(row, col).setText(text)

    def cell_text(self, row: int, col: int) -> str:
        return self.table.item(row, col).text()

    def load_preset(self, name: str) -> None:
        """Load a preset into the grid (the current slice when per channel)."""
        p = PRESETS[name]
        self._discard_invalid()
        self._reshape(*p.shape)
        self._w[self._slice] = p.weights
        self._divisor, self._bias = 1.0, 0.0
        if not self._per_channel:  # the kernel is now this preset: name it so (captions)
            self._name = p.label
        self._changed(structural=True)

    def paste_text(self, text: str) -> bool:
        """Parse kernel text (core.kernels.parse_kernel) into the grid.

        On a parse error the error line says why and nothing changes; returns
        whether the text was used.
        """
        try:
            w = parse_kernel(text, max_size=MAX_KERNEL_SIDE)
        except KernelParseError as exc:
            self._notice = f"Paste: {exc}"
            self._update_status()
            return False
        self._discard_invalid()
        self._reshape(*w.shape)
        self._w[self._slice] = w
        self._changed(structural=True)
        return True

    def paste_clipboard(self) -> bool:
        return self.paste_text(QGuiApplication.clipboard().text())

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(format_kernel(self._w[self._slice]))

    def open_paste_dialog(self, *, modal: bool = True) -> "PasteDialog":
        """A dialog for kernel text; a parse error is shown inside it and the text is
        kept for correcting (the dialog closed on an error and lost the text)."""
        clip = QGuiApplication.clipboard().text()
        dlg = PasteDialog(self, clip if len(clip) < 4000 else "")
        if modal:
            dlg.exec()
        else:
            dlg.show()
        return dlg

    def normalise(self) -> None:
        """Divisor and bias from core.kernels.gimp_normalise (all slices together)."""
        kh, kw = self._w.shape[1:]
        divisor, offset = gimp_normalise(self._w.reshape(-1, kw))
        self._field_errors.clear()
        self._divisor, self._bias = float(divisor), float(offset)
        self._changed(structural=True)

    def randomise(self) -> None:
        """He-normal weights (core.kernels.random_kernel), seeded by ``random_seed``."""
        rng = np.random.default_rng(self.random_seed)
        self.random_seed += 1
        s, kh, kw = self._w.shape
        self._discard_invalid()
        for i in range(s):
            self._w[i] = random_kernel((kh, kw), rng=rng, fan_in=s * kh * kw)
        self._divisor, self._bias = 1.0, 0.0
        self._changed(structural=True)

    def resize_kernel(self, rows: int, cols: int) -> None:
        """Resize keeping the kernel centred (see :meth:`_reshape`); new cells are 0."""
        if (rows, cols) == self._w.shape[1:]:
            return
        self._discard_invalid()
        self._reshape(rows, cols)
        self._changed(structural=True)

    def set_per_channel(self, on: bool) -> None:
        self.per_channel_check.setChecked(on)

    def select_slice(self, i: int) -> None:
        self.channel_combo.setCurrentIndex(i)

    def mark(self, field: str | None, reason: str | None) -> None:
        """Show an error found by the pipeline: ``field`` is "weights", "bias",
        "divisor" or None (the whole kernel); ``reason`` None clears it."""
        self._external = (field, reason) if reason else None
        self._update_status()

    # ------------------------------------------------------------------ model edits

    def _set_maps(self, n_maps: int, map_names) -> None:
        self._n_maps = max(1, int(n_maps))
        if map_names:
            self._map_names = list(map_names)
        else:
            self._map_names = list(CHANNEL_NAMES.get(self._n_maps, []))

    def _map_name(self, i: int) -> str:
        return self._map_names[i] if i < len(self._map_names) else f"map {i + 1}"

    def _reshape(self, rows: int, cols: int) -> None:
        """Resize keeping the kernel centred, as GIMP does: rings of zeros are added or
        removed around it (growing 3x3 to 5x5 added zeros at the bottom and right,
        which moved the centre and shifted a 'same' output by a pixel or more). With
        an even growth or shrink the extra row/column goes to the bottom/right; the
        anchor of an even size is the cell just above and left of the middle
        (PyTorch's 'same' padding)."""
        s, kh, kw = self._w.shape
        if (rows, cols) == (kh, kw):
            return
        new = np.zeros((s, rows, cols))
        r, c = min(rows, kh), min(cols, kw)
        dr, sr = max(0, (rows - kh) // 2), max(0, (kh - rows) // 2)
        dc, sc = max(0, (cols - kw) // 2), max(0, (kw - cols) // 2)
        new[:, dr:dr + r, dc:dc + c] = self._w[:, sr:sr + r, sc:sc + c]
        self._w = new

    def _discard_invalid(self) -> None:
        """A structural edit rewrites the grid: invalid cell text is dropped."""
        self._bad.clear()

    def _clear_errors(self) -> None:
        self._bad.clear()
        self._field_errors.clear()
        self._notice = ""

    def _changed(self, *, structural: bool) -> None:
        """The model changed by a user action: refresh views, then notify once.

        ``structural``: rewrite every widget from the model (invalid field text is
        replaced; invalid cells survive unless :meth:`_discard_invalid` ran first).
        """
        self._notice = ""
        if structural:
            self._field_errors.clear()
            self._refresh()
        else:
            self._update_status()
        self._dirty = True
        self._maybe_emit()

    def _maybe_emit(self) -> None:
        if self._dirty and not self.has_error():
            self._dirty = False
            self.kernelChanged.emit()

    # -------------------------------------------------------------------- widget slots

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        r, c = item.row(), item.column()
        text = item.text()
        self._notice = ""
        try:
            v = parse_number(text, f"row {r + 1}, column {c + 1}")
        except ValueError as exc:
            self._bad[(r, c)] = str(exc)
            self._style_cell(r, c)
            self._update_status()
            return
        self._bad.pop((r, c), None)
        old = self._w[self._slice, r, c]
        self._w[self._slice, r, c] = v
        with signals_blocked(self.table):
            item.setText(number_text(v))     # canonical form: "1/16" shows as 0.0625
        if v != old:
            self._dirty = True
            self._restyle_cells()   # magnitudes are relative to the largest weight
        else:
            self._style_cell(r, c)
        self._update_status()
        self._maybe_emit()

    def _on_size(self, _value: int) -> None:
        self.resize_kernel(self.rows_spin.value(), self.cols_spin.value())

    def _on_preset_index(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name is not None:
            self.load_preset(name)

    def _on_number_text(self, which: str, text: str) -> None:
        self._notice = ""
        label = which.capitalize()
        try:
            v = parse_number(text, label)
            if which == "divisor" and v == 0:
                raise ValueError(f"Divisor: 0 is refused, dividing by zero is undefined "
                                 f"(still using {number_text(self._divisor)})")
        except ValueError as exc:
            self._field_errors[which] = str(exc)
            self._update_status()
            return
        self._field_errors.pop(which, None)
        old = getattr(self, "_" + which)
        setattr(self, "_" + which, v)
        if v != old:
            self._dirty = True
        self._update_status()
        self._maybe_emit()

    def _on_flip(self, on: bool) -> None:
        self._flip = bool(on)
        self._changed(structural=False)

    def _on_per_channel(self, on: bool) -> None:
        if on == self._per_channel:
            return
        self._discard_invalid()
        if on:
            self._w = np.repeat(self._w[:1], self._n_maps, axis=0)
            self._slice = 0
        else:
            self._w = self._w[self._slice][None].copy()
            self._slice = 0
        self._per_channel = on
        self._changed(structural=True)

    def _on_slice(self, index: int) -> None:
        if index < 0 or index == self._slice:
            return
        self._discard_invalid()
        self._slice = index
        self._refresh()

    # ----------------------------------------------------------------------- views

    def _refresh(self) -> None:
        """Write the whole model into the widgets, signals blocked."""
        s, kh, kw = self._w.shape
        with signals_blocked(self.rows_spin, self.cols_spin, self.flip_check,
                             self.per_channel_check, self.channel_combo, self.divisor_edit,
                             self.bias_edit, self.preset_combo, self.table):
            self.rows_spin.setValue(kh)
            self.cols_spin.setValue(kw)
            self.flip_check.setChecked(self._flip)
            self.per_channel_check.setChecked(self._per_channel)
            self.channel_combo.clear()
            if self._per_channel:
                self.channel_combo.addItems([self._map_name(i) for i in range(s)])
                self.channel_combo.setCurrentIndex(self._slice)
            else:
                self.channel_combo.addItem("shared")
            self.channel_combo.setEnabled(self._per_channel)
            if "divisor" not in self._field_errors:
                self.divisor_edit.setText(number_text(self._divisor))
            if "bias" not in self._field_errors:
                self.bias_edit.setText(number_text(self._bias))
            if self.table.rowCount() != kh or self.table.columnCount() != kw:
                self.table.setRowCount(kh)
                self.table.setColumnCount(kw)
                self._fit_table()
            self._restyle_cells()
        self._update_status()

    def _fit_table(self) -> None:
        t = self.table
        kh, kw = t.rowCount(), t.columnCount()
        frame = 2 * t.frameWidth()
        head_w = max(t.verticalHeader().sizeHint().width(), 22)
        head_h = max(t.horizontalHeader().sizeHint().height(), 20)
        t.verticalHeader().setFixedWidth(head_w)
        t.horizontalHeader().setFixedHeight(head_h)
        cw = cell_width(kw)
        t.horizontalHeader().setDefaultSectionSize(cw)
        for c in range(kw):
            t.horizontalHeader().resizeSection(c, cw)
        width = head_w + kw * cw + frame
        height = head_h + min(kh, VISIBLE_ROWS) * CELL_H + frame
        bar = t.style().pixelMetric(t.style().PixelMetric.PM_ScrollBarExtent)
        if kh > VISIBLE_ROWS:
            width += bar
        t.setMaximumWidth(width)
        t.setMinimumWidth(min(width, head_w + 3 * cw + frame + bar))
        t.content_width, t.content_height = width, height
        t.updateGeometry()
        t.fit_height()

    def _restyle_cells(self) -> None:
        """Cell texts (except invalid ones) and tints, table signals blocked."""
        w = self._w[self._slice]
        with signals_blocked(self.table):
            for r in range(w.shape[0]):
                for c in range(w.shape[1]):
                    item = self.table.item(r, c)
                    if item is None:
                        item = QTableWidgetItem()
                        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                        self.table.setItem(r, c, item)
                    if (r, c) not in self._bad and item.text() != number_text(w[r, c]):
                        item.setText(number_text(w[r, c]))
                    self._style_cell(r, c)

    def _style_cell(self, r: int, c: int) -> None:
        item = self.table.item(r, c)
        if item is None:
            return
        with signals_blocked(self.table):
            reason = self._bad.get((r, c))
            base = self.palette().color(QPalette.ColorRole.Base)
            text = self.palette().color(QPalette.ColorRole.Text)
            if reason:
                item.setBackground(QBrush(QColor("#ffb3b3")))
                item.setForeground(QBrush(QColor("#7f0000")))
                item.setToolTip(reason)
                return
            w = self._w[self._slice]
            v = float(w[r, c])
            scale = float(np.abs(w).max())
            if v == 0 or scale == 0:
                color = base
            else:
                t = 0.10 + 0.35 * min(abs(v) / scale, 1.0)
                color = _mix(base, QColor(214, 39, 40) if v > 0 else QColor(31, 119, 180), t)
            item.setBackground(QBrush(color))
            item.setForeground(QBrush(text))
            item.setToolTip(f"row {r + 1}, column {c + 1}: {number_text(v)}"
                            + (f" = {v:.6g}" if "/" in number_text(v) else ""))

    def _matching_preset(self):
        if self._divisor != 1.0:
            return None
        w = self._w[self._slice]
        for name, p in PRESETS.items():
            if p.weights.shape == w.shape and np.array_equal(p.weights, w):
                return name
        return None

    def _update_status(self) -> None:
        """Preset combo, hint, field marks and the error line from the current state."""
        name = self._matching_preset()
        with signals_blocked(self.preset_combo):
            idx = self.preset_combo.findData(name) if name else 0
            self.preset_combo.setCurrentIndex(max(idx, 0))
        p = PRESETS.get(name) if name else None
        if p is not None and p.divisor != 1.0:
            self.hint_label.setText(f"= {p.display}  (shown already divided)")
            self.hint_label.show()
        else:
            self.hint_label.clear()
            self.hint_label.hide()
        ext_field, ext_reason = self._external or (None, None)
        self.divisor_field.set_error(self._field_errors.get("divisor")
                                     or (ext_reason if ext_field == "divisor" else None))
        self.bias_field.set_error(self._field_errors.get("bias")
                                  or (ext_reason if ext_field == "bias" else None))
        messages = [self._bad[k] for k in sorted(self._bad)]
        messages += [self._field_errors[k] for k in ("divisor", "bias")
                     if k in self._field_errors]
        if self._bad:
            messages.append("The kernel keeps its last valid weights until this is fixed.")
        if self._notice:
            messages.insert(0, self._notice)
        if not messages and ext_reason and ext_field not in ("divisor", "bias"):
            messages.append(ext_reason)
        self.error_label.setText("\n".join(messages))
        self.error_label.setVisible(bool(messages))


class PasteDialog(QDialog):
    """Kernel text in, the kernel editor's grid out; errors stay inside the dialog."""

    def __init__(self, editor: "KernelEditor", text: str = ""):
        super().__init__(editor)
        self.setWindowTitle("Paste kernel")
        self._editor = editor
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Kernel text: rows on lines or separated by ';', e.g.\n"
                             "[1 2 1; 2 4 2; 1 2 1] / 16"))
        self.edit = QPlainTextEdit(text)
        lay.addWidget(self.edit, 1)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        lay.addWidget(self.error)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                               QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.try_accept)
        box.rejected.connect(self.reject)
        lay.addWidget(box)
        self.resize(420, 260)

    def try_accept(self) -> bool:
        try:
            parse_kernel(self.edit.toPlainText(), max_size=MAX_KERNEL_SIDE)
        except KernelParseError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        self._editor.paste_text(self.edit.toPlainText())
        self.accept()
        return True
