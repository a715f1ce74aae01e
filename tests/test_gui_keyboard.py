"""The keyboard (issue 12): the map grid takes focus, arrows move a cursor cell,
PgUp/PgDn move between stages, Enter explains; menu shortcuts edit the pipeline; the
first start says where to begin."""

from __future__ import annotations

import pytest
from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtTest import QTest

from convscope.app.window import SAMPLE_IMAGE, MainWindow

TIMEOUT = 20_000


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT):
        w.load_image_file(str(SAMPLE_IMAGE), wait=True)
    yield w
    w.close()


def test_arrows_move_a_cursor_and_enter_explains_it(win, qtbot):
    grid = win.grid
    grid.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: grid.cursor is not None, timeout=TIMEOUT)
    assert grid.cursor == (-1, 0, 0, 0)
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Right, Qt.Key.Key_Down):
        QTest.keyClick(grid, key)
    assert grid.cursor == (-1, 0, 1, 2)
    assert grid.views()[(-1, 0)].marker.isVisible()      # shown like the hover
    QTest.keyClick(grid, Qt.Key.Key_PageDown)
    QTest.keyClick(grid, Qt.Key.Key_PageDown)
    QTest.keyClick(grid, Qt.Key.Key_PageDown)                # the 2x2 pool: half the size
    assert grid.cursor == (2, 0, 0, 1)
    QTest.keyClick(grid, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: win.explain_panel.explanation() is not None, timeout=TIMEOUT)
    ex = win.explain_panel.explanation()
    assert (ex.row, ex.col) == (0, 1)
    assert grid.views()[(2, 0)].sel_marker.isVisible()
    QTest.keyClick(grid, Qt.Key.Key_Escape)
    assert win.explain_panel.explanation() is None
    # the cursor stops at the edges
    for _ in range(5):
        QTest.keyClick(grid, Qt.Key.Key_PageDown)
        QTest.keyClick(grid, Qt.Key.Key_Up)
    assert grid.cursor[0] == 2 and grid.cursor[2] == 0


def test_menu_shortcuts_edit_the_pipeline(win, qtbot):
    win.panel.select_stage(0)
    n = len(win.panel.pipeline().stages)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        QTest.keyClick(win, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier |
                       Qt.KeyboardModifier.ShiftModifier)
    assert len(win.panel.pipeline().stages) == n + 1
    assert win.panel.pipeline().stages[1].kind == "pool"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(win.panel.pipeline().stages) == n


def test_first_start_shows_where_to_begin_once(win):
    assert win.show_first_start_hint()
    assert "Start here" in win.message.text()
    assert not win.show_first_start_hint()


def test_the_cnn_tabs_open_with_the_shipped_model(win, qtbot):
    """Issue 12: the Inspect tab was empty on first start (no trained model shipped)."""
    assert win.inspect_view.model() is None     # start-up does not wait for it
    win.show_view("inspect")
    qtbot.waitUntil(lambda: win.inspect_view.model() is not None, timeout=TIMEOUT)
    assert win.train_view._model_state == "loaded"
    assert "99.21" in (win.BUNDLED_MODEL.parent / "README.md").read_text()
    assert "(x − 0.1307) / 0.3081" in win.inspect_view.grid.header_text(-1)


def test_tab_leaves_the_weight_table_and_errors_mark_the_field(win, qtbot):
    from PyQt6.QtWidgets import QApplication
    win.panel.select_stage(0)
    ed = win.panel.current_editor()
    table = ed.kernel_editor.table
    table.setFocus()
    qtbot.waitUntil(table.hasFocus, timeout=TIMEOUT)
    QTest.keyClick(table, Qt.Key.Key_Tab)
    assert not table.hasFocus() and QApplication.focusWidget() is not None
    # an empty output caused by dilation marks the Dilation field, with advice that helps
    ed._stage.padding = 0
    ed._stage.dilation = 200
    with qtbot.waitSignal(win.resultFailed, timeout=TIMEOUT) as blocker:
        ed._edited()
    assert "dilation" in blocker.args[0] and "smaller dilation" in blocker.args[0]
    assert win.panel.current_editor()._error.field == "dilation"


@pytest.mark.parametrize("size", [(5, 5), (7, 7)])
def test_the_editor_fits_the_dock_at_1280x800(win, qtbot, size):
    """Issue 11.6: a 5x5 kernel grid needed a sideways scroll, the pool editor cut its
    labels, and stride/padding/dilation sat below the fold."""
    win.panel.select_stage(0)
    ed = win.panel.current_editor()
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ed.kernel_editor.resize_kernel(*size)
    qtbot.wait(100)
    table = ed.kernel_editor.table
    assert table.horizontalScrollBar().maximum() == 0
    area = ed.parentWidget()
    while area is not None and not hasattr(area, "viewport"):
        area = area.parentWidget()
    assert area.widget().width() <= area.viewport().width()      # nothing cut at the right
    dil = ed.dilation_field
    bottom = dil.mapTo(area.viewport(), dil.rect().bottomLeft()).y()
    assert bottom <= area.viewport().height()                   # geometry visible, no scroll
    win.panel.select_stage(2)
    pool = win.panel.current_editor()
    qtbot.wait(50)
    for w in (pool.same_stride_check, pool.formula_label):
        right = w.mapTo(area.viewport(), w.rect().topRight()).x()
        assert right <= area.viewport().width(), w
