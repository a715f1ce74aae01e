"""A matrix of numbers as the input (issue 14): values kept, shown in their cells, and
the classic sharpen example of REFERENCE.md gives 320 in the top-left cell."""

import numpy as np
import pytest
from PyQt6.QtCore import QSettings

from convscope.app.window import MainWindow
from convscope.core.pipeline import ConvStage, Kernel, Pipeline

TIMEOUT = 20_000
IMAGE = [[105, 102, 100, 97, 96], [103, 99, 103, 101, 102], [101, 98, 104, 102, 100],
         [99, 101, 106, 104, 99], [104, 104, 104, 100, 98]]
SHARPEN = [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def test_a_csv_matrix_is_the_input_with_its_numbers(win, qtbot, tmp_path):
    path = tmp_path / "five.csv"
    path.write_text("\n".join(",".join(map(str, r)) for r in IMAGE))
    win.set_pipeline(Pipeline([ConvStage([Kernel(np.array(SHARPEN, float), name="sharpen")],
                                         padding=1)]), "sharpen example")
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.open_path(str(path))
    np.testing.assert_array_equal(win.image[:, :, 0], IMAGE)       # not scaled to 0..1
    out = win.output.result.stages[0].maps[0]
    assert out[0, 0] == 320
    qtbot.wait(100)
    for key in ((-1, 0), (0, 0)):
        view = win.grid.views()[key]
        view.view.grab()
        assert view.values.shown_count == 25        # every cell shows its number at fit


def test_a_bad_matrix_is_refused_and_the_image_kept(win, qtbot, tmp_path):
    path = tmp_path / "ragged.txt"
    path.write_text("1 2 3\n4 5\n")
    with qtbot.waitSignal(win.resultShown, timeout=TIMEOUT):
        win.set_image(np.zeros((4, 4, 1), np.float32), "zeros")
    win.load_image_file(str(path), wait=True)
    assert "ragged.txt, row 2" in win.message.text() and "kept" in win.message.text()
    assert win.image.shape == (4, 4, 1)
