"""The kernel editor: a grid of weights with presets, paste, normalise, flip and randomise.

:class:`KernelEditor` is the view of one :class:`core.kernel_draft.KernelDraft` (the
kernel being edited: weights, one shared 2-D kernel or one slice per incoming map,
divisor, bias (GIMP's offset), flip, name, and whatever typed text is not a value).
Every number is parsed and every operation computed by ``core``; this module only
shows the draft: the weight grid is :class:`app.kernel_grid.WeightGrid`, the form's
shared widgets come from :mod:`app.form_widgets`.

Invalid text (a cell that is not a number, a divisor of 0) is marked where it was
typed and named in the red error line; the editor then keeps the last good kernel and
emits nothing until the text is fixed.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont, QGuiApplication
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.kernel_draft import KernelDraft, anchor, number_text, parse_number
from ..core.kernels import PRESETS, KernelParseError, format_kernel, parse_kernel
from ..core.pipeline import MAX_KERNEL_SIDE, Kernel
from .form_widgets import STYLE_SHEET, FieldFrame, form_label, row, signals_blocked
from .kernel_grid import WeightGrid

# the form helpers and number functions used to live here; other modules import them
__all__ = ["KernelEditor", "PasteDialog", "FieldFrame", "signals_blocked", "form_label",
           "STYLE_SHEET", "parse_number", "number_text"]

CATEGORY_TITLES = {"identity": "Identity", "blur": "Blur", "sharpen": "Sharpen",
                   "edge": "Edges (first differences)", "laplacian": "Second derivatives",
                   "emboss": "Emboss", "random-init": "Random initial weights"}


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
        self.draft = KernelDraft()
        """The kernel being edited (:mod:`core.kernel_draft`): every edit goes there."""
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
        # below the grid, so that it appearing does not move the size arrows being clicked
        self.anchor_label = QLabel()
        self.anchor_label.setObjectName("hintLabel")
        self.anchor_label.setWordWrap(True)
        self.anchor_label.hide()

        self.rows_spin = self._size_spin("Kernel height (rows), 1 to "
                                         f"{MAX_KERNEL_SIDE}; growing adds rows of 0")
        self.cols_spin = self._size_spin("Kernel width (columns), 1 to "
                                         f"{MAX_KERNEL_SIDE}; growing adds columns of 0")
        self.size_field = FieldFrame(self.rows_spin, "×", self.cols_spin, "rows × cols", None,
                                     tooltip="Kernel size; non-square kernels are allowed")

        self.table = WeightGrid()
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
        form.addRow("", self.anchor_label)
        actions = QHBoxLayout()
        actions.setSpacing(4)
        actions.addWidget(self.paste_button)
        actions.addWidget(self.randomise_button)
        actions.addStretch(1)
        form.addRow("", actions)
        form.addRow(form_label("Divisor", self.divisor_edit.toolTip()),
                    row(self.divisor_field, self.normalise_button))
        form.addRow(form_label("Bias", self.bias_edit.toolTip()), row(self.bias_field))
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
        self.draft.load(kernel, n_maps, map_names)
        self._refresh()

    def set_maps(self, n_maps: int, map_names: list[str] | None = None) -> None:
        """Tell the editor how many maps come in (used by the per-channel toggle)."""
        self.draft.set_maps(n_maps, map_names)
        self._refresh()

    def kernel(self) -> Kernel:
        """A new Kernel with the current valid values (the last good ones while invalid)."""
        return self.draft.kernel()

    def has_error(self) -> bool:
        """True while a cell or field holds text that is not a valid value."""
        return self.draft.has_error()

    def error_text(self) -> str:
        return self.error_label.text()

    def current_slice(self) -> int:
        return self.draft.slice

    def set_cell(self, row: int, col: int, text: str) -> None:
        """Put ``text`` in a cell as a user's edit would (same path as typing)."""
        self.table.item(row, col).setText(text)

    def cell_text(self, row: int, col: int) -> str:
        return self.table.item(row, col).text()

    def load_preset(self, name: str) -> None:
        """Load a preset into the grid (the current slice when per channel); a shared
        kernel is renamed after it, so the maps' captions say what it is."""
        self.draft.load_preset(name)
        self._changed(structural=True)

    def paste_text(self, text: str) -> bool:
        """Parse kernel text (core.kernels.parse_kernel) into the grid.

        On a parse error the error line says why and nothing changes; returns
        whether the text was used.
        """
        if not self.draft.paste(text):
            self._update_status()
            return False
        self._changed(structural=True)
        return True

    def paste_clipboard(self) -> bool:
        return self.paste_text(QGuiApplication.clipboard().text())

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(format_kernel(self.draft.current()))

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
        self.draft.normalise()
        self._changed(structural=True)

    def randomise(self) -> None:
        """He-normal weights (core.kernels.random_kernel), seeded by ``random_seed``."""
        self.draft.randomise()
        self._changed(structural=True)

    @property
    def random_seed(self) -> int:
        """Seed of the next Randomise (increments on each use: runs are reproducible)."""
        return self.draft.random_seed

    @random_seed.setter
    def random_seed(self, seed: int) -> None:
        self.draft.random_seed = int(seed)

    def resize_kernel(self, rows: int, cols: int) -> None:
        """Resize keeping the kernel centred (core.kernel_draft.resize_centred)."""
        if self.draft.resize(rows, cols):
            self._changed(structural=True)

    def set_per_channel(self, on: bool) -> None:
        self.per_channel_check.setChecked(on)

    def select_slice(self, i: int) -> None:
        self.channel_combo.setCurrentIndex(i)

    def mark(self, field: str | None, reason: str | None) -> None:
        """Show an error found by the pipeline: ``field`` is "weights", "bias",
        "divisor" or None (the whole kernel); ``reason`` None clears it."""
        self.draft.mark(field, reason)
        self._update_status()

    # ------------------------------------------------------------------ edits

    def _changed(self, *, structural: bool) -> None:
        """The draft changed by a user action: refresh the widgets (``structural``:
        all of them, from the draft), then notify once if the kernel is valid."""
        if structural:
            self._refresh()
        else:
            self._update_status()
        self._maybe_emit()

    def _maybe_emit(self) -> None:
        if self.draft.take_change():
            self.kernelChanged.emit()

    # -------------------------------------------------------------------- widget slots

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        r, c = item.row(), item.column()
        outcome = self.draft.set_cell_text(r, c, item.text())
        w = self.draft.current()
        if outcome == "invalid":
            self.table.style_cell(r, c, w, self.draft.bad[(r, c)])
        else:
            self.table.set_cell_text(r, c, number_text(w[r, c]))  # "1/16" shows as 0.0625
            if outcome == "changed":   # tints are relative to the largest weight
                self.table.show_weights(w, self.draft.bad)
            else:
                self.table.style_cell(r, c, w, None)
        self._update_status()
        self._maybe_emit()

    def _on_size(self, _value: int) -> None:
        self.resize_kernel(self.rows_spin.value(), self.cols_spin.value())

    def _on_preset_index(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name is not None:
            self.load_preset(name)

    def _on_number_text(self, which: str, text: str) -> None:
        self.draft.set_number_text(which, text)
        self._update_status()
        self._maybe_emit()

    def _on_flip(self, on: bool) -> None:
        self.draft.set_flip(on)
        self._changed(structural=False)

    def _on_per_channel(self, on: bool) -> None:
        if self.draft.set_per_channel(on):
            self._changed(structural=True)

    def _on_slice(self, index: int) -> None:
        if self.draft.select_slice(index):
            self._refresh()

    # ----------------------------------------------------------------------- views

    def _refresh(self) -> None:
        """Write the whole draft into the widgets, signals blocked."""
        d = self.draft
        kh, kw = d.shape
        with signals_blocked(self.rows_spin, self.cols_spin, self.flip_check,
                             self.per_channel_check, self.channel_combo, self.divisor_edit,
                             self.bias_edit, self.preset_combo):
            self.rows_spin.setValue(kh)
            self.cols_spin.setValue(kw)
            self.flip_check.setChecked(d.flip)
            self.per_channel_check.setChecked(d.per_channel)
            self.channel_combo.clear()
            if d.per_channel:
                self.channel_combo.addItems([d.map_name(i) for i in range(d.w.shape[0])])
                self.channel_combo.setCurrentIndex(d.slice)
            else:
                self.channel_combo.addItem("shared")
            self.channel_combo.setEnabled(d.per_channel)
            if "divisor" not in d.field_errors:
                self.divisor_edit.setText(number_text(d.divisor))
            if "bias" not in d.field_errors:
                self.bias_edit.setText(number_text(d.bias))
        self.table.show_weights(d.current(), d.bad)
        self._update_status()

    def _update_status(self) -> None:
        """Preset combo, hint, field marks and the error line from the draft."""
        d = self.draft
        name = d.matching_preset()
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
        kh, kw = d.shape
        even = kh % 2 == 0 or kw % 2 == 0   # no middle cell: say which tap is the anchor
        self.anchor_label.setText(f"Even size: row {anchor(kh) + 1}, column {anchor(kw) + 1} "
                                  f"(bold) sits over the output pixel, as in PyTorch's "
                                  f"'same'" if even else "")
        self.anchor_label.setVisible(even)
        self.divisor_field.set_error(d.field_error("divisor"))
        self.bias_field.set_error(d.field_error("bias"))
        messages = d.messages()
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
