"""Training and dataset loading off the UI thread.

:class:`TrainWorker` is a QObject moved to its own QThread. Its ``run`` slot iterates
:func:`core.nn.train.train` (a generator) and re-emits every event as a Qt signal, so
the UI updates on each yield. Pause, resume and stop go through
:class:`core.nn.train.TrainControl`, which is thread-safe and checked between batches.

The model being trained belongs to the worker until the run ends: the UI never reads
it meanwhile. What the UI shows of it (the first convolution's filters) is a copy the
worker takes at most :attr:`TrainWorker.snapshot_interval` seconds apart. When the run
ends (finished or stopped) the worker adds the first misclassified test images to the
last epoch's test results (predicting only as many images as that takes) and hands
model and :class:`Evaluation` over in one ``evaluated`` signal, then emits
``finished(model)`` or ``stopped()``.

:class:`DatasetLoader` loads a dataset in a Python thread and reports back with a
token, so a slow folder load that has been superseded is dropped.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal, pyqtSlot

from .compute import COMPUTE_NICENESS
from ..core.memory import lower_thread_priority, set_blas_threads
from ..core.nn.data import Dataset
from ..core.nn.layers import Conv2D
from ..core.nn.losses import softmax
from ..core.nn.model import Sequential
from ..core.nn.train import BatchEvent, EpochEvent, TrainConfig, TrainControl, evaluate, train

__all__ = ["GALLERY", "Evaluation", "evaluate_model", "first_errors", "evaluation_from_epoch",
           "first_conv", "TrainWorker", "TrainRun", "DatasetLoader"]


GALLERY = 24   # misclassified test images kept for the gallery


@dataclass
class Evaluation:
    """A model's results on a test set, and its first misclassified images."""

    loss: float
    accuracy: float
    confusion: np.ndarray   # (K, K) int: row = true class, column = predicted
    errors: list            # first misclassified: (test index, true, predicted, p(predicted))
    images: np.ndarray      # (N, C, H, W) the test images (the dataset's array, not a copy)
    classes: list[str]      # the dataset's class names

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def wrong(self) -> int:
        return self.count - int(np.trace(self.confusion))


def _errors(probs: np.ndarray, labels: np.ndarray, offset: int, limit: int) -> list:
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)[:limit]
    return [(offset + int(i), int(labels[i]), int(pred[i]), float(probs[i, pred[i]]))
            for i in wrong]


def evaluate_model(model: Sequential, data: Dataset, batch_size: int = 1000,
                   limit: int = GALLERY) -> Evaluation:
    """Evaluate on the whole test set (loss, accuracy, confusion matrix, first errors)."""
    loss, acc, conf, probs = evaluate(model, data.x_test, data.y_test, batch_size)
    return Evaluation(float(loss), float(acc), conf, _errors(probs, data.y_test, 0, limit),
                      data.x_test, list(data.classes))


def first_errors(model: Sequential, data: Dataset, limit: int = GALLERY,
                 chunk: int = 250) -> list:
    """The first ``limit`` misclassified test images, predicting only as far as needed."""
    found: list = []
    for i in range(0, len(data.x_test), chunk):
        probs = softmax(model.forward(data.x_test[i:i + chunk]))
        found += _errors(probs, data.y_test[i:i + chunk], i, limit - len(found))
        if len(found) >= limit:
            break
    return found


def evaluation_from_epoch(model: Sequential, data: Dataset, ev: EpochEvent,
                          limit: int = GALLERY) -> Evaluation:
    """The evaluation core.nn.train did at the end of the epoch, plus the first errors."""
    return Evaluation(float(ev.test_loss), float(ev.test_accuracy), ev.confusion,
                      first_errors(model, data, limit), data.x_test, list(data.classes))


