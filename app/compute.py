"""Running the pipeline off the UI thread: coalesced requests, stale results dropped.

:class:`PipelineRunner` owns one worker thread. ``request(image, pipeline)`` may be
called on every keystroke: if the worker is idle the run starts at once (on the next
event-loop turn, so a burst of edits in one turn becomes one run); if it is busy, only
the newest request is kept and starts when the current run ends. A run that has
become stale stops between stages (core.pipeline.run's progress callback) and its
result is never shown. The worker also prepares what the grid shows (block-averaged
previews and statistics), so the UI thread only hands arrays to pyqtgraph.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import traceback
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, QThread, QTimer, pyqtSignal, pyqtSlot

from ..core import conv as core_conv
from ..core.display import (PREVIEW_MAX_SIDE, colour_groups, compose_rgb, map_stats, preview,
                          preview_factor)
from ..core.memory import lower_thread_priority
from ..core.pipeline import PipelineResult, run

#: nice value added to the compute threads (this worker, conv2d's helper threads, the
#: training worker): with the compiled conv loop two compute threads filled both cores
#: and the UI thread waited 60-75 ms for one during a burst of edits at 1080p
#: (bench/bench_gui.py); niced threads yield to it at once
COMPUTE_NICENESS = 5


@dataclass
class DisplayLevel:
    previews: list      # (h, w) float32 per map (block-averaged if large)
    factor: int         # preview block size
    stats: list         # MapStats per map (of the full-resolution map)
    colours: list | None = None  # (h, w, 3) recombined RGB previews, one per colour group


@dataclass
class RunOutput:
    seq: int
    result: PipelineResult
    levels: list        # DisplayLevel per level, input first
    seconds: float      # compute time in the worker
    cancelled: bool = False
    colour_groups: list | None = None  # per level: (r, g, b) map triples (core.display)
    preview_side: int = PREVIEW_MAX_SIDE  # longest preview side asked for


class _Worker(QObject):
    finished = pyqtSignal(object)
    failed = pyqtSignal(int, str)
    progress = pyqtSignal(int, int, int)

    def __init__(self, latest):
        super().__init__()
        self._latest = latest  # callable -> newest requested seq
        self._previous: PipelineResult | None = None
        self._display_cache: dict[str, DisplayLevel] = {}
        self._niced = False
        # previews and statistics of the maps are independent: numpy releases the GIL
        # in them, so a helper thread halves their time on two cores (1080p default
        # pipeline: 42 -> 20 ms of the edit-to-display time)
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1) - 1),
                                        thread_name_prefix="convscope-display",
                                        initializer=lower_thread_priority,
                                        initargs=(COMPUTE_NICENESS,))

    @pyqtSlot(int, object, object, int)
    def compute(self, seq, image, pipeline, side=PREVIEW_MAX_SIDE):
        t0 = time.perf_counter()
        if not self._niced:  # runs in the worker thread
            self._niced = True
            lower_thread_priority(COMPUTE_NICENESS)
        try:
            cancelled = False

            def progress(done, total):
                nonlocal cancelled
                if self._latest() != seq:
                    cancelled = True
                    return False
                self.progress.emit(seq, done, total)
                return True

            # each stage's previews and statistics are made in the helper thread while
            # the next stage computes (all but the last, which both threads share)
            early: dict[int, object] = {}
            last = len(pipeline.stages) - 1

            def on_stage(lvl):
                if lvl.index < last and (lvl.key, side) not in self._display_cache:
                    early[lvl.index] = self._pool.submit(self._display_serial, lvl, side)

            res = run(image, pipeline, previous=self._previous, progress=progress,
                      on_stage=on_stage)
            if cancelled:
                self.finished.emit(RunOutput(seq, res, [], time.perf_counter() - t0, True))
                return
            self._previous = res
            groups = colour_groups(res)
            levels = [self._display(lvl, g, side, early.get(lvl.index))
                      for lvl, g in zip([res.input, *res.stages], groups)]
            self._display_cache = {(lvl.key, side): d for lvl, d in
                                   zip([res.input, *res.stages], levels)}
            self.finished.emit(RunOutput(seq, res, levels, time.perf_counter() - t0,
                                         colour_groups=groups, preview_side=side))
        except Exception as exc:  # a bug, not bad input: report it, keep the window alive
            traceback.print_exc()
            self.failed.emit(seq, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _display_serial(lvl, side):
        f = preview_factor(lvl.maps.shape, side)
        return [(preview(m, f), map_stats(m)) for m in lvl.maps]

    def _display(self, lvl, groups=(), side=PREVIEW_MAX_SIDE, early=None) -> DisplayLevel:
        cached = self._display_cache.get((lvl.key, side))
        if cached is not None and len(cached.colours or ()) == len(groups):
            return cached
        f = preview_factor(lvl.maps.shape, side)
        if early is not None:
            done = early.result()
            previews = [d[0] for d in done]
            colours = [compose_rgb(*(previews[i] for i in g)) for g in groups]
            return DisplayLevel(previews, f, [d[1] for d in done], colours)

        def one(m):
            return preview(m, f), map_stats(m)

        maps = list(lvl.maps)
        # every other map in the helper thread, the rest here
        helped = [self._pool.submit(one, m) for m in maps[1::2]]
        mine = [one(m) for m in maps[0::2]]
        done = [None] * len(maps)
        done[0::2] = mine
        done[1::2] = [h.result() for h in helped]
        previews = [d[0] for d in done]
        colours = [compose_rgb(*(previews[i] for i in g)) for g in groups]
        return DisplayLevel(previews, f, [d[1] for d in done], colours)


class PipelineRunner(QObject):
    """Runs pipelines in a worker thread; emits ``resultReady(RunOutput)`` for fresh runs."""

    resultReady = pyqtSignal(object)
    failed = pyqtSignal(str)
    progress = pyqtSignal(int, int)
    busyChanged = pyqtSignal(bool)
    _start = pyqtSignal(int, object, object, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._seq = 0
        self._lock = threading.Lock()
        self._running: int | None = None
        self._pending = None
        core_conv.set_worker_niceness(COMPUTE_NICENESS)
        self._thread = QThread()
        self._thread.setObjectName("convscope-pipeline")
        self._worker = _Worker(self.latest)
        self._worker.moveToThread(self._thread)
        self._start.connect(self._worker.compute)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.progress.connect(self._on_progress)
        self._thread.start()
        self._kick = QTimer(self)
        self._kick.setSingleShot(True)
        self._kick.setInterval(0)
        self._kick.timeout.connect(self._dispatch)

    def latest(self) -> int:
        with self._lock:
            return self._seq

    @property
    def busy(self) -> bool:
        return self._running is not None

    def request(self, image: np.ndarray, pipeline, preview_side: int = PREVIEW_MAX_SIDE) -> int:
        """Ask for a run; returns its sequence number. Older pending requests are dropped.

        Previews are block-averaged to at most ``preview_side`` pixels a side (the
        size the maps are drawn at: drawing more costs paint time and shows nothing).
        """
        with self._lock:
            self._seq += 1
            seq = self._seq
        self._pending = (seq, image, pipeline.copy(), int(preview_side))
        if self._running is None:
            self._kick.start()
        return seq

    def _dispatch(self):
        if self._running is not None or self._pending is None:
            return
        seq, image, pipeline, side = self._pending
        self._pending = None
        self._running = seq
        self.busyChanged.emit(True)
        self._start.emit(seq, image, pipeline, side)

    def _done(self):
        self._running = None
        if self._pending is not None:
            self._dispatch()
        else:
            self.busyChanged.emit(False)

    def _on_finished(self, out: RunOutput):
        fresh = out.seq == self.latest() and not out.cancelled
        self._done()
        if fresh:
            self.resultReady.emit(out)

    def _on_failed(self, seq: int, message: str):
        self._done()
        if seq == self.latest():
            self.failed.emit(message)

    def _on_progress(self, seq, done, total):
        if seq == self.latest():
            self.progress.emit(done, total)

    def shutdown(self):
        """Stop the worker thread (waits for the current stage to end)."""
        with self._lock:
            self._seq += 1  # makes any running job stale: it stops at the next stage
        self._pending = None
        self._thread.quit()
        self._thread.wait(10_000)
