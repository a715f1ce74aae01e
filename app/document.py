"""What the image tab shows and edits, as one model with change signals.

:class:`Document` holds the input image, the pipeline, the display settings, the last
valid result and the explained cell. Every edit reaches it through one path, a
method that records one undo step (:class:`app.history.History`) and then announces
the change; undo and redo put a state back through the same announcements. Views do
not call one another: each listens to the document and asks it for edits.

==================  =======================================================
signal              who listens (see ``bind_document`` of each view)
==================  =======================================================
imageChanged        the window (title, recompute), the inspect view
pipelineChanged     the pipeline editor (shows an undone state), recompute
displayChanged      the map grid (colours, scale, size), the display toolbar
resultChanged       the grid, the pipeline editor (shapes), the step-through
errorChanged        the pipeline editor (marks the field), the message bar
selectionChanged    the grid (marker), the explanation, the step-through
==================  =======================================================
"""

from __future__ import annotations

import os

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from ..core.image import ImageLoadError, load_image
from ..core.matrix import MatrixError, is_matrix_path, load_matrix
from ..core.pipeline import Pipeline
from .history import History

__all__ = ["Document", "DISPLAY_DEFAULTS", "DISPLAY_WORDS"]

DISPLAY_DEFAULTS = {"colormap": "auto", "scale": "stage", "clip": True, "map_size": "fit"}
#: how an undo step names a change of each display setting
DISPLAY_WORDS = {"colormap": "colormap", "scale": "value scale", "clip": "1 % clipping",
                 "map_size": "map size"}


class Document(QObject):
    """The image tab's model.

    Signals
    -------
    imageChanged()
        A new input image (:attr:`image`, :attr:`image_name`).
    pipelineChanged(Pipeline)
        The pipeline after an edit, load, undo or redo (a copy for the listener).
    displayChanged(dict)
        The display settings (:data:`DISPLAY_DEFAULTS`' keys).
    resultChanged(RunOutput)
        A new valid result (:attr:`output`).
    errorChanged(object)
        The error of the last computation (a PipelineError), or None when it was valid.
    selectionChanged(object, str)
        The explained cell ``(level, map index, row, col)`` or None, and what moved
        it: "click" (the grid), "step" (the step-through, stepped by hand), "play"
        (the step-through playing), "result" (a new result kept the cell), "image" or
        "clear".
    failed(str)
        An undo or redo that could not be applied (an image file that is gone).
    """

    imageChanged = pyqtSignal()
    pipelineChanged = pyqtSignal(object)
    displayChanged = pyqtSignal(dict)
    resultChanged = pyqtSignal(object)
    errorChanged = pyqtSignal(object)
    selectionChanged = pyqtSignal(object, str)
    failed = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.image_name = ""
        self._pipeline = Pipeline([])
        self.display = dict(DISPLAY_DEFAULTS)
        self.output = None               # the last valid RunOutput
        self.output_image_name = ""      # the image it was computed from
        self.selection = None            # (level, map label, row, col) of the explained cell
        self.history = History(self)

    # ------------------------------------------------------------------ pipeline
    def pipeline(self) -> Pipeline:
        """A copy of the current pipeline."""
        return self._pipeline.copy()

    def edit_pipeline(self, pipe: Pipeline, text: str | None = None) -> bool:
        """An edit of the pipeline (typed in the editor, a stage added, a file loaded, a
        learned kernel sent): one undo step, named ``text`` or after what changed
        (consecutive edits of one field merge). Returns whether a step was recorded."""
        recorded = self.history.commit(pipe, text)
        self._show_pipeline(pipe)
        return recorded

    def reset_pipeline(self, pipe: Pipeline) -> None:
        """Start over from ``pipe`` with an empty undo history (start-up, session)."""
        self.history.reset(pipe)
        self._show_pipeline(pipe)

    def set_pipeline_quietly(self, pipe: Pipeline) -> None:
        """Put ``pipe`` back without a new step (what an undo or redo does)."""
        self._show_pipeline(pipe)

    def _show_pipeline(self, pipe: Pipeline) -> None:
        self._pipeline = pipe.copy()
        self.pipelineChanged.emit(pipe.copy())

    # ------------------------------------------------------------------ image
    def set_image(self, image: np.ndarray, name: str) -> None:
        """A new input image (H, W, C float32): one undo step when it replaces one."""
        if self.image is not None and image is not self.image:
            before = (self._image_state(), self.image_name)
            after = (name if os.path.isfile(name) else image, name)
            self.history.push_step(f"open image {os.path.basename(name)}",
                                   self._restore_image, before, after)
        self._show_image(image, name)

    def _image_state(self):
        """What an undo needs to bring the current image back: its path, or the pixels
        of an image that has no file (pasted, generated)."""
        return self.image_name if os.path.isfile(self.image_name) else self.image

    def _restore_image(self, state) -> None:
        source, name = state
        if isinstance(source, str):
            try:
                image = (load_matrix if is_matrix_path(source) else load_image)(source)
            except (ImageLoadError, MatrixError) as exc:
                self.failed.emit(f"Cannot reopen {source}: {exc}")
                return
        else:
            image = source
        self._show_image(image, name)

    def _show_image(self, image: np.ndarray, name: str) -> None:
        self.image, self.image_name = image, name
        self.clear_selection("image")
        self.imageChanged.emit()

    # ------------------------------------------------------------------ display
    def set_display(self, settings: dict) -> None:
        """New display settings, as the user chose them: one undo step."""
        after = {**self.display, **settings}
        before = dict(self.display)
        changed = [k for k in after if after[k] != before.get(k)]
        if not changed:
            return
        self.history.push_step(f"change {DISPLAY_WORDS.get(changed[0], changed[0])}",
                               self.apply_display, before, after)
        self.apply_display(after)

    def apply_display(self, settings: dict) -> None:
        """Display settings without an undo step (undo, redo, a restored session);
        unknown keys and values of the wrong type are ignored."""
        for key, default in DISPLAY_DEFAULTS.items():
            v = settings.get(key)
            if isinstance(v, type(default)):
                self.display[key] = v
        self.displayChanged.emit(dict(self.display))

    # ------------------------------------------------------------------ results
    def set_result(self, out) -> None:
        """A computation finished: a valid result replaces :attr:`output` (the
        selection follows its map by name: kernels may have been added or removed);
        an invalid one leaves the last valid result and says what is wrong."""
        err = out.result.error
        self.errorChanged.emit(err)
        if err is not None:
            return
        self.output = out
        self.output_image_name = self.image_name
        self.resultChanged.emit(out)
        if self.selection is not None:
            level, label, row, col = self.selection
            res = out.result
            labels = res.level(level).labels if level < len(res.stages) else []
            if label in labels:
                self.selectionChanged.emit((level, labels.index(label), row, col), "result")
            else:
                self.clear_selection("clear")

    # ------------------------------------------------------------------ selection
    def select(self, level: int, m: int, row: int, col: int, source: str = "click") -> None:
        """Explain cell (row, col) of map ``m`` of stage ``level`` (-1: the input)."""
        if self.output is None:
            return
        label = self.output.result.level(level).labels[m]
        if source in ("step", "play") and self.selection == (level, label, row, col):
            return   # the step-through's next product of the same cell
        self.selection = (level, label, row, col)
        self.selectionChanged.emit((level, m, row, col), source)

    def clear_selection(self, source: str = "clear") -> None:
        had = self.selection is not None
        self.selection = None
        if had or source != "clear":
            self.selectionChanged.emit(None, source)
