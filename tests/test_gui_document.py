"""The image tab's model (app.document.Document) and views bound to it, without a window.

Views do not call one another: an edit goes to the document (one undo step) and every
view follows the document's signals. These tests bind views to a bare document and
check that each follows it, and that edits from one reach the others only through it.
"""

import numpy as np
import pytest

from convscope.app.compute import PipelineRunner
from convscope.app.document import DISPLAY_DEFAULTS, Document
from convscope.app.explain_panel import ExplainPanel
from convscope.app.grid import FeatureGrid
from convscope.app.pipeline_panel import PipelinePanel
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PoolStage,
                                     default_pipeline)


def _snap(p: Pipeline):
    return p.to_dict()["stages"]


@pytest.fixture
def doc(qtbot):
    d = Document()
    d.reset_pipeline(default_pipeline())
    return d


@pytest.fixture
def bound(qtbot, doc):
    """A document with a runner, a pipeline editor, a grid and an explanation bound."""
    runner = PipelineRunner()
    runner.resultReady.connect(doc.set_result)
    panel, grid, explain = PipelinePanel(), FeatureGrid(), ExplainPanel()
    for view in (panel, grid, explain):
        qtbot.addWidget(view)
        view.bind_document(doc)
    panel.set_pipeline(doc.pipeline())
    doc.pipelineChanged.connect(lambda p: doc.image is not None and runner.request(doc.image, p))
    doc.imageChanged.connect(lambda: runner.request(doc.image, doc.pipeline()))
    image = np.random.default_rng(0).random((12, 14, 3)).astype(np.float32)
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.set_image(image, "noise")
    yield doc, panel, grid, explain
    runner.shutdown()


def test_an_edit_is_one_named_undo_step_and_undo_announces_the_old_pipeline(qtbot, doc):
    seen = []
    doc.pipelineChanged.connect(lambda p: seen.append(_snap(p)))
    before = _snap(doc.pipeline())
    pipe = doc.pipeline()
    pipe.stages.append(PoolStage())
    assert doc.edit_pipeline(pipe)
    assert doc.history.stack.undoText() == "add pool stage"
    assert seen[-1] == _snap(pipe) == _snap(doc.pipeline())
    doc.history.stack.undo()
    assert seen[-1] == before == _snap(doc.pipeline())
    doc.history.stack.redo()
    assert seen[-1] == _snap(pipe)
    assert not doc.edit_pipeline(doc.pipeline())      # nothing changed: no step


def test_listeners_get_copies_not_the_documents_pipeline(qtbot, doc):
    got = []
    doc.pipelineChanged.connect(got.append)
    doc.edit_pipeline(Pipeline([ConvStage([Kernel(np.eye(3))])]), "mine")
    got[-1].stages.clear()                            # a careless view
    assert len(doc.pipeline().stages) == 1


def test_display_settings_are_undoable_steps_named_after_the_setting(qtbot, doc):
    seen = []
    doc.displayChanged.connect(seen.append)
    doc.set_display({"colormap": "gray"})
    assert doc.history.stack.undoText() == "change colormap"
    assert seen[-1] == {**DISPLAY_DEFAULTS, "colormap": "gray"}
    doc.set_display({"clip": False})
    assert doc.history.stack.undoText() == "change 1 % clipping"
    doc.history.stack.undo()
    doc.history.stack.undo()
    assert seen[-1] == DISPLAY_DEFAULTS == doc.display
    n = doc.history.stack.count()
    doc.set_display({"colormap": "auto"})             # no change: no step
    assert doc.history.stack.count() == n
    doc.apply_display({"colormap": 3, "scale": "map", "bogus": 1})   # wrong types ignored
    assert doc.display == {**DISPLAY_DEFAULTS, "scale": "map"}


