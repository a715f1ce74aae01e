"""The main window driven as a user drives it (pytest-qt, offscreen).

Every test acts through the window's public surface (files dropped or opened, cells
typed in the kernel editor, the mouse over a map) and asserts what the window then
shows: the grid's maps, the message bar, the status bar, the explain panel, files
written. Numbers on screen are checked against core, computed independently here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PIL import Image
from PyQt6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PyQt6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication

from convscope.app.explain_panel import format_number
from convscope.app.window import SAMPLE_IMAGE, MainWindow
from convscope.core.conv import conv2d
from convscope.core.image import load_image
from convscope.core.kernels import PRESETS
from convscope.core.pipeline import ConvStage, Kernel, Pipeline, PoolStage, save_pipeline

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20_000          # ms; generous: the CI machine has 2 cores
OUTLINE = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], float)
DEFAULT_KEYS = {(lvl, m) for lvl in (-1, 0, 1, 2) for m in range(3)}

pg.setConfigOptions(imageAxisOrder="row-major")   # as app.main does at start-up


# ------------------------------------------------------------------------ helpers


@pytest.fixture
def win(qtbot, tmp_path):
    """A shown main window whose settings live in tmp_path (the user's are untouched)."""
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()          # stops the pipeline worker thread


@pytest.fixture
def sample(win, qtbot):
    """The window with the bundled sample loaded and its maps on screen."""
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(SAMPLE_IMAGE), wait=True)
    return win


def write_png(path: Path, w: int, h: int, seed: int = 0) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(path)
    return path


def drop(widget, path: Path) -> QDropEvent:
    """Drag a local file onto ``widget`` and drop it, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(widget.rect().center(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window refused to accept a dragged file"
    ev = QDropEvent(QPointF(widget.rect().center()), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)
    return ev


def conv_editor(win):
    """The conv stage's editor, selected in the pipeline panel as a user would."""
    win.panel.select_stage(0)
    ed = win.panel.current_editor()
    assert type(ed).__name__ == "ConvStageEditor"
    return ed


def expected_stage1(image_hwc: np.ndarray, kernels: list[np.ndarray]) -> np.ndarray:
    """Stage 1 of a per-channel 'same' conv: map m * nk + k is channel m with kernel k."""
    x = np.ascontiguousarray(image_hwc.transpose(2, 0, 1), dtype=np.float32)
    c, nk = x.shape[0], len(kernels)
    w = np.empty((c * nk, 1, 3, 3), np.float32)
    for k, ker in enumerate(kernels):
        w[k::nk, 0] = ker
    return conv2d(x, w, padding="same", groups=c)


def shown(win, level: int, m: int) -> np.ndarray:
    """The array the grid's map view for (level, m) displays."""
    return win.grid.views()[(level, m)].image.image


# ------------------------------------------------------------------------ start-up


