"""GUI tests of the kernel editor, the stage editors and the pipeline panel (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QGuiApplication

from convscope.app.kernel_editor import KernelEditor
from convscope.app.pipeline_panel import PipelinePanel
from convscope.app.stage_editors import (
    EDITORS,
    ActivationEditor,
    ConvStageEditor,
    PoolEditor,
)
from convscope.core.kernels import PRESETS, preset, random_kernel
from convscope.core.pipeline import (
    ActivationStage,
    ConvStage,
    Kernel,
    Pipeline,
    PipelineError,
    PoolStage,
    default_pipeline,
)


class Counter:
    """Counts emissions of a signal."""

    def __init__(self, signal):
        self.n = 0
        signal.connect(self._hit)

    def _hit(self, *args):
        self.n += 1


@pytest.fixture
def make(qtbot):
    """Create a widget for the test and keep it alive until teardown.

    qtbot only holds a weak reference: a shown top-level widget that nothing else
    references would be garbage-collected (and its C++ side deleted) while pytest-qt
    processes its paint events after the test body returns.
    """
    keep = []

    def _make(cls, *args):
        w = cls(*args)
        qtbot.addWidget(w)
        keep.append(w)
        return w

    yield _make
    keep.clear()


def kernel_3x3(values=None, **kw) -> Kernel:
    w = np.arange(9, dtype=float).reshape(3, 3) if values is None else np.array(values, float)
    return Kernel(w, **kw)


# ------------------------------------------------------------------------ KernelEditor


def test_cell_edit_changes_kernel_and_emits_once(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    hits = Counter(ed.kernelChanged)
    ed.set_cell(1, 2, "-2.5")
    assert hits.n == 1
    assert ed.kernel().weights[1, 2] == -2.5
    assert not ed.has_error()
    ed.set_cell(1, 2, "-2.5")          # same text: no change, no signal
    assert hits.n == 1


def test_set_kernel_does_not_emit_and_copies(qtbot, make):
    ed = make(KernelEditor)
    hits = Counter(ed.kernelChanged)
    k = kernel_3x3(bias=0.25, divisor=3.0, flip=True, name="mine")
    ed.set_kernel(k)
    assert hits.n == 0
    out = ed.kernel()
    assert out is not k and out.weights is not k.weights
    assert out.to_dict() == k.to_dict()


def test_invalid_cell_is_marked_and_keeps_last_good_kernel(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    hits = Counter(ed.kernelChanged)
    ed.set_cell(1, 2, "abc")
    assert hits.n == 0
    assert ed.has_error()
    item = ed.table.item(1, 2)
    assert item.toolTip() == "row 2, column 3: 'abc' is not a number"
    assert item.background().color().red() > 200 and item.background().color().green() < 200
    assert "row 2, column 3: 'abc' is not a number" in ed.error_text()
    assert ed.error_label.isVisibleTo(ed)
    np.testing.assert_array_equal(ed.kernel().weights, np.arange(9.0).reshape(3, 3))
    # other edits while invalid do not emit either
    ed.flip_check.setChecked(True)
    assert hits.n == 0
    # fixing the cell emits once, with every pending change
    ed.set_cell(1, 2, "7")
    assert hits.n == 1 and not ed.has_error()
    assert ed.kernel().weights[1, 2] == 7 and ed.kernel().flip
    assert ed.error_text() == ""


@pytest.mark.parametrize("text, reason", [
    ("nan", "not a finite number"), ("inf", "not a finite number"),
    ("", "empty"), ("1 2", "not a single number"), ("1/0", "divides by zero"),
])
def test_other_invalid_cells(qtbot, make, text, reason):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    hits = Counter(ed.kernelChanged)
    ed.set_cell(0, 0, text)
    assert ed.has_error() and hits.n == 0
    assert ed.table.item(0, 0).toolTip().startswith("row 1, column 1: ")
    assert reason in ed.table.item(0, 0).toolTip()


def test_fraction_cell_accepted(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    with qtbot.waitSignal(ed.kernelChanged, timeout=100):
        ed.set_cell(0, 0, "1/16")
    assert ed.kernel().weights[0, 0] == 1 / 16
    assert not ed.has_error()


def test_preset_selection_loads_exact_weights(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(Kernel(np.zeros((2, 2)), divisor=5.0, bias=0.3))
    hits = Counter(ed.kernelChanged)
    combo = ed.preset_combo
    combo.setCurrentIndex(combo.findData("gaussian_3x3"))
    assert hits.n == 1
    k = ed.kernel()
    np.testing.assert_array_equal(k.weights, preset("gaussian_3x3"))
    assert k.divisor == 1.0           # the weights are already divided: never divide again
    assert k.bias == 0.0
    assert PRESETS["gaussian_3x3"].display in ed.hint_label.text()
    assert combo.currentText() == PRESETS["gaussian_3x3"].label
    # every preset loads exactly, non-square and 1x1 included
    for name in PRESETS:
        ed.load_preset(name)
        np.testing.assert_array_equal(ed.kernel().weights, preset(name), err_msg=name)


def test_preset_combo_has_every_preset_with_description(qtbot, make):
    ed = make(KernelEditor)
    combo = ed.preset_combo
    names = [combo.itemData(i) for i in range(combo.count()) if combo.itemData(i)]
    assert names == list(PRESETS)
    i = combo.findData("sobel_left")
    assert combo.itemText(i) == PRESETS["sobel_left"].label
    assert combo.itemData(i, Qt.ItemDataRole.ToolTipRole) == PRESETS["sobel_left"].description


def test_editing_a_preset_shows_custom(qtbot, make):
    ed = make(KernelEditor)
    ed.load_preset("outline")
    assert ed.preset_combo.currentData() == "outline"
    ed.set_cell(0, 0, "5")
    assert ed.preset_combo.currentData() is None


def test_resize_keeps_the_kernel_centred(qtbot, make):
    """Issue 12: growing added zeros at the bottom/right, moving the centre."""
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    hits = Counter(ed.kernelChanged)
    ed.rows_spin.setValue(5)
    assert hits.n == 1
    w = ed.kernel().weights
    assert w.shape == (5, 3)
    np.testing.assert_array_equal(w[1:4], np.arange(9.0).reshape(3, 3))   # a ring added
    np.testing.assert_array_equal(w[[0, 4]], 0)
    assert ed.table.rowCount() == 5 and ed.table.columnCount() == 3
    ed.cols_spin.setValue(1)                                              # the middle kept
    np.testing.assert_array_equal(ed.kernel().weights[1:4, 0], [1, 4, 7])


def test_normalise(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(Kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]]))
    with qtbot.waitSignal(ed.kernelChanged, timeout=100):
        ed.normalise_button.click()
    k = ed.kernel()
    assert (k.divisor, k.bias) == (16.0, 0.0)
    assert ed.divisor_edit.text() == "16"
    ed.set_kernel(Kernel(preset("outline")))
    ed.normalise()
    assert (ed.kernel().divisor, ed.kernel().bias) == (1.0, 0.5)
    ed.set_kernel(Kernel(-np.ones((2, 2))))
    ed.normalise()
    assert (ed.kernel().divisor, ed.kernel().bias) == (4.0, 1.0)


def test_divisor_zero_refused(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3(divisor=4.0))
    hits = Counter(ed.kernelChanged)
    ed.divisor_edit.setText("0")
    assert ed.has_error() and hits.n == 0
    assert ed.kernel().divisor == 4.0
    assert "0 is refused" in ed.error_text()
    assert ed.divisor_field.property("error") is True
    ed.divisor_edit.setText("1/2")
    assert hits.n == 1 and ed.kernel().divisor == 0.5
    assert ed.divisor_field.property("error") is False
    ed.bias_edit.setText("0.25")
    assert hits.n == 2 and ed.kernel().bias == 0.25


def test_paste_text_through_parser(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    hits = Counter(ed.kernelChanged)
    assert ed.paste_text("[1 2 1; 2 4 2; 1 2 1] / 16")
    assert hits.n == 1
    np.testing.assert_array_equal(ed.kernel().weights, preset("gaussian_3x3"))
    assert ed.paste_text("[[1, 0], [0, -1]]")
    assert ed.kernel().shape == (2, 2) and ed.rows_spin.value() == 2
    # a parse error: said in red, nothing changes
    before = ed.kernel().weights
    assert not ed.paste_text("1 2\n3 x")
    assert hits.n == 2
    assert "row 2, column 2: 'x' is not a number" in ed.error_text()
    np.testing.assert_array_equal(ed.kernel().weights, before)
    assert not ed.has_error()


def test_paste_button_opens_dialog(qtbot, make):
    ed = make(KernelEditor)
    ed.show()
    dialogs = []
    qtbot.waitUntil(lambda: True)
    from PyQt6.QtCore import QTimer
    from convscope.app.kernel_editor import PasteDialog

    def answer():
        dlg = next(w for w in ed.findChildren(PasteDialog) if w.isVisible())
        dialogs.append(dlg.windowTitle())
        dlg.edit.setPlainText("[1 2; 3 4]")
        dlg.try_accept()

    QTimer.singleShot(50, answer)
    with qtbot.waitSignal(ed.kernelChanged, timeout=2000):
        ed.paste_button.click()
    assert dialogs == ["Paste kernel"]
    np.testing.assert_array_equal(ed.kernel().weights, [[1, 2], [3, 4]])


def test_ctrl_v_on_grid_pastes_clipboard(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    ed.show()
    QGuiApplication.clipboard().setText("0 1 0\n1 -4 1\n0 1 0")
    ed.table.setFocus()
    with qtbot.waitSignal(ed.kernelChanged, timeout=500):
        qtbot.keyClick(ed.table, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(ed.kernel().weights, preset("laplacian"))


def test_flip_toggles(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    with qtbot.waitSignal(ed.kernelChanged, timeout=100):
        ed.flip_check.setChecked(True)
    assert ed.kernel().flip is True
    ed.flip_check.setChecked(False)
    assert ed.kernel().flip is False


def test_randomise_is_reproducible(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(Kernel(np.zeros((3, 5))))
    ed.randomise_button.click()
    expected = random_kernel((3, 5), rng=np.random.default_rng(0), fan_in=15)
    np.testing.assert_array_equal(ed.kernel().weights, expected)
    ed.randomise()
    expected = random_kernel((3, 5), rng=np.random.default_rng(1), fan_in=15)
    np.testing.assert_array_equal(ed.kernel().weights, expected)


def test_per_channel_toggle(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3(), n_maps=3)
    hits = Counter(ed.kernelChanged)
    ed.per_channel_check.setChecked(True)
    assert hits.n == 1
    w = ed.kernel().weights
    assert w.shape == (3, 3, 3)
    for s in range(3):
        np.testing.assert_array_equal(w[s], np.arange(9.0).reshape(3, 3))
    assert [ed.channel_combo.itemText(i) for i in range(3)] == ["R", "G", "B"]
    # the grid edits the chosen slice only
    ed.channel_combo.setCurrentIndex(1)
    assert hits.n == 1
    ed.set_cell(0, 0, "100")
    w = ed.kernel().weights
    assert w[1, 0, 0] == 100 and w[0, 0, 0] == 0 and w[2, 0, 0] == 0
    # back to shared takes the current slice
    ed.per_channel_check.setChecked(False)
    w = ed.kernel().weights
    assert w.shape == (3, 3) and w[0, 0] == 100


def test_per_channel_kernel_round_trips_with_map_names(qtbot, make):
    ed = make(KernelEditor)
    w = np.stack([np.full((2, 2), i, float) for i in range(4)])
    ed.set_kernel(Kernel(w, name="k"), n_maps=4, map_names=["a", "b", "c", "d"])
    assert ed.per_channel_check.isChecked()
    assert ed.channel_combo.itemText(3) == "d"
    np.testing.assert_array_equal(ed.kernel().weights, w)
    ed.channel_combo.setCurrentIndex(2)
    assert ed.cell_text(0, 0) == "2"


def test_structural_edit_drops_invalid_text(qtbot, make):
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    ed.set_cell(0, 0, "zz")
    assert ed.has_error()
    with qtbot.waitSignal(ed.kernelChanged, timeout=100):
        ed.rows_spin.setValue(4)
    assert not ed.has_error()
    assert ed.cell_text(0, 0) == "0"


# ------------------------------------------------------------------------ stage editors


def test_editors_dict_maps_every_stage_type():
    assert EDITORS == {ConvStage: ConvStageEditor, ActivationStage: ActivationEditor,
                       PoolStage: PoolEditor}


def test_each_editor_round_trips_the_default_pipeline(qtbot, make):
    for stage in default_pipeline().stages:
        ed = make(EDITORS[type(stage)])
        hits = Counter(ed.stageChanged)
        ed.set_stage(stage, (3, 64, 64))
        out = ed.stage()
        assert hits.n == 0
        assert type(out) is type(stage) and out is not stage
        assert out.to_dict() == stage.to_dict()


@pytest.mark.parametrize("stage", [
    ConvStage([Kernel(np.ones((3, 3)), 0.5, 9.0, True, "a"),
               Kernel(np.ones((3, 3, 3)), name="b")], "sum", (2, 1), ((1, 0), (2, 1)),
              "constant", 0.25, (1, 2)),
    ConvStage([Kernel(np.eye(5))], stride=3, padding=2, padding_mode="reflect"),
    ConvStage([Kernel(np.eye(2))], padding=(1, 0)),
    ActivationStage("leaky_relu", 0.123456),
    PoolStage("avg", (3, 2), (1, 2), (1, 0), 1, True, False),
    PoolStage("l2", 3, 3),
])
def test_editors_round_trip_other_stages(qtbot, make, stage):
    ed = make(EDITORS[type(stage)])
    ed.set_stage(stage, None)
    assert ed.stage().to_dict() == stage.to_dict()


def test_conv_stride_zero_error_marks_field(qtbot, make):
    ed = make(ConvStageEditor)
    ed.set_stage(default_pipeline().stages[0], (3, 32, 32))
    hits = Counter(ed.stageChanged)
    ed.stride_field.rows.setValue(0)        # the widget lets the user type 0
    assert hits.n == 1
    assert ed.stage().stride == (0, 1)
    with pytest.raises(PipelineError) as info:
        Pipeline([ed.stage()]).validate((3, 32, 32))
    err = info.value
    assert (err.stage, err.field) == (0, "stride")
    ed.show_error(err)
    field = ed.field("stride")
    assert field.property("error") is True
    assert err.reason in field.toolTip()
    assert err.reason in ed.stride_field.rows.toolTip()
    assert ed.message_label.isVisibleTo(ed) and err.reason in ed.message_label.text()
    assert ed.field("padding").property("error") is False
    ed.show_error(None)
    assert field.property("error") is False
    assert err.reason not in field.toolTip()
    assert not ed.message_label.isVisibleTo(ed)


def test_conv_kernel_error_marks_kernel(qtbot, make):
    st = ConvStage([Kernel(np.ones((3, 3)), name="a"), Kernel(np.ones((3, 3)), name="b")])
    ed = make(ConvStageEditor)
    ed.set_stage(st, (3, 16, 16))
    err = PipelineError(0, "kernel 2 (b) divisor", "must be a non-zero finite number, got 0.0")
    ed.show_error(err)
    assert ed.kernel_list.item(1).foreground().color().name() == "#c62828"
    assert ed.kernel_editor.divisor_field.property("error") is False   # kernel 1 shown
    ed.select_kernel(1)
    assert ed.kernel_editor.divisor_field.property("error") is True


def test_conv_custom_padding(qtbot, make):
    ed = make(ConvStageEditor)
    ed.set_stage(default_pipeline().stages[0], (3, 32, 32))
    hits = Counter(ed.stageChanged)
    assert not ed.custom_padding.isVisibleTo(ed)
    ed.padding_combo.setCurrentIndex(ed.padding_combo.findData("custom"))
    assert ed.custom_padding.isVisibleTo(ed)
    assert ed.stage().padding == ((1, 1), (1, 1))    # pre-filled with what 'same' meant
    for side, v in zip(("top", "bottom", "left", "right"), (1, 2, 3, 0)):
        ed.pad_spins[side].setValue(v)
    assert ed.stage().padding == ((1, 2), (3, 0))
    assert hits.n == 4    # the combo, then three spins that changed
    ed.padding_combo.setCurrentIndex(ed.padding_combo.findData("valid"))
    assert ed.stage().padding == "valid"


def test_conv_cval_only_for_constant_and_other_fields(qtbot, make):
    ed = make(ConvStageEditor)
    ed.set_stage(default_pipeline().stages[0], (3, 32, 32))
    assert not ed.cval_spin.isEnabled()
    ed.padding_mode_combo.setCurrentIndex(ed.padding_mode_combo.findData("constant"))
    assert ed.cval_spin.isEnabled()
    ed.cval_spin.setValue(0.5)
    ed.mode_combo.setCurrentIndex(ed.mode_combo.findData("sum"))
    ed.dilation_field.cols.setValue(2)
    st = ed.stage()
    assert (st.padding_mode, st.cval, st.mode, st.dilation) == ("constant", 0.5, "sum", (1, 2))
    tip = ed.padding_mode_combo.itemData(ed.padding_mode_combo.findData("reflect"),
                                         Qt.ItemDataRole.ToolTipRole)
    assert "d c b | a b c d | c b a" in tip


def test_conv_kernel_list(qtbot, make):
    ed = make(ConvStageEditor)
    ed.set_stage(default_pipeline().stages[0], (3, 32, 32))
    hits = Counter(ed.stageChanged)
    assert not ed.remove_kernel_button.isEnabled()      # not the last one
    ed.add_kernel_button.click()
    assert hits.n == 1
    st = ed.stage()
    assert len(st.kernels) == 2
    np.testing.assert_array_equal(st.kernels[1].weights, preset("identity"))
    assert ed.kernel_index() == 1 and ed.remove_kernel_button.isEnabled()
    # rename (as a double-click edit would)
    ed.kernel_list.item(1).setText("centre")
    assert hits.n == 2 and ed.stage().kernels[1].name == "centre"
    # the kernel editor edits the selected kernel
    ed.kernel_editor.set_cell(0, 0, "3")
    assert hits.n == 3
    assert ed.stage().kernels[1].weights[0, 0] == 3
    assert ed.stage().kernels[0].weights[0, 0] == -1
    ed.remove_kernel_button.click()
    assert [k.name for k in ed.stage().kernels] == ["outline"]
    assert hits.n == 4


def test_conv_formula_label(qtbot, make):
    ed = make(ConvStageEditor)
    ed.set_stage(ConvStage([Kernel(np.ones((3, 3)))], stride=3, padding=1), (3, 256, 256))
    assert "D = 1 + (256 - 3 + 2*1) / 3 = 86" in ed.formula_label.text()
    ed.stride_field.rows.setValue(0)
    assert "none" in ed.formula_label.text()


def test_activation_editor(qtbot, make):
    ed = make(ActivationEditor)
    ed.set_stage(ActivationStage("relu"), (3, 8, 8))
    assert not ed.alpha_spin.isEnabled()
    with qtbot.waitSignal(ed.stageChanged, timeout=100):
        ed.function_combo.setCurrentIndex(ed.function_combo.findData("leaky_relu"))
    assert ed.alpha_spin.isEnabled()
    ed.alpha_spin.setValue(0.2)
    assert ed.stage().to_dict() == {"type": "activation", "function": "leaky_relu",
                                    "alpha": 0.2}


def test_pool_same_as_window(qtbot, make):
    ed = make(PoolEditor)
    ed.set_stage(PoolStage("max", 2, 1), (3, 16, 16))
    assert not ed.same_stride_check.isChecked()
    hits = Counter(ed.stageChanged)
    ed.same_stride_check.setChecked(True)
    assert hits.n == 1
    assert ed.stage().stride is None
    assert not ed.stride_field.rows.isEnabled()
    ed.window_field.rows.setValue(3)
    assert ed.stage().kernel_size == (3, 2) and ed.stage().stride is None
    ed.same_stride_check.setChecked(False)
    assert ed.stage().stride == (3, 2)
    assert not ed.count_pad_check.isEnabled()
    ed.mode_combo.setCurrentIndex(ed.mode_combo.findData("avg"))
    assert ed.count_pad_check.isEnabled()
    ed.count_pad_check.setChecked(False)
    ed.ceil_check.setChecked(True)
    st = ed.stage()
    assert (st.mode, st.count_include_pad, st.ceil_mode) == ("avg", False, True)


def test_pool_error_marks_window(qtbot, make):
    ed = make(PoolEditor)
    ed.set_stage(PoolStage("max", 2), (3, 16, 16))
    ed.window_field.rows.setValue(0)
    with pytest.raises(PipelineError) as info:
        Pipeline([ed.stage()]).validate((3, 16, 16))
    ed.show_error(info.value)
    assert ed.field("kernel_size").property("error") is True


# ----------------------------------------------------------------------- pipeline panel


def stage_types(panel):
    return [type(s) for s in panel.pipeline().stages]


def test_set_pipeline_does_not_emit_and_copies(qtbot, make):
    panel = make(PipelinePanel)
    hits = Counter(panel.pipelineChanged)
    p = default_pipeline()
    panel.set_pipeline(p)
    assert hits.n == 0
    assert panel.pipeline().to_dict() == p.to_dict()
    assert panel.pipeline().stages[0] is not p.stages[0]
    assert panel.stage_list.count() == 3
    assert panel.stage_list.item(0).text().startswith(
        "1. conv 1 kernel 3x3 per channel, stride 1, same")
    assert panel.current_stage() == 0


def test_add_remove_reorder_stages(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(default_pipeline())
    hits = Counter(panel.pipelineChanged)
    panel.select_stage(0)
    assert hits.n == 0
    panel.add_pool_button.click()                     # inserted after the selection
    assert hits.n == 1
    assert stage_types(panel) == [ConvStage, PoolStage, ActivationStage, PoolStage]
    assert panel.current_stage() == 1
    panel.add_activation_button.click()
    assert hits.n == 2
    assert stage_types(panel)[2] is ActivationStage
    panel.add_conv_button.click()
    assert hits.n == 3 and stage_types(panel)[3] is ConvStage
    panel.remove_button.click()
    assert hits.n == 4
    assert stage_types(panel) == [ConvStage, PoolStage, ActivationStage, ActivationStage,
                                  PoolStage]
    panel.select_stage(1)
    panel.up_button.click()
    assert hits.n == 5
    assert stage_types(panel)[:2] == [PoolStage, ConvStage]
    assert panel.current_stage() == 0 and not panel.up_button.isEnabled()
    panel.down_button.click()
    panel.down_button.click()
    assert hits.n == 7
    assert stage_types(panel) == [ConvStage, ActivationStage, PoolStage, ActivationStage,
                                  PoolStage]
    assert panel.stage_list.item(2).text().startswith("3. max pool 2x2")


def test_editing_a_stage_updates_list_and_emits_once(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(default_pipeline())
    panel.select_stage(0)
    hits = Counter(panel.pipelineChanged)
    editor = panel.current_editor()
    assert isinstance(editor, ConvStageEditor)
    editor.stride_field.rows.setValue(2)
    editor.stride_field.cols.setValue(2)
    assert hits.n == 2
    assert panel.pipeline().stages[0].stride == 2
    assert "stride 2" in panel.stage_list.item(0).text()
    editor.kernel_editor.set_cell(1, 1, "9")
    assert hits.n == 3
    assert panel.pipeline().stages[0].kernels[0].weights[1, 1] == 9


def test_add_kernel_to_conv_stage(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(default_pipeline())
    panel.select_stage(2)                              # a pool stage: the first conv is used
    hits = Counter(panel.pipelineChanged)
    learned = np.arange(27, dtype=float).reshape(3, 3, 3)
    panel.add_kernel(learned, "learned 1")
    assert hits.n == 1
    st = panel.pipeline().stages[0]
    assert [k.name for k in st.kernels] == ["outline", "learned 1"]
    np.testing.assert_array_equal(st.kernels[1].weights, learned)
    assert panel.current_stage() == 0
    editor = panel.current_editor()
    assert editor.kernel_index() == 1
    np.testing.assert_array_equal(editor.kernel_editor.kernel().weights, learned)


def test_add_kernel_creates_conv_stage(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(Pipeline([ActivationStage("relu")]))
    hits = Counter(panel.pipelineChanged)
    panel.add_kernel(np.eye(3), "diag")
    assert hits.n == 1
    assert stage_types(panel) == [ConvStage, ActivationStage]
    assert panel.pipeline().stages[0].kernels[0].name == "diag"
    assert panel.current_stage() == 0


def test_shapes_and_error(qtbot, make):
    panel = make(PipelinePanel)
    p = default_pipeline()
    p.stages[2] = PoolStage("max", 40)
    panel.set_pipeline(p)
    hits = Counter(panel.pipelineChanged)
    with pytest.raises(PipelineError) as info:
        p.validate((3, 32, 32))
    err = info.value
    assert err.stage == 2
    panel.set_shapes((3, 32, 32), [(3, 32, 32), (3, 32, 32)])
    assert "3 maps of 32×32" in panel.stage_list.item(0).text()
    panel.select_stage(0)
    panel.show_error(err)
    assert hits.n == 0
    assert panel.current_stage() == 0                 # nothing selected automatically
    assert panel.stage_list.item(2).foreground().color().name() == "#c62828"
    assert "error" in panel.stage_list.item(2).text()
    # another stage is shown: the panel points at the failing one, without repeating
    # the message (the editor and the window's banner say it)
    assert "Stage 3" in panel.error_label.text() and err.reason not in panel.error_label.text()
    panel.select_stage(2)                             # the editor shows the mark
    editor = panel.current_editor()
    assert editor.field("kernel_size").property("error") is True
    assert not panel.error_label.isVisibleTo(panel)   # said once, in the editor
    panel.show_error(None)
    assert editor.field("kernel_size").property("error") is False
    assert not panel.error_label.isVisibleTo(panel)


def test_input_maps_reach_the_kernel_editor(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(default_pipeline())
    panel.select_stage(0)
    panel.set_shapes((1, 20, 20), [(1, 20, 20), (1, 20, 20), (1, 10, 10)])
    kernel_editor = panel.current_editor().kernel_editor
    kernel_editor.per_channel_check.setChecked(True)
    assert panel.pipeline().stages[0].kernels[0].weights.shape == (1, 3, 3)
    assert kernel_editor.channel_combo.itemText(0) == "gray"
    assert "1 map of 20×20" in panel.current_editor().formula_label.text()


def test_invalid_pipeline_can_be_copied(qtbot, make):
    panel = make(PipelinePanel)
    panel.set_pipeline(default_pipeline())
    panel.select_stage(0)
    panel.current_editor().dilation_field.rows.setValue(0)
    out = panel.pipeline()                      # no validation on copy: core reports it
    assert out.stages[0].dilation == (0, 1)
    assert "dilation 0x1" in panel.stage_list.item(0).text()  # described as typed


def test_geometry_spin_boxes_take_what_core_takes(qtbot, make):
    """Issue 11.6: spin boxes capped at 99 and turned a typed 300 into 30."""
    from PyQt6.QtTest import QTest
    from convscope.app.stage_editors import ConvStageEditor
    from convscope.core.pipeline import MAX_GEOMETRY
    ed = make(ConvStageEditor)
    spin = ed.stride_field.rows
    assert spin.maximum() == MAX_GEOMETRY
    spin.selectAll()
    QTest.keyClicks(spin, "300")
    spin.interpretText()
    assert spin.value() == 300


def test_the_rounding_note_is_right_for_full_padding():
    from convscope.core.geometry import conv_geometry
    note = conv_geometry((10, 10), (3, 3), stride=2, padding="full")[0].note()
    assert "0 input cell" not in note and "every input cell is visited" in note
    assert "last 2 input cell(s)" in conv_geometry((11, 11), (3, 3), stride=3)[0].note()


def test_resizing_one_step_at_a_time_stays_centred_and_states_the_anchor(qtbot, make):
    """The spin box's arrows resize one row at a time: 3 -> 4 -> 5 put the kernel in the
    top-left corner. An even size says which tap sits over the output pixel."""
    ed = make(KernelEditor)
    ed.set_kernel(kernel_3x3())
    ed.show()
    spin_y = ed.rows_spin.mapTo(ed, ed.rows_spin.rect().topLeft()).y()
    for n in (4, 5):
        ed.rows_spin.setValue(n)
        # the arrows being clicked stay where they were (the hint appears below the grid)
        assert ed.rows_spin.mapTo(ed, ed.rows_spin.rect().topLeft()).y() == spin_y
        ed.cols_spin.setValue(n)
        if n == 4:
            assert "row 2, column 2" in ed.anchor_label.text() and ed.anchor_label.isVisibleTo(ed)
            assert ed.table.verticalHeaderItem(1).font().bold()
            assert not ed.table.verticalHeaderItem(2).font().bold()
    w = ed.kernel().weights
    np.testing.assert_array_equal(w[1:4, 1:4], np.arange(9.0).reshape(3, 3))
    assert w.sum() == np.arange(9.0).sum()
    assert not ed.anchor_label.isVisibleTo(ed) and ed.table.verticalHeaderItem(2).font().bold()
