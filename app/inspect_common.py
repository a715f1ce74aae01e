"""Shared by the Inspect tab's modules (app.inspect_view and its panels): imports,
constants, the photo-to-digit conversion (no Qt), the bundled test set and the
probability chart."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import pyqtgraph as pg
from PIL import Image
from PyQt6.QtCore import QEvent, QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QColor, QFont, QImage, QPixmap
from PyQt6.QtWidgets import (QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMenu, QPushButton,
                             QSizePolicy, QSpinBox, QStackedWidget, QStyle, QVBoxLayout,
                             QWidget)

from ..core.display import ROBUST_PERCENTILES, MapStats, map_stats
from ..core.explain import explain
from ..core.image import luma
from ..core.nn.data import MNIST_MEAN, MNIST_STD, load_bundled_mnist
from ..core.nn.losses import softmax
from ..core.nn.model import Sequential, build, to_pipeline
from ..core.pipeline import ConvStage, Kernel, PipelineResult, input_level, run

from .compute import DisplayLevel, RunOutput
from .digit_canvas import SIDE, DigitCanvas
from .explain_panel import ExplainPanel
from .grid import FeatureGrid


NO_MODEL_HINT = "Train a model in the Train tab or load one"
INPUT_SHAPE = (1, SIDE, SIDE)
BOX = 20  # MNIST digits are fitted into a 20x20 box centred in 28x28
REEXPLAIN_MS = 150  # after the input changes, the selected pixel is re-explained this late
THUMB_PX = 64
LEFT_WIDTH = 304
RIGHT_WIDTH = 336
ENGINES = ("layers", "pipeline")

_BOX_STYLE = ("QGroupBox { border: 1px solid #c4c4c4; border-radius: 4px; margin-top: 1.1em;"
              " color: #333333; }"
              "QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }")
_BAR = QColor("#9fb3c8")
_BAR_TOP = QColor("#e8590c")


# ------------------------------------------------------------------ numerics (no Qt)


@dataclass
class PhotoConversion:
    """The steps from a photo to an MNIST-like 28x28 input (all float32 in [0, 1])."""

    gray: np.ndarray        # (H, W) luma of the photo
    fitted: np.ndarray      # (28, 28) fitted into the central 20x20 box, background padded
    result: np.ndarray      # (28, 28) the network's input (``fitted``, inverted if bright)
    inverted: bool
    background: float       # median of the photo's border (gray), 0..1


def photo_to_mnist(image) -> PhotoConversion:
    """Convert a photo (H, W, C) in [0, 1] the way MNIST digits were prepared.

    Luma (ITU-R 601, :func:`core.image.luma`) -> resized with Pillow (Lanczos) to fit
    a 20x20 box keeping the aspect ratio, centred in 28x28 with the background
    (the median of the photo's border) around it -> inverted when the background is
    bright (MNIST is white on black).

    Raises ValueError for a shape other than (H, W), (H, W, 1), (H, W, 3), (H, W, 4),
    or non-finite values.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        gray = a
    elif a.ndim == 3 and a.shape[2] == 1:
        gray = a[:, :, 0]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        gray = luma(a[:, :, :3])
    else:
        raise ValueError(f"a photo must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                         f"got {np.shape(image)}")
    if 0 in gray.shape:
        raise ValueError(f"the photo is empty (shape {np.shape(image)})")
    if not np.all(np.isfinite(gray)):
        raise ValueError("the photo contains non-finite values")
    gray = np.clip(gray, 0.0, 1.0).astype(np.float32, copy=False)
    h, w = gray.shape
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(np.ascontiguousarray(gray)).resize(
        (nw, nh), Image.Resampling.LANCZOS), np.float32)
    fitted = np.full((SIDE, SIDE), background, np.float32)
    top, left = (SIDE - nh) // 2, (SIDE - nw) // 2
    fitted[top:top + nh, left:left + nw] = np.clip(small, 0.0, 1.0)
    inverted = background > 0.5
    result = (1.0 - fitted) if inverted else fitted.copy()
    return PhotoConversion(gray, fitted, result.astype(np.float32), inverted, background)


def level_stats(maps: np.ndarray) -> list[MapStats]:
    """:func:`core.display.map_stats` of every map of a (M, H, W) level, vectorised.

    Small finite maps (all of a 28x28 CNN's) are done in one pass over the level;
    anything else falls back to ``map_stats`` per map.
    """
    maps = np.asarray(maps)
    flat = maps.reshape(len(maps), -1)
    if flat.shape[1] > 4096 or not np.isfinite(flat).all():
        return [map_stats(m) for m in maps]
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    mean = flat.mean(axis=1, dtype=np.float64)
    p_lo, p_hi = np.percentile(flat, ROBUST_PERCENTILES, axis=1)
    return [MapStats(min=float(lo[i]), max=float(hi[i]), mean=float(mean[i]),
                     p_low=float(p_lo[i]), p_high=float(p_hi[i])) for i in range(len(flat))]


def layer_outputs(model: Sequential, x: np.ndarray):
    """Every layer's output for ``x`` (N, C, H, W), evaluation mode, and each layer's seconds.

    The same computation as :meth:`Sequential.features`, layer by layer, timed.
    """
    outs, seconds = [], []
    x = np.asarray(x, np.float32)
    for layer in model.layers:
        t0 = time.perf_counter()
        x = layer.forward(x, False)
        seconds.append(time.perf_counter() - t0)
        outs.append(x)
    return outs, seconds


def normalise(x01: np.ndarray) -> np.ndarray:
    """[0, 1] image -> the network's input, as :func:`core.nn.data.normalise` does it."""
    x = np.array(x01, np.float32)
    x -= MNIST_MEAN
    x /= MNIST_STD
    return x


def filter_labels(res: PipelineResult) -> PipelineResult:
    """``res`` with maps named by the conv filter they descend from ("filter 5").

    The pipeline's names spell out the whole chain ("maxpool(relu(sum * filter 5))"),
    which a map a few dozen pixels wide cannot show; the stage header says the rest.
    Levels before the first convolution keep their names.
    """
    stages, seen_conv = [], False
    for lvl in res.stages:
        seen_conv = seen_conv or isinstance(lvl.stage, ConvStage)
        if seen_conv:
            lvl = replace(lvl, labels=[f"filter {c + 1}" for c in lvl.columns])
        stages.append(lvl)
    return replace(res, stages=stages)


def _snapshot(model: Sequential) -> Sequential:
    """An independent copy (the Train tab may go on training the original)."""
    copy = build(model.architecture())
    copy.load_state_dict(model.state_dict())
    return copy


# ------------------------------------------------------------------ the bundled test set


class _TestSet:
    """The bundled MNIST test images as [0, 1] floats, loaded once per process."""

    _lock = threading.Lock()
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    error: str | None = None

    @classmethod
    def load(cls) -> bool:
        with cls._lock:
            if cls.images is None and cls.error is None:
                try:
                    ds = load_bundled_mnist()
                except (OSError, ValueError) as exc:
                    cls.error = str(exc)
                else:
                    x = ds.x_test[:, 0] * np.float32(MNIST_STD) + np.float32(MNIST_MEAN)
                    cls.labels = ds.y_test.copy()  # before images: other threads test images
                    cls.images = np.clip(x, 0.0, 1.0).astype(np.float32)
            return cls.images is not None


class _Loader(QObject):
    """Loads :class:`_TestSet` in a thread; one per process, never deleted, so the thread
    never emits from a destroyed object (views connect and are disconnected when closed)."""

    done = pyqtSignal()
    _instance: "_Loader | None" = None

    @classmethod
    def instance(cls) -> "_Loader":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        super().__init__()
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True

        def target():
            _TestSet.load()
            self.done.emit()
        threading.Thread(target=target, daemon=True, name="convscope-testset").start()


# ------------------------------------------------------------------ widgets


def _group(title: str) -> QGroupBox:
    box = QGroupBox(title)
    box.setStyleSheet(_BOX_STYLE)
    return box


def _pixmap(arr: np.ndarray, size: int) -> QPixmap:
    """A gray [0, 1] array as a pixmap fitting ``size`` px (nearest for small arrays)."""
    levels = np.ascontiguousarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8))
    h, w = levels.shape
    img = QImage(levels.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    mode = Qt.TransformationMode.FastTransformation if max(h, w) <= size \
        else Qt.TransformationMode.SmoothTransformation
    return QPixmap.fromImage(img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode))


