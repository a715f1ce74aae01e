"""The main window's session: what is saved at quit (QSettings) and restored at the
next start: the image (its path), the pipeline, display settings, window geometry,
dock layout and tab. A damaged store is ignored with a message. Mixed into
:class:`app.window.MainWindow`, whose attributes (``settings``, ``panel``, ``tabs``
...) these methods use."""

from __future__ import annotations

import json
import os

from PyQt6.QtCore import QSettings

from ..core.pipeline import pipeline_from_dict


class SessionMixin:
    # ------------------------------------------------------------------ session
    SESSION_KEYS = ("session/image", "session/pipeline", "session/display",
                    "session/geometry", "session/state", "session/tab", "session/docks")

    def save_session(self) -> None:
        """The image (its path), pipeline, display settings, window geometry, dock layout
        and tab, for the next start (QSettings)."""
        st = self.settings
        try:
            pipe = json.dumps(self.document.pipeline().to_dict())
        except (TypeError, ValueError):
            pipe = None
        if pipe is not None:
            st.setValue("session/pipeline", pipe)
        image = self.image_name if os.path.isfile(self.image_name) else ""
        st.setValue("session/image", os.path.abspath(image) if image else "")
        st.setValue("session/display", json.dumps(self.display_settings()))
        st.setValue("session/geometry", self.saveGeometry())
        st.setValue("session/state", self.saveState())
        st.setValue("session/tab", self.tabs.currentIndex())
        st.setValue("session/docks", json.dumps(
            {"pipeline": self._dock_visible[self.pipeline_dock],
             "explain": self._dock_visible[self.explain_dock]}))
        st.sync()

    def restore_session(self) -> str | None:
        """Bring back what :meth:`save_session` saved; returns the image path to open
        (None: no image saved, or its file is gone). A damaged store is reported in the
        message bar and ignored, part by part: never an exception."""
        st = self.settings
        problems = []

        def part(key, fn):
            raw = st.value(key)
            if raw is None or raw == "":
                return None
            try:
                return fn(raw)
            except Exception as exc:  # noqa: BLE001 - damaged settings: report, go on
                problems.append(f"{key.split('/')[1]} ({type(exc).__name__}: {exc})"[:160])
                return None

        pipe = part("session/pipeline", lambda raw: pipeline_from_dict(json.loads(str(raw))))
        if pipe is not None:
            self.document.reset_pipeline(pipe)
        display = part("session/display", lambda raw: json.loads(str(raw)))
        if isinstance(display, dict):
            self.apply_display_settings(display)

        def geometry(raw):
            if not self.restoreGeometry(raw):
                raise ValueError("unreadable")
            return True

        def state(raw):
            if not self.restoreState(raw):
                raise ValueError("unreadable")
            return True

        part("session/geometry", geometry)
        part("session/state", state)
        docks = part("session/docks", lambda raw: json.loads(str(raw)))
        if isinstance(docks, dict):
            for dock, key in ((self.pipeline_dock, "pipeline"), (self.explain_dock, "explain")):
                if isinstance(docks.get(key), bool):
                    self._dock_visible[dock] = docks[key]
                    dock.setVisible(docks[key] and self.tabs.currentIndex() == 0)
        tab = part("session/tab", lambda raw: int(raw))
        if isinstance(tab, int) and 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)
        image = part("session/image", lambda raw: str(raw))
        if problems:
            self.message.show_message("Parts of the saved session could not be read and were "
                                      "skipped: " + "; ".join(problems))
        return image if image and os.path.isfile(image) else None

    @staticmethod
    def clear_session(settings) -> None:
        for key in SessionMixin.SESSION_KEYS:
            settings.remove(key)
