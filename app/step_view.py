"""Step through a stage: the sliding window, the products, the running sum, played.

Shows the frames :func:`core.animate.render_step` draws, for one map of one
convolution or pooling stage: play/pause, step back and forward, a scrubber over all
steps, the speed, per cell or per product, and "predict, then reveal" (the value of
each cell stays hidden until Reveal). A click on a map cell of that stage jumps
there (the window calls :meth:`StepView.jump_to`). "Save animation…" writes the
steps as an animated GIF or APNG for slides.
"""

from __future__ import annotations

import threading

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QImage, QPixmap
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                             QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                             QPushButton, QSizePolicy, QSlider, QSpinBox, QStyle,
                             QVBoxLayout, QWidget)

from ..core.animate import (AnimationError, count_steps, render_step, save_animation,
                            steps)

#: the animation file's frame size and the most cells it holds by default
FILE_SIZE = (960, 540)
FILE_MAX_CELLS = 200
#: frame sizes the save dialog offers (16:9; the frames are drawn for it, not scaled)
FILE_SIZES = [(640, 360), (960, 540), (1280, 720), (1920, 1080)]
#: frames are held in memory before they are encoded: at most this many bytes
FILE_MAX_BYTES = 1 << 30


def to_qimage(img) -> QImage:
    data = img.convert("RGB").tobytes()
    q = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
    return q.copy()  # own the pixels (data goes away)


