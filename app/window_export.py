"""The main window's exports: every map as PNG + .npy into a folder, and the grid as
one sheet (PNG or PDF) drawn from the data, both in the background with the window's
progress and messages. Mixed into :class:`app.window.MainWindow`."""

from __future__ import annotations

import os

import numpy as np
from PyQt6.QtWidgets import QFileDialog

from ..core.export import export_maps
from ..core.pipeline import Pipeline
from ..core.sheet import render_sheet, save_sheet, sheet_format


class ExportMixin:
    # ------------------------------------------------------------------ export
    def export_maps_to(self, folder: str, bits: int = 8):
        """Write every map (PNG + .npy) to ``folder`` in the background."""
        if self.output is None:
            self.message.show_message("Nothing to export yet.")
            return
        res = self.output.result
        # describe what made these maps, not what is being edited now
        made_by = Pipeline([lvl.stage for lvl in res.stages])
        source = self.output_image_name
        self._on_busy(True)
        self._exporting = True

        def job():
            return export_maps(res, folder, bits=bits, pipeline=made_by, source=source,
                               progress=lambda d, t: self._bg.progress.emit(d, t))
        self._bg.start(("export", folder), job)

    def export_maps_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Export maps to folder", self._last_dir())
        if folder:
            self.export_maps_to(folder)

    def export_sheet(self, path: str, *, wait: bool = False) -> bool:
        """Save every map of the result on screen as one picture (PNG or PDF), drawn
        from the data at full map resolution with the grid's colours, headers and
        colour bars (core.sheet), in the background; never with hover marks."""
        if self.output is None:
            self.message.show_message("Nothing to export yet.")
            return False
        try:
            sheet_format(path)
        except ValueError as exc:
            self.message.show_message(str(exc))
            return False
        res = self.output.result
        ranges = [list(r) for r in self.grid.ranges]
        luts = [np.asarray(lut)[:, :3] for lut in self.grid.luts]
        title = f"{os.path.basename(self.output_image_name)} · ConvScope"

        def job():
            save_sheet(render_sheet(res, ranges, luts, title=title), path)
            return path

        self._on_busy(True)
        token = ("sheet", path)
        if wait:
            try:
                self._on_background_done(token, job())
            except (OSError, ValueError, MemoryError) as exc:
                self._on_background_failed(token, exc)
                return False
            return True
        self._bg.start(token, job)
        return True

    def export_sheet_dialog(self):
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export sheet", self._last_dir(), "PNG image (*.png);;PDF document (*.pdf)")
        if path:
            if not path.lower().endswith((".png", ".pdf")):
                path += ".pdf" if "pdf" in chosen.lower() else ".png"
            self.export_sheet(path)

