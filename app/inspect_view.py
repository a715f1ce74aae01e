"""The Inspect tab: draw a digit (or pick a test image, or use the photo) and watch the CNN read it.

Left: the input (drawing canvas, a test-set picker, the loaded photo converted as MNIST
digits were prepared). Centre: every layer's feature maps in a :class:`FeatureGrid`,
with hover read-out. Right: the class probabilities and the explanation of a clicked
map pixel (:func:`core.explain.explain`).

How the maps are computed
-------------------------
``core.nn.model.to_pipeline(model)`` turns the conv part of the model into a core
pipeline whose :func:`core.pipeline.run` gives exactly the layers' maps. The view runs
that pipeline once per model, on a blank input, to get the levels' structure (stage,
labels, parents, columns, size formula). For every new input it then evaluates the
model's layers once (the same :func:`core.conv.conv2d` the pipeline calls), which
gives both the maps and the logits, and puts the maps into that structure: a
:class:`~core.pipeline.PipelineResult` that the grid and :func:`core.explain.explain`
use as if ``run`` had produced it. ``engine = "pipeline"`` calls ``run`` on every
update instead (today ~20 ms more for keras_mnist: ``run`` serialises every kernel
to JSON for its cache keys).

Updates are coalesced: a canvas stroke only records the newest image, and a 0-ms
timer runs one update for it when the event loop is free, so a slow update never
queues a backlog. ``last_update_ms`` is the time of the last update (forward pass,
maps into the grid, probability bars).

Its widgets are built in :mod:`app.inspect_layout` (a mixin); the conversion of photos,
the bundled test set and the probability chart are in :mod:`app.inspect_common`.
"""

from __future__ import annotations

# also re-exported from here (tests and app.window import them from app.inspect_view)
from .inspect_common import (ConvStage, DisplayLevel, ENGINES, INPUT_SHAPE, Kernel,
                             MNIST_MEAN, MNIST_STD, NO_MODEL_HINT, PhotoConversion,
                             PipelineResult, ProbabilityChart, QAction, QEvent, QHBoxLayout,
                             QLabel, QMenu, QStyle, QTimer, QWidget, Qt, REEXPLAIN_MS,
                             RunOutput, SIDE, Sequential, _TestSet,
                             _snapshot, explain, filter_labels, input_level,
                             layer_outputs, level_stats, normalise, np, photo_to_mnist,
                             pyqtSignal, replace, run, softmax, time, to_pipeline)
from .inspect_layout import InspectLayoutMixin

__all__ = ["InspectView", "ProbabilityChart", "PhotoConversion", "photo_to_mnist",
           "level_stats", "layer_outputs", "filter_labels", "normalise", "NO_MODEL_HINT"]