class StepView(QWidget):
    """The step-through of one stage's map."""

    stepChanged = pyqtSignal(int, int, int, int)   # level, map, row, col of the cell
    saved = pyqtSignal(str)
    failed = pyqtSignal(str)
    saveProgress = pyqtSignal(int, int)            # frames drawn, frames in all

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result = None
        self.level = 0
        self.map_index = 0
        self.index = 0
        self.count = 0
        self.revealed = True
        self._steps_per_cell = 1
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("Click a pixel of a convolution or pooling map, then press "
                            "Play to watch it being computed.")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.canvas = QLabel()
        self.canvas.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas.setMinimumSize(320, 180)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        lay.addWidget(self.canvas, 1)
        row = QHBoxLayout()
        st = self.style()
        self.back_button = QPushButton(st.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward),
                                       "")
        self.back_button.setToolTip("Step back (Left)")
        self.play_button = QPushButton(st.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause (Space)")
        self.next_button = QPushButton(st.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward),
                                       "")
        self.next_button.setToolTip("Step forward (Right)")
        self.scrubber = QSlider(Qt.Orientation.Horizontal)
        self.scrubber.setToolTip("Every step of this map, in order")
        self.speed = QSpinBox()
        self.speed.setRange(1, 60)
        self.speed.setValue(4)
        self.speed.setSuffix(" steps/s")
        self.granularity = QComboBox()
        self.granularity.addItems(["per cell", "per product"])
        self.granularity.setToolTip("One step per output cell, or one per product (the sum "
                                    "builds up)")
        self.predict = QCheckBox("Predict, then reveal")
        self.predict.setToolTip("Hide each cell's value until you press Reveal")
        self.reveal_button = QPushButton("Reveal")
        self.reveal_button.setEnabled(False)
        self.save_button = QPushButton("Save animation…")
        self.save_button.setToolTip("The steps as an animated GIF or APNG, for slides")
        for w in (self.back_button, self.play_button, self.next_button):
            row.addWidget(w)
        row.addWidget(self.scrubber, 1)
        for w in (self.speed, self.granularity, self.predict, self.reveal_button,
                  self.save_button):
            row.addWidget(w)
        lay.addLayout(row)
        self.save_row = QWidget()             # shown while an animation file is written
        srow = QHBoxLayout(self.save_row)
        srow.setContentsMargins(0, 0, 0, 0)
        self.save_label = QLabel("Saving the animation:")
        self.save_progress = QProgressBar()
        self.save_progress.setFormat("frame %v of %m")
        self.save_stop = QPushButton("Stop")
        self.save_stop.setToolTip("Stop saving; nothing is written")
        self.save_stop.clicked.connect(self.stop_saving)
        srow.addWidget(self.save_label)
        srow.addWidget(self.save_progress, 1)
        srow.addWidget(self.save_stop)
        self.save_row.hide()
        lay.addWidget(self.save_row)
        self.saveProgress.connect(self._on_save_progress)
        self.saved.connect(lambda _: self.save_row.hide())
        self.failed.connect(lambda _: self.save_row.hide())
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.back_button.clicked.connect(lambda: self.go(self.index - 1))
        self.next_button.clicked.connect(lambda: self.go(self.index + 1))
        self.play_button.toggled.connect(self.play)
        self.scrubber.valueChanged.connect(self.go)
        self.speed.valueChanged.connect(self._set_speed)
        self.granularity.currentIndexChanged.connect(lambda _: self._retarget())
        self.predict.toggled.connect(self._on_predict)
        self.reveal_button.clicked.connect(self.reveal)
        self.save_button.clicked.connect(self.save_dialog)
        self._set_speed(self.speed.value())
        self._enable(False)
        self._save_thread: threading.Thread | None = None
        self._save_stop = threading.Event()

    def _enable(self, on: bool):
        for w in (self.back_button, self.play_button, self.next_button, self.scrubber,
                  self.save_button):
            w.setEnabled(on)

    # ------------------------------------------------------------------ the document
    def bind_document(self, doc) -> None:
        """Follow ``doc`` while shown: step through the map of its selected cell, from
        that cell; keep the same stage and cell on a new result; and make each cell
        shown here the document's selected cell (marked on the maps)."""
        def step_to_doc(level, m, row, col):
            if doc.output is not None and doc.output.result is self.result:
                doc.select(level, m, row, col, "play" if self.timer.isActive() else "step")

        def follow_selection(sel, source):
            if sel is None or source in ("step", "play") or not self.isVisible() or \
                    doc.output is None or sel[0] < 0:
                return
            level, m, row, col = sel
            res = doc.output.result
            if self.result is not res:
                self.set_target(res, level, m)
            step = self.current_step() if self.result is not None else None
            if step is None or (level, m, row, col) != (self.level, self.map_index,
                                                        step.row, step.col):
                self.jump_to(level, m, row, col)

        def follow_result(out):
            res = out.result
            if not self.isVisible() or self.result is None or self.result is res:
                return
            if self.level < len(res.stages) and \
                    self.map_index < res.stages[self.level].maps.shape[0]:
                cell = min(self.cell_of(self.index), res.stages[self.level].maps[0].size - 1)
                self.set_target(res, self.level, self.map_index, cell=cell)

        self.stepChanged.connect(step_to_doc)
        doc.selectionChanged.connect(follow_selection)
        doc.resultChanged.connect(follow_result)

    # ------------------------------------------------------------------ target
    def set_target(self, result, level: int, map_index: int, cell: int = 0) -> bool:
        """Step through map ``map_index`` of stage ``level`` of ``result`` (False and a
        message when that stage does not slide a window)."""
        try:
            count_steps(result, level, map_index)
        except AnimationError as exc:
            self.title.setText(f"{exc}. Click a pixel of a convolution or pooling map.")
            self.result = None
            self._enable(False)
            self.play(False)
            return False
        self.result, self.level, self.map_index = result, level, map_index
        self._retarget(cell)
        return True

    def _retarget(self, cell: int | None = None):
        if self.result is None:
            return
        if cell is None:
            cell = self.cell_of(self.index)
        gran = "tap" if self.granularity.currentIndex() == 1 else "cell"
        self.count = count_steps(self.result, self.level, self.map_index, granularity=gran)
        cells = count_steps(self.result, self.level, self.map_index)
        self._steps_per_cell = self.count // max(cells, 1)
        lvl = self.result.stages[self.level]
        self.title.setText(f"Stage {self.level + 1} · {lvl.stage.describe()} · "
                           f"{lvl.labels[self.map_index]}: {cells} output cells")
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(0, max(0, self.count - 1))
        self.scrubber.blockSignals(False)
        self._enable(True)
        self.go(cell * self._steps_per_cell + self._steps_per_cell - 1, force=True)

    def cell_of(self, index: int) -> int:
        return index // max(self._steps_per_cell, 1)

    def jump_to(self, level: int, map_index: int, row: int, col: int) -> bool:
        """Show cell (row, col) of the map (a click on the grid)."""
        if self.result is None or level != self.level or map_index != self.map_index:
            return self.set_target(self.result, level, map_index,
                                   self._cell(level, row, col)) if self.result else False
        self.go(self._cell(level, row, col) * self._steps_per_cell +
                self._steps_per_cell - 1)
        return True

    def _cell(self, level, row, col) -> int:
        return row * self.result.stages[level].maps.shape[2] + col

    # ------------------------------------------------------------------ playback
    def current_step(self):
        gran = "tap" if self._steps_per_cell > 1 else "cell"
        cell = self.cell_of(self.index)
        cell_steps = list(steps(self.result, self.level, self.map_index, granularity=gran,
                                start=cell, cells=1))
        return cell_steps[self.index % self._steps_per_cell]

    def go(self, index: int, force: bool = False):
        if self.result is None or self.count == 0:
            return
        index = max(0, min(self.count - 1, int(index)))
        if index == self.index and not force and self.canvas.pixmap() is not None \
                and not self.canvas.pixmap().isNull():
            return
        new_cell = self.cell_of(index) != self.cell_of(self.index)
        self.index = index
        if new_cell and self.predict.isChecked():
            self.revealed = False
        self.scrubber.blockSignals(True)
        self.scrubber.setValue(index)
        self.scrubber.blockSignals(False)
        self._draw()

    def _draw(self):
        step = self.current_step()
        w, h = max(320, self.canvas.width()), max(180, self.canvas.height())
        w, h = (int(h * 16 / 9), h) if w * 9 > h * 16 else (w, int(w * 9 / 16))
        size = (max(w, 480), max(h, 270))   # 16:9, as large as the panel allows
        hide = self.predict.isChecked() and not self.revealed
        frame = render_step(self.result, step, size, hide_values=hide)
        pix = QPixmap.fromImage(to_qimage(frame))
        if pix.width() > self.canvas.width() or pix.height() > self.canvas.height():
            pix = pix.scaled(self.canvas.size(), Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)  # whole, if small
        self.canvas.setPixmap(pix)
        self.reveal_button.setEnabled(hide)
        self.stepChanged.emit(self.level, self.map_index, step.row, step.col)

    def resizeEvent(self, ev):  # noqa: N802 (Qt API)
        super().resizeEvent(ev)
        if self.result is not None:
            self._draw()

    def play(self, on: bool):
        if self.play_button.isChecked() != on:
            self.play_button.setChecked(on)
            return
        self.play_button.setText("Pause" if on else "Play")
        if on and self.result is not None:
            if self.index >= self.count - 1:
                self.go(0)
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self):
        if self.predict.isChecked() and not self.revealed:
            return  # waiting for the prediction to be revealed
        if self.index >= self.count - 1:
            self.play(False)
            return
        self.go(self.index + 1)

    def _set_speed(self, per_s: int):
        self.timer.setInterval(int(1000 / max(1, per_s)))

    def _on_predict(self, on: bool):
        self.revealed = not on
        if self.result is not None:
            self._draw()

    def reveal(self):
        self.revealed = True
        if self.result is not None:
            self._draw()

    def keyPressEvent(self, ev):  # noqa: N802 (Qt API)
        keys = {Qt.Key.Key_Left: lambda: self.go(self.index - 1),
                Qt.Key.Key_Right: lambda: self.go(self.index + 1),
                Qt.Key.Key_Space: lambda: self.play(not self.play_button.isChecked())}
        if ev.key() in keys:
            keys[ev.key()]()
            return
        super().keyPressEvent(ev)

    # ------------------------------------------------------------------ files
    def save_dialog(self):
        """Ask for the file, frame size, speed, cells and steps, then save (in the
        background, with progress and Stop)."""
        if self.result is None or self.saving():
            return
        start = self.cell_of(self.index)
        cells_left = count_steps(self.result, self.level, self.map_index) - start
        dlg = AnimationDialog(self, cells_left=cells_left, start=start,
                              fps=self.speed.value(), per_product=self._steps_per_cell > 1)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            o = dlg.options()
            self.save(o["path"], cells=o["cells"], size=o["size"], fps=o["fps"],
                      per_product=o["per_product"])

    def saving(self) -> bool:
        return self._save_thread is not None and self._save_thread.is_alive()

    def stop_saving(self) -> None:
        self._save_stop.set()

    def _on_save_progress(self, done: int, total: int):
        if self.saving():
            self.save_row.show()
        self.save_progress.setRange(0, max(1, total))
        self.save_progress.setValue(done)

    def save(self, path: str, *, cells: int = FILE_MAX_CELLS, size=FILE_SIZE,
             fps: float | None = None, per_product: bool | None = None,
             wait: bool = False) -> None:
        """Write the steps from the current cell on (at most ``cells`` cells) in the
        background; ``saveProgress`` reports frames drawn, ``saved``/``failed`` the end
        (a stop is reported as ``failed`` with nothing written)."""
        if self.result is None or self.saving():
            return
        res, level, m = self.result, self.level, self.map_index
        start = self.cell_of(self.index)
        if per_product is None:
            per_product = self._steps_per_cell > 1
        gran = "tap" if per_product else "cell"
        ms = max(20, round(1000 / max(0.1, fps if fps is not None else self.speed.value())))
        total = count_steps(res, level, m, granularity=gran, cells=cells + start) - \
            count_steps(res, level, m, granularity=gran, cells=start)
        need = total * size[0] * size[1] * 3
        if need > FILE_MAX_BYTES:
            self.failed.emit(f"The animation was not saved: {total} frames of "
                             f"{size[0]}x{size[1]} would need {need / 2**30:.1f} GiB of "
                             f"memory; choose fewer cells or a smaller frame size")
            return
        stop = self._save_stop = threading.Event()

        def job():
            try:
                frames = []
                for k, s in enumerate(steps(res, level, m, granularity=gran, start=start,
                                            cells=cells)):
                    if stop.is_set():
                        self.failed.emit("The animation was not saved: stopped (nothing "
                                         "was written)")
                        return
                    frames.append(render_step(res, s, size))
                    if k % 5 == 0:
                        self.saveProgress.emit(k + 1, total)
                self.saveProgress.emit(total, total)
                save_animation(frames, path, ms_per_frame=ms)
            except (AnimationError, OSError, MemoryError) as exc:
                self.failed.emit(f"The animation was not saved: {exc}")
                return
            self.saved.emit(path)

        self._save_thread = threading.Thread(target=job, daemon=True, name="convscope-gif")
        self.save_progress.setRange(0, max(1, total))
        self.save_progress.setValue(0)
        self.save_row.show()
        self._save_thread.start()
        if wait:
            self._save_thread.join()


