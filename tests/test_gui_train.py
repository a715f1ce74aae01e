"""The Train tab: training through the UI in a worker thread, pause/stop, model files.

Training runs the tiny architecture on a slice of the bundled MNIST subset
(``limit_train`` / ``limit_test``), so a run takes a second or two.
"""

import dataclasses
import os

import numpy as np
import pytest
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent

from convscope.app.train_view import ArchitectureDialog, TrainView, layer_label
from convscope.app.train_worker import evaluate_model
from convscope.core.nn import ARCHITECTURES, build, save_model
from convscope.core.nn.data import load_bundled_mnist
from convscope.core.nn.train import BatchEvent, EpochEvent

LEFT = Qt.MouseButton.LeftButton
TIMEOUT = 30_000  # ms; generous, the machine may be busy


@pytest.fixture(scope="module")
def mnist():
    return load_bundled_mnist()


@pytest.fixture
def view(qtbot, tmp_path, mnist):
    v = TrainView()
    qtbot.addWidget(v)
    v.runs_dir = tmp_path / "runs"
    v.set_dataset(mnist)
    assert v.set_architecture(ARCHITECTURES["tiny"], "tiny")
    v.limit_train = 256
    v.limit_test = 200
    v.epochs.setValue(1)
    v.batch_size.setValue(64)
    v.resize(1280, 760)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.stop_training(wait=True)
    assert not v.is_training()


def _record(view):
    log = []
    view.batchDone.connect(lambda ev: log.append(("batch", ev)))
    view.epochDone.connect(lambda ev: log.append(("epoch", ev)))
    view.trainingFinished.connect(lambda m: log.append(("finished", m)))
    view.trainingStopped.connect(lambda: log.append(("stopped", None)))
    view.modelChanged.connect(lambda m: log.append(("modelChanged", m)))
    return log


def test_train_through_the_ui(view, qtbot):
    log = _record(view)
    running = []
    view.trainingRunning.connect(running.append)
    with qtbot.waitSignal(view.trainingFinished, timeout=TIMEOUT) as done:
        qtbot.mouseClick(view.start_button, LEFT)
        assert view.is_training()
        assert not view.start_button.isEnabled() and view.stop_button.isEnabled()
    kinds = [k for k, _ in log]
    # 256 images in batches of 64: four batches, then the epoch, then the end
    assert kinds == ["batch"] * 4 + ["epoch", "modelChanged", "finished"], kinds
    assert all(isinstance(ev, BatchEvent) for k, ev in log if k == "batch")
    epoch = log[4][1]
    assert isinstance(epoch, EpochEvent) and not epoch.stopped
    assert epoch.confusion.sum() == 200
    assert running == [True, False]
    assert not view.is_training()

    model = done.args[0]
    assert view.model() is model
    assert view.model().name == "tiny"
    # plots got their points
    x, y = view.loss_raw.getData()
    assert len(x) == 4 and np.allclose(y, [ev.loss for k, ev in log if k == "batch"])
    assert len(view.loss_smooth.getData()[0]) == 4
    assert len(view.acc_test.getData()[0]) == 1
    assert view.progress.text() == "epoch 1/1 · batch 4/4"
    # results: confusion matrix of the limited test set, accuracy, gallery
    ev = view.evaluation()
    assert view.confusion.matrix().sum() == 200
    assert np.array_equal(view.confusion.matrix(), ev.confusion)
    assert f"{ev.accuracy * 100:.2f} %" in view.accuracy_label.text()
    assert ev.count == 200 and ev.wrong == 200 - np.trace(ev.confusion)
    captions = view.gallery.captions()
    assert len(captions) == min(ev.wrong, 24)
    assert captions and captions[0].startswith("true ") and "→ pred" in captions[0]
    # the gallery's errors (predicted only as far as needed) match a full evaluation
    full = evaluate_model(model, dataclasses.replace(
        view.dataset(), x_test=view.dataset().x_test[:200], y_test=view.dataset().y_test[:200]))
    assert [e[:3] for e in ev.errors] == [e[:3] for e in full.errors]
    assert np.allclose([e[3] for e in ev.errors], [e[3] for e in full.errors], atol=1e-5)
    assert np.array_equal(full.confusion, ev.confusion)
    # checkpoints went to the run's own folder
    folder = view.run_folder()
    assert folder.startswith(str(view.runs_dir))
    assert os.path.exists(os.path.join(folder, "checkpoint.npz"))
    assert os.path.exists(os.path.join(folder, "model.npz"))


