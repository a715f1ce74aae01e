"""The "Train" tab: pick data and an architecture, train a CNN live, inspect the result.

The view computes nothing itself: :mod:`core.nn` builds, trains and evaluates, and
:mod:`app.train_worker` runs the training generator in a QThread. Batch events only
append to lists; a timer redraws the plots, the progress bar and the kernel grid at
most :data:`REFRESH_MS` apart, so the UI costs the same whether a batch takes 5 ms or
5 s. The model being trained is the worker's until the run ends; the kernel grid
shows copies the worker takes.

Layout: a splitter with the controls on the left (Data, Architecture,
Hyper-parameters, Training with the model's Save/Load) and the results on the right
(loss and accuracy plots, the first layer's kernels, the test accuracy with the
confusion matrix, misclassified test digits). The self-contained result widgets live in
:mod:`app.train_widgets` and are re-exported here.

Public API for the main window: signals :attr:`TrainView.sendKernel`,
:attr:`TrainView.modelChanged`, :attr:`TrainView.trainingRunning`; methods
:meth:`~TrainView.is_training`, :meth:`~TrainView.stop_training`,
:meth:`~TrainView.model`, :meth:`~TrainView.dataset`,
:meth:`~TrainView.load_model_file`, :meth:`~TrainView.start_training`.
The view is composed of mixins, one per concern: :mod:`app.train_layout` (the
widgets), :mod:`app.train_inputs` (data and architecture), :mod:`app.train_progress`
(a run's events and plots); shared imports and helpers are in :mod:`app.train_common`.
"""

from __future__ import annotations

from .train_common import (ARCHITECTURES, ArchitectureDialog, ConfusionTable, Dataset,
                           DatasetError, DatasetLoader, Evaluation, GALLERY_SIZE,
                           KernelGrid, LEFT_WIDTH, MessageBar, MisclassifiedGallery,
                           ModelFileError, Path, QApplication, QCoreApplication,
                           QFileDialog, QSize, QSplitter, QTimer, QWidget, Qt, REFRESH_MS,
                           Sequential, TrainRun, _RootLayout, build,
                           evaluate_model, first_conv, layer_label, load_bundled_mnist,
                           load_dataset, load_idx_folder, load_image_folder, load_model, os,
                           pyqtSignal, re, save_model, signals_blocked, tempfile, time)
                           # noqa: F401 (some re-exported)
from .train_inputs import TrainInputsMixin
from .train_layout import TrainLayoutMixin
from .train_progress import TrainProgressMixin

__all__ = ["TrainView", "KernelGrid", "ConfusionTable", "MisclassifiedGallery",
           "ArchitectureDialog", "layer_label"]