class AnimationDialog(QDialog):
    """File, frame size, speed, number of cells and steps of an animation file."""

    def __init__(self, parent=None, *, cells_left: int, start: int, fps: int,
                 per_product: bool):
        super().__init__(parent)
        self.setWindowTitle("Save animation")
        form = QFormLayout(self)
        row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("animation.gif")
        self.path.setMinimumWidth(280)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form.addRow("File (.gif or .png):", row)
        self.size = QComboBox()
        for w, h in FILE_SIZES:
            self.size.addItem(f"{w} x {h}", (w, h))
        self.size.setCurrentIndex(FILE_SIZES.index(FILE_SIZE))
        form.addRow("Frame size:", self.size)
        self.fps = QSpinBox()
        self.fps.setRange(1, 50)
        self.fps.setValue(max(1, min(50, int(fps))))
        self.fps.setSuffix(" steps/s")
        form.addRow("Speed:", self.fps)
        self.cells = QSpinBox()
        self.cells.setRange(1, max(1, cells_left))
        self.cells.setValue(max(1, min(cells_left, FILE_MAX_CELLS)))
        self.cells.setSuffix(f" of {cells_left:,}")
        form.addRow(f"Output cells from cell {start + 1}:", self.cells)
        self.steps = QComboBox()
        self.steps.addItems(["one frame per output cell", "one frame per product"])
        self.steps.setCurrentIndex(1 if per_product else 0)
        form.addRow("Steps:", self.steps)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self):
        path, _ = QFileDialog.getSaveFileName(
            self, "Save animation", self.path.text(),
            "Animated GIF (*.gif);;Animated PNG (*.png)")
        if path:
            self.path.setText(path)

    def options(self) -> dict:
        path = self.path.text().strip()
        if path and not path.lower().endswith((".gif", ".png", ".apng")):
            path += ".gif"
        return {"path": path, "size": self.size.currentData(), "fps": self.fps.value(),
                "cells": self.cells.value(), "per_product": self.steps.currentIndex() == 1}

    def _accept(self):
        import os
        path = self.options()["path"]
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if not path:
            self.error.setText("Choose a file name (Browse…).")
        elif os.path.isdir(path):
            self.error.setText(f"'{path}' is a folder.")
        elif not os.path.isdir(folder):
            self.error.setText(f"The folder '{folder}' does not exist.")
        elif not os.access(folder, os.W_OK):
            self.error.setText(f"The folder '{folder}' cannot be written.")
        else:
            self.accept()
            return
        self.path.setFocus()
