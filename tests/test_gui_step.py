"""Watch it compute in the window (issue 14): examples open with their step-through,
playback moves cell by cell in order, predict-then-reveal hides values, a click jumps,
and the animation is saved as a file."""

import numpy as np
import pytest
from PIL import Image
from PyQt6.QtCore import QSettings

from convscope.app.window import MainWindow

TIMEOUT = 20_000


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.step_view.play(False)
    w.close()


def test_every_example_opens_and_the_sharpen_one_steps_to_320(win, qtbot):
    from convscope.core.examples import examples
    for ex in examples():
        with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
            win.open_example(ex.key)
        assert win.output.result.error is None, ex.key
        assert ex.title in win.message.text()
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("sharpen")
    sv = win.step_view
    assert win.step_dock.isVisible() and sv.result is win.output.result
    step = sv.current_step()
    assert (step.row, step.col, step.done) == (0, 0, True) and step.running == 320
    assert sv.predict.isChecked() and not sv.revealed and sv.reveal_button.isEnabled()
    sv.reveal()
    assert sv.revealed
    # playback: cell by cell, row-major; predict mode waits for Reveal
    sv.predict.setChecked(False)
    sv.speed.setValue(60)
    seen = []
    sv.stepChanged.connect(lambda lv, m, r, c: seen.append((r, c)))
    sv.play(True)
    qtbot.waitUntil(lambda: len(seen) >= 6, timeout=TIMEOUT)
    sv.play(False)
    assert seen[:6] == [divmod(k, 5) for k in range(1, 7)]
    # the grid marks the cell being computed
    assert win.grid.selection[:2] == (0, 0)


def test_per_product_steps_and_a_click_jumps(win, qtbot):
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("strides")
    sv = win.step_view
    sv.granularity.setCurrentIndex(1)
    assert sv.count == 4 * 10                       # 2x2 cells, 9 products + the bias
    sv.go(3)
    step = sv.current_step()
    assert step.tap == 4 and not step.done
    win.grid.clicked.emit(0, 0, 1, 1)               # as a click on that cell
    step = sv.current_step()
    assert (step.row, step.col) == (1, 1) and step.done
    ex = win.explain_panel.explanation()
    assert (ex.level, ex.row, ex.col) == (0, 1, 1)


def test_the_explanation_and_the_marker_follow_the_step_through(win, qtbot):
    """Stepping moves the explained cell: the maps' marker and the explanation show the
    cell the step-through computes (the explanation stayed on the clicked cell while
    the marker moved on)."""
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("sharpen")
    sv = win.step_view
    win.grid.clicked.emit(0, 0, 0, 0)
    for cell in (1, 7):
        sv.go(cell)
        row, col = divmod(cell, 5)
        ex = win.explain_panel.explanation()
        assert (ex.row, ex.col) == (row, col) and win.grid.selection == (0, 0, row, col)
        assert ex.value == pytest.approx(float(win.output.result.stages[0].maps[0, row, col]))
        assert win.selected[2:] == (row, col)
    # playing: the marker follows every cell, the explanation catches up after a while
    sv.predict.setChecked(False)       # predict mode waits for Reveal at every cell
    sv.speed.setValue(30)
    sv.play(True)
    qtbot.waitUntil(lambda: win.grid.selection[2:] != (1, 2), timeout=TIMEOUT)
    sv.play(False)
    qtbot.waitUntil(lambda: (win.explain_panel.explanation().row,
                             win.explain_panel.explanation().col) == win.selected[2:],
                    timeout=TIMEOUT)
    # per product: the steps inside one cell do not re-explain it
    sv.granularity.setCurrentIndex(1)
    shown = []
    win.document.selectionChanged.connect(lambda sel, src: shown.append(sel))
    start = sv.index - sv.index % 10
    for i in range(start, start + 9):
        sv.go(i)
    assert len(shown) <= 1


def test_the_step_through_is_saved_as_an_animation(win, qtbot, tmp_path):
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("max-pool-8x8")
    path = tmp_path / "pool.gif"
    with qtbot.waitSignal(win.step_view.saved, timeout=TIMEOUT):
        win.step_view.save(str(path), cells=16, size=(480, 270))
    with Image.open(path) as im:
        assert im.n_frames == 16 and im.size == (480, 270)


def test_the_save_dialog_chooses_size_speed_cells_and_steps(win, qtbot, tmp_path,
                                                             monkeypatch):
    """Issue 14: frame size and speed are chosen in the dialog; the file is checked
    there (the error stays in the dialog with the typed name)."""
    from PyQt6.QtWidgets import QDialog

    from convscope.app import step_view as sv_module
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("sharpen")
    sv = win.step_view
    sv.go(2)                                          # from the third cell on
    seen = {}

    def fake_exec(dlg):
        seen["cells_max"] = dlg.cells.maximum()
        dlg.path.setText(str(tmp_path / "missing" / "a.gif"))
        dlg._accept()
        seen["error"] = dlg.error.text()
        assert dlg.result() != QDialog.DialogCode.Accepted
        dlg.path.setText(str(tmp_path / "sharpen"))    # no suffix: .gif is added
        dlg.size.setCurrentIndex(0)                   # 640 x 360
        dlg.fps.setValue(5)
        dlg.cells.setValue(3)
        dlg.steps.setCurrentIndex(1)                  # per product
        dlg._accept()
        return dlg.result()

    monkeypatch.setattr(sv_module.AnimationDialog, "exec", fake_exec)
    progress = []
    sv.saveProgress.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(sv.saved, timeout=TIMEOUT) as got:
        sv.save_dialog()
    assert seen["cells_max"] == 23 and "does not exist" in seen["error"]
    assert got.args == [str(tmp_path / "sharpen.gif")]
    with Image.open(tmp_path / "sharpen.gif") as im:
        assert im.n_frames == 3 * 10 and im.size == (640, 360)
        assert im.info["duration"] == 200
    assert progress[-1] == (30, 30)
    qtbot.waitUntil(lambda: not sv.save_row.isVisible(), timeout=TIMEOUT)


def test_saving_an_animation_shows_progress_and_can_be_stopped(win, qtbot, tmp_path,
                                                               monkeypatch):
    from convscope.app import step_view as sv_module
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("output-size")               # 86x86 cells
    sv = win.step_view
    real = sv_module.render_step
    monkeypatch.setattr(sv_module, "render_step",
                        lambda *a, **k: (__import__("time").sleep(0.05), real(*a, **k))[1])
    path = tmp_path / "long.gif"
    with qtbot.waitSignal(sv.failed, timeout=TIMEOUT) as got:
        sv.save(str(path), cells=200, size=(640, 360))
        assert sv.save_row.isVisible() and sv.saving()
        qtbot.waitUntil(lambda: sv.save_progress.value() >= 6, timeout=TIMEOUT)
        assert sv.save_progress.maximum() == 200
        sv.save_stop.click()
    assert "stopped" in got.args[0] and not path.exists()
    assert list(tmp_path.iterdir()) == []
    qtbot.waitUntil(lambda: not sv.save_row.isVisible(), timeout=TIMEOUT)


def test_an_animation_too_large_for_memory_is_refused_with_the_numbers(win, qtbot, tmp_path):
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_example("output-size")
    with qtbot.waitSignal(win.step_view.failed, timeout=TIMEOUT) as got:
        win.step_view.save(str(tmp_path / "x.gif"), cells=2000, size=(1920, 1080))
    assert "2000 frames of 1920x1080 would need 11.6 GiB" in got.args[0]
    assert not (tmp_path / "x.gif").exists()
