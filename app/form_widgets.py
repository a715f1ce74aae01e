"""Small form widgets shared by the pipeline editor's panels.

:func:`signals_blocked` (write a model into widgets without echo), :class:`FieldFrame`
(one form field that can be marked invalid: a red border and the reason as its
tooltip), :func:`form_label` (labels of one width, so forms in different boxes line
up), :func:`row` and the style sheet the marks need (:data:`STYLE_SHEET`).
"""

from __future__ import annotations

from contextlib import contextmanager

from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QWidget

__all__ = ["ERROR_RED", "LABEL_WIDTH", "STYLE_SHEET", "signals_blocked", "form_label",
           "FieldFrame", "row"]

ERROR_RED = "#c62828"
LABEL_WIDTH = 62          # one label column width for every form, so fields line up

STYLE_SHEET = f"""
QFrame#field {{ border: 1px solid transparent; border-radius: 3px; }}
QFrame#field[error="true"] {{ border: 1px solid {ERROR_RED}; background: #fdecea; }}
QLabel#errorLabel {{ color: {ERROR_RED}; }}
QLabel#hintLabel, QLabel#formulaLabel {{ color: #505050; }}
"""


@contextmanager
def signals_blocked(*objects):
    """Block the signals of ``objects`` while the model writes into them (no echo)."""
    previous = [o.blockSignals(True) for o in objects]
    try:
        yield
    finally:
        for o, p in zip(objects, previous):
            o.blockSignals(p)


def form_label(text: str, tooltip: str = "") -> QLabel:
    """A form label of the common width, so forms in different boxes align."""
    label = QLabel(text)
    label.setMinimumWidth(LABEL_WIDTH)
    if tooltip:
        label.setToolTip(tooltip)
    return label


class FieldFrame(QFrame):
    """The container of one form field; :meth:`set_error` marks it invalid.

    A mark is the dynamic property ``error`` (styled as a red border by
    :data:`STYLE_SHEET`) plus the reason as the tooltip of the frame and of the
    inputs inside it. Items of ``widgets`` are widgets, strings (small labels) or
    ``None`` (a stretch; a trailing ``None`` instead makes the frame hug its inputs).
    """

    def __init__(self, *widgets, tooltip: str = "", parent=None):
        super().__init__(parent)
        self.setObjectName("field")
        self.setProperty("error", False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(4)
        if widgets and widgets[-1] is None:
            # hug the inputs, so an error border surrounds them and not the whole row
            widgets = widgets[:-1]
            self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        for w in widgets:
            if w is None:
                lay.addStretch(1)
            elif isinstance(w, str):
                lay.addWidget(QLabel(w))
            else:
                lay.addWidget(w)
        self._tip = tooltip
        self._reason: str | None = None
        self.setToolTip(tooltip)

    def inputs(self) -> list[QWidget]:
        return [w for w in self.findChildren(QWidget) if not isinstance(w, QLabel)
                and w.parent() is self]

    def set_error(self, reason: str | None) -> None:
        if reason == self._reason:
            return
        self._reason = reason
        self.setProperty("error", bool(reason))
        self.setToolTip(reason if reason else self._tip)
        for w in self.inputs():
            base = w.property("baseToolTip")
            if base is None:
                base = w.toolTip()
                w.setProperty("baseToolTip", base)
            w.setToolTip(f"{reason}\n\n{base}" if reason and base else (reason or base))
        self.style().unpolish(self)
        self.style().polish(self)
        self.update()

    def error(self) -> str | None:
        return self._reason


def row(*widgets) -> QHBoxLayout:
    """Widgets side by side, left-aligned."""
    lay = QHBoxLayout()
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(4)
    for w in widgets:
        lay.addWidget(w)
    lay.addStretch(1)
    return lay
