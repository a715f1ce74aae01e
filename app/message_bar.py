"""A dismissable one-line message, shown above a view's content."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

ERROR_RED = "#c62828"


class MessageBar(QFrame):
    """A dismissable one-line message (errors in red, information in blue)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 3, 4, 3)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(26)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.error = False
        self.hide()

    def show_message(self, text: str, error: bool = True):
        color, bg = (ERROR_RED, "#fdecea") if error else ("#1c4f8a", "#e8f0fd")
        self.setStyleSheet(f"MessageBar {{ background: {bg}; border-radius: 4px; }} "
                           f"QLabel {{ color: {color}; }}")
        self.error = error
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""
