"""The main window: wires the image, the pipeline editor, the grid and the explanation.

Opening images, matrices and pipelines (dialogs, drops, paste, recent files) lives in
:mod:`app.window_files`, its exports in :mod:`app.window_export` and its saved
session in :mod:`app.window_session` (mixins of :class:`MainWindow`).

The window owns no computation: core computes (in :class:`app.compute.PipelineRunner`'s
worker thread), the panels edit, the grid shows.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PyQt6.QtCore import QObject, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QGuiApplication, QKeySequence
from PyQt6.QtWidgets import (QDockWidget, QLabel, QMainWindow,
                             QMessageBox, QProgressBar, QScrollArea, QTabWidget,
                             QVBoxLayout, QWidget)

from ..core.pipeline import ConvStage, Kernel, default_pipeline

from .compute import PipelineRunner, RunOutput
from .window_export import ExportMixin
from .window_files import ASSETS, MAX_RECENT, SAMPLE_IMAGE, FilesMixin, read_input  # noqa: F401
from .window_session import SessionMixin
from .explain_panel import ExplainPanel
from .menus import build_menus
from .document import Document
from .display_toolbar import DisplayToolbar
from .step_view import StepView
from .grid import STALE_AFTER_MS, FeatureGrid
from .message_bar import MessageBar
from .inspect_view import InspectView
from .pipeline_panel import PipelinePanel
from .train_view import TrainView

#: the Keras MNIST convnet trained on full MNIST (assets/README.md: command, accuracy)
BUNDLED_MODEL = ASSETS / "mnist-keras.npz"
PROGRESS_DELAY_MS = 300
#: the pipeline editor fits this width without cutting a label (pool: 2 spin boxes and a
#: check box on one row)
PIPELINE_DOCK_WIDTH = 345
HOVER_HINT = ("Hover a map to read values; click a pixel to explain it. Wheel scrolls, "
              "Ctrl+wheel zooms, double-click fits.")


class _Background(QObject):
    """Runs a function in a Python thread and reports back on the UI thread."""

    done = pyqtSignal(object, object)     # token, result
    failed = pyqtSignal(object, object)   # token, exception
    progress = pyqtSignal(int, int)

    def start(self, token, fn, *args):
        def target():
            try:
                self.done.emit(token, fn(*args))
            except Exception as exc:  # reported to the user by the slot
                self.failed.emit(token, exc)
        threading.Thread(target=target, daemon=True, name="convscope-io").start()


class MainWindow(FilesMixin, ExportMixin, SessionMixin, QMainWindow):
    BUNDLED_MODEL = BUNDLED_MODEL
    imageLoaded = pyqtSignal(str)
    resultShown = pyqtSignal(object)
    resultFailed = pyqtSignal(str)
    exported = pyqtSignal(str)

    def __init__(self, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("ConvScope")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("ConvScope", "ConvScope")
        # the image, pipeline, display settings, result and selected cell, with the
        # undo history: every view edits it and listens to it (app.document)
        self.document = doc = Document(self)
        self.history = doc.history
        self._exporting = False
        self._bundled_tried = False
        self._step_dock_sized = False
        self.persist_session = True   # off for screenshots: they are not the user's session
        self._load_token = 0

        self.runner = PipelineRunner(self)
        self.runner.resultReady.connect(self._on_result)
        self.runner.failed.connect(lambda msg: self.message.show_message(f"Internal error: {msg}"))
        self.runner.busyChanged.connect(self._on_busy)
        self.runner.progress.connect(self._on_progress)
        self._bg = _Background(self)
        self._bg.done.connect(self._on_background_done)
        self._bg.failed.connect(self._on_background_failed)
        self._bg.progress.connect(self._on_progress)

        self.grid = FeatureGrid()
        self.grid.bind_document(doc)
        self.grid.hoverText.connect(self._on_hover_text)
        self.grid.previewsTooSmall.connect(self.recompute)  # maps drawn larger: sharper previews
        self.message = MessageBar()
        image_tab = QWidget()
        cl = QVBoxLayout(image_tab)
        cl.setContentsMargins(4, 4, 4, 4)
        cl.setSpacing(4)
        cl.addWidget(self.message)
        cl.addWidget(self.grid, 1)
        self.train_view = TrainView()
        self.inspect_view = InspectView()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(image_tab, "Image pipeline")
        # scroll areas: a view's minimum size must not force the window's
        for view, title in ((self.train_view, "Train a CNN"),
                            (self.inspect_view, "Inspect the CNN")):
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QScrollArea.Shape.NoFrame)
            area.setWidget(view)
            self.tabs.addTab(area, title)
        self.tabs.currentChanged.connect(self._on_tab)
        self.setCentralWidget(self.tabs)
        self.train_view.sendKernel.connect(self._on_learned_kernel)
        self.train_view.modelChanged.connect(self._on_model)
        if hasattr(self.inspect_view, "sendKernel"):
            self.inspect_view.sendKernel.connect(self._on_learned_kernel)

        self.panel = PipelinePanel()
        self.panel.bind_document(doc)
        dock = QDockWidget("Pipeline", self)
        dock.setObjectName("pipeline-dock")
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                         QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.explain_panel = ExplainPanel()
        self.explain_panel.bind_document(doc)
        edock = QDockWidget("Explain a pixel", self)
        edock.setObjectName("explain-dock")
        edock.setWidget(self.explain_panel)
        edock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                          QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, edock)
        self.step_view = StepView()
        self.step_view.bind_document(doc)
        sdock = QDockWidget("Step through a stage", self)
        sdock.setObjectName("step-dock")
        sdock.setWidget(self.step_view)
        sdock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                          QDockWidget.DockWidgetFeature.DockWidgetClosable |
                          QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, sdock)
        sdock.hide()
        sdock.visibilityChanged.connect(self._on_step_dock_shown)
        self.step_view.saved.connect(
            lambda p: self.message.show_message(f"Saved the animation to {p}", error=False))
        self.step_view.failed.connect(self.message.show_message)
        self.pipeline_dock, self.explain_dock, self.step_dock = dock, edock, sdock
        self._docks = [dock, edock, sdock]
        # the explanation takes no room until a pixel is clicked
        edock.hide()
        self._dock_visible = {dock: True, edock: False, sdock: False}  # on the image tab
        for d in self._docks:
            d.visibilityChanged.connect(lambda vis, d=d: self._remember_dock(d, vis))
        self.resizeDocks([dock], [PIPELINE_DOCK_WIDTH], Qt.Orientation.Horizontal)
        self._stale_timer = QTimer(self)
        self._stale_timer.setSingleShot(True)
        self._stale_timer.setInterval(STALE_AFTER_MS)
        self._stale_timer.timeout.connect(lambda: self.grid.set_stale(True))

        self._drop_hint = QLabel(self)
        self._drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._drop_hint.setStyleSheet(
            "background: rgba(30, 90, 200, 40); border: 3px dashed #1e5ac8; "
            "color: #0d2f6e; font-size: 20px; font-weight: bold;")
        self._drop_hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._drop_hint.hide()

        self._make_actions()
        self._make_toolbar()
        self._make_statusbar()
        # the window's own parts that follow the document
        doc.imageChanged.connect(self._on_image)
        doc.pipelineChanged.connect(self.recompute)
        doc.errorChanged.connect(self._on_error)
        doc.resultChanged.connect(self._on_result_shown)
        doc.selectionChanged.connect(self._on_selection)
        doc.failed.connect(self.message.show_message)
        doc.reset_pipeline(default_pipeline())

    # ------------------------------------------------------------------ the document's state
    # (read-only views of app.document.Document, which the views edit and follow)
    @property
    def image(self) -> np.ndarray | None:
        return self.document.image

    @property
    def image_name(self) -> str:
        return self.document.image_name

    @property
    def output(self) -> RunOutput | None:
        """The last valid result shown."""
        return self.document.output

    @property
    def output_image_name(self) -> str:
        return self.document.output_image_name

    @property
    def selected(self):
        """(level, map label, row, col) of the explained cell, or None."""
        return self.document.selection

    # ------------------------------------------------------------------ chrome
    def _action(self, text, slot, shortcut=None, tip=""):
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setStatusTip(tip)
        act.triggered.connect(slot)
        self.addAction(act)
        return act

    def _make_actions(self):
        build_menus(self)

    def _make_toolbar(self):
        tb = self.display_toolbar = DisplayToolbar([self.act_open, self.act_paste])
        self.addToolBar(tb)
        tb.bind_document(self.document)
        self.cmap_box, self.scale_box = tb.cmap_box, tb.scale_box
        self.robust_box, self.size_box = tb.robust_box, tb.size_box

    def _train_button(self, button):
        self.show_view("train")
        if button.isEnabled():
            button.click()

    FIRST_HINT = ("Start here: change a number in the kernel on the left and watch every map "
                  "follow; click any pixel of a map to see how it was computed. "
                  "Help › Guide explains the rest.")

    def show_first_start_hint(self) -> bool:
        """A one-line hint on where to begin, at the very first start only."""
        if self.settings.value("intro_shown", False, type=bool):
            return False
        self.settings.setValue("intro_shown", True)
        self.message.show_message(self.FIRST_HINT, error=False)
        return True

    def _remember_dock(self, dock, visible: bool):
        if self.tabs.currentIndex() == 0:
            self._dock_visible[dock] = visible

    def reset_layout(self):
        """Docks back where they start: the editor on the left, the explanation on the
        right (shown only while a pixel is explained)."""
        for d, area in ((self.pipeline_dock, Qt.DockWidgetArea.LeftDockWidgetArea),
                        (self.explain_dock, Qt.DockWidgetArea.RightDockWidgetArea)):
            d.setFloating(False)
            self.addDockWidget(area, d)
        self.pipeline_dock.show()
        self.explain_dock.setVisible(self.explain_panel.explanation() is not None)
        self.resizeDocks([self.pipeline_dock], [PIPELINE_DOCK_WIDTH], Qt.Orientation.Horizontal)

    def _make_statusbar(self):
        sb = self.statusBar()
        self.hover_label = QLabel(HOVER_HINT)
        self.timing_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setFixedWidth(200)
        self.progress.setTextVisible(True)
        self.progress.hide()
        sb.addWidget(self.hover_label, 1)
        sb.addPermanentWidget(self.timing_label)
        sb.addPermanentWidget(self.progress)
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_DELAY_MS)
        self._progress_timer.timeout.connect(self.progress.show)

    # ------------------------------------------------------------------ results
    def _on_busy(self, busy: bool):
        if busy:
            self.progress.setRange(0, 0)  # busy until a real fraction arrives
            self.progress.setFormat("computing…")
            self._progress_timer.start()
            self._stale_timer.start()
        else:
            self._progress_timer.stop()
            self._stale_timer.stop()
            self.progress.hide()

    def _on_progress(self, done: int, total: int):
        """Stages done of all; once they are, the maps are being prepared (busy)."""
        if done >= total:
            self.progress.setRange(0, 0)
            self.progress.setFormat("preparing maps…")
        else:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.progress.setFormat("stage %v of %m")

    def _on_result(self, out: RunOutput):
        """The runner finished: the document takes the result (the views follow it)."""
        self.document.set_result(out)
        if out.result.error is not None:
            self.resultFailed.emit(str(out.result.error))
            return
        stage = getattr(self, "_example_stage", None)
        if stage is not None and stage < len(out.result.stages):
            self._example_stage = None
            self.step_through(stage, 0)
        self.resultShown.emit(out)

    def _on_error(self, err):
        if err is not None:
            # every stage keeps its last good maps on screen; the editor marks the field
            self.message.show_message(f"{err}. The maps shown are the last valid result.")
            return
        self._stale_timer.stop()
        if self.message.isVisible() and "last valid result" in self.message.label.text():
            self.message.hide()

    def _on_result_shown(self, out: RunOutput):
        total_ms = sum(s.seconds for s in out.result.stages) * 1e3
        self.timing_label.setText(f"pipeline {total_ms:.1f} ms")

    def display_settings(self) -> dict:
        return dict(self.document.display)

    def apply_display_settings(self, d: dict) -> None:
        """New display settings without an undo step (unknown or missing values keep
        their setting)."""
        self.document.apply_display(self.display_toolbar.valid(d))

    def _on_hover_text(self, text: str):
        self.hover_label.setText(text or HOVER_HINT)

    def _on_selection(self, sel, source: str):
        """A clicked cell is explained in the explanation dock: show it if hidden."""
        if source == "click" and self.selected is not None and \
                not self.explain_dock.isVisible():
            self.explain_dock.show()
            self.resizeDocks([self.explain_dock], [310], Qt.Orientation.Horizontal)

    def _on_step_dock_shown(self, visible: bool):
        """The step-through opens at half the window's height (its frames need room),
        then keeps the height the user gives it."""
        if visible and not self._step_dock_sized and not self.step_dock.isFloating():
            self._step_dock_sized = True
            self.resizeDocks([self.step_dock], [max(300, self.height() // 2 - 40)],
                             Qt.Orientation.Vertical)
        if visible and self.step_view.result is None and self.selected is not None and \
                self.output is not None and self.grid.selection is not None:
            level, m, row, col = self.grid.selection
            if level >= 0:
                self.step_view.set_target(self.output.result, level, m)
                self.step_view.jump_to(level, m, row, col)

    def step_through(self, level: int, m: int, row: int = 0, col: int = 0) -> bool:
        """Open the step-through on cell (row, col) of map ``m`` of stage ``level``."""
        if self.output is None:
            return False
        if not self.step_dock.isVisible():
            self.step_dock.show()
        ok = self.step_view.set_target(self.output.result, level, m)
        if ok:
            self.step_view.jump_to(level, m, row, col)
        return ok

    def open_example(self, key: str) -> None:
        """A worked example: its input, its pipeline (one undo step), what to look at,
        and the step-through on its stage."""
        from ..core.examples import example, load_input
        ex = example(key)
        if ex.is_matrix:
            self.set_image(load_input(ex), f"example: {ex.title}")
        else:
            self.load_image_file(str(ASSETS / ex.photo), wait=True)
        self.set_pipeline(ex.pipeline.copy(), f"open example '{ex.title}'")
        self.message.show_message(f"{ex.title}: {ex.description}", error=False)
        self.step_view.predict.setChecked(ex.predict)
        self._example_stage = ex.stage

    # ------------------------------------------------------------------ learned kernels
    def send_kernel(self, weights: np.ndarray, name: str):
        """Put a kernel (e.g. a learned CNN filter) into the pipeline as a new convolution
        stage after the selected one (selected; one undo step). The stages already
        there are left as they are: a learned 3x3 kernel appended to a stage of 7x3
        kernels broke that stage."""
        pipe = self.document.pipeline()
        at = self.panel.current_stage() + 1 if self.panel.current_stage() >= 0 \
            else len(pipe.stages)
        pipe.stages.insert(at, ConvStage([Kernel(np.array(weights, dtype=np.float64),
                                                 name=name)]))
        self.set_pipeline(pipe, f"add the learned kernel '{name}' as stage {at + 1}")
        self.panel.select_stage(at)

    VIEWS = {"main": 0, "train": 1, "inspect": 2}

    def show_view(self, name: str):
        """Switch to the "main", "train" or "inspect" tab."""
        self.tabs.setCurrentIndex(self.VIEWS[name])

    def _on_tab(self, index: int):
        # the pipeline editor, the explanation and the status line's hover text and
        # timing belong to the image tab
        image_tab = index == 0
        for d in self._docks:
            wanted = self._dock_visible[d]
            d.blockSignals(True)
            d.setVisible(image_tab and wanted)
            d.blockSignals(False)
        self.display_toolbar.setVisible(image_tab)
        self.act_paste.setEnabled(image_tab)
        for w in (self.hover_label, self.timing_label):
            w.setVisible(image_tab)
        self.statusBar().clearMessage()
        if not image_tab:
            self.load_bundled_model()

    def load_bundled_model(self) -> bool:
        """The shipped trained model, the first time a CNN tab is opened without one, so
        a drawn digit is recognised at once (loaded lazily: start-up does not wait)."""
        tv = self.train_view
        if self._bundled_tried or tv.is_training() or tv._model_state != "untrained" or \
                not BUNDLED_MODEL.exists():
            return False
        self._bundled_tried = True
        return self.train_view.load_model_file(BUNDLED_MODEL)

    def _on_model(self, model):
        self.inspect_view.set_model(model)
        if model is not None and not self.inspect_view.canvas.image().any():
            self.inspect_view.show_test_image(0)  # something to look at straight away

    def _on_learned_kernel(self, weights, name: str):
        self.send_kernel(weights, name)
        self.show_view("main")
        self.message.show_message(f"Added the learned kernel '{name}' as a new convolution "
                                  f"stage: this is what it does to the photo (Ctrl+Z "
                                  f"removes it).", error=False)

    #: set by a SIGTERM/SIGHUP/Ctrl-C handler (app.main): close without asking
    quit_without_questions = False

    def closeEvent(self, ev):
        if self.quit_without_questions:
            if self.train_view.is_training():
                self.train_view.stop_training(wait=True)
            if self.step_view.saving():
                self.step_view.stop_saving()
                self.step_view._save_thread.join(timeout=60)
        elif self.train_view.is_training():
            answer = QMessageBox.question(
                self, "Training is running",
                "A CNN is training. Stop it and quit?\nThe checkpoint of the last finished "
                "epoch is kept.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                ev.ignore()
                return
            self.train_view.stop_training(wait=True)
        if self.step_view.saving() and not self.quit_without_questions:
            answer = QMessageBox.question(
                self, "An animation is being saved",
                "The step-through is being saved as an animation. Stop it and quit?\n"
                "Nothing is written then.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                ev.ignore()
                return
            self.step_view.stop_saving()
            self.step_view._save_thread.join(timeout=60)
        if self._exporting:
            # the export writes to a staging folder: let it finish rather than leave one
            self.statusBar().showMessage("Waiting for the export to finish before quitting…")
            deadline = time.monotonic() + 300
            while self._exporting and time.monotonic() < deadline:
                QGuiApplication.processEvents()
                time.sleep(0.02)
        if self.persist_session:
            self.save_session()
        self.runner.shutdown()
        super().closeEvent(ev)