def test_kernel_grid_and_send_kernel(view, qtbot):
    with qtbot.waitSignal(view.trainingFinished, timeout=TIMEOUT):
        qtbot.mouseClick(view.start_button, LEFT)
    weights = view.model().layers[0].params["weight"]
    grid = view.kernel_grid
    assert grid.count() == weights.shape[0] == 8
    assert grid.isVisible() and grid.tile_rect(7).bottom() < grid.height()
    assert not view.send_button.isEnabled()
    qtbot.mouseClick(grid, LEFT, pos=grid.tile_rect(3).center())
    assert view.kernel_grid.selected() == 3
    assert view.send_button.isEnabled()
    with qtbot.waitSignal(view.sendKernel, timeout=1000) as sent:
        qtbot.mouseClick(view.send_button, LEFT)
    kernel, name = sent.args
    assert kernel.dtype == np.float64 and kernel.shape == (3, 3)
    assert np.array_equal(kernel, weights[3, 0].astype(np.float64))
    assert "filter 4" in name


def test_pause_resume_stop(view, qtbot):
    view.limit_train = 6000
    view.batch_size.setValue(32)
    log = _record(view)
    with qtbot.waitSignal(view.batchDone, timeout=TIMEOUT):
        qtbot.mouseClick(view.start_button, LEFT)
    run = view._run
    qtbot.mouseClick(view.pause_button, LEFT)
    assert run.paused and view.pause_button.text() == "Resume"
    qtbot.wait(1500)            # the batch under way when pausing may still report
    n = len(log)
    qtbot.wait(800)
    assert len(log) == n, "batches kept coming while paused"
    assert view.is_training()
    with qtbot.waitSignal(view.batchDone, timeout=TIMEOUT):
        qtbot.mouseClick(view.pause_button, LEFT)
    assert not run.paused and view.pause_button.text() == "Pause"
    with qtbot.waitSignal(view.trainingStopped, timeout=TIMEOUT):
        qtbot.mouseClick(view.stop_button, LEFT)
    kinds = [k for k, _ in log]
    assert kinds[-3:] == ["epoch", "modelChanged", "stopped"], kinds[-5:]
    assert "finished" not in kinds
    assert log[-3][1].stopped
    assert kinds.count("batch") < 6000 // 32
    assert not view.is_training()
    assert view.start_button.isEnabled() and not view.stop_button.isEnabled()
    # the stopped model is the current one; no epoch finished, so no checkpoint
    assert view.model() is log[-2][1]
    assert not os.path.exists(os.path.join(view.run_folder(), "checkpoint.npz"))
    assert "checkpoint" in view.message.text()


def test_stop_and_wait_when_closing(view, qtbot):
    view.limit_train = 6000
    with qtbot.waitSignal(view.batchDone, timeout=TIMEOUT):
        view.start_training()
    run = view._run
    view.stop_training(wait=True)
    assert not view.is_training()
    assert not run.is_running()