def test_panel_edits_reach_the_grid_and_explanation_only_through_the_document(qtbot, bound):
    doc, panel, grid, explain = bound
    grid.clicked.emit(0, 1, 3, 4)                     # as a click on stage 1, map G
    assert doc.selection == (0, doc.output.result.stages[0].labels[1], 3, 4)
    assert grid.selection == (0, 1, 3, 4)
    ex = explain.explanation()
    assert ex is not None and (ex.level, ex.row, ex.col) == (0, 3, 4)
    assert ex.value == pytest.approx(float(doc.output.result.stages[0].maps[1, 3, 4]))
    # an edit in the editor: one undo step, a new result, the explanation follows
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        panel.add_stage("activation")
    assert doc.history.stack.undoText() == "add activation stage"
    assert isinstance(doc.pipeline().stages[1], ActivationStage)
    assert explain.explanation() is not None and explain.explanation().row == 3
    # undo: the editor shows the old pipeline (it was not told by anyone else)
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.history.stack.undo()
    assert len(panel.pipeline().stages) == len(default_pipeline().stages)
    assert _snap(panel.pipeline()) == _snap(doc.pipeline())


def test_the_selection_follows_its_map_by_name_and_is_dropped_when_it_is_gone(qtbot, bound):
    doc, panel, grid, explain = bound
    res = doc.output.result
    label = res.stages[0].labels[2]
    grid.clicked.emit(0, 2, 1, 1)
    pipe = doc.pipeline()
    k = pipe.stages[0].kernels
    pipe.stages[0].kernels = [Kernel(np.ones((3, 3)), name="box"), *k]   # maps renumbered
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.edit_pipeline(pipe, "add a kernel")
    labels = doc.output.result.stages[0].labels
    assert doc.selection[1] == label and grid.selection == (0, labels.index(label), 1, 1)
    assert explain.explanation() is not None
    # a pipeline without that map: the selection and explanation are cleared
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.edit_pipeline(Pipeline([ConvStage([Kernel(np.eye(3), name="only")])]), "one")
    assert doc.selection is None and grid.selection is None and explain.explanation() is None


def test_an_invalid_edit_keeps_the_last_result_and_marks_the_editor(qtbot, bound):
    doc, panel, grid, explain = bound
    good = doc.output
    errors = []
    doc.errorChanged.connect(errors.append)
    pipe = doc.pipeline()
    pipe.stages[0].stride = 0
    with qtbot.waitSignal(doc.errorChanged, timeout=20000,
                          check_params_cb=lambda e: e is not None):
        doc.edit_pipeline(pipe, "stride 0")
    assert doc.output is good and errors[-1] is not None
    assert "stride" in str(errors[-1]).lower()
    assert panel.stage_list.item(0).foreground().color().name() == "#c62828"


def test_a_new_image_clears_the_selection_and_is_undoable(qtbot, bound):
    doc, panel, grid, explain = bound
    first = doc.image
    grid.clicked.emit(0, 0, 0, 0)
    assert explain.explanation() is not None
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.set_image(np.zeros((5, 6, 1), np.float32), "zeros")
    assert doc.selection is None and explain.explanation() is None
    assert doc.history.stack.undoText() == "open image zeros"
    with qtbot.waitSignal(doc.resultChanged, timeout=20000):
        doc.history.stack.undo()
    assert doc.image is first


def test_the_display_toolbar_edits_the_document_and_shows_what_it_announces(qtbot, doc):
    from convscope.app.display_toolbar import DisplayToolbar
    tb = DisplayToolbar()
    qtbot.addWidget(tb)
    tb.bind_document(doc)
    grid = FeatureGrid()
    qtbot.addWidget(grid)
    grid.bind_document(doc)
    tb.cmap_box.setCurrentText("gray")                # as the user picks it
    assert doc.display["colormap"] == "gray" and grid.cmap_choice == "gray"
    assert doc.history.stack.undoText() == "change colormap"
    tb.size_box.setCurrentText("large")
    assert grid.map_width == 480 and not grid.auto_size
    doc.history.stack.undo()
    doc.history.stack.undo()                           # the toolbar follows, no new steps
    assert tb.settings() == DISPLAY_DEFAULTS and doc.history.stack.index() == 0
    assert grid.auto_size and grid.cmap_choice == "auto"
    assert tb.valid({"colormap": "nope", "scale": "map", "clip": False}) == \
        {"scale": "map", "clip": False}
