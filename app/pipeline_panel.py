"""The pipeline panel: the list of stages, add/remove/reorder, and the selected stage's editor.

:class:`PipelinePanel` owns a copy of the :class:`core.pipeline.Pipeline`; each user
action (adding, removing or moving a stage, any edit in a stage editor) updates that
copy and the stage list, then emits ``pipelineChanged`` once. The window runs the
pipeline (debounced) and sends back the shapes (:meth:`PipelinePanel.set_shapes`) and
the error, if any (:meth:`PipelinePanel.show_error`).
"""

from __future__ import annotations

import copy

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QIcon, QPixmap
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ..core.pipeline import (
    CHANNEL_NAMES,
    ActivationStage,
    ConvStage,
    Kernel,
    Pipeline,
    PipelineError,
    PoolStage,
    stage_formula,
)

from .form_widgets import signals_blocked
from .stage_editors import EDITORS, StageEditor

__all__ = ["PipelinePanel", "NEW_STAGES"]


def _identity_3x3() -> np.ndarray:
    w = np.zeros((3, 3))
    w[1, 1] = 1.0
    return w


NEW_STAGES = {
    "conv": lambda: ConvStage([Kernel(_identity_3x3(), name="identity")]),
    "activation": lambda: ActivationStage("relu"),
    "pool": lambda: PoolStage("max", 2),
}
"""Factories of the stages the Add buttons insert."""

KIND_TITLES = {"conv": "convolution", "activation": "activation", "pool": "pooling"}
ERROR_RED = QColor("#c62828")
DIM = QColor("#808080")


def _describe(stage) -> str:
    try:
        return stage.describe()
    except (ValueError, TypeError):   # describe() checks numbers the user may have typed
        return f"{stage.kind} (invalid settings)"