def first_conv(model: Sequential) -> tuple[int, Conv2D] | None:
    """(index, layer) of the model's first Conv2D, or None."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            return i, layer
    return None


TRAIN_BLAS_THREADS = 2


class TrainWorker(QObject):
    """Runs one training; lives in a QThread (see :class:`TrainRun`)."""

    batch = pyqtSignal(object)       # BatchEvent
    epoch = pyqtSignal(object)       # EpochEvent
    kernels = pyqtSignal(object)     # copy of the first conv's weights (F, C, kh, kw)
    evaluated = pyqtSignal(object, object)  # model, Evaluation (before finished/stopped)
    finished = pyqtSignal(object)    # the trained model
    stopped = pyqtSignal()
    failed = pyqtSignal(str)
    done = pyqtSignal()              # always last: the thread may quit

    snapshot_interval = 0.4          # seconds between kernel copies (UI: a few per second)

    def __init__(self, model: Sequential, data: Dataset, config: TrainConfig,
                 control: TrainControl | None = None):
        super().__init__()
        self.model = model
        self.data = data
        self.config = config
        self.control = control or TrainControl()
        self.skip_evaluation = False  # set when the window closes: end quickly
        conv = first_conv(model)
        self._conv_index = conv[0] if conv else None
        self._last_snapshot = 0.0

    def _snapshot(self, model, force=False):
        if self._conv_index is None:
            return
        now = time.perf_counter()
        if force or now - self._last_snapshot >= self.snapshot_interval:
            self._last_snapshot = now
            self.kernels.emit(model.layers[self._conv_index].params["weight"].copy())

    @pyqtSlot()
    def run(self):
        model = self.model
        last_epoch = None
        # the UI runs with one BLAS thread (app.main); training wants both cores, at a
        # lower priority than the UI thread (see app.compute.COMPUTE_NICENESS)
        lower_thread_priority(COMPUTE_NICENESS)
        blas_before = set_blas_threads(TRAIN_BLAS_THREADS)
        try:
            gen = train(model, self.data, self.config, self.control)
            while True:
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    model = stop.value or model
                    break
                if isinstance(ev, BatchEvent):
                    self.batch.emit(ev)
                    self._snapshot(model)
                elif isinstance(ev, EpochEvent):
                    self._snapshot(model, force=True)
                    self.epoch.emit(ev)
                    last_epoch = ev
            self.model = model
            if not self.skip_evaluation:
                # the last epoch event already holds the test results of this model
                ev = evaluation_from_epoch(model, self.data, last_epoch) if last_epoch else \
                    evaluate_model(model, self.data, self.config.eval_batch_size)
                self.evaluated.emit(model, ev)
            if self.control.stopped:
                self.stopped.emit()
            else:
                self.finished.emit(model)
        except (ValueError, FloatingPointError, OSError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: report it, keep the window alive
            traceback.print_exc()
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if blas_before is not None:
                set_blas_threads(blas_before)
            self.done.emit()


class TrainRun(QObject):
    """One training run: a :class:`TrainWorker` in its own QThread.

    Connect to ``run.worker``'s signals, then call :meth:`start`. The thread quits
    when the worker is done; :meth:`stop` asks the loop to end after the current batch.
    """

    def __init__(self, model: Sequential, data: Dataset, config: TrainConfig, parent=None):
        super().__init__(parent)
        self.control = TrainControl()
        self.worker = TrainWorker(model, data, config, self.control)
        self.thread = QThread()
        self.thread.setObjectName("convscope-train")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # direct: QThread.quit is thread-safe, and the UI thread may be blocked in wait()
        self.worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self):
        self.thread.start()

    def pause(self):
        self.control.pause()

    def resume(self):
        self.control.resume()

    def stop(self):
        self.control.stop()

    @property
    def paused(self) -> bool:
        return self.control.paused

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread ended; False on timeout."""
        return self.thread.wait(timeout_ms)


class DatasetLoader(QObject):
    """Loads datasets in a Python thread; ``loaded``/``failed`` carry the request's token."""

    loaded = pyqtSignal(int, object)   # token, Dataset
    failed = pyqtSignal(int, str)      # token, message

    def __init__(self, parent=None):
        super().__init__(parent)
        self._token = 0
        self._lock = threading.Lock()

    @property
    def latest(self) -> int:
        with self._lock:
            return self._token

    def cancel(self) -> None:
        """Make any load in flight stale: its result will not be reported."""
        with self._lock:
            self._token += 1

    def load(self, fn, *args) -> int:
        """Run ``fn(*args)`` (a core.nn.data loader) in the background; returns the token."""
        with self._lock:
            self._token += 1
            token = self._token

        def target():
            try:
                data = fn(*args)
            except ValueError as exc:  # DatasetError and bad-value errors: tell the user
                self.failed.emit(token, str(exc))
            except Exception as exc:  # a bug: report it, keep the window alive
                traceback.print_exc()
                self.failed.emit(token, f"internal error: {type(exc).__name__}: {exc}")
            else:
                self.loaded.emit(token, data)

        threading.Thread(target=target, daemon=True, name="convscope-dataset").start()
        return token