def test_startup_with_sample_shows_4_levels_of_3_maps(sample):
    win = sample
    h, w, _ = load_image(str(SAMPLE_IMAGE)).shape
    assert set(win.grid.views()) == DEFAULT_KEYS
    assert win.image.shape == (h, w, 3)
    assert f"{SAMPLE_IMAGE.name} ({h}×{w}, 3 channels)" in win.windowTitle()
    assert win.grid.views()[(-1, 0)].map_shape == (h, w)
    assert win.grid.views()[(0, 0)].map_shape == (h, w)          # 'same' conv
    assert win.grid.views()[(2, 0)].map_shape == (h // 2, w // 2)  # 2x2 max pool
    for key, view in win.grid.views().items():
        assert view.image.image is not None, key
        assert view.isVisible(), key
    assert "ms" in win.timing_label.text()
    assert win.message.text() == ""


# --------------------------------------------------------------------- drag and drop


def test_drop_image_file_loads_it(sample, qtbot, tmp_path):
    win = sample
    png = write_png(tmp_path / "dropped.png", 64, 48)
    with qtbot.waitSignals([win.imageLoaded, win.resultShown], timeout=TIMEOUT):
        ev = drop(win, png)
    assert ev.isAccepted()
    assert "dropped.png (48×64, 3 channels)" in win.windowTitle()
    assert win.image.shape == (48, 64, 3)
    assert win.grid.views()[(-1, 0)].map_shape == (48, 64)
    assert win.grid.views()[(2, 2)].map_shape == (24, 32)
    np.testing.assert_allclose(shown(win, -1, 1), load_image(str(png))[:, :, 1])


def test_drop_grayscale_image_shows_one_column(sample, qtbot, tmp_path):
    win = sample
    path = tmp_path / "gray.png"
    gray = np.random.default_rng(1).integers(0, 256, (30, 20), dtype=np.uint8)
    Image.fromarray(gray, "L").save(path)
    with qtbot.waitSignals([win.imageLoaded, win.resultShown], timeout=TIMEOUT):
        drop(win, path)
    assert "gray.png (30×20, 1 channel)" in win.windowTitle()
    assert set(win.grid.views()) == {(lvl, 0) for lvl in (-1, 0, 1, 2)}
    np.testing.assert_allclose(shown(win, -1, 0), gray / 255.0, atol=1e-6)


def test_drop_remote_url_is_refused(sample):
    win = sample
    image = win.image
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.png")])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    win.dropEvent(ev)
    assert "local files" in win.message.text()
    assert win.image is image


def test_paste_file_path_and_image_data(sample, qtbot, tmp_path):
    win = sample
    png = write_png(tmp_path / "pasted path.png", 33, 22)
    clip = QGuiApplication.clipboard()
    clip.setText(f'"{png}"')                         # as copied from a file manager
    with qtbot.waitSignals([win.imageLoaded, win.resultShown], timeout=TIMEOUT):
        win.paste()
    assert "pasted path.png (22×33, 3 channels)" in win.windowTitle()
    qimg = QImage(40, 30, QImage.Format.Format_RGB32)
    qimg.fill(QColor(255, 0, 0))
    clip.setImage(qimg)
    with qtbot.waitSignals([win.imageLoaded, win.resultShown], timeout=TIMEOUT):
        win.paste()
    assert win.image.shape == (30, 40, 3)
    np.testing.assert_allclose(win.image[0, 0], [1, 0, 0], atol=1e-6)
    # pasted pixels are not a file: the recent list keeps only the path
    assert [a.text() for a in win.recent_menu.actions()][0] == str(png.resolve())
    clip.setText("   ")                             # nothing usable
    win.paste()
    assert "clipboard" in win.message.text()


def test_drop_non_image_file_says_why_and_keeps_the_image(sample, qtbot, tmp_path):
    win = sample
    image, title, output = win.image, win.windowTitle(), win.output
    txt = tmp_path / "notes.txt"
    txt.write_text("these are notes, not pixels\n")
    drop(win, txt)
    qtbot.waitUntil(lambda: win.message.text() != "", timeout=TIMEOUT)
    msg = win.message.text()
    assert "notes.txt" in msg and "kept" in msg, msg
    assert win.image is image
    assert win.windowTitle() == title
    assert win.output is output
    assert set(win.grid.views()) == DEFAULT_KEYS


def test_drop_pipeline_json_loads_the_pipeline(sample, qtbot, tmp_path):
    win = sample
    pipe = Pipeline([ConvStage([Kernel(PRESETS["sharpen"].weights, name="sharp")]),
                     PoolStage("avg", 3)])
    path = tmp_path / "two stages.json"
    save_pipeline(path, pipe)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        drop(win, path)
    assert win.panel.pipeline().to_dict() == pipe.to_dict()
    assert win.panel.stage_list.count() == 2
    assert set(win.grid.views()) == {(lvl, m) for lvl in (-1, 0, 1) for m in range(3)}
    assert "two stages.json" in win.message.text()


def test_drop_folder_and_missing_file_keep_the_image(sample, qtbot, tmp_path):
    win = sample
    image = win.image
    drop(win, tmp_path)
    assert "folder" in win.message.text()
    drop(win, tmp_path / "gone.png")
    qtbot.waitUntil(lambda: "gone.png" in win.message.text(), timeout=TIMEOUT)
    assert win.image is image


# --------------------------------------------------------------------- editing


def test_kernel_cell_edit_updates_the_maps(sample, qtbot):
    win = sample
    ke = conv_editor(win).kernel_editor
    before = shown(win, 0, 0).copy()
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.set_cell(0, 0, "2")
    assert ke.cell_text(0, 0) == "2"
    new = OUTLINE.copy()
    new[0, 0] = 2
    want = expected_stage1(win.image, [new])
    got = win.output.result.stages[0].maps
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for m in range(3):   # the sample is small enough to be shown at full resolution
        np.testing.assert_allclose(shown(win, 0, m), want[m], rtol=1e-5, atol=1e-5)
    assert not np.allclose(shown(win, 0, 0), before)
    np.testing.assert_allclose(shown(win, 1, 0), np.maximum(want[0], 0), atol=1e-5)


def test_kernel_cell_fraction_and_bad_text(sample, qtbot):
    win = sample
    ke = conv_editor(win).kernel_editor
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.set_cell(1, 1, "1/2")
    new = OUTLINE.copy()
    new[1, 1] = 0.5
    np.testing.assert_allclose(win.output.result.stages[0].maps,
                               expected_stage1(win.image, [new]), atol=1e-5)
    output = win.output
    with qtbot.assertNotEmitted(win.runner.resultReady, wait=300):
        ke.set_cell(0, 0, "abc")          # not a number: nothing is recomputed
    assert ke.has_error()
    assert win.output is output


@pytest.mark.parametrize("how", ["load_preset", "combo"])
def test_preset_recomputes(sample, qtbot, how):
    win = sample
    ke = conv_editor(win).kernel_editor
    name = "gaussian_3x3"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        if how == "load_preset":
            ke.load_preset(name)
        else:
            i = ke.preset_combo.findData(name)
            assert i >= 0
            ke.preset_combo.setCurrentIndex(i)
    want = expected_stage1(win.image, [PRESETS[name].weights])
    np.testing.assert_allclose(win.output.result.stages[0].maps, want, atol=1e-5)
    np.testing.assert_allclose(shown(win, 0, 2), want[2], atol=1e-5)
    assert (win.output.result.stages[0].maps >= -1e-6).all()   # a blur of 0..1 stays >= 0


def _views_arrays(win):
    return {k: v.image.image for k, v in win.grid.views().items()}


def test_conv_stride_zero_says_why_marks_the_field_and_keeps_the_maps(sample, qtbot):
    win = sample
    ed = conv_editor(win)
    arrays, output = _views_arrays(win), win.output
    shown_count = []
    win.resultShown.connect(lambda *_: shown_count.append(1))
    with qtbot.waitSignal(win.runner.resultReady, timeout=TIMEOUT):
        ed.stride_field.rows.setValue(0)
    qtbot.wait(50)
    msg = win.message.text()
    assert "stride" in msg and "0" in msg and "last valid result" in msg, msg
    assert ed.stride_field.error() is not None
    assert ed.stride_field.property("error") is True
    assert "stride" in win.panel.stage_list.item(0).text()
    assert not shown_count
    assert win.output is output
    after = _views_arrays(win)
    assert after.keys() == arrays.keys()
    for k in arrays:
        assert after[k] is arrays[k], k
    # putting it back clears the mark and the message and shows maps again
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ed.stride_field.rows.setValue(1)
    assert ed.stride_field.error() is None
    assert win.message.text() == ""
    np.testing.assert_allclose(win.output.result.stages[0].maps, output.result.stages[0].maps)


def test_pool_window_larger_than_map_shows_the_formula(win, qtbot):
    img = np.random.default_rng(3).random((12, 12, 3), dtype=np.float32)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.set_image(img, "small")
    arrays = _views_arrays(win)
    win.panel.select_stage(2)
    ed = win.panel.current_editor()
    assert type(ed).__name__ == "PoolEditor"
    with qtbot.waitSignal(win.runner.resultReady, timeout=TIMEOUT):
        ed.window_field.rows.setValue(20)
    msg = win.message.text()
    assert "12" in msg and "20" in msg and "floor(" in msg and "= 0" in msg, msg
    assert ed.window_field.error() is not None
    assert "none" in ed.formula_label.text().lower()
    after = _views_arrays(win)
    assert all(after[k] is arrays[k] for k in arrays)


# --------------------------------------------------------------------- hover / click


def _viewport_point(view, x: float, y: float):
    """Viewport position of input-image coordinates (x, y) in a MapView."""
    return view.view.mapFromScene(view.vb.mapViewToScene(QPointF(x, y)))


def test_hover_shows_value_and_crosshair_on_every_map(sample, qtbot):
    win = sample
    views = win.grid.views()
    src = views[(0, 1)]
    pos = _viewport_point(src, 100.5, 50.5)
    hit = src.pixel_at(src.view.mapToScene(pos))
    assert hit is not None
    row, col = hit
    QTest.mouseMove(src.view.viewport(), pos)
    qtbot.waitUntil(lambda: "row" in win.hover_label.text(), timeout=TIMEOUT)
    value = float(win.output.result.stages[0].maps[1, row, col])
    text = win.hover_label.text()
    assert f"row {row}, col {col}" in text and "stage 1" in text, text
    assert f"{value:.6g}" in text, text
    for key, v in views.items():
        if key[0] == 0:
            assert v.marker.isVisible(), key       # the hovered level: a marker
        else:
            assert v.box.isVisible(), key          # others: the projected box
    # leaving the image hides the crosshair
    src.view.scene().sigMouseMoved.emit(QPointF(-50, -50))
    assert not any(v.box.isVisible() or v.marker.isVisible() for v in views.values())


def test_click_explains_the_pixel_and_follows_edits(sample, qtbot):
    win = sample
    src = win.grid.views()[(0, 0)]
    pos = _viewport_point(src, 200.5, 120.5)
    row, col = src.pixel_at(src.view.mapToScene(pos))
    QTest.mouseClick(src.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: win.explain_panel.explanation() is not None, timeout=TIMEOUT)

    def arithmetic():
        value = float(win.output.result.stages[0].maps[0, row, col])
        lines = win.explain_panel.plain_text().splitlines()
        arith = [ln for ln in lines if "*" in ln and "=" in ln]
        assert arith, lines
        assert arith[0].endswith(f"= {format_number(value)}"), (arith[0], value)
        return arith[0]

    first = arithmetic()
    assert f"row {row}, col {col}" in win.explain_panel.plain_text()
    # the explanation follows the kernel edit
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        conv_editor(win).kernel_editor.set_cell(1, 1, "4")
    second = arithmetic()
    assert "*4" in second and second != first


def test_click_on_pool_map_shows_the_winner(sample, qtbot):
    win = sample
    src = win.grid.views()[(2, 1)]
    pos = _viewport_point(src, 150.5, 100.5)
    with qtbot.waitSignal(win.grid.clicked, timeout=TIMEOUT) as blocker:
        QTest.mouseClick(src.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    level, m, row, col = blocker.args
    assert (level, m) == (2, 1)
    value = float(win.output.result.stages[2].maps[1, row, col])
    assert win.explain_panel.winner_cell() is not None
    assert format_number(value) in win.explain_panel.plain_text()


def test_explained_pixel_stays_on_its_map_when_maps_are_added(sample, qtbot):
    """The explanation follows the map the user clicked, not its index.

    Adding a kernel renumbers stage 1's maps (per channel they are interleaved:
    R*k1, R*k2, G*k1, ...): the clicked "G * outline" is map 1 before and map 2 after.
    """
    win = sample
    src = win.grid.views()[(0, 1)]
    pos = _viewport_point(src, 200.5, 120.5)
    QTest.mouseClick(src.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: win.explain_panel.explanation() is not None, timeout=TIMEOUT)
    assert win.explain_panel.explanation().label == "G * outline"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.send_kernel(np.ones((3, 3)) / 9, "learned")
    ex = win.explain_panel.explanation()
    # either it still explains the clicked map, or it is cleared; never another map
    assert ex is None or ex.label == "G * outline", (
        f"clicked 'G * outline', the panel now explains {ex.label!r} "
        f"(window.selected = {win.selected})")


# ------------------------------------------------------------------------ export


def test_export_maps_writes_png_npy_and_index(sample, qtbot, tmp_path):
    win = sample
    out = tmp_path / "maps"
    with qtbot.waitSignal(win.exported, timeout=TIMEOUT) as blocker:
        win.export_maps_to(str(out))
    assert blocker.args == [str(out)]
    pngs, npys = sorted(out.glob("*.png")), sorted(out.glob("*.npy"))
    assert len(pngs) == 12 and len(npys) == 12
    index = json.loads((out / "maps.json").read_text())
    assert len(index["maps"]) == 12
    res = win.output.result
    for entry in index["maps"]:
        arr = np.load(out / entry["npy"])
        np.testing.assert_array_equal(arr, res.level(entry["level"]).maps[entry["map"]])
        with Image.open(out / entry["png"]) as im:
            assert im.size == (arr.shape[1], arr.shape[0])
    assert "12 maps" in win.message.text()


def test_export_index_describes_the_maps_exported_not_the_edited_pipeline(sample, qtbot,
                                                                         tmp_path):
    """With an invalid edit on screen the window keeps (and exports) the last valid
    maps; maps.json must record the pipeline that made them (stride 1), not the
    rejected edit (stride 0), or the export cannot be reproduced."""
    win = sample
    ed = conv_editor(win)
    with qtbot.waitSignal(win.runner.resultReady, timeout=TIMEOUT):
        ed.stride_field.rows.setValue(0)
    assert "last valid result" in win.message.text()
    out = tmp_path / "maps"
    with qtbot.waitSignal(win.exported, timeout=TIMEOUT):
        win.export_maps_to(str(out))
    doc = json.loads((out / "maps.json").read_text())
    exported_stage = win.output.result.stages[0].stage.to_dict()
    assert doc["pipeline"]["stages"][0]["stride"] == exported_stage["stride"] == 1, (
        f"maps.json says stride {doc['pipeline']['stages'][0]['stride']}, the exported maps "
        f"were computed with stride {exported_stage['stride']}")


def test_export_sheet_is_drawn_from_the_data_without_hover_marks(sample, qtbot, tmp_path):
    """Issue 11: the sheet was a 584x1566 screen grab with hover boxes in it. Now every
    map is drawn cell for cell in the grid's colours, whatever is hovered."""
    from convscope.core.sheet import render_sheet
    win = sample
    src = win.grid.views()[(0, 0)]
    QTest.mouseMove(src.view.viewport(), src.view.viewport().rect().center())
    qtbot.waitUntil(lambda: src.marker.isVisible(), timeout=TIMEOUT)
    path = tmp_path / "sheet.png"
    assert win.export_sheet(str(path), wait=True)
    with Image.open(path) as im:
        px = np.asarray(im.convert("RGB"))
    res = win.output.result
    img, layout = render_sheet(res, win.grid.ranges, [l[:, :3] for l in win.grid.luts],
                               title=f"{SAMPLE_IMAGE.name} · ConvScope", return_layout=True)
    np.testing.assert_array_equal(px, np.asarray(img))          # no hover marks in it
    for (level, m), (x, y, w, h) in layout.boxes.items():
        assert (h, w) == res.level(level - 1).maps.shape[1:]    # full map resolution
    assert "Saved the sheet" in win.message.text()
    pdf = tmp_path / "sheet.pdf"
    assert win.export_sheet(str(pdf), wait=True)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not win.export_sheet(str(tmp_path / "sheet.jpg"))
    assert ".jpg" in win.message.text()


def test_export_without_result_says_so(win, tmp_path):
    win.export_maps_to(str(tmp_path / "x"))
    assert "Nothing to export" in win.message.text()
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- pipeline files


def test_pipeline_save_load_round_trip(sample, qtbot, tmp_path):
    win = sample
    ke = conv_editor(win).kernel_editor
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.set_cell(0, 0, "2")
    saved = win.panel.pipeline().to_dict()
    path = tmp_path / "mine.json"
    assert win.save_pipeline_file(str(path))
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.load_preset("sharpen")
    assert win.panel.pipeline().to_dict() != saved
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        assert win.load_pipeline_file(str(path))
    assert win.panel.pipeline().to_dict() == saved
    assert conv_editor(win).kernel_editor.cell_text(0, 0) == "2"
    new = OUTLINE.copy()
    new[0, 0] = 2
    np.testing.assert_allclose(win.output.result.stages[0].maps,
                               expected_stage1(win.image, [new]), atol=1e-5)


@pytest.mark.parametrize("content", ["{not json", '{"stages": [{"type": "conv"}]}', ""])
def test_malformed_pipeline_file_keeps_the_pipeline(sample, qtbot, tmp_path, content):
    win = sample
    before, output = win.panel.pipeline().to_dict(), win.output
    path = tmp_path / "broken.json"
    path.write_text(content)
    with qtbot.assertNotEmitted(win.runner.resultReady, wait=200):
        assert not win.load_pipeline_file(str(path))
    msg = win.message.text()
    assert "broken.json" in msg and "kept" in msg, msg
    assert win.panel.pipeline().to_dict() == before
    assert win.output is output
    assert path.read_text() == content      # nothing rewritten


def test_save_pipeline_to_unwritable_place_says_so(sample, tmp_path):
    win = sample
    path = tmp_path / "no such dir" / "p.json"
    assert not win.save_pipeline_file(str(path))
    assert "p.json" in win.message.text()


# ---------------------------------------------------------------------- recent, send


def test_recent_menu_lists_loaded_file(sample, qtbot, tmp_path):
    win = sample
    png = write_png(tmp_path / "recent one.png", 40, 30)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(png), wait=True)
    items = [a.text() for a in win.recent_menu.actions()]
    assert items[:2] == [str(png.resolve()), str(SAMPLE_IMAGE.resolve())]
    assert win.recent_menu.isEnabled()
    # a new window on the same settings remembers it; choosing it reopens the file
    other = MainWindow(settings=win.settings)
    qtbot.addWidget(other)
    other.show()
    try:
        acts = other.recent_menu.actions()
        assert acts[0].text() == str(png.resolve())
        with qtbot.waitSignal(other.imageLoaded, timeout=TIMEOUT):
            acts[1].trigger()
        assert other.image_name == str(SAMPLE_IMAGE.resolve())
        assert other.image.shape == load_image(str(SAMPLE_IMAGE)).shape
    finally:
        other.close()


def test_send_kernel_adds_a_stage_and_leaves_the_others_alone(sample, qtbot):
    """Issue 12: the learned kernel used to be appended to the selected stage, which
    broke a stage of 7x3 kernels ("3x3 vs 7x3"); now it is a new stage of its own."""
    win = sample
    before = win.panel.pipeline().to_dict()
    ed = conv_editor(win)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ed.kernel_editor.resize_kernel(7, 3)       # the stage now holds a 7x3 kernel
    learned = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.send_kernel(learned, "learned")
    stages = win.panel.pipeline().stages
    assert len(stages) == 4 and win.panel.current_stage() == 1
    assert [k.name for k in stages[1].kernels] == ["learned"]
    assert stages[0].kernels[0].weights.shape == (7, 3)
    assert win.output.result.error is None
    res = win.output.result
    np.testing.assert_allclose(res.stages[1].maps,
                               conv2d(res.stages[0].maps, np.repeat(learned[None, None], 3, 0)
                                      .astype(np.float32), padding="same", groups=3),
                               atol=1e-5)
    assert res.stages[1].labels[0] == "R * outline * learned"
    assert win.act_undo.text().replace("&", "") == \
        "Undo add the learned kernel 'learned' as stage 2"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_undo.trigger()
    assert len(win.panel.pipeline().stages) == 3
    assert win.panel.pipeline().to_dict() != before  # the resize stays (its own step)


# ----------------------------------------------------------------------- main()


def _run_app(args, tmp_path, timeout=120):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               XDG_CONFIG_HOME=str(tmp_path / "config"))   # keep the user's settings clean
    return subprocess.run([sys.executable, "-m", "convscope.app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_screenshot_mode_writes_the_window(tmp_path):
    out = tmp_path / "shot.png"
    proc = _run_app(["--image", str(SAMPLE_IMAGE), "--screenshot", str(out),
                     "--size", "1280x800"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.exists(), proc.stdout + proc.stderr
    with Image.open(out) as im:
        assert im.size == (1280, 800)
        px = np.asarray(im.convert("RGB"), float)
    assert px.var() > 0
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50   # maps, not just chrome


def test_screenshot_with_bad_image_fails_with_a_message(tmp_path):
    out = tmp_path / "shot.png"
    bad = tmp_path / "missing.png"
    proc = _run_app(["--image", str(bad), "--screenshot", str(out)], tmp_path)
    assert proc.returncode != 0
    assert "missing.png" in proc.stderr, proc.stderr
    assert not out.exists()


def test_screenshot_with_a_pipeline_that_fails_on_the_image_ends_promptly(tmp_path):
    """A pipeline error is a result too: screenshot mode must not wait for maps that
    will never come (main() waits 60 s, then says only "timed out")."""
    img = write_png(tmp_path / "small.png", 50, 50)
    pipe = tmp_path / "bigpool.json"
    save_pipeline(pipe, Pipeline([PoolStage("max", 99)]))
    out = tmp_path / "shot.png"
    try:
        proc = _run_app(["--image", str(img), "--pipeline", str(pipe), "--screenshot",
                         str(out)], tmp_path, timeout=15)
    except subprocess.TimeoutExpired:   # a good run takes 1-3 s
        pytest.fail("convscope --screenshot still running after 15 s: the pipeline error "
                    "(pool window 99 > 50x50 image) never ends the wait for resultShown")
    if proc.returncode == 0:
        assert out.exists()          # a screenshot showing the error is fine too
    else:
        assert "empty output" in proc.stderr or "kernel_size" in proc.stderr, proc.stderr


def test_bad_size_is_refused(tmp_path):
    proc = _run_app(["--screenshot", str(tmp_path / "x.png"), "--size", "12x9"], tmp_path)
    assert proc.returncode == 2
    assert "320x240" in proc.stderr


# --------------------------------------------------------------------- responsiveness


def test_ui_keeps_processing_events_while_a_large_image_computes(win, qtbot):
    img = np.random.default_rng(7).random((3000, 3000, 3), dtype=np.float32)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        t0 = time.perf_counter()
        with qtbot.waitSignal(win.resultShown, timeout=60_000):
            win.set_image(img, "big")
            t_set = time.perf_counter() - t0
        t1 = time.perf_counter()
    finally:
        timer.stop()
    during = [t for t in ticks if t0 <= t <= t1]
    elapsed = t1 - t0
    expected = elapsed / 0.020
    gaps = np.diff([t0, *during, t1])
    detail = (f"{len(during)} ticks in {elapsed * 1e3:.0f} ms (ideal {expected:.0f}), "
              f"longest gap {gaps.max() * 1e3:.0f} ms, set_image took {t_set * 1e3:.0f} ms")
    assert t_set < 0.1, detail                     # the request returns at once
    # (a fixed floor of 10 ticks assumed the compute takes 400 ms or more; it now takes
    # about 240: the UI is judged by its share of ticks and its longest freeze)
    assert len(during) >= 0.4 * expected and gaps.max() < 0.15, detail
    assert set(win.grid.views()) == DEFAULT_KEYS
    assert win.grid.views()[(0, 0)].map_shape == (3000, 3000)


def test_closing_while_training_asks_and_stops_only_on_yes(win, monkeypatch):
    from PyQt6.QtWidgets import QMessageBox

    stopped = []
    monkeypatch.setattr(win.train_view, "is_training", lambda: True)
    monkeypatch.setattr(win.train_view, "stop_training", lambda wait=True: stopped.append(wait))
    asked = []

    def answer(button):
        def question(*args, **kwargs):
            asked.append(args[2] if len(args) > 2 else "")
            return button
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not win.close()                      # refused: training goes on
    assert stopped == [] and win.isVisible()
    assert "checkpoint" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert win.close()
    assert stopped == [True]                    # stopped (and waited for) before closing


def test_save_refuses_an_invalid_pipeline_and_keeps_the_file(sample, tmp_path, monkeypatch):
    """An editor may hold settings a file must not (a NaN weight): saving says what is
    wrong and leaves the earlier file as it was."""
    win = sample
    path = tmp_path / "p.json"
    assert win.save_pipeline_file(str(path))
    before = path.read_bytes()
    bad = win.document.pipeline()
    bad.stages[0].kernels[0].weights[1, 1] = float("nan")
    monkeypatch.setattr(win.document, "pipeline", lambda: bad)
    assert not win.save_pipeline_file(str(path))
    assert "Not saved" in win.message.text() and "stage 1" in win.message.text()
    assert path.read_bytes() == before


def test_status_bar_says_when_the_first_compile_is_slow(win, qtbot):
    """app.main reports a slow first compile of the convolution loop in the status bar
    (after a second) and clears the message when it is done; a fast (cached) load shows
    nothing."""
    import threading

    from convscope.app.main import _report_warm_up
    release = threading.Event()
    slow = threading.Thread(target=release.wait, args=(10,), daemon=True)
    slow.start()
    _report_warm_up(win, slow)
    qtbot.waitUntil(lambda: "Compiling the convolution loop" in win.statusBar().currentMessage(),
                    timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == "", timeout=5000)

    fast = threading.Thread(target=lambda: None)
    fast.start()
    fast.join()
    _report_warm_up(win, fast)
    qtbot.wait(1500)
    assert win.statusBar().currentMessage() == ""
