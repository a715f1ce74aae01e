"""Editors for the stages of a pipeline: convolution, activation, pooling.

Every editor keeps a copy of its stage, writes it into its widgets with signals
blocked (:meth:`StageEditor.set_stage`), updates the copy on each user edit and
emits ``stageChanged`` once; :meth:`StageEditor.stage` returns a new stage object.
Validation is core's: the editors let the user type any value (a stride of 0 too)
and show the :class:`core.pipeline.PipelineError` that core raises on the field it
names (:meth:`StageEditor.show_error`). :data:`EDITORS` maps a stage type to its
editor class.
"""

from __future__ import annotations

import copy
import re

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.geometry import resolve_padding
from ..core.padding import PADDING_MODES
from ..core.pipeline import (
    ACTIVATIONS,
    CONV_MODES,
    MAX_ALPHA,
    MAX_GEOMETRY,
    MAX_KERNELS,
    ActivationStage,
    ConvStage,
    Kernel,
    PipelineError,
    PoolStage,
    stage_formula,
    stage_output_shape,
)
from ..core.pool import POOL_MODES

from .form_widgets import STYLE_SHEET, FieldFrame, form_label, signals_blocked
from .kernel_editor import KernelEditor

__all__ = ["StageEditor", "ConvStageEditor", "ActivationEditor", "PoolEditor", "EDITORS",
           "PairSpin"]

# ------------------------------------------------------------------ option descriptions

CONV_MODE_TEXT = {
    "per_channel": ("Per channel (depthwise)",
                    "Every kernel filters every incoming map on its own, as an image editor "
                    "filters R, G and B: maps × kernels outputs"),
    "sum": ("Sum over channels (CNN layer)",
            "Each kernel spans all incoming maps and sums them plus its bias, as a CNN layer "
            "does: one output per kernel"),
}
PADDING_TEXT = {
    "valid": ("valid", "No padding: windows stay inside the input, so it shrinks by "
                       "(kernel - 1) × dilation"),
    "same": ("same", "Pads so the output is ceil(input / stride) (the input's size at stride "
                     "1); an odd extra cell goes bottom/right"),
    "full": ("full", "Pads (kernel - 1) × dilation on every side: every window touching the "
                     "input is computed, so it grows"),
    "custom": ("custom…", "Type the padding of each side yourself: top, bottom, left, right"),
}
PADDING_MODE_TEXT = {   # the pictures of core/padding.py (pad 3 around a b c d)
    "zeros": "Pads with 0:  0 0 0 | a b c d | 0 0 0",
    "constant": "Pads with the value given:  v v v | a b c d | v v v",
    "reflect": "Mirrors without repeating the edge:  d c b | a b c d | c b a",
    "replicate": "Repeats the edge pixel:  a a a | a b c d | d d d",
    "circular": "Wraps around from the other side:  b c d | a b c d | a b c",
}
ACTIVATION_TEXT = {
    "none": ("None (identity)", "Passes values through unchanged"),
    "relu": ("ReLU  max(0, x)", "Keeps positive values, sets negative ones to 0"),
    "leaky_relu": ("Leaky ReLU", "Keeps positive values, multiplies negative ones by alpha"),
    "sigmoid": ("Sigmoid  1 / (1 + e^-x)", "Squashes every value into (0, 1); 0 becomes 0.5"),
    "tanh": ("tanh", "Squashes every value into (-1, 1), keeping the sign"),
    "abs": ("Absolute value  |x|", "Makes negative responses positive (both edge directions "
                                   "show)"),
}
POOL_MODE_TEXT = {
    "max": ("max", "Keeps the largest value of each window (padding never wins)"),
    "avg": ("average", "Averages each window ('count padding' decides whether padded cells "
                       "count)"),
    "min": ("min", "Keeps the smallest value of each window"),
    "l2": ("L2", "Square root of the sum of squares of each window (lp_pool2d with p = 2)"),
}

#: the spin boxes accept what core accepts (core.pipeline.MAX_GEOMETRY): they capped
#: at 99 and silently turned a typed 300 into 30
SPIN_MAX = MAX_GEOMETRY


# ------------------------------------------------------------------------ small widgets


