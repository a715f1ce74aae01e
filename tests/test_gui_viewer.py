"""The map viewer in a user's hands (issue 11): framing, scrolling, zoom, markers,
colours, layout. One test per defect found by driving the real window; each failed
on the viewer that linked its views through pyqtgraph's screen-space links.

Geometry is read as the user sees it: every map view's visible data rectangle
(``vb.viewRect()``), its widget size and its position on the grid.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PIL import Image
from PyQt6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PyQt6.QtGui import QWheelEvent
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication

from convscope.app.grid import MAX_CELL_PX, VALUES_FROM_PX
from convscope.app.window import SAMPLE_IMAGE, MainWindow
from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, save_pipeline

TIMEOUT = 20_000
pg.setConfigOptions(imageAxisOrder="row-major")


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


def settle(qtbot, ms: int = 150):
    qtbot.wait(ms)
    QApplication.processEvents()


def assert_framed(win, tol: float = 0.02):
    """Every map shows its whole extent (fit), and maps of one row are drawn at one
    size and scale, with their images at the same height."""
    h, w = win.image.shape[:2]
    views = list(win.grid.all_views())
    assert views
    rows: dict[int, list] = {}
    for v in views:
        r = v.vb.viewRect()
        assert r.left() <= tol * w and r.top() <= tol * h, (v.level, v.map_index, r)
        assert r.right() >= w * (1 - tol) and r.bottom() >= h * (1 - tol), \
            (v.level, v.map_index, r)
        # fit, not zoomed out: the extent fills the view in one direction
        assert min(r.width() / w, r.height() / h) <= 1 + tol, (v.level, r)
        rows.setdefault(v.view.mapTo(win.grid.widget(), QPoint(0, 0)).y(), []).append(v)
    for y, row in rows.items():
        sizes = {(v.view.width(), v.view.height()) for v in row}
        assert len(sizes) == 1, (y, sizes)
        scales = {round(v.vb.viewPixelSize()[0], 6) for v in row}
        assert len(scales) == 1, (y, scales)
    # each level's maps start at one height (no map shifted by its caption)
    by_level: dict[tuple, set] = {}
    for v in views:
        key = (v.level, v.view.mapTo(v, QPoint(0, 0)).y())
        by_level.setdefault(v.level, set()).add(key[1])
    assert all(len(ys) == 1 for ys in by_level.values()), by_level


def wheel(widget, delta: int, pos=None, mods=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(widget.rect().center()) if pos is None else QPointF(pos)
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                     QPoint(0, delta), Qt.MouseButton.NoButton, mods,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def cell_px(view) -> float:
    """Screen pixels per input cell in a map view."""
    return 1.0 / view.vb.viewPixelSize()[0]


# ---------------------------------------------------------------- 1, 7: framing


def test_startup_maps_are_framed_and_aligned(win, qtbot):
    settle(qtbot)
    assert_framed(win)


@pytest.mark.parametrize("button", ["add_pool", "add_act", "remove"])
def test_rebuilding_the_grid_keeps_every_map_framed(win, qtbot, button):
    settle(qtbot)
    panel = win.panel
    win.panel.select_stage(0)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        {"add_pool": lambda: panel.add_pool_button.click(),
         "add_act": lambda: panel.add_activation_button.click(),
         "remove": lambda: panel.remove_button.click()}[button]()
    settle(qtbot)
    assert_framed(win)


def test_loading_a_pipeline_and_a_gray_then_rgb_image_keep_framing(win, qtbot, tmp_path):
    path = tmp_path / "p.json"
    save_pipeline(path, Pipeline([ConvStage([Kernel(np.ones((3, 3)) / 9, name="box")]),
                                  ActivationStage("relu")]))
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        assert win.load_pipeline_file(str(path))
    settle(qtbot)
    assert_framed(win)
    gray = tmp_path / "g.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 90), np.uint8)).save(gray)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(gray), wait=True)
    settle(qtbot)
    assert_framed(win)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(SAMPLE_IMAGE), wait=True)
    settle(qtbot)
    assert_framed(win)


# ---------------------------------------------------------------- 2: resizing


def test_resize_maximise_restore_keep_every_column_whole(win, qtbot):
    for size in [(1920, 1080), (1024, 640), (1280, 800)]:
        win.resize(*size)
        settle(qtbot, 250)
        assert_framed(win)
    win.showMaximized()
    settle(qtbot, 250)
    assert_framed(win)
    win.showNormal()
    settle(qtbot, 250)
    assert_framed(win)


def test_a_user_zoom_survives_edits_that_keep_the_shapes(win, qtbot):
    settle(qtbot)
    win.grid.zoom_by(4.0)
    before = win.grid.range.rect
    assert before is not None
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.panel.select_stage(0)
        win.panel.current_editor().kernel_editor.set_cell(1, 1, "4")
    settle(qtbot)
    assert win.grid.range.rect == before
    rects = {tuple(round(x, 3) for x in v.vb.viewRect().getRect())
             for v in win.grid.all_views()}
    assert len(rects) == 1, rects  # every map shows the same region
    win.grid.reset_view()
    settle(qtbot)
    assert_framed(win)


# ---------------------------------------------------------------- 3: wheel


def test_plain_wheel_scrolls_the_grid_and_does_not_zoom(win, qtbot):
    settle(qtbot)
    view = win.grid.views()[(0, 1)]
    bar = win.grid.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(0)
    rects = [v.vb.viewRect() for v in win.grid.all_views()]
    wheel(view.view.viewport(), -120)
    settle(qtbot, 50)
    assert bar.value() > 0
    assert win.grid.range.is_fit
    assert [v.vb.viewRect() for v in win.grid.all_views()] == rects


def test_ctrl_wheel_zooms_about_the_pointer_within_limits(win, qtbot):
    settle(qtbot)
    view = win.grid.views()[(0, 0)]
    vp = view.view.viewport()
    pos = QPointF(vp.width() * 0.25, vp.height() * 0.25)
    under = view.vb.mapSceneToView(view.view.mapToScene(pos.toPoint()))
    wheel(vp, 120, pos, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, 50)
    assert not win.grid.range.is_fit
    after = view.vb.mapSceneToView(view.view.mapToScene(pos.toPoint()))
    assert abs(after.x() - under.x()) < 1.5 and abs(after.y() - under.y()) < 1.5
    for _ in range(60):  # far past the limit
        wheel(vp, 120, pos, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, 50)
    assert cell_px(view) == pytest.approx(MAX_CELL_PX, rel=0.05)
    others = {round(cell_px(v), 4) for v in win.grid.all_views()}
    assert len(others) == 1  # linked
    for _ in range(60):
        wheel(vp, -120, pos, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot)
    assert win.grid.range.is_fit
    assert_framed(win)


def test_double_click_and_ctrl_0_fit(win, qtbot):
    settle(qtbot)
    win.grid.zoom_by(3.0)
    view = win.grid.views()[(1, 2)]
    QTest.mouseDClick(view.view.viewport(), Qt.MouseButton.LeftButton,
                      pos=view.view.viewport().rect().center())
    settle(qtbot)
    assert win.grid.range.is_fit
    win.grid.zoom_by(3.0)
    win.act_fit.trigger()
    assert win.grid.range.is_fit


def test_drag_pans_when_zoomed(win, qtbot):
    settle(qtbot)
    win.grid.zoom_by(4.0)
    before = win.grid.range.rect
    view = win.grid.views()[(0, 0)]
    vp = view.view.viewport()
    start = vp.rect().center()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for dx in range(0, 60, 10):
        QTest.mouseMove(vp, start + QPoint(dx, 0))
        qtbot.wait(20)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=start + QPoint(50, 0))
    settle(qtbot, 50)
    after = win.grid.range.rect
    assert after.left() < before.left()  # dragged right: shows what was to the left
    assert after.top() == pytest.approx(before.top())
    assert win.explain_panel.explanation() is None  # a drag is not a click


# ---------------------------------------------------------------- numbers


def test_values_are_written_into_cells_when_zoomed_in(win, qtbot, tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) * 5).save(small)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(small), wait=True)
    settle(qtbot)
    view = win.grid.views()[(-1, 0)]
    # a 6x8 image in a map of ~200 px: cells are ~25 px at fit, so values show at once
    assert cell_px(view) >= VALUES_FROM_PX
    view.view.grab()  # paints
    assert view.values.shown_count == 48
    # the sample photo at fit: cells under a pixel, no values
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(SAMPLE_IMAGE), wait=True)
    settle(qtbot)
    view = win.grid.views()[(0, 0)]
    view.view.grab()
    assert view.values.shown_count == 0
    for _ in range(30):
        win.grid.zoom_by(1.5)
    settle(qtbot)
    img = view.view.grab().toImage()
    assert 0 < view.values.shown_count <= 100
    # the text is drawn: the view has black or white pixels not in the colormap
    cols = {img.pixelColor(x, y).name() for x in range(0, img.width(), 2)
            for y in range(0, img.height(), 2)}
    assert "#000000" in cols or "#ffffff" in cols


# ---------------------------------------------------------------- 4: markers


def test_hover_marks_are_visible_and_go_when_the_pointer_leaves(win, qtbot):
    settle(qtbot)
    view = win.grid.views()[(0, 0)]
    vp = view.view.viewport()
    QTest.mouseMove(vp, QPoint(3, 3))   # a move to where the pointer already is sends none
    QTest.mouseMove(vp, vp.rect().center())
    qtbot.waitUntil(lambda: view.marker.isVisible(), timeout=TIMEOUT)
    assert view.crosshair.isVisible()
    assert view.marker._light.widthF() >= 2 and view.marker._dark.widthF() >= 3
    # other maps show the hovered cell's window, without a crosshair
    other = win.grid.views()[(-1, 0)]
    assert other.box.isVisible() and not other.crosshair.isVisible()
    QApplication.sendEvent(vp, QEvent(QEvent.Type.Leave))
    assert not any(v.hover_visible() for v in win.grid.all_views())


def test_clicked_cell_stays_marked_until_the_next_click_or_esc(win, qtbot):
    settle(qtbot)
    view = win.grid.views()[(2, 1)]   # the pool stage
    vp = view.view.viewport()
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, pos=vp.rect().center())
    qtbot.waitUntil(lambda: win.explain_panel.explanation() is not None, timeout=TIMEOUT)
    assert win.explain_dock.isVisible()
    QTest.mouseMove(win.grid.views()[(-1, 0)].view.viewport(), QPoint(5, 5))
    settle(qtbot, 50)
    assert view.sel_marker.isVisible()
    # its window on the maps before it, nothing on the maps after it
    assert win.grid.views()[(-1, 1)].sel_box.isVisible()
    assert win.grid.views()[(0, 1)].sel_box.isVisible()
    QTest.keyClick(win.grid, Qt.Key.Key_Escape)
    assert not any(v.sel_marker.isVisible() or v.sel_box.isVisible()
                   for v in win.grid.all_views())
    assert win.explain_panel.explanation() is None


# ---------------------------------------------------------------- 5: colours


def test_signed_rows_have_colour_bars_centred_at_zero(win, qtbot):
    settle(qtbot)
    assert win.robust_box.isChecked()
    lo, hi = win.grid._bars[0].levels           # stage 1: outline kernel, signed
    assert lo == -hi and hi > 0
    win.cmap_box.setCurrentText("viridis")
    win.scale_box.setCurrentText("map")
    for (level, m), v in win.grid.views().items():
        if level >= 0 and win.output.result.level(level).maps[m].min() < 0:
            assert v.levels[0] == -v.levels[1], (level, m, v.levels)


# ---------------------------------------------------------------- 6, 8: layout


def test_explain_dock_takes_no_room_until_a_click_and_docks_can_be_hidden(win, qtbot):
    assert not win.explain_dock.isVisible()
    assert win.pipeline_dock.isVisible()
    toggle = win.pipeline_dock.toggleViewAction()
    toggle.trigger()
    assert not win.pipeline_dock.isVisible()
    toggle.trigger()
    assert win.pipeline_dock.isVisible()


def test_one_size_convention_in_title_headers_and_stage_list(win, qtbot):
    h, w = win.image.shape[:2]
    assert f"{h}×{w}" in win.windowTitle()
    assert f"{h}×{w}" in win.grid.header_text(-1)
    assert f"{h}×{w}" in win.grid.header_text(0)
    assert f"{w}×{h}" not in win.windowTitle() + win.grid.header_text(0)


def test_headers_take_at_most_two_lines(win, qtbot):
    settle(qtbot)
    fm_height = win.fontMetrics().height()
    for level, header in win.grid._headers.items():
        assert header.height() <= 2 * fm_height + 16, (level, header.height())
        assert "\n" not in header.line1


def test_recomputing_marks_maps_stale_and_status_is_per_tab(win, qtbot):
    settle(qtbot)
    win.grid.set_stale(True)   # as the window does after 150 ms of computing
    assert all(v.stale.isVisible() for v in win.grid.all_views())
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.recompute()
    assert not win.grid.is_stale
    assert not any(v.stale.isVisible() for v in win.grid.all_views())
    win.show_view("train")
    assert not win.hover_label.isVisible() and not win.timing_label.isVisible()
    win.show_view("main")
    assert win.hover_label.isVisible()


def test_rgb_column_recombines_per_channel_maps(win, qtbot):
    settle(qtbot)
    rgb = win.grid.rgb_views()
    assert set(rgb) == {(-1, 0), (0, 0), (1, 0), (2, 0)}
    out = win.output.result
    shown = rgb[(0, 0)].image.image
    expected = np.clip(out.stages[0].maps.transpose(1, 2, 0), 0, 1)
    np.testing.assert_allclose(shown, expected, atol=1e-6)


def test_dragging_a_file_over_the_window_says_what_a_drop_will_do(win, qtbot, tmp_path):
    from PyQt6.QtCore import QMimeData, QUrl
    from PyQt6.QtGui import QDragEnterEvent, QDragLeaveEvent
    for name, words in (("cat.png", "open “cat.png” as the image"),
                        ("edges.json", "load the pipeline “edges.json”")):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(tmp_path / name))])
        QApplication.sendEvent(win, QDragEnterEvent(
            win.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier))
        assert win._drop_hint.isVisible() and words in win._drop_hint.text()
        assert win._drop_hint.geometry() == win.centralWidget().geometry()
        QApplication.sendEvent(win, QDragLeaveEvent())
        assert not win._drop_hint.isVisible()


def test_large_maps_are_drawn_at_screen_resolution_and_in_detail_when_zoomed(win, qtbot):
    """Previews no larger than the maps on screen (painting a 1024-pixel preview into a
    230-pixel view cost 76 ms per burst at 1080p); zoomed in, the visible part of the
    full map, sampled no finer than the screen."""
    img = np.random.default_rng(3).random((1200, 1600, 3), dtype=np.float32)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.set_image(img, "big")
    settle(qtbot)
    view = win.grid.views()[(0, 0)]
    side = win.grid.preview_side()
    assert side < 1024 and max(view.image.image.shape) <= side
    assert win.output.preview_side == side
    for _ in range(6):
        win.grid.zoom_by(2.0)
    qtbot.waitUntil(lambda: view.detail is not None, timeout=TIMEOUT)
    r0, r1, c0, c1, step = view.detail
    shown = view.image.image
    assert step == 1   # 64x zoomed: the visible cells are fewer than the screen pixels
    np.testing.assert_array_equal(shown, win.output.result.stages[0].maps[0, r0:r1, c0:c1])
    win.grid.reset_view()
    qtbot.waitUntil(lambda: view.detail is None, timeout=TIMEOUT)
    # maps drawn larger ask for sharper previews
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.grid.set_map_width(900)
    assert win.output.preview_side == 1024
    assert max(win.grid.views()[(0, 0)].image.image.shape) == 800  # 1600 / 2


def test_a_shown_grid_lays_out_its_new_maps_at_once(qtbot):
    """A grid built while shown counts its new maps in its layout at once. Qt shows a
    child added to a visible parent later (queued); until then the layout's minimum
    left them out, and in the real window (the Inspect tab first opened after the
    window was maximised on another tab) that minimum stayed for ~2 s: every row of
    maps squashed to a strip."""
    from convscope.app.compute import PipelineRunner
    from convscope.app.grid import FeatureGrid
    from convscope.core.pipeline import default_pipeline
    runner = PipelineRunner()
    grid = FeatureGrid()
    qtbot.addWidget(grid)
    grid.resize(900, 700)
    grid.show()
    qtbot.waitExposed(grid)
    got = []
    runner.resultReady.connect(got.append)
    with qtbot.waitSignal(runner.resultReady, timeout=20000):
        runner.request(np.random.default_rng(1).random((30, 40, 3)).astype(np.float32),
                       default_pipeline())
    runner.shutdown()
    grid.set_output(got[-1])          # no events processed in between
    views = list(grid.all_views())
    assert views and all(v.isVisible() for v in views)
    mw, mh = grid.map_size()
    rows = {v.level for v in views}   # a level is at least one row of maps
    assert grid.widget().layout().minimumSize().height() >= len(rows) * mh


def test_colour_bar_end_labels_share_their_decimals(qtbot):
    """A symmetric bar read "3.0153" at the top and "-3.015" at the bottom (the minus
    took a digit; seen in the Inspect tab): both ends now have the same decimals, the
    most that fit in 6 characters, and a round tick keeps its short form."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from convscope.app.grid import ColorBar
    from convscope.core.display import range_labels
    bar = ColorBar()
    qtbot.addWidget(bar)
    bar.levels = (-3.0153, 3.0153)
    assert (bar.label(-3.0153), bar.label(3.0153), bar.label(0.0)) == ("-3.015", "3.015", "0")
    assert range_labels(-0.5, 2.25) == ("-0.50", "2.25")
    assert range_labels(0.0, 4.2196) == ("0", "4.2196")

    @settings(max_examples=300, deadline=None)
    @given(lo=st.floats(-1e4, 1e4), span=st.floats(1e-3, 1e4))
    def same_decimals(lo, span):
        a, b = range_labels(lo, lo + span)
        if "." in a and "." in b and "e" not in a + b:
            assert len(a) <= 6 and len(b) <= 6
            assert len(a) - a.index(".") == len(b) - b.index(".")
            for text, v in ((a, lo), (b, lo + span)):  # still the value, to its decimals
                assert abs(float(text) - v) <= 0.5 * 10 ** -(len(text) - text.index(".") - 1) + 1e-9
    same_decimals()


def test_colour_bar_labels_never_overlap():
    """A short bar labels both ends; a round value near an end was drawn over it
    ("4" over "4.2196" on a 150 px bar, seen in the real window)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from convscope.app.grid import bar_ticks
    ticks = bar_ticks(0.0549, 4.2196, 8, 158, 12)
    values = [v for v, _ in ticks]
    assert values[0] == 0.0549 and values[-1] == 4.2196 and 4.0 not in values and 2.0 in values

    @settings(max_examples=300, deadline=None)
    @given(lo=st.floats(-1e4, 1e4), span=st.floats(1e-6, 1e5), height=st.integers(20, 700))
    def no_overlap(lo, span, height):
        hi = lo + span
        got = bar_ticks(lo, hi, 8, 8 + height, 12)
        ys = sorted(y for _, y in got)
        assert all(b - a >= 12 - 1e-9 for a, b in zip(ys, ys[1:])), got
        assert all(8 - 1e-6 <= y <= 8 + height + 1e-6 for y in ys)
        assert got, "a bar always has a label"
    no_overlap()