def test_bad_model_file_is_refused(view, qtbot, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    before = view.model()
    with qtbot.assertNotEmitted(view.modelChanged):
        assert not view.load_model_file(bad)
    assert view.model() is before
    assert view.message.error
    assert "bad.npz" in view.message.text() and "kept" in view.message.text()


def test_model_with_other_input_shape_is_refused(view, qtbot, tmp_path):
    path = tmp_path / "m32.npz"
    save_model(path, build(dict(ARCHITECTURES["tiny"], input_shape=[1, 32, 32])))
    before = view.model()
    with qtbot.assertNotEmitted(view.modelChanged):
        assert not view.load_model_file(path)
    assert view.model() is before
    assert view.message.error and "(1, 32, 32)" in view.message.text()


def test_load_model_shows_results_without_training(view, qtbot, tmp_path):
    path = tmp_path / "lenet.npz"
    model = build(ARCHITECTURES["lenet"], seed=3)
    save_model(path, model)
    with qtbot.waitSignal(view.modelChanged, timeout=1000) as changed:
        assert view.load_model_file(path)
    loaded = changed.args[0]
    assert view.model() is loaded
    assert np.array_equal(loaded.layers[0].params["weight"], model.layers[0].params["weight"])
    assert view.kernel_grid.count() == 8
    assert view.confusion.matrix().sum() == 200
    assert "%" in view.accuracy_label.text()
    assert len(view.gallery.captions()) > 0
    assert view.arch_table.rowCount() == len(model.layers)
    assert not view.message.error


def test_saved_model_keeps_its_training_curves(view, qtbot, tmp_path):
    with qtbot.waitSignal(view.trainingFinished, timeout=TIMEOUT):
        view.start_training()
    path = tmp_path / "trained.npz"
    assert view.save_model_file(path)
    other = TrainView()
    qtbot.addWidget(other)
    other.set_dataset(view.dataset())
    other.limit_test = 200
    assert other.load_model_file(path)
    assert len(other.loss_raw.getData()[0]) == 4
    assert len(other.acc_test.getData()[0]) == 1
    assert np.array_equal(other.confusion.matrix(), view.confusion.matrix())


def test_bad_dataset_folder_keeps_the_data(view, qtbot, tmp_path):
    data = view.dataset()
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(view.datasetFailed, timeout=TIMEOUT):
        view.load_data_folder(empty)
    assert view.dataset() is data
    assert view.message.error and "empty" in view.message.text()
    assert view.data_combo.currentIndex() == 0


def _drag(cls, paths):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(10, 10) if cls is QDragEnterEvent else QPointF(10, 10)
    return cls(pos, Qt.DropAction.CopyAction, md, Qt.MouseButton.NoButton,
               Qt.KeyboardModifier.NoModifier), md


def test_dropped_image_folder_loads_in_background(view, qtbot, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (28, 28), np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    # a file is not accepted, a folder is
    enter, _ = _drag(QDragEnterEvent, [tmp_path / "imgs" / "a" / "0.png"])
    enter.ignore()
    view.dragEnterEvent(enter)
    assert not enter.isAccepted()
    enter, _ = _drag(QDragEnterEvent, [tmp_path / "imgs"])
    enter.ignore()
    view.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop, _ = _drag(QDropEvent, [tmp_path / "imgs"])
    with qtbot.waitSignal(view.datasetChanged, timeout=TIMEOUT) as changed:
        view.dropEvent(drop)
    data = changed.args[0]
    assert view.dataset() is data and data.classes == ["a", "b"]
    assert view.data_combo.currentIndex() == 2
    assert "8 training" in view.data_info.text()


def test_architecture_edits_are_validated(view, qtbot):
    before = dict(view._spec)
    assert not view.set_architecture({"layers": [{"type": "conv2d", "filters": 4,
                                                  "kernel_size": 40}]})
    assert view._spec == before and view.message.error
    dlg = ArchitectureDialog(ARCHITECTURES["tiny"], (1, 28, 28), view)
    qtbot.addWidget(dlg)
    dlg.editor.setPlainText("{not json")
    assert not dlg.try_accept()
    assert "JSON" in dlg.error.text()
    spec = dict(ARCHITECTURES["tiny"], layers=ARCHITECTURES["tiny"]["layers"][:3]
                + [{"type": "flatten"}, {"type": "dense", "units": 10}])
    dlg.editor.setPlainText(__import__("json").dumps(spec))
    assert dlg.try_accept()
    assert view.set_architecture(dlg.spec, "mine")
    assert view.arch_combo.currentText() == "mine"
    assert view.arch_table.rowCount() == 5
    assert view.arch_table.item(0, 1).text() == layer_label(spec["layers"][0]) == "Conv2D 8, 3×3"


def test_start_refuses_a_model_that_does_not_fit_the_data(view, qtbot, mnist):
    three = dataclasses.replace(mnist, classes=[str(i) for i in range(12)],
                                y_train=mnist.y_train, y_test=mnist.y_test)
    view.set_dataset(three)
    assert not view.start_training()
    assert "12 classes" in view.message.text()
    assert not view.is_training()


def test_training_curves_keep_their_history_and_round_trip_it(qtbot):
    """The loss and accuracy curves are a panel of their own (app/train_curves.py): what
    they draw is what a saved model keeps, and a restored history draws the same."""
    from convscope.app.train_curves import TrainingCurves
    curves = TrainingCurves()
    qtbot.addWidget(curves)
    curves.start(3)
    assert curves.training and curves.loss_hint.isVisible()
    for i, loss in enumerate([2.3, 1.1, 0.7, 0.5]):
        curves.add_loss((i + 1) / 2, loss)
    curves.add_accuracy(1, 90.0, 91.5)
    curves.add_accuracy(2, 95.0, float("nan"))
    curves.redraw()
    x, y = curves.loss_raw.getData()
    np.testing.assert_array_equal(y, [2.3, 1.1, 0.7, 0.5])
    # bias-corrected exponential average: the first point is the first loss
    assert curves.loss_smooth.getData()[1][0] == pytest.approx(2.3)
    assert curves.loss_plot.getPlotItem().getViewBox().viewRange()[1][1] == pytest.approx(2.53)
    curves.end()
    saved = curves.history()
    other = TrainingCurves()
    qtbot.addWidget(other)
    other.restore(saved)
    np.testing.assert_array_equal(other.loss_raw.getData()[1], y)
    np.testing.assert_array_equal(other.acc_test.getData()[1], [91.5, np.nan])
    np.testing.assert_allclose(other.loss_smooth.getData()[1], curves.loss_smooth.getData()[1])
    other.restore({})
    x0 = other.loss_raw.getData()[0]
    assert other.history() == {} and (x0 is None or len(x0) == 0)


def test_hyper_parameters_panel_makes_the_run_config(qtbot):
    from convscope.app.train_hyper import HyperParameters
    hp = HyperParameters()
    qtbot.addWidget(hp)
    hp.epochs.setValue(7)
    hp.batch_size.setValue(32)
    hp.lr.setValue(0.01)
    hp.optimizer.setCurrentText("sgd")
    with qtbot.waitSignal(hp.seedChanged) as seed:
        hp.seed.setValue(42)
    assert seed.args == [42]
    c = hp.config()
    assert (c.epochs, c.batch_size, c.lr, c.optimizer, c.seed) == (7, 32, 0.01, "sgd", 42)
    c.validate()
    hp.set_editable(False)
    assert not any(w.isEnabled() for w in hp.fields())
