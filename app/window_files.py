"""The main window's files: opening an image or a matrix of numbers (dialog, drop,
paste, recent files; in the background, with notes on what was converted) and
loading or saving a pipeline or a kernel. Mixed into :class:`app.window.MainWindow`,
whose attributes (``panel``, ``message``, ``settings``, ``history`` ...) these methods
use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QBuffer, QIODevice, QUrl
from PyQt6.QtGui import QGuiApplication
from PyQt6.QtWidgets import QFileDialog

from ..core.fileio import atomic_write_bytes
from ..core.image import ImageLoadError, load_image
from ..core.kernels import format_kernel
from ..core.matrix import MatrixError, is_matrix_path, load_matrix
from ..core.pipeline import (Pipeline, PipelineError, PipelineFileError, load_pipeline,
                             save_pipeline)
from .grid import size_text

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SAMPLE_IMAGE = ASSETS / "chelsea.png"
MAX_RECENT = 8


def read_input(source):
    """An image file (or bytes) or a matrix of numbers: (H, W, C) float32 and notes."""
    if isinstance(source, str) and is_matrix_path(source):
        return load_matrix(source), []
    notes: list[str] = []
    return load_image(source, notes=notes), notes


class FilesMixin:
    # ------------------------------------------------------------------ images
    def set_image(self, image: np.ndarray, name: str):
        """Show a new image (H, W, C float32: a photo in [0, 1], or a matrix of any
        values) and recompute (one undo step)."""
        self.document.set_image(image, name)

    def _on_image(self):
        """The document has a new image (opened, or an undo): title, photo, maps."""
        image, name = self.image, self.image_name
        self.inspect_view.set_photo(image)
        h, w, c = image.shape
        self.setWindowTitle(f"ConvScope — {os.path.basename(name)} ({size_text(h, w)}, "
                            f"{c} channel{'s' if c != 1 else ''})")
        self.recompute()
        self.imageLoaded.emit(name)

    def load_image_file(self, path: str, *, wait: bool = False) -> None:
        """Load an image file off the UI thread; errors keep the current image."""
        self._load_token += 1
        token = ("image", self._load_token, str(path))
        if wait:
            try:
                self._on_background_done(token, read_input(path))
            except (ImageLoadError, MatrixError) as exc:
                self._on_background_failed(token, exc)
            return
        self.statusBar().showMessage(f"Loading {path}…")
        self._bg.start(token, read_input, str(path))

    def _on_background_done(self, token, value):
        kind = token[0]
        if kind == "image":
            if token[1] != self._load_token:
                return  # a newer load was asked for
            self.statusBar().clearMessage()
            self.message.hide()
            image, notes = value if isinstance(value, tuple) else (value, [])
            self.set_image(image, token[2])
            if notes:  # something the user should know about this file
                self.message.show_message("Note: " + "; ".join(notes) + ".", error=False)
            if not token[2].startswith("<"):
                self._add_recent(token[2])
        elif kind == "sheet":
            self._on_busy(False)
            self.message.show_message(f"Saved the sheet to {token[1]}", error=False)
            self.exported.emit(token[1])
        elif kind == "export":
            self._exporting = False
            self._on_progress(1, 1)
            self._on_busy(False)
            self.message.show_message(f"Exported {len(value)} maps to {token[1]}", error=False)
            self.exported.emit(token[1])

    def _on_background_failed(self, token, exc):
        self.statusBar().clearMessage()
        if token[0] == "image":
            if token[1] != self._load_token:
                return
            self.message.show_message(f"{exc}. The current image is kept.")
        else:
            self._exporting = False
            self._on_busy(False)
            what = "The sheet was not saved" if token[0] == "sheet" else "Export failed"
            self.message.show_message(f"{what}: {exc}")

    def open_dialog(self):
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image", str(self._last_dir()),
            "Images and matrices (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.pgm "
            "*.csv *.txt *.npy);;Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm "
            "*.pgm);;Matrices of numbers (*.csv *.txt *.npy);;All files (*)")
        if path:
            self.load_image_file(path)

    def paste(self):
        """Paste image data, or a path/URL of an image or pipeline file."""
        md = QGuiApplication.clipboard().mimeData()
        if md is None:
            self.message.show_message("The clipboard is empty.")
            return
        if md.hasImage():
            qimg = QGuiApplication.clipboard().image()
            buf = QBuffer()
            buf.open(QIODevice.OpenModeFlag.WriteOnly)
            qimg.save(buf, "PNG")
            self._load_token += 1
            token = ("image", self._load_token, "<pasted image>")
            self._bg.start(token, read_input, bytes(buf.data()))
            return
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        if not paths and md.hasText():
            text = md.text().strip().strip('"')
            if text.startswith("file://"):
                text = QUrl(text).toLocalFile()
            paths = [text] if text else []
        if paths:
            self.open_path(paths[0])
        else:
            self.message.show_message("The clipboard holds no image and no file path.")

    def open_path(self, path: str):
        """Open a dropped/pasted path: a pipeline .json or an image."""
        if path.lower().endswith(".json"):
            self.load_pipeline_file(path)
        elif os.path.isdir(path):
            self.message.show_message(f"'{path}' is a folder, not an image. "
                                      f"The current image is kept.")
        else:
            self.load_image_file(path)

    # drag and drop
    @staticmethod
    def drop_text(md) -> str:
        """What dropping ``md`` here would do, said while it is dragged over the window."""
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        if paths:
            name = os.path.basename(paths[0].rstrip("/")) or paths[0]
            if paths[0].lower().endswith(".json"):
                return f"Drop to load the pipeline “{name}”"
            if is_matrix_path(paths[0]):
                return f"Drop to open the numbers in “{name}” as the input"
            return f"Drop to open “{name}” as the image"
        if md.hasUrls():
            return "Only local files can be dropped here"
        return "Drop to open the pasted image"

    def _show_drop_hint(self, text: str | None):
        hint = self._drop_hint
        if text is None:
            hint.hide()
            return
        hint.setText(text)
        hint.setGeometry(self.centralWidget().geometry())
        hint.raise_()
        hint.show()

    def dragEnterEvent(self, ev):
        md = ev.mimeData()
        if md.hasUrls() or md.hasImage():
            ev.acceptProposedAction()
            self._show_drop_hint(self.drop_text(md))

    def dragLeaveEvent(self, ev):
        self._show_drop_hint(None)

    def dropEvent(self, ev):
        self._show_drop_hint(None)
        md = ev.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            ev.acceptProposedAction()
        elif md.hasUrls():
            self.message.show_message("Only local files can be dropped here.")
        elif md.hasImage():
            self.paste()

    # ------------------------------------------------------------------ recent
    def _recent(self) -> list[str]:
        val = self.settings.value("recent", [])
        if isinstance(val, str):
            val = [val]
        return [str(v) for v in (val or [])]

    def _add_recent(self, path: str):
        path = os.path.abspath(path)
        items = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", items[:MAX_RECENT])
        self.settings.setValue("last_dir", os.path.dirname(path))
        self._update_recent_menu()

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(ASSETS)))

    def _update_recent_menu(self):
        self.recent_menu.clear()
        items = self._recent()
        for p in items:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(items))

    # ------------------------------------------------------------------ pipeline
    def set_pipeline(self, pipe: Pipeline, text: str) -> None:
        """Replace the whole pipeline as one undoable step named ``text``."""
        self.document.edit_pipeline(pipe, text)

    def recompute(self, *_):
        if self.image is None:
            return
        self.runner.request(self.image, self.document.pipeline(), self.grid.preview_side())

    def load_pipeline_file(self, path: str) -> bool:
        try:
            pipe = load_pipeline(path)
        except PipelineFileError as exc:
            self.message.show_message(f"{exc}. The current pipeline is kept.")
            return False
        name = os.path.basename(path)
        self.set_pipeline(pipe, f"load pipeline {name}")
        self.message.show_message(f"Loaded pipeline {name} (Ctrl+Z puts the previous one "
                                  f"back)", error=False)
        return True

    def load_pipeline_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load pipeline", self._last_dir(),
                                              "Pipelines (*.json)")
        if path:
            self.load_pipeline_file(path)

    def save_pipeline_file(self, path: str) -> bool:
        try:
            save_pipeline(path, self.document.pipeline())
        except PipelineError as exc:
            self.message.show_message(f"Not saved: {exc}. Fix it and save again.")
            return False
        except OSError as exc:
            self.message.show_message(f"Could not save the pipeline to '{path}': {exc}")
            return False
        self.message.show_message(f"Saved pipeline to {path}", error=False)
        return True

    def save_pipeline_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save pipeline", self._last_dir(),
                                              "Pipelines (*.json)")
        if path:
            if not path.lower().endswith(".json"):
                path += ".json"
            self.save_pipeline_file(path)

    def save_kernel_dialog(self):
        kernel = self.current_kernel()
        if kernel is None:
            self.message.show_message("Select a convolution stage to save its kernel.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save kernel", self._last_dir(),
                                              "Kernel text (*.txt)")
        if path:
            self.save_kernel_file(path, kernel)

    def current_kernel(self):
        """The kernel selected in the pipeline editor (None if no conv stage is selected)."""
        editor = self.panel.current_editor()
        if editor is None or not hasattr(editor, "kernel_index"):
            return None
        stage = editor.stage()
        return stage.kernels[editor.kernel_index()]

    def save_kernel_file(self, path: str, kernel) -> bool:
        w = kernel.weights if kernel.weights.ndim == 2 else kernel.weights[0]
        text = format_kernel(w)
        if kernel.divisor != 1:
            text = f"# divisor {kernel.divisor:g}\n" + text
        try:
            atomic_write_bytes(path, (text + "\n").encode())
        except OSError as exc:
            self.message.show_message(f"Could not save the kernel to '{path}': {exc}")
            return False
        return True