def _combo(options: dict, order, tip: str) -> QComboBox:
    """A combo whose item data are core's names and item tooltips say what each does."""
    combo = QComboBox()
    for key in order:
        text = options[key]
        label, desc = (text, text) if isinstance(text, str) else text
        combo.addItem(key if isinstance(text, str) else label, key)
        combo.setItemData(combo.count() - 1, desc, Qt.ItemDataRole.ToolTipRole)
    combo.setToolTip(tip)
    combo.setProperty("baseToolTip", tip)
    combo.currentIndexChanged.connect(lambda i: _sync_combo_tip(combo))
    _sync_combo_tip(combo)
    return combo


def _sync_combo_tip(combo: QComboBox) -> None:
    """A closed combo's tooltip: what it is, then what the current choice does."""
    base = combo.property("baseToolTip") or ""
    desc = combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    combo.setToolTip(f"{base}\n{combo.currentText()}: {desc}" if desc else base)


def _select(combo: QComboBox, key) -> None:
    i = combo.findData(key)
    combo.setCurrentIndex(i if i >= 0 else 0)


def _spin(minimum: int, maximum: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setToolTip(tip)
    spin.setAlignment(Qt.AlignmentFlag.AlignRight)
    # as wide as its largest value needs, no wider: the editor must fit a 300 px dock
    digits = spin.fontMetrics().horizontalAdvance("8" * len(str(maximum)))
    spin.setMaximumWidth(digits + 34)
    return spin


class PairSpin(FieldFrame):
    """Two spin boxes (rows × cols) for an int-or-pair setting, e.g. stride.

    :meth:`value` gives an int when both are equal and the stage had an int, so a
    stage round-trips unchanged; otherwise a ``(rows, cols)`` tuple.
    """

    valueChanged = pyqtSignal()

    def __init__(self, what: str, minimum: int, tip: str):
        self.rows = _spin(minimum, SPIN_MAX, f"{what} along the rows (vertical)")
        self.cols = _spin(minimum, SPIN_MAX, f"{what} along the columns (horizontal)")
        super().__init__(self.rows, "×", self.cols, None, tooltip=tip)
        self._pair_form = False
        self.rows.valueChanged.connect(self.valueChanged)
        self.cols.valueChanged.connect(self.valueChanged)

    def set_value(self, value) -> None:
        with signals_blocked(self.rows, self.cols, self):
            if isinstance(value, (tuple, list)):
                self._pair_form = True
                r, c = value
            else:
                self._pair_form = False
                r = c = value
            self.rows.setValue(int(r))
            self.cols.setValue(int(c))

    def value(self):
        r, c = self.rows.value(), self.cols.value()
        return r if r == c and not self._pair_form else (r, c)

    def setEnabled(self, on: bool) -> None:  # noqa: N802
        self.rows.setEnabled(on)
        self.cols.setEnabled(on)


# --------------------------------------------------------------------------- the base


class StageEditor(QWidget):
    """Base of the stage editors: the stage copy, error marks and the formula line.

    Subclasses build their form, register each field in ``self._fields`` under the
    name core uses in :class:`PipelineError` (``"stride"``, ``"padding"``, ...),
    implement :meth:`_write` (stage -> widgets) and call :meth:`_edited` after they
    change ``self._stage``.
    """

    stageChanged = pyqtSignal()
    stage_type: type = object

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setStyleSheet(STYLE_SHEET)
        self._stage = None
        self._input_shape: tuple[int, int, int] | None = None
        self._map_names: list[str] | None = None
        self._error: PipelineError | None = None
        self._fields: dict[str, QWidget] = {}
        self.formula_label = QLabel()
        self.formula_label.setObjectName("formulaLabel")
        self.formula_label.setWordWrap(True)
        self.formula_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.formula_label.setToolTip("Output size of this stage, computed by core with the "
                                      "actual numbers")
        self.message_label = QLabel()
        self.message_label.setObjectName("errorLabel")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.hide()

    # ------------------------------------------------------------------------- API

    def set_stage(self, stage, input_shape: tuple[int, int, int] | None = None,
                  map_names: list[str] | None = None) -> None:
        """Show a copy of ``stage``; ``input_shape`` (maps, H, W) if known. No signal."""
        if not isinstance(stage, self.stage_type):
            raise TypeError(f"{type(self).__name__} edits {self.stage_type.__name__}, got "
                            f"{type(stage).__name__}")
        self._stage = copy.deepcopy(stage)
        self._input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self._map_names = list(map_names) if map_names else None
        self._error = None
        with signals_blocked(self):
            self._write()
        self._show_marks()
        self._update_formula()

    def set_input_shape(self, input_shape, map_names: list[str] | None = None) -> None:
        """A new input (maps, H, W) for the formula; the stage is unchanged."""
        self._input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)
        self._map_names = list(map_names) if map_names else None
        self._update_formula()

    def stage(self):
        """A new stage object with the current values."""
        return copy.deepcopy(self._stage)

    def field(self, name: str) -> QWidget | None:
        """The widget that shows core's field ``name`` (for marks and tests)."""
        return self._fields.get(name)

    def show_error(self, err: PipelineError | None) -> None:
        """Mark the field ``err`` names (red border, tooltip) and say why; None clears."""
        self._error = err
        self._show_marks()
        self._update_formula()

    # ---------------------------------------------------------------- for subclasses

    def _write(self) -> None:
        raise NotImplementedError

    def _edited(self) -> None:
        self._update_formula()
        self.stageChanged.emit()

    def _field_for(self, field: str | None):
        """(widget, reason) to mark for a core field name; subclasses extend."""
        return self._fields.get(field or "")

    def _show_marks(self) -> None:
        err = self._error
        target = self._field_for(err.field) if err is not None else None
        for w in self._fields.values():
            if isinstance(w, FieldFrame):
                w.set_error(err.reason if w is target else None)
        if err is None:
            self.message_label.clear()
            self.message_label.hide()
        else:
            what = (err.field or "").replace("_", " ")
            self.message_label.setText(f"{what[:1].upper() + what[1:]}: {err.reason}"
                                       if what else err.reason)
            self.message_label.show()

    def _update_formula(self) -> None:
        shape = self._input_shape
        if shape is None:
            self.formula_label.setText("Output size: known once an image is loaded")
            return
        try:
            out = stage_output_shape(0, self._stage, shape)
            formula = stage_formula(self._stage, shape[1:])
        except (PipelineError, ValueError, TypeError) as exc:
            reason = exc.reason if isinstance(exc, PipelineError) else str(exc)
            # the error line under the form already says it when the pipeline reported it
            self.formula_label.setText("Output size: none with these settings"
                                       + ("" if self._error is not None else f" ({reason})"))
            return
        maps = f"{out[0]} map{'s' if out[0] != 1 else ''}"
        if tuple(out[1:]) == tuple(shape[1:]) and "unchanged" in formula:
            self.formula_label.setText(f"Output: {maps} of {out[1]}×{out[2]} (size unchanged)")
        else:
            self.formula_label.setText(f"Output: {maps} of {out[1]}×{out[2]}\n"
                                       + formula.replace("; ", "\n"))