class InspectView(InspectLayoutMixin, QWidget):
    """The Inspect tab (see the module docstring).

    Public API
    ----------
    set_model(model | None), set_photo(image), set_input(arr28), probabilities(),
    result() (the :class:`PipelineResult` shown), use_photo(), show_test_image(i),
    explain_at(level, map, row, col), kernel_for_map(level, map), ``grid`` (the
    FeatureGrid), ``canvas`` (the DigitCanvas), ``explain_panel``, ``engine``,
    ``last_update_ms`` and ``last_update_parts`` (forward / stats / grid / bars, ms).

    Signals
    -------
    updated()
        After every update (new input or model) is on screen.
    sendKernel(Kernel, str)
        "Send this filter to the kernel editor" (map context menu): the filter as a
        :class:`core.pipeline.Kernel` (2-D for the first layer) and a name.
    """

    sendKernel = pyqtSignal(object, str)
    updated = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._model: Sequential | None = None
        self._pipeline = None
        self._layer_index: list[int] = []
        self._template: PipelineResult | None = None
        self._problem: str | None = NO_MODEL_HINT
        self._out: RunOutput | None = None
        self._probs = np.zeros(0, np.float32)
        self._seq = 0
        self._pending: np.ndarray | None = None
        self._selected: tuple[int, int, int, int] | None = None
        self._engine = "layers"
        self.last_update_ms: float | None = None
        self.last_update_parts: dict[str, float] = {}  # forward, stats, grid, bars (ms)
        self.update_times_ms: list[float] = []

        self._kick = QTimer(self)
        self._kick.setSingleShot(True)
        self._kick.setInterval(0)
        self._kick.timeout.connect(self._run_pending)
        self._reexplain = QTimer(self)
        self._reexplain.setSingleShot(True)
        self._reexplain.setInterval(REEXPLAIN_MS)
        self._reexplain.timeout.connect(self._explain_selected)

        root = QHBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(8)
        root.addWidget(self._build_left())
        root.addWidget(self._build_centre(), 1)
        root.addWidget(self._build_right())
        self._show_problem()

    # ------------------------------------------------------------------ public API
    @property
    def engine(self) -> str:
        """"layers" (default: the model's layers fill the pipeline's structure) or
        "pipeline" (:func:`core.pipeline.run` on every update); the maps are the same."""
        return self._engine

    @engine.setter
    def engine(self, value: str) -> None:
        if value not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {value!r}")
        self._engine = value

    def set_model(self, model: Sequential | None) -> None:
        """Show ``model`` (a copy of its weights is kept), or the hint for None.

        Raises TypeError for anything else. A model whose input is not 1x28x28 or whose
        output is not a vector of class scores shows why instead of maps.
        """
        if model is not None and not isinstance(model, Sequential):
            raise TypeError(f"set_model expects a core.nn.model.Sequential or None, "
                            f"got {type(model).__name__}")
        self._kick.stop()
        self._reexplain.stop()
        self._selected = None
        self.explain_panel.clear()
        self._out = None
        self._model = self._pipeline = self._template = None
        self._layer_index = []
        self._probs = np.zeros(0, np.float32)
        self._problem = self._check(model)
        if self._problem is None:
            self._model = _snapshot(model)
            self._pipeline, self._layer_index = to_pipeline(self._model)
            blank = np.zeros((SIDE, SIDE, 1), np.float32)
            template = run(blank, self._pipeline)
            if template.error is not None:  # to_pipeline made something run cannot do
                self._problem = f"cannot show this model's maps: {template.error}"
                self._model = None
            else:
                self._template = filter_labels(template)
                self.chart.set_classes(self._model.output_shape[0])
        self._show_problem()
        if self._model is not None:
            self._update(self.canvas.image())

    def set_photo(self, image) -> None:
        """The main view's image (H, W, C) in [0, 1], for "Use the loaded photo"
        (:class:`app.inspect_photo.PhotoPanel`); ValueError for a shape that is not an
        image."""
        self.photo_panel.set_photo(image)

    def use_photo(self) -> None:
        """Convert the photo (see :func:`photo_to_mnist`) and make it the input."""
        self.photo_panel.use_photo()

    def _use_converted(self, arr28) -> None:
        self.test_panel.forget()
        self.set_input(arr28)

    def conversion(self) -> PhotoConversion | None:
        return self.photo_panel.conversion()

    def set_input(self, arr28) -> None:
        """Make ``arr28`` (28, 28) float32 in [0, 1] the input and update at once.

        Raises ValueError (from :meth:`DigitCanvas.set_image`) for a bad shape or range.
        """
        self.canvas.blockSignals(True)
        try:
            self.canvas.set_image(arr28)
        finally:
            self.canvas.blockSignals(False)
        self._pending = None
        self._kick.stop()
        if self._model is not None:
            self._update(self.canvas.image())

    def probabilities(self) -> np.ndarray:
        """The class probabilities for the current input (empty without a model)."""
        return self._probs.copy()

    def result(self) -> PipelineResult | None:
        """The maps shown (a :class:`PipelineResult`), or None without a model."""
        return None if self._out is None else self._out.result

    def model(self) -> Sequential | None:
        """The view's copy of the model."""
        return self._model

    def problem(self) -> str | None:
        """Why no maps are shown (no model, unsuitable model), or None."""
        return self._problem

    def show_test_image(self, index: int) -> None:
        """Show test image ``index`` of the bundled subset (loads the set if needed)."""
        self.test_panel.show_image(index)

    def show_random_test_image(self) -> None:
        self.test_panel.show_random()

    def test_label_text(self) -> str:
        return self.test_label.text()

    def showEvent(self, ev):  # noqa: N802 (Qt API)
        super().showEvent(ev)
        self.test_panel.start_loading()

    # ------------------------------------------------------------------ updating
    def _on_canvas_changed(self, image: np.ndarray) -> None:
        self.test_panel.forget("drawn over")
        if self._model is None:
            return
        self._pending = image
        if not self._kick.isActive():
            self._kick.start()

    def _run_pending(self) -> None:
        image, self._pending = self._pending, None
        if image is not None and self._model is not None:
            self._update(image)

    def _update(self, x01: np.ndarray) -> None:
        """Forward pass, maps into the grid, bars; records ``last_update_ms``."""
        t0 = time.perf_counter()
        model = self._model
        xn = normalise(x01)
        if self._engine == "pipeline":
            res = filter_labels(run(xn[:, :, None], self._pipeline))
            logits = model.forward(xn[None, None])
        else:
            outs, secs = layer_outputs(model, xn[None, None])
            stages = [replace(tmpl, maps=outs[li][0], seconds=secs[li], key="")
                      for tmpl, li in zip(self._template.stages, self._layer_index)]
            res = PipelineResult(input_level(xn[:, :, None]), stages, None, xn)
            logits = outs[-1]
        self._probs = softmax(np.asarray(logits, np.float64))[0].astype(np.float32)
        t1 = time.perf_counter()
        # the input is shown as drawn (0..1); the grid's hover reads the normalised values
        levels = [DisplayLevel([x01], 1, level_stats(x01[None]))]
        levels += [DisplayLevel(list(s.maps), 1, level_stats(s.maps)) for s in res.stages]
        self._seq += 1
        self._out = RunOutput(self._seq, res, levels, time.perf_counter() - t0)
        t2 = time.perf_counter()
        self.grid.set_output(self._out)
        t3 = time.perf_counter()
        self.chart.set_probabilities(self._probs)
        top = int(np.argmax(self._probs))
        self.prediction_label.setText(str(top))
        self.confidence_label.setText(f"{100 * self._probs[top]:.1f} %  "
                                      f"<span style='color:#777'>probability</span>")
        t4 = time.perf_counter()
        self.last_update_ms = (t4 - t0) * 1e3
        self.last_update_parts = {"forward": (t1 - t0) * 1e3, "stats": (t2 - t1) * 1e3,
                                  "grid": (t3 - t2) * 1e3, "bars": (t4 - t3) * 1e3}
        self.update_times_ms.append(self.last_update_ms)
        del self.update_times_ms[:-200]
        self._wire_views()
        if self._selected is not None:
            self._reexplain.start()
        self.updated.emit()

    # ------------------------------------------------------------------ problems
    @staticmethod
    def _check(model) -> str | None:
        if model is None:
            return NO_MODEL_HINT
        if tuple(model.input_shape) != INPUT_SHAPE:
            c, h, w = model.input_shape
            return (f"This model reads {c}x{h}x{w} inputs; the Inspect tab needs 1x28x28 "
                    f"(MNIST-like) digits. {NO_MODEL_HINT}.")
        if len(model.output_shape) != 1:
            return (f"This model's output has shape {tuple(model.output_shape)}, not one "
                    f"score per class. {NO_MODEL_HINT}.")
        return None

    def _show_problem(self) -> None:
        ok = self._problem is None
        self.hint_label.setText(self._problem or "")
        self._stack.setCurrentWidget(self.grid if ok else self.hint_label)
        for w in (self.chart, self.hover_label):
            w.setEnabled(ok)
        if not ok:
            self.chart.set_probabilities(np.zeros(self.chart.classes, np.float32))
            self.prediction_label.setText("–")
            self.confidence_label.setText("no model" if self._model is None else "")

    # ------------------------------------------------------------------ hover / click
    def _level_title(self, level: int) -> str:
        if level < 0:
            return "input"
        li = self._layer_index[level]
        return f"layer {li + 1} ({self._model.layers[li].kind})"

    def _on_hover(self, level: int, m: int, row: int, col: int, value: float) -> None:
        res = self.result()
        if res is None:
            return
        label = res.level(level).labels[m]
        text = f"{self._level_title(level)} · {label} · row {row}, col {col} · value {value:.4g}"
        if level < 0:
            drawn = float(self.canvas.image()[row, col])
            text += f"  (drawn {drawn:.3g}, normalised (x − {MNIST_MEAN}) / {MNIST_STD})"
        self.hover_label.setText(text)

    def _on_click(self, level: int, m: int, row: int, col: int) -> None:
        self._selected = (level, m, row, col)
        self._explain_selected()

    def _explain_selected(self) -> None:
        res = self.result()
        if res is None or self._selected is None:
            return
        level, m, row, col = self._selected
        try:
            ex = explain(res, level, m, row, col)
        except IndexError:
            self._selected = None
            self.explain_panel.clear()
            return
        labels = res.level(level - 1).labels if level >= 0 else None
        self.explain_panel.show_explanation(ex, labels)

    def explain_at(self, level: int, m: int, row: int, col: int) -> None:
        """Explain the value at (map ``m``, ``row``, ``col``) of ``level`` (-1: the input)."""
        self._on_click(level, m, row, col)

    # ------------------------------------------------------------------ send a filter
    def kernel_for_map(self, level: int, m: int):
        """(Kernel, name) of the conv filter behind map ``m`` of ``level``, or None.

        Maps after a conv layer (its ReLU, its pooling) descend from the same filter.
        """
        res = self.result()
        if res is None or level < 0:
            return None
        for lv in range(level, -1, -1):
            st = res.stages[lv].stage
            if isinstance(st, ConvStage):
                f = res.level(level).columns[m]
                ker = st.kernels[f]
                w = ker.weights[0] if ker.weights.shape[0] == 1 else ker.weights
                name = f"layer {self._layer_index[lv] + 1} filter {f + 1}"
                return Kernel(np.array(w), ker.bias, name=name), name
        return None

    def _wire_views(self) -> None:
        """Connect right-clicks of new map views to the "send this filter" menu."""
        self._hide_column_labels()
        for view in self.grid.views().values():
            if getattr(view, "_inspect_wired", False):
                continue
            view._inspect_wired = True
            view.stats.hide()  # maps are small here; the hover line gives the numbers
            view.view.scene().sigMouseClicked.connect(
                lambda ev, v=view: self._on_view_click(v, ev))

    def _hide_column_labels(self) -> None:
        # The grid titles its columns by input channel ("gray", "column 2", ...). For a
        # CNN whose levels wrap every 8 maps they name nothing (column 2 holds filters
        # 2, 10, 18, 26) and, wider than a small map, they force a horizontal scroll.
        # They are the grid layout's first row; each map carries its own title.
        lay = self.grid.widget().layout()
        for c in range(lay.columnCount()):
            item = lay.itemAtPosition(0, c)
            if item is not None and isinstance(item.widget(), QLabel):
                item.widget().hide()

    def _on_view_click(self, view, ev) -> None:
        if ev.button() != Qt.MouseButton.RightButton:
            return
        found = self.kernel_for_map(view.level, view.map_index)
        if found is None:
            return
        kernel, name = found
        menu = QMenu(self)
        act = QAction(f"Send {name} to the kernel editor", menu)
        act.triggered.connect(lambda: self.sendKernel.emit(kernel, name))
        menu.addAction(act)
        menu.popup(ev.screenPos().toPoint())
        ev.accept()

    # ------------------------------------------------------------------ map sizes
    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        if obj is self.grid and ev.type() == QEvent.Type.Resize:
            self._fit_maps()
        return super().eventFilter(obj, ev)

    def _fit_maps(self) -> None:
        """Map width that fits 8 columns plus the colour bar into the grid's width.

        (Runs from an event filter, before the grid has resized its viewport, so the
        width is taken from the grid itself.)
        """
        g = self.grid
        lay = g.widget().layout()
        m = lay.contentsMargins()
        bar = g.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        avail = g.width() - 2 * g.frameWidth() - bar - m.left() - m.right()
        spacing = max(lay.horizontalSpacing(), 0)
        # 8 columns of (map + 4 px frame) and the colour bar (64 px), 8 gaps between them
        width = (avail - 64 - 8 * spacing) // 8 - 4
        self.grid.set_map_width(int(np.clip(width, 44, 160)))
