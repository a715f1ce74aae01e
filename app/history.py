"""Undo and redo for everything the user edits in the image tab.

Every edit of the pipeline reaches the document (:class:`app.document.Document`)
through one path, :meth:`History.commit`: the history compares the new pipeline with
the last committed one (:func:`core.changes.describe_change`) and pushes a snapshot
command named after the change ("add pool stage", "change stride of stage 1"). Undo
and redo put a snapshot back into the document, which announces it (the editor shows
it, the maps are recomputed). Consecutive edits of one field (typing "3", "30",
"300") merge into one step.

Images and display settings are undone the same way, with their own commands.
Snapshots are the pipeline's JSON form (small: kernels are at most 15x15), so the
history costs little memory; an image step keeps the image's file path, or the
pixels for a pasted image.
"""

from __future__ import annotations

import time

from PyQt6.QtGui import QUndoCommand, QUndoStack

from ..core.changes import describe_change
from ..core.pipeline import Pipeline

#: edits of one field closer together than this (seconds) are one undo step
MERGE_WINDOW_S = 2.0
UNDO_LIMIT = 200


class _PipelineStep(QUndoCommand):
    ID = 1

    def __init__(self, history: "History", before: tuple, after: tuple, text: str, key):
        """``before``/``after``: (stage dicts, Pipeline copy); the dicts compare and
        name, the copy is put back (it may hold values no file would accept, as
        typed: a stride of 0 is undone to, and shown with its error, like any edit)."""
        super().__init__(text)
        self._history = history
        self.before, self.after, self.key = before, after, key
        self.stamp = time.monotonic()
        self._first = True  # the edit is already on screen when pushed

    def id(self) -> int:  # noqa: A003 (Qt API)
        return self.ID

    def mergeWith(self, other) -> bool:  # noqa: N802 (Qt API)
        if self.key is None or other.key != self.key or \
                other.stamp - self.stamp > MERGE_WINDOW_S:
            return False
        self.after = other.after
        self.stamp = other.stamp
        if self.after[0] == self.before[0]:
            self.setObsolete(True)
        return True

    def redo(self):
        if self._first:
            self._first = False
            return
        self._history.apply_pipeline(self.after)

    def undo(self):
        self._history.apply_pipeline(self.before)


class _CallbackStep(QUndoCommand):
    """A step that undoes and redoes by calling ``apply(state)``."""

    def __init__(self, text: str, apply, before, after):
        super().__init__(text)
        self._apply, self.before, self.after = apply, before, after
        self._first = True

    def redo(self):
        if self._first:
            self._first = False
            return
        self._apply(self.after)

    def undo(self):
        self._apply(self.before)


class History:
    """The document's undo stack and the pipeline as last committed.

    ``owner`` (an :class:`app.document.Document`) provides
    ``set_pipeline_quietly(Pipeline)``: put it back and announce it, without a new step.
    """

    def __init__(self, owner):
        self._owner = owner
        self.stack = QUndoStack(owner)
        self.stack.setUndoLimit(UNDO_LIMIT)
        self.committed: list[dict] = []
        self._committed_pipe = Pipeline([])
        self._applying = False

    @staticmethod
    def snapshot(pipeline: Pipeline) -> list[dict]:
        return pipeline.to_dict()["stages"]

    def reset(self, pipeline: Pipeline) -> None:
        """Start from ``pipeline`` with an empty history."""
        self.committed = self.snapshot(pipeline)
        self._committed_pipe = pipeline.copy()
        self.stack.clear()

    def commit(self, pipeline: Pipeline, text: str | None = None) -> bool:
        """Record the editor's pipeline as a step (named ``text`` or after its change);
        False when nothing changed or an undo/redo is being applied."""
        if self._applying:
            return False
        after = self.snapshot(pipeline)
        if after == self.committed:
            return False
        change = describe_change(self.committed, after)
        pipe = pipeline.copy()
        step = _PipelineStep(self, (self.committed, self._committed_pipe), (after, pipe),
                             text or change.text, None if text else change.key)
        self.committed, self._committed_pipe = after, pipe
        self.stack.push(step)
        return True

    def apply_pipeline(self, state: tuple) -> None:
        self._applying = True
        try:
            self.committed, self._committed_pipe = state
            self._owner.set_pipeline_quietly(self._committed_pipe.copy())
        finally:
            self._applying = False

    def push_step(self, text: str, apply, before, after) -> None:
        """A non-pipeline step (image, display settings): ``apply(state)`` restores."""
        if self._applying:
            return
        self.stack.push(_CallbackStep(text, self._guarded(apply), before, after))

    def _guarded(self, apply):
        def run(state):
            self._applying = True
            try:
                apply(state)
            finally:
                self._applying = False
        return run

    @property
    def applying(self) -> bool:
        return self._applying
