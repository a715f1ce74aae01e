"""Shared by the Train tab's modules (app.train_view and its panels): imports,
constants and small helpers."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QCoreApplication, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QAbstractItemView, QAbstractScrollArea, QApplication, QComboBox,
                             QDialog, QDoubleSpinBox, QFileDialog, QFrame, QGraphicsItem,
                             QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                             QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
                             QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.nn.data import (Dataset, DatasetError, load_bundled_mnist, load_dataset,
                          load_idx_folder, load_image_folder)
from ..core.nn.model import (ARCHITECTURES, ModelFileError, Sequential, build, layer_from_config,
                           load_model, save_model)
from ..core.nn.train import CHECKPOINT, FINAL, TrainConfig

from .form_widgets import signals_blocked
from .message_bar import MessageBar
from .train_widgets import (ERROR_RED, ArchitectureDialog, ConfusionTable, KernelGrid,
                            MisclassifiedGallery, digit_image, kernel_images)  # noqa: F401
from .train_worker import (GALLERY, DatasetLoader, Evaluation, TrainRun, evaluate_model,
                           first_conv)


BUNDLED_LABEL = "Bundled MNIST subset (10,000 / 2,000)"
IDX_LABEL = "IDX folder…"
IMAGES_LABEL = "Image folder…"
FROM_JSON = "From JSON file…"
REFRESH_MS = 200            # plots, progress and kernels redraw at most 5 times a second
GALLERY_SIZE = GALLERY     # misclassified digits shown
SMOOTHING = 0.9             # exponential smoothing of the loss curve (TensorBoard-style)
LEFT_WIDTH = 340
HISTORY_LOSS = "__history_loss__"      # extra arrays a model saved from this view carries
HISTORY_EPOCHS = "__history_epochs__"  # (E, 3): epoch, train accuracy, test accuracy


# ---------------------------------------------------------------------------- helpers

def layer_label(cfg: dict) -> str:
    """A short description of a layer config for the architecture table."""
    kind = cfg.get("type", "?")

    def pair(v):
        if isinstance(v, (list, tuple)):
            return "×".join(str(x) for x in v)
        return f"{v}×{v}"

    if kind == "conv2d":
        text = f"Conv2D {cfg['filters']}, {pair(cfg.get('kernel_size', 3))}"
        for key, short, default in (("stride", "stride", 1), ("padding", "pad", 0),
                                    ("dilation", "dil", 1)):
            v = cfg.get(key, default)
            if v not in (default, [default] * 2, (default,) * 2):
                text += f", {short} {v}"
        return text
    if kind in ("maxpool2d", "avgpool2d"):
        text = f"{'Max' if kind == 'maxpool2d' else 'Avg'}Pool {pair(cfg.get('kernel_size', 2))}"
        stride = cfg.get("stride")
        if stride is not None and stride != cfg.get("kernel_size"):
            text += f", stride {stride}"
        return text
    if kind == "activation":
        return {"relu": "ReLU", "leaky_relu": "LeakyReLU", "sigmoid": "Sigmoid",
                "tanh": "Tanh"}.get(cfg.get("function"), str(cfg.get("function")))
    if kind == "dense":
        return f"Dense {cfg['units']}"
    if kind == "dropout":
        return f"Dropout {cfg.get('p', 0.5):g}"
    if kind == "flatten":
        return "Flatten"
    if kind == "batchnorm2d":
        return "BatchNorm2D"
    return kind


def _canonical(spec: dict) -> list | None:
    """The layers of an architecture with every default spelled out (for comparisons)."""
    try:
        return [layer_from_config(c).config() for c in spec.get("layers", [])]
    except (ValueError, TypeError):
        return None


def _style_plot(pw: pg.PlotWidget, title: str, left: str, bottom: str):
    pi = pw.getPlotItem()
    pi.setTitle(title, color="#222", size="10pt")
    for name, text in (("left", left), ("bottom", bottom)):
        ax = pi.getAxis(name)
        ax.setPen(pg.mkPen("#666"))
        ax.setTextPen(pg.mkPen("#222"))
        pi.setLabel(name, text, color="#222")
    pi.showGrid(x=True, y=True, alpha=0.15)
    for name in ("left", "bottom"):
        # an axis whose range did not change is blitted, not re-rendered (text is slow)
        pi.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    pi.setMenuEnabled(False)
    pw.setMinimumHeight(180)


def _group(title: str) -> QGroupBox:
    box = QGroupBox(title)
    box.setStyleSheet("QGroupBox { font-weight: bold; } "
                      "QGroupBox > QWidget, QGroupBox QLabel { font-weight: normal; }")
    return box


# ---------------------------------------------------------------------------- widgets

class _RootLayout(QVBoxLayout):
    """A box layout that never reports height-for-width.

    Word-wrapped labels make a layout height-for-width, and a QScrollArea holding the
    view would then size it to its *preferred* height for the width (and scroll)
    instead of fitting it to the window down to its minimum size.
    """

    def hasHeightForWidth(self):  # noqa: N802 (Qt API)
        return False