class TrainView(TrainLayoutMixin, TrainInputsMixin, TrainProgressMixin, QWidget):
    """The Train tab (see the module docstring)."""

    sendKernel = pyqtSignal(object, str)      # (kh, kw) float64 weights, name
    modelChanged = pyqtSignal(object)         # Sequential, after training ends or a load
    trainingRunning = pyqtSignal(bool)
    # finer-grained notifications (tests, status bars)
    batchDone = pyqtSignal(object)            # BatchEvent
    epochDone = pyqtSignal(object)            # EpochEvent
    trainingFinished = pyqtSignal(object)     # model
    trainingStopped = pyqtSignal()
    trainingFailed = pyqtSignal(str)
    datasetChanged = pyqtSignal(object)       # Dataset
    datasetFailed = pyqtSignal(str)           # why a dataset could not be loaded

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        #: use only the first N training / test images (tests, quick looks); None = all
        self.limit_train: int | None = None
        self.limit_test: int | None = None
        #: per-run checkpoint folders are created in here
        self.runs_dir = Path(tempfile.gettempdir()) / "convscope-runs"
        self._data: Dataset | None = None
        self._data_source = 0                  # index in the data combo
        self._data_requests: dict[int, int] = {}   # loader token -> data combo index
        self._spec = dict(ARCHITECTURES["keras_mnist"])
        self._model: Sequential | None = None
        self._model_state = "untrained"        # untrained | trained | stopped | loaded
        self._model_file = ""
        self._evaluation: Evaluation | None = None
        self._run: TrainRun | None = None
        self._runs: list[TrainRun] = []        # alive until their threads ended
        self._run_dir = ""
        self._training = False
        self._t_start = 0.0
        self._pending_kernels = None
        self._kernel_source = "model"          # name of the model whose kernels are shown
        self._last_batch = None
        self._rate = 0.0

        self._loader = DatasetLoader(self)
        self._loader.loaded.connect(self._on_data_loaded)
        self._loader.failed.connect(self._on_data_failed)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._data_timer = QTimer(self)
        self._data_timer.setSingleShot(True)
        self._data_timer.setInterval(0)
        self._data_timer.timeout.connect(self._ensure_data)

        self.message = MessageBar()
        controls = self._make_controls()
        results = self._make_results()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(controls)
        self.splitter.addWidget(results)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([LEFT_WIDTH, 940])
        self.splitter.setChildrenCollapsible(False)
        root = _RootLayout(self)
        root.setContentsMargins(6, 6, 6, 6)
        root.setSpacing(4)
        root.addWidget(self.message)
        root.addWidget(self.splitter, 1)

        self._set_architecture_preview()
        self._clear_results("Train or load a model to see the test digits it gets wrong.")
        self._update_buttons()

    # ------------------------------------------------------------------ public API
    def model(self) -> Sequential | None:
        """The current model: trained, loaded, or (before either) the untrained preview."""
        return self._model

    def dataset(self) -> Dataset | None:
        """The loaded dataset (all of it, whatever :attr:`limit_train` says)."""
        return self._data

    def evaluation(self) -> Evaluation | None:
        return self._evaluation

    def is_training(self) -> bool:
        return self._training

    def run_folder(self) -> str:
        """The folder of the current or last run (checkpoint.npz, model.npz)."""
        return self._run_dir

    def start_training(self) -> bool:
        """Build the selected architecture and train it; False (with a message) if refused."""
        if self._training:
            return False
        data = self._ensure_data()
        if data is None:
            return False
        spec = dict(self._spec)
        spec["input_shape"] = list(data.input_shape)
        try:
            config = self.hyper.config()
            model = build(spec, seed=config.seed)
            config.validate()
        except ValueError as exc:
            self.message.show_message(f"Cannot train: {exc}")
            return False
        problem = self._incompatible(model, data)
        if problem:
            self.message.show_message(f"Cannot train: {problem}")
            return False
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = re.sub(r"[^\w.-]+", "_", model.name)[:40]
            self._run_dir = tempfile.mkdtemp(prefix=f"{stamp}-{safe}-", dir=self.runs_dir)
        except OSError as exc:
            self.message.show_message(f"Cannot create a folder for the run's checkpoints in "
                                      f"'{self.runs_dir}': {exc}")
            return False
        config.out = self._run_dir
        run = TrainRun(model, self._limited(data), config)
        w = run.worker
        w.batch.connect(self._on_batch)
        w.epoch.connect(self._on_epoch)
        w.kernels.connect(self._on_kernels)
        w.evaluated.connect(self._on_evaluated)
        w.finished.connect(self._on_finished)
        w.stopped.connect(self._on_stopped)
        w.failed.connect(self._on_failed)
        run.thread.finished.connect(lambda r=run: self._on_thread_done(r))
        self._run = run
        self._runs.append(run)
        self._training = True
        self._last_batch = None
        self._pending_kernels = None
        self._rate = 0.0
        self._epochs = config.epochs
        self._t_start = time.perf_counter()
        self.message.hide()
        conv = first_conv(model)
        self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
        self._show_kernel_info(model, conv, "training")
        self._update_model_info(training=model)
        self._clear_results("Training… the misclassified test digits appear when it ends.")
        self.curves.start(config.epochs)    # empty curves on fixed axes
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(f"epoch 1/{config.epochs} · starting…")
        self.speed_label.setText("–")
        with signals_blocked(self.pause_button):
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
        self._update_buttons()
        self._timer.start()
        run.start()
        self.trainingRunning.emit(True)
        return True

    def pause_training(self, paused: bool = True):
        """Pause (or resume) between batches."""
        self.pause_button.setChecked(paused)

    def stop_training(self, wait: bool = True):
        """Stop after the current batch.

        With ``wait`` (the window is closing) this blocks until the thread ended, skips
        the final evaluation and delivers the run's last signals before returning.
        """
        run = self._run
        if run is not None and self._training:
            if wait:
                run.worker.skip_evaluation = True
            run.stop()
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)
            self.speed_label.setText("stopping after this batch…")
        if not wait:
            return
        for r in list(self._runs):  # also runs that reported their end but still exit
            r.wait()
        QCoreApplication.sendPostedEvents()  # the run's last signals, in order
        if self._training:  # not delivered (no event loop): end the UI state here
            self._end_training()

    def load_model_file(self, path) -> bool:
        """Load a model, evaluate it on the test data and show it; False + message if refused.

        Refused (the current model kept): while training, an unreadable file
        (:class:`core.nn.model.ModelFileError`), a model whose input shape differs from
        the data's, a model with fewer outputs than the data has classes.
        """
        path = os.fspath(path)
        if self._training:
            self.message.show_message("Stop the training before loading a model.")
            return False
        try:
            model, extra = load_model(path)
        except ModelFileError as exc:
            self.message.show_message(f"{exc}. The current model is kept.")
            return False
        data = self._ensure_data()
        if data is None:
            return False
        problem = self._incompatible(model, data)
        if problem:
            self.message.show_message(f"Cannot use '{os.path.basename(path)}': {problem}. "
                                      f"The current model is kept.")
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            evaluation = evaluate_model(model, self._limited(data))
        finally:
            QApplication.restoreOverrideCursor()
        self._model_file = path
        self._adopt(model, evaluation, "loaded")
        self._add_custom_arch(model.architecture(), os.path.basename(path))
        self._restore_history(extra)
        self.message.show_message(f"Loaded {os.path.basename(path)}: test accuracy "
                                  f"{evaluation.accuracy * 100:.2f} %", error=False)
        self.modelChanged.emit(model)
        return True

    def save_model_file(self, path) -> bool:
        if self._model is None:
            self.message.show_message("There is no model to save.")
            return False
        try:
            save_model(path, self._model, self.curves.history())
        except OSError as exc:
            self.message.show_message(f"Could not save the model to '{path}': {exc}")
            return False
        self._model_file = os.fspath(path)
        self._update_model_info()
        self.message.show_message(f"Saved the model to {path}", error=False)
        return True

    def set_architecture(self, spec: dict, name: str | None = None) -> bool:
        """Use an architecture (JSON dict); False + message if core.nn.build refuses it."""
        spec = dict(spec)
        shape = self._data.input_shape if self._data is not None else \
            tuple(spec.get("input_shape", (1, 28, 28)))
        try:
            trial = dict(spec, input_shape=list(shape))
            build(trial)
        except (ValueError, TypeError) as exc:
            self.message.show_message(f"Bad architecture: {exc}. The previous one is kept.")
            self._select_arch_item()
            return False
        self._add_custom_arch(spec, name or str(spec.get("name", "custom")))
        return True

    def load_data_folder(self, folder, kind: str = "auto") -> int:
        """Load a dataset folder in the background (kind: auto | idx | images)."""
        folder = os.fspath(folder)
        fn = {"auto": load_dataset, "idx": load_idx_folder, "images": load_image_folder}[kind]
        if kind == "auto":
            is_idx = os.path.isdir(folder) and any(
                n.startswith("train-images") for n in os.listdir(folder))
            kind = "idx" if is_idx else "images"
        self.data_info.setText(f"Loading {folder}…")
        token = self._loader.load(fn, folder)
        self._data_requests = {token: 1 if kind == "idx" else 2}
        return token

    def use_bundled_data(self) -> bool:
        try:
            data = load_bundled_mnist()
        except DatasetError as exc:
            self.message.show_message(f"{exc}. The previous data is kept.")
            self.datasetFailed.emit(str(exc))
            self._select_data_item()
            return False
        self.set_dataset(data, 0)
        return True

    def set_dataset(self, data: Dataset, source: int = 0):
        """Use an already loaded dataset (source: index of the data combo entry to show)."""
        self._loader.cancel()  # a folder load in flight must not replace this
        self._set_data(data, source)

    def send_selected_kernel(self) -> bool:
        k = self.kernel_grid.selected_kernel()
        if k is None:
            return False
        i = self.kernel_grid.selected()
        self.sendKernel.emit(k, f"{self._kernel_source} conv filter {i + 1}")
        return True

    # ------------------------------------------------------------------ results
    def _adopt(self, model: Sequential, evaluation: Evaluation, state: str):
        self._model = model
        self._model_state = state
        conv = first_conv(model)
        self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
        self._show_kernel_info(model, conv, state)
        self._show_evaluation(evaluation)
        self._update_model_info()
        self._update_buttons()

    def _show_kernel_info(self, model, conv, state: str):
        self._kernel_source = model.name
        if conv is None:
            self.kernel_info.setText("This model has no convolution layer.")
            self.kernel_scale.setText("")
            return
        i, layer = conv
        f, c, kh, kw = layer.params["weight"].shape
        chan = " (input channel 1 shown)" if c > 1 else ""
        when = {"training": "live while training", "untrained": "random initial weights"}.get(
            state, "learned")
        self.kernel_info.setText(f"Layer {i}: {f} filters {kh}×{kw}{chan} · {when}")
        self._update_kernel_scale()

    def _update_kernel_scale(self):
        v = self.kernel_grid.vmax
        self.kernel_scale.setText(f"blue −{v:.3g} · white 0 · red +{v:.3g}" if v else "")

    def _show_evaluation(self, ev: Evaluation):
        self._evaluation = ev
        classes = ev.classes
        self.accuracy_label.setText(f"Test accuracy {ev.accuracy * 100:.2f} %")
        self.accuracy_detail.setText(f"{ev.count:,} test images · {ev.wrong:,} wrong · "
                                     f"loss {ev.loss:.4f}")
        self.confusion.set_matrix(ev.confusion, classes)
        self.confusion_caption.show()
        names = classes

        def cname(k):
            return names[k] if k < len(names) else str(k)

        items = []
        for i, t, p, prob in ev.errors[:GALLERY_SIZE]:
            items.append((ev.images[i, 0], f"true {cname(t)} → pred {cname(p)} (p={prob:.2f})",
                          f"test image {i}: true {cname(t)}, predicted {cname(p)} with "
                          f"probability {prob:.3f}"))
        if items:
            self.gallery.set_items(items)
        else:
            self.gallery.clear("No test image is misclassified.")

    def _clear_results(self, text: str):
        self.accuracy_label.setText("No test results yet")
        self.accuracy_detail.setText("")
        self.confusion.set_matrix(None)
        self.confusion_caption.hide()
        self.gallery.clear(text)

    def _update_model_info(self, training: Sequential | None = None):
        if training is not None:
            self.model_info.setText(f"<b>{training.name}</b> · {training.n_params:,} "
                                    f"parameters · training…")
            return
        m = self._model
        if m is None:
            self.model_info.setText("No model")
            return
        state = {"untrained": "untrained (random initial weights)",
                 "trained": "trained here", "stopped": "trained here (stopped early)",
                 "loaded": "loaded"}[self._model_state]
        if self._model_file:
            state += f" {'from' if self._model_state == 'loaded' else 'as'} " \
                     f"{os.path.basename(self._model_file)}"
        self.model_info.setText(f"<b>{m.name}</b> · {m.n_params:,} parameters · {state}")
        self.model_info.setToolTip(self._model_file)

    def _on_kernel_selected(self, index: int):
        self._update_buttons()

    def _update_buttons(self):
        t = self._training
        self.start_button.setEnabled(not t)
        self.pause_button.setEnabled(t)
        self.stop_button.setEnabled(t)
        for w in (self.data_combo, self.arch_combo, self.edit_button, self.load_button):
            w.setEnabled(not t)
        self.hyper.set_editable(not t)
        self.save_button.setEnabled(not t and self._model is not None)
        self.send_button.setEnabled(self.kernel_grid.selected() >= 0)

    # ------------------------------------------------------------------ model files
    def save_model_dialog(self):
        name = (self._model.name if self._model is not None else "model") + ".npz"
        path, _ = QFileDialog.getSaveFileName(self, "Save model", name, "Models (*.npz)")
        if path:
            if not path.lower().endswith(".npz"):
                path += ".npz"
            self.save_model_file(path)

    def load_model_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "",
                                              "Models (*.npz);;All files (*)")
        if path:
            self.load_model_file(path)

    def closeEvent(self, ev):  # noqa: N802 (Qt API)
        self.stop_training(wait=True)
        super().closeEvent(ev)

    def sizeHint(self):  # noqa: N802 (Qt API)
        return QSize(1280, 760)

