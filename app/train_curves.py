"""The Train tab's curves: the training loss per batch (raw and smoothed) and the
train/test accuracy per epoch, side by side on a shared epoch axis.

:class:`TrainingCurves` keeps the history it draws (it is what a saved model stores
beside its weights, :meth:`~TrainingCurves.history`) and redraws only what changed
(:meth:`~TrainingCurves.redraw`, called by the view's throttled refresh). While a run
trains, the axes are fixed (the epoch axis at the run's length, the loss axis grows
only upwards): a changed axis is re-rendered, text and all, which cost more than the
curves.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtWidgets import QHBoxLayout, QWidget

from .train_common import HISTORY_EPOCHS, HISTORY_LOSS, SMOOTHING, _style_plot

__all__ = ["TrainingCurves"]


class TrainingCurves(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.loss_plot = pg.PlotWidget(background="w")
        _style_plot(self.loss_plot, "Training loss", "loss", "epoch")
        lpi = self.loss_plot.getPlotItem()
        lpi.addLegend(offset=(-8, 8), labelTextColor="#222", brush=(255, 255, 255, 200))
        self.loss_raw = lpi.plot(pen=pg.mkPen((70, 130, 200, 120), width=1), name="per batch")
        self.loss_smooth = lpi.plot(pen=pg.mkPen("#1f4e9c", width=2), name="smoothed")
        self.acc_plot = pg.PlotWidget(background="w")
        _style_plot(self.acc_plot, "Accuracy per epoch", "accuracy (%)", "epoch")
        api = self.acc_plot.getPlotItem()
        api.addLegend(offset=(-8, -8), labelTextColor="#222", brush=(255, 255, 255, 200))
        self.acc_train = api.plot(pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=6,
                                  symbolBrush="#1f77b4", symbolPen=None, name="train",
                                  connect="finite")
        self.acc_test = api.plot(pen=pg.mkPen("#e6730f", width=2), symbol="s", symbolSize=6,
                                 symbolBrush="#e6730f", symbolPen=None, name="test",
                                 connect="finite")
        self.loss_hint = pg.TextItem("Start training to see the loss", color="#888",
                                     anchor=(0.5, 0.5))
        self.loss_hint.setPos(0.5, 0.5)
        lpi.addItem(self.loss_hint, ignoreBounds=True)
        self.acc_hint = pg.TextItem("Accuracy appears after each epoch", color="#888",
                                    anchor=(0.5, 0.5))
        self.acc_hint.setPos(0.5, 0.5)
        api.addItem(self.acc_hint, ignoreBounds=True)
        lay.addWidget(self.loss_plot, 1)
        lay.addWidget(self.acc_plot, 1)
        self._epoch_axis: dict = {}
        self.training = False
        self.reset()

    # ------------------------------------------------------------------ history
    def reset(self) -> None:
        """Forget the history (the plots are redrawn empty at the next redraw)."""
        had = bool(getattr(self, "_loss_x", True)), bool(getattr(self, "_acc", True))
        self._loss_x: list[float] = []
        self._loss_y: list[float] = []
        self._loss_s: list[float] = []
        self._ema = 0.0
        self._acc: list[tuple[float, float, float]] = []   # epoch, train %, test %
        self._loss_dirty, self._acc_dirty = had  # (re)draw only plots that showed something
        self._loss_top = 0.0

    def add_loss(self, x: float, loss: float) -> None:
        """One batch's loss at epoch position ``x`` (the smoothed curve is a bias-corrected
        exponential average, as TensorBoard's)."""
        self._loss_x.append(float(x))
        self._loss_y.append(float(loss))
        self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * float(loss)
        self._loss_s.append(self._ema / (1 - SMOOTHING ** len(self._loss_y)))
        self._loss_dirty = True

    def add_accuracy(self, x: float, train_percent: float, test_percent: float) -> None:
        self._acc.append((float(x), float(train_percent), float(test_percent)))
        self._acc_dirty = True

    def history(self) -> dict[str, np.ndarray]:
        """The arrays a saved model keeps (empty when nothing was trained)."""
        if not self._loss_x:
            return {}
        return {HISTORY_LOSS: np.array([self._loss_x, self._loss_y], np.float64),
                HISTORY_EPOCHS: np.array(self._acc, np.float64).reshape(-1, 3)}

    def restore(self, extra: dict) -> None:
        """Show the history saved with a model (arrays of the wrong shape are ignored)."""
        self.reset()
        loss = extra.get(HISTORY_LOSS)
        if loss is not None and loss.ndim == 2 and loss.shape[0] == 2:
            for x, y in loss.T:
                self.add_loss(x, y)
        acc = extra.get(HISTORY_EPOCHS)
        if acc is not None and acc.ndim == 2 and acc.shape[1] == 3:
            self._acc = [tuple(map(float, r)) for r in acc]
        self._loss_dirty = self._acc_dirty = True
        xs = self._loss_x + [a[0] for a in self._acc]
        self.set_epoch_axis(math.ceil(max(xs)) if xs else 1)
        self.redraw()

    # ------------------------------------------------------------------ a run
    def start(self, epochs: int) -> None:
        """A run of ``epochs`` starts: empty curves on fixed axes."""
        self.reset()
        self.training = True
        self.set_epoch_axis(epochs)
        self.loss_plot.getPlotItem().getViewBox().disableAutoRange(axis=pg.ViewBox.YAxis)
        self.redraw()

    def end(self) -> None:
        """The run ended: the loss axis fits the curve again."""
        self.training = False
        self._loss_dirty = True
        self.redraw()
        self.loss_plot.getPlotItem().getViewBox().enableAutoRange(axis=pg.ViewBox.YAxis)

    def set_epoch_axis(self, epochs: float) -> None:
        """Both plots show epochs 0..``epochs`` (aligned, and fixed while training)."""
        epochs = max(epochs, 1)
        for pw, hint in ((self.loss_plot, self.loss_hint), (self.acc_plot, self.acc_hint)):
            vb = pw.getPlotItem().getViewBox()
            vb.disableAutoRange(axis=pg.ViewBox.XAxis)
            if self._epoch_axis.get(pw) != epochs:  # an unchanged axis is not re-rendered
                self._epoch_axis[pw] = epochs
                vb.setXRange(0, epochs, padding=0.05)
            hint.setPos(epochs / 2, 0.5)

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Redraw the plots whose data changed since the last redraw."""
        if self._loss_dirty:
            self._redraw_loss()
        if self._acc_dirty:
            self._redraw_acc()

    def _redraw_loss(self):
        self._loss_dirty = False
        if not self._loss_x:
            self.loss_raw.setData([], [])
            self.loss_smooth.setData([], [])
            self.loss_hint.show()
            return
        x = np.asarray(self._loss_x)
        y = np.asarray(self._loss_y)
        if self.training:
            # fixed ranges while training: the axes are not redrawn on every refresh
            top = float(y.max())
            if top > self._loss_top:
                self._loss_top = top * 1.1
                self.loss_plot.getPlotItem().getViewBox().setYRange(0, self._loss_top,
                                                                   padding=0)
        self.loss_raw.setData(x, y)
        self.loss_smooth.setData(x, np.asarray(self._loss_s))
        self.loss_hint.hide()

    def _redraw_acc(self):
        self._acc_dirty = False
        if self._acc:
            a = np.asarray(self._acc)
            self.acc_train.setData(a[:, 0], a[:, 1])
            self.acc_test.setData(a[:, 0], a[:, 2])
            self.acc_hint.hide()
        else:
            self.acc_train.setData([], [])
            self.acc_test.setData([], [])
            self.acc_hint.show()