def _form() -> QFormLayout:
    form = QFormLayout()
    form.setContentsMargins(6, 6, 6, 6)
    form.setHorizontalSpacing(8)
    form.setVerticalSpacing(4)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


def _finish(editor: StageEditor, *boxes) -> None:
    lay = QVBoxLayout(editor)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(6)
    for b in boxes:
        lay.addWidget(b)
    lay.addWidget(editor.formula_label)
    lay.addWidget(editor.message_label)
    lay.addStretch(1)


# ------------------------------------------------------------------------- convolution


def _identity(shape) -> np.ndarray:
    w = np.zeros(shape)
    w[shape[0] // 2, shape[1] // 2] = 1.0
    return w


class ConvStageEditor(StageEditor):
    """Kernels (list + :class:`KernelEditor`), mode, stride, padding, border, dilation."""

    stage_type = ConvStage

    def __init__(self, parent=None):
        self._kernel_index = 0
        self._pad_form = None      # how the stage wrote custom padding: int, pair or full
        self._kernel_error: tuple[int, str, str] | None = None   # (index, part, reason)
        super().__init__(parent)
        self._stage = ConvStage([Kernel(_identity((3, 3)), name="identity")])
        self._build()
        self.set_stage(self._stage)

    def _build(self) -> None:
        # kernels
        self.kernel_list = QListWidget()
        self.kernel_list.setToolTip("The stage's kernels; double-click a name to rename it")
        self.kernel_list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                         | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.kernel_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.kernel_list.setFixedHeight(3 * self.kernel_list.fontMetrics().height() + 12)
        self.kernel_list.currentRowChanged.connect(self._on_kernel_row)
        self.kernel_list.itemChanged.connect(self._on_kernel_renamed)
        self.add_kernel_button = QPushButton("Add")
        self.add_kernel_button.setToolTip("Add an identity kernel of the stage's kernel size")
        self.add_kernel_button.clicked.connect(self.add_kernel)
        self.remove_kernel_button = QPushButton("Remove")
        self.remove_kernel_button.clicked.connect(self.remove_kernel)
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.add_kernel_button)
        buttons.addWidget(self.remove_kernel_button)
        buttons.addStretch(1)
        self.kernels_field = FieldFrame(self.kernel_list, tooltip=self.kernel_list.toolTip())
        list_row = QHBoxLayout()
        list_row.setSpacing(4)
        list_row.addWidget(self.kernels_field, 1)
        list_row.addLayout(buttons)
        self.kernel_editor = KernelEditor()
        self.kernel_editor.kernelChanged.connect(self._on_kernel_edited)
        kernels_box = QGroupBox("Kernels")
        kbox = QVBoxLayout(kernels_box)
        kbox.setContentsMargins(6, 6, 6, 6)
        kbox.setSpacing(6)
        kbox.addLayout(list_row)
        kbox.addWidget(self.kernel_editor)

        # sliding window
        self.mode_combo = _combo(CONV_MODE_TEXT, CONV_MODES,
                                 "How kernels combine the incoming maps")
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.mode_field = FieldFrame(self.mode_combo)
        self.stride_field = PairSpin("Step between windows", 0,
                                     "Step of the window in pixels (rows × cols); "
                                     "2 halves the output")
        self.stride_field.valueChanged.connect(self._on_stride)
        self.padding_combo = _combo(PADDING_TEXT, PADDING_TEXT, "Border added before sliding")
        self.padding_combo.currentIndexChanged.connect(self._on_padding_kind)
        self.pad_spins = {side: _spin(0, SPIN_MAX, f"Cells of padding added at the {side}")
                          for side in ("top", "bottom", "left", "right")}
        custom = QWidget()
        grid = QGridLayout(custom)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(2)
        for i, side in enumerate(("top", "bottom", "left", "right")):
            r, c = divmod(i, 2)
            lab = QLabel(side)
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(lab, r, 2 * c)
            grid.addWidget(self.pad_spins[side], r, 2 * c + 1)
            self.pad_spins[side].valueChanged.connect(self._on_custom_padding)
        grid.setColumnStretch(4, 1)
        self.custom_padding = custom
        self.padding_field = FieldFrame(self.padding_combo, None,
                                        tooltip="Border added around the input before sliding")
        self.padding_mode_combo = _combo(PADDING_MODE_TEXT, PADDING_MODES,
                                         "What the padded border is filled with")
        self.padding_mode_combo.currentIndexChanged.connect(self._on_padding_mode)
        self.cval_spin = QDoubleSpinBox()
        self.cval_spin.setRange(-1e6, 1e6)
        self.cval_spin.setDecimals(3)
        self.cval_spin.setSingleStep(0.1)
        self.cval_spin.setMaximumWidth(96)
        self.cval_spin.setToolTip("Fill value of 'constant' padding (images are 0..1)")
        self.cval_spin.valueChanged.connect(self._on_cval)
        self.padding_mode_field = FieldFrame(self.padding_mode_combo, None,
                                             tooltip="What the padded border is filled with")
        self.cval_field = FieldFrame(self.cval_spin, None, tooltip=self.cval_spin.toolTip())
        self.dilation_field = PairSpin("Gap between kernel taps", 0,
                                       "Spacing of the kernel's taps (rows × cols): 2 spreads "
                                       "a 3x3 kernel over 5x5 pixels")
        self.dilation_field.valueChanged.connect(self._on_dilation)

        window_box = QGroupBox("Sliding window")
        form = _form()
        form.addRow(form_label("Mode", self.mode_combo.property("baseToolTip")),
                    self.mode_field)
        form.addRow(form_label("Stride", self.stride_field.toolTip()), self.stride_field)
        form.addRow(form_label("Padding", self.padding_field.toolTip()), self.padding_field)
        form.addRow("", self.custom_padding)
        form.addRow(form_label("Border", self.padding_mode_field.toolTip()),
                    self.padding_mode_field)
        form.addRow(form_label("Value", self.cval_spin.toolTip()), self.cval_field)
        form.addRow(form_label("Dilation", self.dilation_field.toolTip()), self.dilation_field)
        window_box.setLayout(form)
        self._window_form = form

        self._fields = {"mode": self.mode_field, "stride": self.stride_field,
                        "padding": self.padding_field, "padding_mode": self.padding_mode_field,
                        "cval": self.cval_field, "dilation": self.dilation_field,
                        "kernels": self.kernels_field}
        # the geometry first: it was below the fold at 1280x800 (the kernel grid follows)
        _finish(self, window_box, kernels_box)

    # ------------------------------------------------------------------------- API

    def kernel_index(self) -> int:
        return self._kernel_index

    def set_input_shape(self, input_shape, map_names: list[str] | None = None) -> None:
        super().set_input_shape(input_shape, map_names)
        self.kernel_editor.set_maps(self._n_maps(), self._map_names)

    def select_kernel(self, i: int) -> None:
        """Show kernel ``i`` in the kernel editor (no stageChanged)."""
        self.kernel_list.setCurrentRow(i)

    def add_kernel(self) -> None:
        kernels = self._stage.kernels
        shape = kernels[0].shape if kernels else (3, 3)
        names = {k.name for k in kernels}
        n = len(kernels) + 1
        while f"kernel {n}" in names:
            n += 1
        kernels.append(Kernel(_identity(shape), name=f"kernel {n}"))
        self._kernel_index = len(kernels) - 1
        self._write_kernels()
        self._edited()

    def remove_kernel(self) -> None:
        kernels = self._stage.kernels
        if len(kernels) <= 1:
            return
        del kernels[self._kernel_index]
        self._kernel_index = min(self._kernel_index, len(kernels) - 1)
        self._write_kernels()
        self._edited()

    # ----------------------------------------------------------------------- writing

    def _n_maps(self) -> int:
        if self._input_shape is not None:
            return self._input_shape[0]
        for k in self._stage.kernels:
            if k.per_channel:
                return k.weights.shape[0]
        return 3

    def _write(self) -> None:
        st = self._stage
        self._kernel_index = 0
        self._write_kernels()
        with signals_blocked(self.mode_combo, self.padding_combo, self.padding_mode_combo,
                             self.cval_spin, *self.pad_spins.values()):
            _select(self.mode_combo, st.mode)
            _sync_combo_tip(self.mode_combo)
            self.stride_field.set_value(st.stride)
            self.dilation_field.set_value(st.dilation)
            if isinstance(st.padding, str):
                _select(self.padding_combo, st.padding)
                self._pad_form = None
                self._fill_custom_from(st.padding)
            else:
                _select(self.padding_combo, "custom")
                self._write_custom(st.padding)
            _sync_combo_tip(self.padding_combo)
            _select(self.padding_mode_combo, st.padding_mode)
            _sync_combo_tip(self.padding_mode_combo)
            self.cval_spin.setValue(float(st.cval) if np.isfinite(st.cval) else 0.0)
        self._update_enabled()

    def _write_kernels(self) -> None:
        kernels = self._stage.kernels
        self._kernel_index = max(0, min(self._kernel_index, len(kernels) - 1))
        with signals_blocked(self.kernel_list):
            self.kernel_list.clear()
            for k in kernels:
                item = QListWidgetItem(k.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.kernel_list.addItem(item)
            self.kernel_list.setCurrentRow(self._kernel_index)
        self._style_kernel_items()
        self._load_kernel()
        full = len(kernels) >= MAX_KERNELS
        self.add_kernel_button.setEnabled(not full)
        self.add_kernel_button.setToolTip(
            f"A stage holds at most {MAX_KERNELS} kernels" if full
            else "Add an identity kernel of the stage's kernel size")
        last = len(kernels) <= 1
        self.remove_kernel_button.setEnabled(not last)
        self.remove_kernel_button.setToolTip(
            "A convolution stage needs at least one kernel" if last
            else "Remove the selected kernel")

    def _load_kernel(self) -> None:
        kernels = self._stage.kernels
        if not kernels:
            return
        names = self._map_names
        self.kernel_editor.set_kernel(kernels[self._kernel_index], self._n_maps(), names)
        self._mark_kernel_editor()

    def _write_custom(self, padding) -> None:
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
                isinstance(p, (tuple, list)) for p in padding):
            (t, b), (le, r) = padding
            self._pad_form = "full"
        elif isinstance(padding, (tuple, list)):
            (t, le), (b, r) = padding, padding
            self._pad_form = "pair"
        else:
            t = b = le = r = padding
            self._pad_form = "int"
        for side, v in zip(("top", "bottom", "left", "right"), (t, b, le, r)):
            with signals_blocked(self.pad_spins[side]):
                self.pad_spins[side].setValue(int(v))

    def _fill_custom_from(self, preset: str) -> None:
        """Pre-fill the custom spins with what a named padding means here."""
        st = self._stage
        hw = self._input_shape[1:] if self._input_shape is not None else None
        try:
            (t, b), (le, r) = resolve_padding(preset, st.kernels[0].shape, st.stride,
                                              st.dilation, hw)
        except (ValueError, TypeError, IndexError):
            return
        for side, v in zip(("top", "bottom", "left", "right"), (t, b, le, r)):
            with signals_blocked(self.pad_spins[side]):
                self.pad_spins[side].setValue(int(v))

    def _custom_value(self):
        t, b, le, r = (self.pad_spins[s].value() for s in ("top", "bottom", "left", "right"))
        if self._pad_form == "int" and t == b == le == r:
            return t
        if self._pad_form == "pair" and t == b and le == r:
            return (t, le)
        return ((t, b), (le, r))

    def _update_enabled(self) -> None:
        custom = self.padding_combo.currentData() == "custom"
        self.custom_padding.setVisible(custom)
        self._window_form.setRowVisible(self.custom_padding, custom)
        constant = self.padding_mode_combo.currentData() == "constant"
        self.cval_spin.setEnabled(constant)
        self.cval_field.setToolTip(self.cval_spin.toolTip() if constant else
                                   "Only used by 'constant' padding")

    # ------------------------------------------------------------------------ errors

    def _field_for(self, field):
        if re.match(r"kernel (\d+)\b", field or ""):
            return self.kernels_field     # plus the kernel's item and the kernel editor
        return super()._field_for(field)

    def _show_marks(self) -> None:
        err = self._error
        self._kernel_error = None
        if err is not None:
            m = re.match(r"kernel (\d+)\b", err.field or "")
            if m:
                part = ("bias" if err.field.endswith(" bias") else
                        "divisor" if err.field.endswith(" divisor") else "weights")
                self._kernel_error = (int(m.group(1)) - 1, part, err.reason)
        super()._show_marks()
        self._style_kernel_items()
        self._mark_kernel_editor()

    def _style_kernel_items(self) -> None:
        bad = self._kernel_error
        with signals_blocked(self.kernel_list):
            for i in range(self.kernel_list.count()):
                item = self.kernel_list.item(i)
                k = self._stage.kernels[i]
                if bad is not None and bad[0] == i:
                    item.setForeground(QBrush(QColor("#c62828")))
                    item.setToolTip(f"{bad[1]}: {bad[2]}")
                else:
                    item.setData(Qt.ItemDataRole.ForegroundRole, None)
                    kind = f"{len(k.weights)} maps × " if k.per_channel else ""
                    item.setToolTip(f"{kind}{k.shape[0]}x{k.shape[1]}; double-click to rename")

    def _mark_kernel_editor(self) -> None:
        bad = self._kernel_error
        if bad is not None and bad[0] == self._kernel_index:
            self.kernel_editor.mark(bad[1], bad[2])
        else:
            self.kernel_editor.mark(None, None)

    # ------------------------------------------------------------------------ slots

    def _on_kernel_row(self, row: int) -> None:
        if row < 0 or row >= len(self._stage.kernels):
            return
        self._kernel_index = row
        self._load_kernel()

    def _on_kernel_renamed(self, item: QListWidgetItem) -> None:
        i = self.kernel_list.row(item)
        name = item.text().strip()
        k = self._stage.kernels[i]
        if not name or name == k.name:
            with signals_blocked(self.kernel_list):
                item.setText(k.name)
            return
        k.name = name
        if i == self._kernel_index:
            self._load_kernel()
        self._edited()

    def _on_kernel_edited(self) -> None:
        k = self.kernel_editor.kernel()   # its name too: a preset names the kernel
        self._stage.kernels[self._kernel_index] = k
        item = self.kernel_list.item(self._kernel_index)
        if item is not None and item.text() != k.name:
            with signals_blocked(self.kernel_list):
                item.setText(k.name)
        self._style_kernel_items()
        self._edited()

    def _on_mode(self, _i) -> None:
        self._stage.mode = self.mode_combo.currentData()
        self._edited()

    def _on_stride(self) -> None:
        self._stage.stride = self.stride_field.value()
        self._edited()

    def _on_dilation(self) -> None:
        self._stage.dilation = self.dilation_field.value()
        self._edited()

    def _on_padding_kind(self, _i) -> None:
        kind = self.padding_combo.currentData()
        if kind == "custom":
            previous = self._stage.padding
            if isinstance(previous, str):
                self._fill_custom_from(previous)
            self._stage.padding = self._custom_value()
        else:
            self._stage.padding = kind
        self._update_enabled()
        self._edited()

    def _on_custom_padding(self, _v) -> None:
        if self.padding_combo.currentData() != "custom":
            return
        self._stage.padding = self._custom_value()
        self._edited()

    def _on_padding_mode(self, _i) -> None:
        self._stage.padding_mode = self.padding_mode_combo.currentData()
        self._update_enabled()
        self._edited()

    def _on_cval(self, v: float) -> None:
        self._stage.cval = float(v)
        self._edited()


