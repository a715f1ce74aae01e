"""Editing that is safe (issue 12): undo and redo of every kind of edit, a session that
comes back, and help inside the app. Pipelines are compared as their saved JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QApplication

from convscope.app.window import SAMPLE_IMAGE, MainWindow
from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, save_pipeline

TIMEOUT = 20_000


def make_window(qtbot, settings):
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def win(qtbot, settings):
    w = make_window(qtbot, settings)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT):
        w.load_image_file(str(SAMPLE_IMAGE), wait=True)
    yield w
    w.close()


def saved(win) -> str:
    return json.dumps(win.panel.pipeline().to_dict(), sort_keys=True)


def undo_text(win) -> str:
    return win.act_undo.text().replace("&", "")


def edit_and_check(win, qtbot, do, name: str):
    """``do()`` is undone and redone exactly, under the name ``name``."""
    before = saved(win)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        do()
    after = saved(win)
    assert after != before
    assert undo_text(win) == f"Undo {name}"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_undo.trigger()
    assert saved(win) == before
    assert win.act_redo.text().replace("&", "") == f"Redo {name}"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_redo.trigger()
    assert saved(win) == after


def test_stage_add_remove_move_undo_and_redo(win, qtbot):
    panel = win.panel
    panel.select_stage(0)
    edit_and_check(win, qtbot, panel.add_pool_button.click, "add pool stage")
    edit_and_check(win, qtbot, panel.add_activation_button.click, "add activation stage")
    kinds = {"conv": "convolution", "activation": "activation", "pool": "pool"}
    kind = kinds[win.panel.pipeline().stages[1].kind]
    panel.select_stage(1)
    edit_and_check(win, qtbot, panel.remove_button.click, f"remove {kind} stage 2")
    panel.select_stage(0)
    edit_and_check(win, qtbot, panel.down_button.click, "move convolution stage 1 down")


def test_kernel_and_geometry_edits_undo(win, qtbot):
    win.panel.select_stage(0)
    ke = win.panel.current_editor().kernel_editor
    edit_and_check(win, qtbot, lambda: ke.set_cell(0, 0, "2"),
                   "edit kernel 'outline' weight (1, 1)")
    edit_and_check(win, qtbot, lambda: ke.resize_kernel(5, 5), "resize kernel 'outline' to 5x5")


def test_typing_in_one_field_is_one_step(win, qtbot):
    win.panel.select_stage(0)
    ke = win.panel.current_editor().kernel_editor
    before = saved(win)
    for text in ("3", "30", "300"):
        with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
            ke.set_cell(1, 1, text)
    assert win.history.stack.count() == 1
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_undo.trigger()
    assert saved(win) == before


def test_loading_a_pipeline_and_the_image_and_display_undo(win, qtbot, tmp_path):
    path = tmp_path / "box.json"
    save_pipeline(path, Pipeline([ConvStage([Kernel(np.ones((3, 3)) / 9, name="box")]),
                                  ActivationStage("relu")]))
    edit_and_check(win, qtbot, lambda: win.load_pipeline_file(str(path)),
                   "load pipeline box.json")
    # an image
    png = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(png)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.load_image_file(str(png), wait=True)
    assert win.image.shape == (20, 30, 3)
    assert undo_text(win) == "Undo open image small.png"
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_undo.trigger()
    assert win.image_name == str(SAMPLE_IMAGE) and win.image.shape[:2] == (300, 451)
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.act_redo.trigger()
    assert win.image.shape == (20, 30, 3)
    # a display setting
    win.cmap_box.setCurrentText("viridis")
    assert win.grid.cmap_choice == "viridis" and undo_text(win) == "Undo change colormap"
    win.act_undo.trigger()
    assert win.cmap_box.currentText() == "auto" and win.grid.cmap_choice == "auto"


def test_session_comes_back_and_fresh_or_damaged_stores_are_safe(qtbot, settings, tmp_path):
    png = tmp_path / "photo.png"
    Image.fromarray(np.full((24, 40, 3), 128, np.uint8)).save(png)
    w = make_window(qtbot, settings)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT):
        w.load_image_file(str(png), wait=True)
    w.panel.select_stage(0)
    with qtbot.waitSignal(w.resultShown, timeout=TIMEOUT):
        w.panel.add_pool_button.click()
    w.cmap_box.setCurrentText("magma")
    w.show_view("train")
    pipe = saved(w)
    w.close()

    again = make_window(qtbot, settings)
    image = again.restore_session()
    assert image == str(png.resolve())
    assert saved(again) == pipe
    assert again.cmap_box.currentText() == "magma" and again.grid.cmap_choice == "magma"
    assert again.tabs.currentIndex() == 1
    assert again.history.stack.count() == 0      # a new session starts a new history
    again.close()

    # damaged: every part garbage; nothing raises, the rest stays default, a message says so
    for key in MainWindow.SESSION_KEYS:
        settings.setValue(key, "{not json")
    settings.sync()
    broken = make_window(qtbot, settings)
    assert broken.restore_session() is None
    assert "could not be read" in broken.message.text()
    assert len(broken.panel.pipeline().stages) == 3
    broken.close()

    MainWindow.clear_session(settings)
    clean = make_window(qtbot, settings)
    assert clean.restore_session() is None and clean.message.text() == ""
    clean.close()


def test_help_menu_guide_shortcuts_and_about(win, qtbot):
    from convscope.app.help import shortcut_rows
    dlg = win.help_menu.show_about()
    text = dlg.browser.toPlainText()
    import numpy
    import PIL
    for name, version in (("numpy", numpy.__version__), ("Pillow", PIL.__version__)):
        assert name in text and version in text
    assert "Python" in text and "Qt" in text and "numba" in text and "MIT" in text
    dlg.close()
    rows = dict(shortcut_rows(win))
    assert "Undo" in rows and "Redo" in rows and "Zoom in" in rows
    dlg = win.help_menu.show_shortcuts()
    assert "Ctrl+Z" in dlg.browser.toPlainText()
    dlg.close()
    dlg = win.help_menu.show_guide()
    assert "formula" in dlg.browser.toPlainText().lower()
    dlg.close()
    QApplication.processEvents()


# ---------------------------------------------------------------- kernels keep meaning


def test_a_preset_names_the_kernel_and_captions_follow(win, qtbot):
    win.panel.select_stage(0)
    ke = win.panel.current_editor().kernel_editor
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.load_preset("gaussian_5x5")
    name = win.panel.pipeline().stages[0].kernels[0].name
    assert name != "outline" and "auss" in name
    assert win.output.result.stages[0].labels[0] == f"R * {name}"
    assert "Undo" in undo_text(win)


def test_resizing_keeps_the_kernel_centred(win, qtbot):
    """An identity kernel stays an identity through 3x3 -> 5x5 -> 7x3: the 'same'
    output equals the input (it was shifted by 1-6 pixels)."""
    win.panel.select_stage(0)
    ke = win.panel.current_editor().kernel_editor
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        ke.load_preset("identity")
    for size in ((5, 5), (7, 3)):
        with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
            ke.resize_kernel(*size)
        res = win.output.result
        np.testing.assert_allclose(res.stages[0].maps, res.input.maps, atol=1e-6)
    w = win.panel.pipeline().stages[0].kernels[0].weights
    assert w.shape == (7, 3) and w[3, 1] == 1 and w.sum() == 1


def test_the_paste_dialog_keeps_the_text_and_shows_the_error(win, qtbot):
    win.panel.select_stage(0)
    ke = win.panel.current_editor().kernel_editor
    dlg = ke.open_paste_dialog(modal=False)
    dlg.edit.setPlainText("1 2 1; 2 x 2")
    assert not dlg.try_accept()
    assert dlg.isVisible() and dlg.error.isVisible() and "x" in dlg.error.text()
    assert dlg.edit.toPlainText() == "1 2 1; 2 x 2"
    dlg.edit.setPlainText("1 2 1; 2 4 2; 1 2 1")
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        assert dlg.try_accept()
    assert not dlg.isVisible()
    np.testing.assert_array_equal(win.panel.pipeline().stages[0].kernels[0].weights,
                                  [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