class ProbabilityChart(pg.PlotWidget):
    """Bars of the class probabilities, the most likely class highlighted."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        pi = self.getPlotItem()
        pi.setMouseEnabled(False, False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.showGrid(y=True, alpha=0.25)
        for name, text in (("bottom", "class"), ("left", "probability")):
            ax = pi.getAxis(name)
            ax.setLabel(text, color="#333333")
            ax.setTextPen("#333333")
            ax.setPen("#666666")
        pi.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]])
        pi.getAxis("left").setWidth(44)
        self.bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.72,
                                    brush=_BAR, pen=pg.mkPen(None))
        pi.addItem(self.bars)
        self._n = 0
        self._probs = np.zeros(0, np.float32)
        self.set_classes(10)

    def set_classes(self, n: int) -> None:
        self._n = int(n)
        pi = self.getPlotItem()
        pi.getAxis("bottom").setTicks([[(i, str(i)) for i in range(self._n)]])
        pi.setXRange(-0.6, self._n - 0.4, padding=0)
        pi.setYRange(-0.04, 1.08, padding=0)  # room for the "0" and "1" tick labels
        self.set_probabilities(np.zeros(self._n, np.float32))

    def set_probabilities(self, probs: np.ndarray) -> None:
        probs = np.asarray(probs, np.float32)
        self._probs = probs
        top = int(np.argmax(probs)) if probs.size and probs.max() > 0 else -1
        brushes = [pg.mkBrush(_BAR_TOP if i == top else _BAR) for i in range(len(probs))]
        self.bars.setOpts(x=np.arange(len(probs)), height=probs, brushes=brushes)

    @property
    def classes(self) -> int:
        return self._n

    def highlighted(self) -> int:
        p = self._probs
        return int(np.argmax(p)) if p.size and p.max() > 0 else -1