# -------------------------------------------------------------------------- activation


class ActivationEditor(StageEditor):
    """The activation function and, for leaky ReLU, its slope alpha."""

    stage_type = ActivationStage

    def __init__(self, parent=None):
        super().__init__(parent)
        self.function_combo = _combo(ACTIVATION_TEXT, ACTIVATIONS,
                                     "Function applied to every value of every map")
        self.function_combo.currentIndexChanged.connect(self._on_function)
        self.alpha_spin = QDoubleSpinBox()
        self.alpha_spin.setRange(-MAX_ALPHA, MAX_ALPHA)   # what core accepts
        self.alpha_spin.setDecimals(4)
        self.alpha_spin.setSingleStep(0.01)
        self.alpha_spin.setMaximumWidth(96)
        self.alpha_spin.setToolTip("Slope of leaky ReLU for negative values (PyTorch's default "
                                   "0.01)")
        self.alpha_spin.valueChanged.connect(self._on_alpha)
        self.function_field = FieldFrame(self.function_combo)
        self.alpha_field = FieldFrame(self.alpha_spin, None, tooltip=self.alpha_spin.toolTip())
        box = QGroupBox("Activation")
        form = _form()
        form.addRow(form_label("Function", self.function_combo.property("baseToolTip")),
                    self.function_field)
        form.addRow(form_label("Alpha", self.alpha_spin.toolTip()), self.alpha_field)
        box.setLayout(form)
        self._fields = {"function": self.function_field, "alpha": self.alpha_field}
        _finish(self, box)
        self.set_stage(ActivationStage())

    def _write(self) -> None:
        st = self._stage
        with signals_blocked(self.function_combo, self.alpha_spin):
            _select(self.function_combo, st.function)
            _sync_combo_tip(self.function_combo)
            self.alpha_spin.setValue(float(st.alpha) if np.isfinite(st.alpha) else 0.0)
        self._update_enabled()

    def _update_enabled(self) -> None:
        leaky = self._stage.function == "leaky_relu"
        self.alpha_spin.setEnabled(leaky)
        self.alpha_field.setToolTip(self.alpha_spin.toolTip() if leaky
                                    else "Only used by leaky ReLU")

    def _on_function(self, _i) -> None:
        self._stage.function = self.function_combo.currentData()
        self._update_enabled()
        self._edited()

    def _on_alpha(self, v: float) -> None:
        self._stage.alpha = float(v)
        self._edited()


