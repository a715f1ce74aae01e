"""The display toolbar: open/paste, colormap, value scale, 1 % clipping and map size.

A panel of the image tab bound to the document (:class:`app.document.Document`): a
choice made here becomes one undo step ("change colormap") through
:meth:`Document.set_display`, and the toolbar shows whatever display settings the
document announces (an undo, a restored session), without echoing them back.
"""

from __future__ import annotations

from PyQt6.QtWidgets import QCheckBox, QComboBox, QLabel, QToolBar

from .form_widgets import signals_blocked
from .grid import COLORMAPS

__all__ = ["DisplayToolbar", "CHOICES"]

#: the values each setting can take (the document's DISPLAY_DEFAULTS are among them)
CHOICES = {"colormap": list(COLORMAPS), "scale": ["stage", "map", "global"],
           "map_size": ["fit", "small", "medium", "large"]}


class DisplayToolbar(QToolBar):
    """``actions``: the window's actions shown first (open, paste)."""

    def __init__(self, actions=(), parent=None):
        super().__init__("Display", parent)
        self.setObjectName("display-toolbar")
        self.setMovable(False)
        for act in actions:
            self.addAction(act)
        self.addSeparator()
        self.addWidget(QLabel(" Colormap "))
        self.cmap_box = self._combo("colormap", "auto: gray for images and non-negative maps, "
                                    "a diverging map (blue < 0 < red) for signed maps")
        self.addWidget(QLabel("  Scale "))
        self.scale_box = self._combo("scale", "Value range shared by all maps of a stage, each "
                                     "map on its own, or one range for every stage")
        self.robust_box = QCheckBox("Clip 1 %")
        self.robust_box.setChecked(True)
        self.robust_box.setToolTip("Colour range from the 1st to the 99th percentile, so that "
                                   "a few extreme values do not darken the rest; the colour "
                                   "bar shows the range used")
        self.addWidget(self.robust_box)
        self.addWidget(QLabel("  Map size "))
        self.size_box = self._combo("map_size", "fit: every column fits the window; or a fixed "
                                    "map size")
        self._doc = None

    def _combo(self, key: str, tip: str) -> QComboBox:
        box = QComboBox()
        box.addItems(CHOICES[key])
        box.setToolTip(tip)
        self.addWidget(box)
        return box

    # ------------------------------------------------------------------ the document
    def bind_document(self, doc) -> None:
        """Edit ``doc``'s display settings (one undo step per choice) and show them."""
        self._doc = doc
        for box in (self.cmap_box, self.scale_box, self.size_box):
            box.currentTextChanged.connect(self._edited)
        self.robust_box.toggled.connect(self._edited)
        doc.displayChanged.connect(self.show_settings)
        self.show_settings(doc.display)

    def settings(self) -> dict:
        """The settings as the toolbar shows them."""
        return {"colormap": self.cmap_box.currentText(), "scale": self.scale_box.currentText(),
                "clip": self.robust_box.isChecked(), "map_size": self.size_box.currentText()}

    def valid(self, d: dict) -> dict:
        """The entries of ``d`` this toolbar can show (unknown values are left out)."""
        return {k: v for k, v in d.items()
                if k not in CHOICES or (isinstance(v, str) and v in CHOICES[k])}

    def show_settings(self, d: dict) -> None:
        with signals_blocked(self.cmap_box, self.scale_box, self.size_box, self.robust_box):
            self.cmap_box.setCurrentText(d["colormap"])
            self.scale_box.setCurrentText(d["scale"])
            self.size_box.setCurrentText(d["map_size"])
            self.robust_box.setChecked(d["clip"])

    def _edited(self, *_):
        if self._doc is not None:
            self._doc.set_display(self.settings())