class PipelinePanel(QWidget):
    """Stage list with Add/Remove/Up/Down, and the editor of the selected stage.

    Signals
    -------
    pipelineChanged()
        Once per user edit, after the stage list shows it; never from the setters.
    """

    pipelineChanged = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._pipeline = Pipeline([])
        self._input_shape: tuple[int, int, int] | None = None
        self._shapes: list = []
        self._error: PipelineError | None = None
        self._current = -1
        self._editors: dict[type, StageEditor] = {}
        self._build()
        self._rebuild_list(-1)

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        title = QLabel("Stages")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.stage_list = QListWidget()
        self.stage_list.setToolTip("The pipeline runs from top to bottom; select a stage to "
                                   "edit it")
        self.stage_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.stage_list.setWordWrap(True)
        self.stage_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.stage_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stage_list.setMinimumHeight(90)
        self.stage_list.setMaximumHeight(8 * self.stage_list.fontMetrics().height() + 12)
        self.stage_list.currentRowChanged.connect(self._on_row)

        style = self.style()
        self.add_conv_button = QPushButton("Add conv")
        self.add_conv_button.setToolTip("Insert a convolution stage (3x3 identity kernel) "
                                        "after the selected stage")
        self.add_activation_button = QPushButton("Add activation")
        self.add_activation_button.setToolTip("Insert a ReLU activation after the selected "
                                              "stage")
        self.add_pool_button = QPushButton("Add pool")
        self.add_pool_button.setToolTip("Insert a 2x2 max pooling stage after the selected "
                                        "stage")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon))
        self.remove_button.setToolTip("Remove the selected stage")
        self.up_button = QPushButton("Up")
        self.up_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp))
        self.up_button.setToolTip("Move the selected stage one place earlier")
        self.down_button = QPushButton("Down")
        self.down_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown))
        self.down_button.setToolTip("Move the selected stage one place later")
        self.add_conv_button.clicked.connect(lambda: self.add_stage("conv"))
        self.add_activation_button.clicked.connect(lambda: self.add_stage("activation"))
        self.add_pool_button.clicked.connect(lambda: self.add_stage("pool"))
        self.remove_button.clicked.connect(self.remove_stage)
        self.up_button.clicked.connect(lambda: self.move_stage(-1))
        self.down_button.clicked.connect(lambda: self.move_stage(1))
        buttons = QGridLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.setHorizontalSpacing(4)
        buttons.setVerticalSpacing(4)
        for col, b in enumerate((self.add_conv_button, self.add_activation_button,
                                 self.add_pool_button)):
            buttons.addWidget(b, 0, col)
        for col, b in enumerate((self.remove_button, self.up_button, self.down_button)):
            buttons.addWidget(b, 1, col)

        # the editors live in one container; only the selected stage's is visible
        self._editor_title = QLabel()
        self._editor_title.setFont(font)
        self._editor_title.setWordWrap(True)
        self._placeholder = QLabel("Select a stage to edit it, or add one.")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("color: #808080;")
        self._editor_box = QWidget()
        self._editor_layout = QVBoxLayout(self._editor_box)
        self._editor_layout.setContentsMargins(0, 0, 4, 0)
        self._editor_layout.setSpacing(6)
        self._editor_layout.addWidget(self._editor_title)
        self._editor_layout.addWidget(self._placeholder)
        self._editor_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(self._editor_box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.scroll_area = scroll

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {ERROR_RED.name()};")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        lay.addWidget(title)
        lay.addWidget(self.stage_list)
        lay.addLayout(buttons)
        lay.addWidget(self.error_label)
        lay.addWidget(line)
        lay.addWidget(scroll, 1)

    # ------------------------------------------------------------------ the document
    def bind_document(self, doc) -> None:
        """Edit ``doc`` (:class:`app.document.Document`) and follow it: each edit made
        here becomes one of its undo steps; a pipeline it announces that differs from
        the one shown (an undo, a loaded file) is shown; results give the stage sizes,
        errors mark the stage and field at fault."""
        self.pipelineChanged.connect(lambda: doc.edit_pipeline(self.pipeline()))
        doc.pipelineChanged.connect(self._follow_pipeline)
        doc.resultChanged.connect(
            lambda out: self.set_shapes(out.result.input.shape,
                                        [s.shape for s in out.result.stages]))
        doc.errorChanged.connect(self.show_error)

    def _follow_pipeline(self, p: Pipeline) -> None:
        if p.to_dict() != self._pipeline.to_dict():
            self.set_pipeline(p)

    # ------------------------------------------------------------------------- API

    def set_pipeline(self, p: Pipeline) -> None:
        """Show a copy of ``p``; keeps the selected row if it still exists. No signal."""
        self._pipeline = Pipeline([copy.deepcopy(s) for s in p.stages])
        self._shapes = []
        self._error = None
        self._show_error_line()
        n = len(self._pipeline.stages)
        row = self._current if 0 <= self._current < n else (0 if n else -1)
        self._rebuild_list(row)

    def pipeline(self) -> Pipeline:
        """A copy of the pipeline as edited (it may be invalid: core says why)."""
        return Pipeline([copy.deepcopy(s) for s in self._pipeline.stages])

    def current_stage(self) -> int:
        """Index of the selected stage, -1 if none."""
        return self._current

    def current_editor(self) -> StageEditor | None:
        if self._current < 0:
            return None
        return self._editors.get(EDITORS[type(self._pipeline.stages[self._current])])

    def select_stage(self, i: int) -> None:
        """Select stage ``i`` (shows its editor; no pipelineChanged)."""
        self.stage_list.setCurrentRow(i)

    def set_shapes(self, input_shape, shapes: list) -> None:
        """Per-stage output shapes (maps, H, W) from the last run; ``shapes`` may stop
        short at a failing stage."""
        self._input_shape = None if input_shape is None else tuple(int(v) for v in
                                                                     input_shape)
        self._shapes = [tuple(int(v) for v in s) for s in shapes]
        for i in range(self.stage_list.count()):
            self._update_item(i)
        editor = self.current_editor()
        if editor is not None:
            editor.set_input_shape(self._input_of(self._current),
                                   self._map_names_of(self._current))

    def show_error(self, err: PipelineError | None) -> None:
        """Mark the failing stage in the list and, if it is shown, its field."""
        self._error = err
        for i in range(self.stage_list.count()):
            self._update_item(i)
        self._show_error_line()
        editor = self.current_editor()
        if editor is not None:
            editor.show_error(err if err is not None and err.stage == self._current else None)

    def add_stage(self, kind: str) -> None:
        """Insert a new ``kind`` ("conv", "activation", "pool") after the selection."""
        at = self._current + 1 if self._current >= 0 else len(self._pipeline.stages)
        self._pipeline.stages.insert(at, NEW_STAGES[kind]())
        self._structure_changed(at)

    def remove_stage(self) -> None:
        i = self._current
        if i < 0:
            return
        del self._pipeline.stages[i]
        self._structure_changed(min(i, len(self._pipeline.stages) - 1))

    def move_stage(self, step: int) -> None:
        i, j = self._current, self._current + step
        stages = self._pipeline.stages
        if i < 0 or not 0 <= j < len(stages):
            return
        stages[i], stages[j] = stages[j], stages[i]
        self._structure_changed(j)

    def add_kernel(self, weights: np.ndarray, name: str) -> None:
        """Add a kernel to the selected (else the first) conv stage and show it.

        A conv stage is created at the front when there is none.
        """
        kernel = Kernel(np.array(weights, dtype=np.float64), name=name)
        stages = self._pipeline.stages
        if 0 <= self._current < len(stages) and isinstance(stages[self._current], ConvStage):
            at = self._current
        else:
            at = next((i for i, s in enumerate(stages) if isinstance(s, ConvStage)), None)
        if at is None:
            stages.insert(0, ConvStage([kernel]))
            at = 0
            self._structure_changed(at, emit=False)
        else:
            stages[at].kernels.append(kernel)
            self._rebuild_list(at)
        editor = self.current_editor()
        if editor is not None and hasattr(editor, "select_kernel"):
            editor.select_kernel(len(stages[at].kernels) - 1)
        self.pipelineChanged.emit()

    # ---------------------------------------------------------------------- internals

    def _show_error_line(self) -> None:
        """The panel's own error line only points at a failing stage that is not the one
        shown: the shown editor marks its field and says why itself (the same message
        appeared three times: here, in the editor and in the window's banner)."""
        err = self._error
        elsewhere = err is not None and err.stage != self._current
        self.error_label.setText(f"Stage {err.stage + 1} has a problem: select it to see "
                                 f"which field" if elsewhere else "")
        self.error_label.setVisible(elsewhere)

    def _structure_changed(self, select: int, emit: bool = True) -> None:
        # shapes and errors refer to the old order until the window runs again
        self._shapes = []
        self._error = None
        self._show_error_line()
        self._rebuild_list(select)
        if emit:
            self.pipelineChanged.emit()

    def _input_of(self, i: int):
        if self._input_shape is None:
            return None
        if i == 0:
            return self._input_shape
        return self._shapes[i - 1] if i - 1 < len(self._shapes) else None

    def _map_names_of(self, i: int):
        if i == 0 and self._input_shape is not None:
            return CHANNEL_NAMES.get(self._input_shape[0])
        return None

    def _rebuild_list(self, select: int) -> None:
        with signals_blocked(self.stage_list):
            self.stage_list.clear()
            for _ in self._pipeline.stages:
                self.stage_list.addItem(QListWidgetItem())
            for i in range(len(self._pipeline.stages)):
                self._update_item(i)
            self.stage_list.setCurrentRow(select)
        self._on_row(select)

    def _update_item(self, i: int) -> None:
        item = self.stage_list.item(i)
        stage = self._pipeline.stages[i]
        err = self._error if self._error is not None and self._error.stage == i else None
        inp = self._input_of(i)
        if err is not None:
            second = f"error in {err.field}" if err.field else "error"
            tip = str(err)
        elif i < len(self._shapes):
            m, h, w = self._shapes[i]
            second = f"→ {m} map{'s' if m != 1 else ''} of {h}×{w}"
            try:
                tip = stage_formula(stage, inp[1:]) if inp is not None else ""
            except (ValueError, TypeError):
                tip = ""
        else:
            second = "" if self._input_shape is None else "not computed"
            tip = ""
        text = f"{i + 1}. {_describe(stage)}"
        item.setText(text + (f"\n     {second}" if second else ""))
        item.setToolTip(tip or text)
        if err is not None:
            item.setForeground(QBrush(ERROR_RED))
            item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole,
                         QBrush(DIM) if second == "not computed" else None)
            item.setIcon(self._blank_icon())

    def _blank_icon(self):
        # keep every item's text at the same indent whether or not it has an icon
        if not hasattr(self, "_blank"):
            size = self.stage_list.iconSize()
            side = size.width() if size.width() > 0 else 16
            pix = QPixmap(side, side)
            pix.fill(Qt.GlobalColor.transparent)
            self._blank = QIcon(pix)
        return self._blank

    def _editor_for(self, stage) -> StageEditor:
        cls = EDITORS[type(stage)]
        editor = self._editors.get(cls)
        if editor is None:
            editor = cls()
            editor.hide()
            editor.stageChanged.connect(lambda ed=editor: self._on_stage_edited(ed))
            self._editor_layout.insertWidget(self._editor_layout.count() - 1, editor)
            self._editors[cls] = editor
        return editor

    def _on_row(self, row: int) -> None:
        stages = self._pipeline.stages
        self._current = row if 0 <= row < len(stages) else -1
        shown = None
        if self._current >= 0:
            stage = stages[self._current]
            shown = self._editor_for(stage)
            shown.set_stage(stage, self._input_of(self._current),
                            self._map_names_of(self._current))
            err = self._error
            shown.show_error(err if err is not None and err.stage == self._current else None)
            self._editor_title.setText(f"Stage {self._current + 1}: "
                                       f"{KIND_TITLES.get(stage.kind, stage.kind)}")
        for editor in self._editors.values():
            editor.setVisible(editor is shown)
        self._placeholder.setVisible(shown is None)
        self._editor_title.setVisible(shown is not None)
        n = len(stages)
        self.remove_button.setEnabled(self._current >= 0)
        self.up_button.setEnabled(self._current > 0)
        self.down_button.setEnabled(0 <= self._current < n - 1)
        self._show_error_line()

    def _on_stage_edited(self, editor: StageEditor) -> None:
        if self._current < 0:
            return
        self._pipeline.stages[self._current] = editor.stage()
        self._update_item(self._current)
        self.pipelineChanged.emit()