# ----------------------------------------------------------------------------- pooling


class PoolEditor(StageEditor):
    """Pooling mode, window, stride (or 'same as window'), padding, dilation, options."""

    stage_type = PoolStage

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mode_combo = _combo(POOL_MODE_TEXT, POOL_MODES, "What each window keeps")
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.mode_field = FieldFrame(self.mode_combo, None)
        self.window_field = PairSpin("Window size", 0, "Window size in pixels (rows × cols)")
        self.window_field.valueChanged.connect(self._on_window)
        self.stride_field = PairSpin("Step between windows", 0,
                                     "Step of the window in pixels (rows × cols)")
        self.stride_field.valueChanged.connect(self._on_stride)
        self.same_stride_check = QCheckBox("= window")
        self.same_stride_check.setToolTip("Stride equal to the window: windows tile the map "
                                          "without overlap (PyTorch's default)")
        self.same_stride_check.toggled.connect(self._on_same_stride)
        self.stride_field.layout().insertWidget(3, self.same_stride_check)
        self.padding_field = PairSpin("Padding", 0, "Cells added on both sides (rows × cols); "
                                                    "at most half the window")
        self.padding_field.valueChanged.connect(self._on_padding)
        self.dilation_field = PairSpin("Gap between window taps", 0,
                                       "Spacing of the window's taps (rows × cols)")
        self.dilation_field.valueChanged.connect(self._on_dilation)
        self.ceil_check = QCheckBox("Ceil mode")
        self.ceil_check.setToolTip("Round the output size up: a last partial window at the "
                                   "bottom/right is kept")
        self.ceil_check.toggled.connect(self._on_ceil)
        self.count_pad_check = QCheckBox("Count padding")
        self.count_pad_check.setToolTip("Average divides by the whole window, padded zeros "
                                        "included (PyTorch's count_include_pad)")
        self.count_pad_check.toggled.connect(self._on_count_pad)
        self.options_field = FieldFrame(self.ceil_check, self.count_pad_check, None)

        box = QGroupBox("Pooling")
        form = _form()
        form.addRow(form_label("Mode", self.mode_combo.property("baseToolTip")),
                    self.mode_field)
        form.addRow(form_label("Window", self.window_field.toolTip()), self.window_field)
        form.addRow(form_label("Stride", self.stride_field.toolTip()), self.stride_field)
        form.addRow(form_label("Padding", self.padding_field.toolTip()), self.padding_field)
        form.addRow(form_label("Dilation", self.dilation_field.toolTip()), self.dilation_field)
        form.addRow(form_label("Options"), self.options_field)
        box.setLayout(form)
        self._fields = {"mode": self.mode_field, "kernel_size": self.window_field,
                        "stride": self.stride_field, "padding": self.padding_field,
                        "dilation": self.dilation_field}
        _finish(self, box)
        self.set_stage(PoolStage())

    def _write(self) -> None:
        st = self._stage
        with signals_blocked(self.mode_combo, self.same_stride_check, self.ceil_check,
                             self.count_pad_check):
            _select(self.mode_combo, st.mode)
            _sync_combo_tip(self.mode_combo)
            self.window_field.set_value(st.kernel_size)
            self.same_stride_check.setChecked(st.stride is None)
            self.stride_field.set_value(st.kernel_size if st.stride is None else st.stride)
            self.padding_field.set_value(st.padding)
            self.dilation_field.set_value(st.dilation)
            self.ceil_check.setChecked(bool(st.ceil_mode))
            self.count_pad_check.setChecked(bool(st.count_include_pad))
        self._update_enabled()

    def _update_enabled(self) -> None:
        same = self._stage.stride is None
        self.stride_field.setEnabled(not same)
        avg = self._stage.mode == "avg"
        self.count_pad_check.setEnabled(avg)
        self.count_pad_check.setToolTip(
            "Average divides by the whole window, padded zeros included (PyTorch's "
            "count_include_pad)" if avg else "Only used by average pooling")

    def _on_mode(self, _i) -> None:
        self._stage.mode = self.mode_combo.currentData()
        self._update_enabled()
        self._edited()

    def _on_window(self) -> None:
        self._stage.kernel_size = self.window_field.value()
        if self._stage.stride is None:    # the disabled stride shows the window
            self.stride_field.set_value(self._stage.kernel_size)
        self._edited()

    def _on_stride(self) -> None:
        if self._stage.stride is None:
            return
        self._stage.stride = self.stride_field.value()
        self._edited()

    def _on_same_stride(self, on: bool) -> None:
        if on:
            self._stage.stride = None
            self.stride_field.set_value(self._stage.kernel_size)
        else:
            self._stage.stride = self.stride_field.value()
        self._update_enabled()
        self._edited()

    def _on_padding(self) -> None:
        self._stage.padding = self.padding_field.value()
        self._edited()

    def _on_dilation(self) -> None:
        self._stage.dilation = self.dilation_field.value()
        self._edited()

    def _on_ceil(self, on: bool) -> None:
        self._stage.ceil_mode = bool(on)
        self._edited()

    def _on_count_pad(self, on: bool) -> None:
        self._stage.count_include_pad = bool(on)
        self._edited()


EDITORS: dict[type, type[StageEditor]] = {
    ConvStage: ConvStageEditor,
    ActivationStage: ActivationEditor,
    PoolStage: PoolEditor,
}
"""The editor class for each stage type."""
