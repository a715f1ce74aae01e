"""The Inspect tab's "Use the loaded photo" panel: the main view's photo, converted as
MNIST digits were prepared (gray, fitted into 20x20 in 28x28, white on black), with
the three steps shown as thumbnails.

:class:`PhotoPanel` keeps the photo it was given (by reference: the app never changes
an image it shows) and converts it only when asked (:meth:`PhotoPanel.use_photo`, the
button): a 12-megapixel photo is not reduced at every image change of the main tab
(the first box previews it from every k-th pixel).
The conversion itself is :func:`app.inspect_common.photo_to_mnist`.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ..core.image import luma
from .inspect_common import _BOX_STYLE, THUMB_PX, PhotoConversion, _pixmap, photo_to_mnist

__all__ = ["PhotoPanel"]


class PhotoPanel(QGroupBox):
    """Signals: ``converted(ndarray)``, the 28x28 float32 input in [0, 1]."""

    converted = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__("Use the loaded photo", parent)
        self.setStyleSheet(_BOX_STYLE)
        self._photo: np.ndarray | None = None
        self._conversion: PhotoConversion | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 14, 8, 8)
        self.photo_button = QPushButton("Use the loaded photo")
        self.photo_button.setEnabled(False)
        self.photo_button.setToolTip("Convert the image of the main view like MNIST digits: "
                                     "gray, fitted into 20x20 in 28x28, white on black")
        self.photo_button.clicked.connect(self.use_photo)
        lay.addWidget(self.photo_button)
        thumbs = QHBoxLayout()
        thumbs.setSpacing(6)
        self.thumbs: list[QLabel] = []
        self.thumb_captions: list[QLabel] = []
        for caption in ("gray", "28x28", "inverted"):
            cell = QVBoxLayout()
            cell.setSpacing(2)
            img = QLabel()
            img.setFixedSize(THUMB_PX, THUMB_PX)
            img.setAlignment(Qt.AlignmentFlag.AlignCenter)
            img.setStyleSheet("background: #f2f2f2; border: 1px solid #d0d0d0;")
            cap = QLabel(caption)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet("color: #555555;")
            cell.addWidget(img, 0, Qt.AlignmentFlag.AlignHCenter)
            cell.addWidget(cap)
            thumbs.addLayout(cell)
            self.thumbs.append(img)
            self.thumb_captions.append(cap)
        lay.addLayout(thumbs)
        self.photo_note = QLabel("no photo loaded")
        self.photo_note.setStyleSheet("color: #777777;")
        self.photo_note.setWordWrap(True)
        lay.addWidget(self.photo_note)

    def set_photo(self, image) -> None:
        """The main view's image (H, W, C) in [0, 1], or None. Raises ValueError for a
        shape that is not an image."""
        if image is None:
            self._photo = self._conversion = None
            self.photo_button.setEnabled(False)
            self._show_conversion()
            self.photo_note.setText("no photo loaded")
            return
        a = np.asarray(image)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or 0 in a.shape:
            raise ValueError(f"a photo must have shape (H, W) or (H, W, 1|3|4), got {a.shape}")
        self._photo = a
        self._conversion = None
        self._show_conversion()
        self._show_preview(a)
        self.photo_button.setEnabled(True)
        h, w = a.shape[:2]
        self.photo_note.setText(f"photo of {w}x{h} px ready: the button converts it")

    def _show_preview(self, a: np.ndarray) -> None:
        """The first step (gray) from every k-th pixel, so that the panel shows which
        photo the button would convert (its three boxes were empty until then); the
        conversion itself waits for the button."""
        step = max(1, max(a.shape[:2]) // (2 * THUMB_PX))
        small = np.asarray(a[::step, ::step], np.float32)
        if small.ndim == 3:
            small = luma(small[:, :, :3]) if small.shape[2] >= 3 else small[:, :, 0]
        self.thumbs[0].setPixmap(_pixmap(np.nan_to_num(small), THUMB_PX))

    def use_photo(self) -> None:
        """Convert the photo and announce the result (``converted``)."""
        if self._photo is None:
            return
        self._conversion = photo_to_mnist(self._photo)
        self._show_conversion()
        self.converted.emit(self._conversion.result)

    def conversion(self) -> PhotoConversion | None:
        return self._conversion

    def _show_conversion(self) -> None:
        conv = self._conversion
        if conv is None:
            for t in self.thumbs:
                t.clear()
            self.thumb_captions[2].setText("inverted")
            return
        self.thumbs[0].setPixmap(_pixmap(conv.gray, THUMB_PX))
        self.thumbs[1].setPixmap(_pixmap(conv.fitted, THUMB_PX))
        if conv.inverted:
            self.thumbs[2].setPixmap(_pixmap(conv.result, THUMB_PX))
            self.thumb_captions[2].setText("inverted")
            self.thumbs[2].setToolTip("the background was bright: inverted to white on black")
        else:
            self.thumbs[2].clear()
            self.thumbs[2].setText("–")
            self.thumb_captions[2].setText("not inverted")
            self.thumbs[2].setToolTip("the background is already dark, as in MNIST")
        self.photo_note.setText(f"background {conv.background:.2f} "
                                f"({'bright: inverted' if conv.inverted else 'dark: kept'})")
