"""The feature-map grid: one column per channel, one row per stage (and per kernel).

Every map is drawn in the input image's coordinates (its ImageItem's rect is the input
extent), so a pooled map lies exactly over the region it summarises, and the hover
crosshair can be drawn on every map at once: the hovered position is projected to
every level by :func:`core.explain.project` (receptive field backwards, covering
outputs forwards).

Zoom and pan are shared through one :class:`ViewRange`: a rectangle in those input
coordinates (or "fit"), which every map's view box follows. pyqtgraph's own
``setXLink``/``setYLink`` link views through their on-screen geometry: while a relayout
gave views of one data shape different widget sizes, their ranges drifted apart and
stayed so (maps showing a zoomed-in corner after "Add pool", a narrow G column after
maximising). A range kept in data coordinates cannot drift: each view fits the same
rectangle into whatever size it has.

Mouse: a plain wheel scrolls the grid; Ctrl+wheel (or a pinch) zooms about the pointer,
from "the whole map fits" to :data:`MAX_CELL_PX` screen pixels per input cell; a left
drag pans; a double-click fits. At :data:`VALUES_FROM_PX` pixels per cell and more,
every visible cell shows its value.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PyQt6.QtWidgets import (QApplication, QGraphicsItem, QGraphicsRectItem, QGridLayout,
                             QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from ..core.display import (PREVIEW_MAX_SIDE, RGB_MAPPING, cell_label, compose_rgb,
                            range_labels, value_ranges)
from ..core.explain import project

COLORMAPS = {
    "auto": None,  # gray for images and non-negative maps, diverging for signed maps
    "gray": "gray",
    "diverging": "CET-D1A",
    "viridis": "viridis",
    "magma": "magma",
    "inferno": "inferno",
    "cividis": "cividis",
}

#: most screen pixels one input cell may take (the zoom limit)
MAX_CELL_PX = 64.0
#: cells drawn at least this large show their values
VALUES_FROM_PX = 24.0
#: one wheel notch (120 eighths of a degree) zooms by this factor
WHEEL_ZOOM = 1.4
#: maps up to this side are never reduced for display
MIN_PREVIEW_SIDE = 512
#: how long a recompute may run before the maps are marked stale
STALE_AFTER_MS = 150

HOVER_COLOUR = QColor(255, 214, 0)      # bright yellow on a dark outline
SELECT_COLOUR = QColor(255, 40, 220)    # magenta on a dark outline
OUTLINE_DARK = QColor(0, 0, 0, 220)

_cmap_cache: dict[str, pg.ColorMap] = {}
_lut_cache: dict[int, np.ndarray] = {}


def lookup_table(cmap: pg.ColorMap) -> np.ndarray:
    """The 256-entry LUT of a colour map, computed once per map."""
    lut = _lut_cache.get(id(cmap))
    if lut is None:
        lut = _lut_cache[id(cmap)] = cmap.getLookupTable(nPts=256)
    return lut


def colormap(name: str) -> pg.ColorMap:
    if name not in _cmap_cache:
        if name == "gray":
            _cmap_cache[name] = pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])
        else:
            _cmap_cache[name] = pg.colormap.get(name)
    return _cmap_cache[name]


def resolve_cmap(choice: str, signed: bool) -> str:
    if choice == "auto":
        return "CET-D1A" if signed else "gray"
    return COLORMAPS.get(choice, "gray")


# ---------------------------------------------------------------------- shared zoom


class ViewRange(QObject):
    """The maps' shared zoom and pan: a rectangle in input-image coordinates.

    ``rect is None`` means "fit": every map shows its whole extent. Zooming is
    limited between fit and :data:`MAX_CELL_PX` screen pixels per input cell; panning
    keeps the rectangle inside the image.
    """

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.extent = (1, 1)   # input (H, W)
        self.rect: QRectF | None = None

    def effective(self) -> QRectF:
        h, w = self.extent
        return QRectF(self.rect) if self.rect is not None else QRectF(0, 0, w, h)

    def set_extent(self, h: int, w: int) -> None:
        """A new image size: back to fit (a zoom into another image means nothing)."""
        if (h, w) != self.extent:
            self.extent = (h, w)
            self.rect = None
            self.changed.emit()

    def fit(self) -> None:
        self.rect = None
        self.changed.emit()

    @property
    def is_fit(self) -> bool:
        return self.rect is None

    def min_scale(self, view_px: tuple[float, float]) -> float:
        """Smallest rect size / extent allowed in a view of ``view_px`` (w, h) pixels."""
        h, w = self.extent
        fit_px = min(view_px[0] / w, view_px[1] / h)  # pixels per cell at fit
        return min(1.0, fit_px / MAX_CELL_PX)

    def zoom(self, factor: float, anchor: QPointF, view_px: tuple[float, float]) -> None:
        """Zoom in by ``factor`` (> 1 in, < 1 out), keeping ``anchor`` (input
        coordinates) where it is on screen."""
        h, w = self.extent
        cur = self.effective()
        scale = cur.width() / w
        new = float(np.clip(scale / factor, self.min_scale(view_px), 1.0))
        if new >= 1.0:
            if self.rect is not None:
                self.fit()
            return
        nw, nh = w * new, h * new
        fx = (anchor.x() - cur.left()) / cur.width() if cur.width() else 0.5
        fy = (anchor.y() - cur.top()) / cur.height() if cur.height() else 0.5
        self._set(QRectF(anchor.x() - fx * nw, anchor.y() - fy * nh, nw, nh))

    def pan(self, dx: float, dy: float) -> None:
        """Move the zoomed rectangle by (dx, dy) input cells (no-op at fit)."""
        if self.rect is None:
            return
        self._set(self.rect.translated(dx, dy))

    def _set(self, r: QRectF) -> None:
        h, w = self.extent
        x = float(np.clip(r.left(), 0.0, max(0.0, w - r.width())))
        y = float(np.clip(r.top(), 0.0, max(0.0, h - r.height())))
        r = QRectF(x, y, min(r.width(), w), min(r.height(), h))
        if self.rect is None or r != self.rect:
            self.rect = r
            self.changed.emit()


class _MapViewBox(pg.ViewBox):
    """A view box that follows a :class:`ViewRange` and turns drags into its pans;
    wheel events are left to the grid (see :meth:`FeatureGrid.eventFilter`)."""

    def __init__(self, owner: "MapView"):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner
        self.setMouseEnabled(False, False)
        self.setDefaultPadding(0.0)
        self.disableAutoRange()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph API)
        if ev.button() != Qt.MouseButton.LeftButton or self._owner.range is None:
            ev.ignore()
            return
        ev.accept()
        a = self.mapToView(ev.lastPos())
        b = self.mapToView(ev.pos())
        self._owner.range.pan(a.x() - b.x(), a.y() - b.y())

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (pyqtgraph API)
        ev.ignore()


# ---------------------------------------------------------------------- overlays


class _Outline(QGraphicsRectItem):
    """A two-tone cell outline (a dark line under a bright one, both cosmetic), visible
    on any colormap and at any zoom."""

    def __init__(self, colour: QColor, width: float = 2.0, z: float = 10):
        super().__init__()
        self._dark = QPen(OUTLINE_DARK)
        self._dark.setCosmetic(True)
        self._dark.setWidthF(width + 2.0)
        self._light = QPen(colour)
        self._light.setCosmetic(True)
        self._light.setWidthF(width)
        self.setPen(self._dark)
        self.setZValue(z)
        self.hide()

    def paint(self, painter, option, widget=None):
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(self._dark)
        painter.drawRect(self.rect())
        painter.setPen(self._light)
        painter.drawRect(self.rect())


class _Crosshair(QGraphicsItem):
    """Two lines through a point across the whole map (two-tone, cosmetic)."""

    def __init__(self):
        super().__init__()
        self._extent = QRectF(0, 0, 1, 1)
        self._point = QPointF()
        self.setZValue(9)
        self.hide()

    def set(self, extent: QRectF, point: QPointF):
        self.prepareGeometryChange()
        self._extent = QRectF(extent)
        self._point = QPointF(point)
        self.update()

    def boundingRect(self):
        return QRectF(self._extent)

    def paint(self, painter, option, widget=None):
        e, p = self._extent, self._point
        for colour, width in ((QColor(0, 0, 0, 150), 3.0), (QColor(255, 255, 255, 200), 1.0)):
            pen = QPen(colour)
            pen.setCosmetic(True)
            pen.setWidthF(width)
            painter.setPen(pen)
            painter.drawLine(QPointF(e.left(), p.y()), QPointF(e.right(), p.y()))
            painter.drawLine(QPointF(p.x(), e.top()), QPointF(p.x(), e.bottom()))


class _CellValues(QGraphicsItem):
    """Writes each visible cell's value into it once cells are drawn at
    :data:`VALUES_FROM_PX` screen pixels or more, in black or white by the cell's
    colour (its luminance), as teaching slides and CNN Explainer do."""

    MAX_CELLS = 3000  # per paint; more cannot be at VALUES_FROM_PX on any screen

    def __init__(self, owner: "MapView"):
        super().__init__()
        self._owner = owner
        self.setZValue(5)
        self.shown_count = 0  # cells written in the last paint (for tests)

    def boundingRect(self):
        h, w = self._owner.extent
        return QRectF(0, 0, w, h)

    def cell_px(self) -> float:
        """Screen pixels per cell of this map at the current zoom."""
        o = self._owner
        px = o.vb.viewPixelSize()[0]  # input units per screen pixel
        if not px or not math.isfinite(px):
            return 0.0
        return (o.extent[1] / o.map_shape[1]) / px

    def paint(self, painter, option, widget=None):
        self.shown_count = 0
        o = self._owner
        data = o.full
        if data is None or data.ndim != 2:
            return
        tf = painter.worldTransform()
        sx = o.extent[1] / o.map_shape[1]
        sy = o.extent[0] / o.map_shape[0]
        cell_w, cell_h = abs(tf.m11()) * sx, abs(tf.m22()) * sy
        if min(cell_w, cell_h) < VALUES_FROM_PX:
            return
        vr = o.vb.viewRect()
        h, w = o.map_shape
        r0, r1 = max(0, int(vr.top() / sy)), min(h, int(math.ceil(vr.bottom() / sy)) + 1)
        c0, c1 = max(0, int(vr.left() / sx)), min(w, int(math.ceil(vr.right() / sx)) + 1)
        if r1 <= r0 or c1 <= c0 or (r1 - r0) * (c1 - c0) > self.MAX_CELLS:
            return
        block = np.asarray(data[r0:r1, c0:c1], dtype=np.float64)
        lo, hi = o.levels
        lut = o.lut
        if lut is not None and hi > lo:
            idx = np.clip((block - lo) / (hi - lo) * (len(lut) - 1), 0, len(lut) - 1)
            rgb = lut[np.nan_to_num(idx).astype(int)][..., :3].astype(np.float64)
            lum = (0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]) / 255
        else:
            lum = np.full(block.shape, 1.0)
        painter.save()
        painter.resetTransform()
        font = QFont(painter.font())
        font.setPixelSize(int(np.clip(min(cell_w / 3.4, cell_h / 2.2), 8, 16)))
        painter.setFont(font)
        dark, light = QColor(0, 0, 0), QColor(255, 255, 255)
        flags = Qt.AlignmentFlag.AlignCenter
        for i in range(r1 - r0):
            for j in range(c1 - c0):
                rect = tf.mapRect(QRectF((c0 + j) * sx, (r0 + i) * sy, sx, sy))
                painter.setPen(dark if lum[i, j] > 0.5 else light)
                painter.drawText(rect, flags, cell_label(block[i, j]))
        painter.restore()
        self.shown_count = block.size


# ---------------------------------------------------------------------- one map


class MapView(QWidget):
    """One feature map: title, image, statistics line (each one line high, so that
    every map of a row has its image at the same height)."""

    hovered = pyqtSignal(object, int, int)   # self, row, col (-1, -1 when leaving)
    clicked = pyqtSignal(object, int, int)

    def __init__(self, level: int, map_index: int, parent=None, *, rgb_group=None):
        super().__init__(parent)
        self.level = level
        self.map_index = map_index
        self.rgb_group = rgb_group   # (r, g, b) map indices for the recombined colour view
        self.map_shape = (1, 1)
        self.extent = (1, 1)  # input (H, W)
        self.full: np.ndarray | None = None   # the full-resolution map (values in cells)
        self.levels = (0.0, 1.0)
        self.lut = None
        self.range: ViewRange | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet("font-size: 11px; color: #333;")
        self.view = pg.GraphicsView()
        self.view.setBackground("w")
        self.vb = _MapViewBox(self)
        self.view.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.values = _CellValues(self)
        self.vb.addItem(self.values, ignoreBounds=True)
        self.crosshair = _Crosshair()
        self.vb.addItem(self.crosshair, ignoreBounds=True)
        self.box = _Outline(HOVER_COLOUR, 2.0, z=10)       # hover, projected to this map
        self.marker = _Outline(HOVER_COLOUR, 2.5, z=11)    # hover, on the hovered map
        self.sel_box = _Outline(SELECT_COLOUR, 2.0, z=12)  # the clicked cell's window
        self.sel_marker = _Outline(SELECT_COLOUR, 2.5, z=13)  # the clicked cell
        for item in (self.box, self.marker, self.sel_box, self.sel_marker):
            self.vb.addItem(item, ignoreBounds=True)
        self.stale = QGraphicsRectItem()
        self.stale.setBrush(QBrush(QColor(255, 255, 255, 150)))
        self.stale.setPen(QPen(Qt.PenStyle.NoPen))
        self.stale.setZValue(30)
        self.stale.hide()
        self.vb.addItem(self.stale, ignoreBounds=True)
        self._title = ""
        self._stats = ""
        self._short_stats = ""
        self.short = False   # "min … max" instead of the whole line (set per row)
        self.detail = None  # (r0, r1, c0, c1) when showing a full-resolution crop
        self.stats = QLabel()
        self.stats.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stats.setStyleSheet("font-size: 10px; color: #555;")
        for lab in (self.title, self.stats):
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            lab.setFixedHeight(lab.fontMetrics().height() + 2)
        lay.addWidget(self.title)
        lay.addWidget(self.view)
        lay.addWidget(self.stats)
        self.view.scene().sigMouseMoved.connect(self._moved)
        self.view.scene().sigMouseClicked.connect(self._clicked)
        self.setMouseTracking(True)

    # ------------------------------------------------------------------ content
    def follow(self, rng: ViewRange) -> None:
        self.range = rng
        self.apply_range()

    def apply_range(self) -> None:
        if self.range is not None:
            self.vb.setRange(self.range.effective(), padding=0.0, disableAutoRange=True)

    def set_map(self, data: np.ndarray, map_shape, extent, levels, cmap, title: str,
                stats_text: str, full: np.ndarray | None = None, short_stats: str = ""):
        """Show ``data`` (a preview of the map, or (h, w, 3) colours for the recombined
        view with ``cmap`` None) over the input extent."""
        self.map_shape = tuple(map_shape)
        self.extent = tuple(extent)
        self.levels = tuple(levels)
        self.lut = None if cmap is None else lookup_table(cmap)
        self.full = full
        self.detail = None
        self.image.setImage(data, levels=self.levels, lut=self.lut, autoLevels=False)
        self.image.setRect(QRectF(0, 0, extent[1], extent[0]))
        self.stale.setRect(QRectF(0, 0, extent[1], extent[0]))
        self.values.prepareGeometryChange()
        self.values.update()
        if title != self._title:
            self._title = title
            self.title.setToolTip(title)
            self._elide()
        if stats_text != self._stats:
            self._stats = stats_text
            self._short_stats = short_stats
            self.stats.setToolTip(stats_text)
            self._elide()

    def set_detail(self, data: np.ndarray, crop, preview: np.ndarray):
        """Show ``data``, map rows/cols ``crop`` = (r0, r1, c0, c1, step) sampled every
        ``step`` cells, or the whole-map ``preview`` again when ``crop`` is None."""
        if crop == self.detail:
            return
        self.detail = crop
        h, w = self.map_shape
        sy, sx = self.extent[0] / h, self.extent[1] / w
        if crop is None:
            self.image.setImage(preview, levels=self.levels, lut=self.lut, autoLevels=False)
            self.image.setRect(QRectF(0, 0, self.extent[1], self.extent[0]))
            return
        r0, r1, c0, c1, step = crop
        self.image.setImage(data, levels=self.levels, lut=self.lut, autoLevels=False)
        # a sampled crop: each sample stands for step x step cells (the last ones may
        # reach past the crop's end, which they then cover)
        rows, cols = data.shape[:2]
        self.image.setRect(QRectF(c0 * sx, r0 * sy, cols * step * sx, rows * step * sy))

    def _elide(self):
        width = max(40, self.view.width())
        stats = self._short_stats if self.short else self._stats
        for lab, text in ((self.title, self._title), (self.stats, stats)):
            lab.setText(lab.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, width))

    def set_width(self, w: int, h: int):
        self.view.setFixedSize(w, h)
        self.setFixedWidth(w + 4)
        self._elide()

    def stats_fit(self) -> bool:
        """Whether the whole statistics line fits the map's width."""
        return self.stats.fontMetrics().horizontalAdvance(self._stats) <= max(40, self.view.width())

    def set_short(self, short: bool) -> None:
        if short != self.short:
            self.short = short
            self._elide()

    def set_stale(self, stale: bool) -> None:
        self.stale.setVisible(stale)

    # ------------------------------------------------------------------ mouse
    def pixel_at(self, scene_pos):
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.vb.mapSceneToView(scene_pos)
        h, w = self.map_shape
        row = math.floor(p.y() * h / self.extent[0])
        col = math.floor(p.x() * w / self.extent[1])
        if 0 <= row < h and 0 <= col < w:
            return row, col
        return None

    def _moved(self, pos):
        hit = self.pixel_at(pos)
        if hit is None:
            self.hovered.emit(self, -1, -1)
        else:
            self.hovered.emit(self, *hit)

    def _clicked(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        if ev.double():  # the grid fits on a double-click (its event filter)
            return
        hit = self.pixel_at(ev.scenePos())
        if hit is not None:
            self.clicked.emit(self, *hit)

    # ------------------------------------------------------------------ marks
    def _rect(self, box):
        top, bottom, left, right = box
        h, w = self.map_shape
        sy, sx = self.extent[0] / h, self.extent[1] / w
        return QRectF(left * sx, top * sy, (right - left + 1) * sx, (bottom - top + 1) * sy)

    def show_box(self, box, is_source: bool, crosshair: bool = False):
        """Hover marks: the hovered cell (``is_source``: a map of the hovered level;
        with ``crosshair`` on the hovered map itself), or the projected window of the
        hovered cell on this map; None hides them."""
        if box is None:
            self.box.hide()
            self.marker.hide()
            self.crosshair.hide()
            return
        item = self.marker if is_source else self.box
        other = self.box if is_source else self.marker
        rect = self._rect(box)
        item.setRect(rect)
        item.show()
        other.hide()
        if crosshair:
            self.crosshair.set(QRectF(0, 0, self.extent[1], self.extent[0]), rect.center())
            self.crosshair.show()
        else:
            self.crosshair.hide()

    def show_selection(self, box, is_source: bool):
        """The clicked cell (``is_source``) or its window on an earlier map; None hides."""
        if box is None:
            self.sel_box.hide()
            self.sel_marker.hide()
            return
        item = self.sel_marker if is_source else self.sel_box
        other = self.sel_box if is_source else self.sel_marker
        item.setRect(self._rect(box))
        item.show()
        other.hide()

    def hover_visible(self) -> bool:
        return self.box.isVisible() or self.marker.isVisible() or self.crosshair.isVisible()


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values within [lo, hi] (about ``n`` of them), 0 included when inside."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def bar_ticks(lo: float, hi: float, top: float, bottom: float,
              text_height: float) -> list[tuple[float, float]]:
    """The labelled ticks of a colour bar from ``top`` (``hi``) to ``bottom`` (``lo``)
    pixels: (value, y) pairs, no two labels closer than ``text_height``. Round values
    (:func:`nice_ticks`, one per ~28 px); a short bar with fewer than three of them
    also labels both ends, and then a round value too close to an end label is left
    out (4 was drawn over the end label 4.2196)."""
    def y_of(v):
        return bottom - (v - lo) / (hi - lo) * (bottom - top) if hi > lo else bottom
    ticks = nice_ticks(lo, hi, max(3, min(6, int(bottom - top) // 28)))
    ends = []
    if len(ticks) < 3 and hi > lo:  # a short bar: at least both ends and the middle
        ends = [lo, hi]
    kept = [(v, y_of(v)) for v in ends]
    for v in ticks:
        y = y_of(v)
        if all(abs(y - ky) >= text_height for _, ky in kept):
            kept.append((v, y))
    return sorted(kept)


class ColorBar(QWidget):
    """A vertical colour bar with numbers (painted directly: pyqtgraph's ColorBarItem,
    a whole plot per bar, took half of the first grid's 96 ms build)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedWidth(64)
        self.levels = (0.0, 1.0)
        self._image = None

    def set(self, levels, cmap: pg.ColorMap):
        self.levels = (float(levels[0]), float(levels[1]))
        lut = lookup_table(cmap)[:, :3]
        col = np.ascontiguousarray(np.repeat(lut[::-1, None, :], 4, axis=1).astype(np.uint8))
        from PyQt6.QtGui import QImage
        self._image = QImage(col.data, 4, col.shape[0], 12, QImage.Format.Format_RGB888).copy()
        self.update()

    def label(self, t: float) -> str:
        """The text of the tick at value ``t``: the two ends to the same decimals."""
        lo, hi = self.levels
        if t in (lo, hi) and lo < hi:
            return range_labels(lo, hi, 6)[t == hi]
        return cell_label(t, 6)

    def paintEvent(self, ev):  # noqa: N802 (Qt API)
        from PyQt6.QtCore import QRect
        p = QPainter(self)
        top, bottom = 8, self.height() - 8
        bar = QRect(4, top, 12, max(1, bottom - top))
        if self._image is not None:
            p.drawImage(bar, self._image)
        p.setPen(QColor(40, 40, 40))
        p.drawRect(bar)
        lo, hi = self.levels
        font = QFont(self.font())
        font.setPixelSize(10)
        p.setFont(font)
        fm = p.fontMetrics()
        for t, y in bar_ticks(lo, hi, top, bottom, fm.height()):
            p.drawLine(bar.right(), int(y), bar.right() + 4, int(y))
            p.drawText(bar.right() + 7, int(y + fm.ascent() / 2 - 1), self.label(t))
        p.end()


class LevelHeader(QWidget):
    """A level's header: two lines at most (what the stage is and makes; the size
    formula with the actual numbers), each elided to the width with the whole text in
    the tooltip, so a long formula never grows the row or widens the grid."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.line1 = ""
        self.line2 = ""
        self.note = ""
        self.stale = False
        self._bold = QFont(self.font())
        self._bold.setBold(True)
        self._mono = QFont("monospace")
        self._mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self._mono.setPointSizeF(self.font().pointSizeF() * 0.95)
        self.setFixedHeight(self.sizeHint().height())

    def sizeHint(self):
        from PyQt6.QtGui import QFontMetrics
        h = QFontMetrics(self._bold).height() + 8
        if self.line2:
            h += QFontMetrics(self._mono).height() + 2
        return QSize(200, h)

    def set_text(self, line1: str, line2: str, note: str = "") -> None:
        two = bool(line2) != bool(self.line2)
        self.line1, self.line2, self.note = line1, line2, note
        if two:
            self.setFixedHeight(self.sizeHint().height())
        tip = line1 + (f" · {note}" if note else "") + (f"\n{line2}" if line2 else "")
        self.setToolTip(tip)
        self.update()

    def text(self) -> str:
        return f"{self.line1}{' · ' + self.note if self.note else ''}\n{self.line2}"

    def paintEvent(self, ev):
        from PyQt6.QtGui import QFontMetrics
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#eef2f7"))
        p.drawRoundedRect(QRectF(self.rect()), 4, 4)
        width = self.width() - 12
        y = 3
        fm = QFontMetrics(self._bold)
        p.setFont(self._bold)
        p.setPen(QColor("#222"))
        notes = [n for n in (self.note, "recomputing…" if self.stale else "") if n]
        first = "  ·  ".join([self.line1, *notes])
        p.drawText(6, y + fm.ascent(), fm.elidedText(first, Qt.TextElideMode.ElideRight, width))
        y += fm.height() + 2
        if self.line2:
            fm2 = QFontMetrics(self._mono)
            p.setFont(self._mono)
            p.setPen(QColor("#333"))
            p.drawText(6, y + fm2.ascent(),
                       fm2.elidedText(self.line2, Qt.TextElideMode.ElideRight, width))
        p.end()


def size_text(h: int, w: int) -> str:
    """The one size convention of the app: rows x columns, as numpy and PyTorch say."""
    return f"{h}×{w}"


# ---------------------------------------------------------------------- the grid


class FeatureGrid(QScrollArea):
    """All maps of a pipeline result, laid out by channel column and stage row."""

    hovered = pyqtSignal(int, int, int, int, float)  # level, map, row, col, value
    hoverText = pyqtSignal(str)                       # what the status bar shows
    clicked = pyqtSignal(int, int, int, int)
    selectionCleared = pyqtSignal()
    previewsTooSmall = pyqtSignal()  # maps are now drawn larger than their previews
    updated = pyqtSignal()  # images were set on screen

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._host = QWidget()
        self._host.setStyleSheet("background: white;")
        self._layout = QGridLayout(self._host)
        self._layout.setHorizontalSpacing(6)
        self._layout.setVerticalSpacing(4)
        self.setWidget(self._host)
        self.range = ViewRange(self)
        self.range.changed.connect(self._on_range)
        self._structure = None
        self._views: dict[tuple[int, int], MapView] = {}
        self._rgb_views: dict[tuple[int, int], MapView] = {}
        self._headers: dict[int, LevelHeader] = {}
        self._bars: dict[int, ColorBar] = {}
        self._col_labels: list[QLabel] = []
        self._output = None
        self._groups: list = []
        self.cmap_choice = "auto"
        self.scale = "stage"
        self.robust = True  # 1..99 % contrast
        self.map_width = 230
        self.auto_size = True
        self.max_columns: int | None = None  # wrap levels with more columns (CNN layers)
        self.column_labels = True  # R / G / B above the columns
        self.show_rgb = True       # the recombined colour column for per-channel stages
        self.input_note = ""       # the input header's second line (what its values mean)
        self.selection = None      # (level, map, row, col) of the clicked cell
        self.cursor = None         # (level, map, row, col) of the keyboard cursor
        self._stale = False
        # when zoomed in on a large image, previews are swapped for full-resolution crops
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(120)
        self._detail_timer.timeout.connect(self._update_detail)
        self._ncols = 1

    # ----------------------------------------------------------------- layout
    def _structure_of(self, out):
        res = out.result
        levels = [res.input, *res.stages]
        return (tuple((lvl.index, tuple(lvl.columns)) for lvl in levels),
                tuple(tuple(g) for g in self._groups))

    def _clear(self):
        while self._layout.count():
            item = self._layout.takeAt(0)
            w = item.widget()
            if w is not None:
                w.setParent(None)
                w.deleteLater()
        self._views.clear()
        self._rgb_views.clear()
        self._headers.clear()
        self._bars.clear()
        self._col_labels.clear()
        for r in range(self._layout.rowCount()):
            self._layout.setRowStretch(r, 0)
        for c in range(self._layout.columnCount()):
            self._layout.setColumnStretch(c, 0)

    def _new_view(self, level: int, m: int, rgb_group=None) -> MapView:
        v = MapView(level, m, rgb_group=rgb_group)
        v.hovered.connect(self._on_hover)
        v.clicked.connect(self._on_click)
        v.view.viewport().installEventFilter(self)
        v.follow(self.range)
        return v

    def _build(self, out):
        # built hidden, shown once: showing each new map in a visible grid ran a layout
        # pass per map (1.7 s for the Keras convnet's ~290 maps, 0.8 s of it layouts)
        shown = self._host.isVisible()
        if shown:
            self._host.hide()
        try:
            self._build_maps(out)
        finally:
            if shown:
                self._host.show()
        self._apply_sizes()

    def _build_maps(self, out):
        self._clear()
        res = out.result
        levels = [res.input, *res.stages]
        ncols = max(max(lvl.columns) + 1 for lvl in levels)
        wrap = self.max_columns or ncols  # columns per display row
        ncols = min(ncols, wrap)
        has_rgb = self.show_rgb and any(self._groups)
        rgb_col = ncols if has_rgb else None
        bar_col = ncols + (1 if has_rgb else 0)
        in_names = res.input.labels
        row = 0
        for c in range(ncols if self.column_labels else 0):
            name = in_names[c] if c < len(in_names) else f"column {c + 1}"
            lab = QLabel(f"<b>{name}</b>")
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._layout.addWidget(lab, row, c)
            self._col_labels.append(lab)
        if has_rgb and self.column_labels:
            lab = QLabel("<b>RGB</b> <span style='color:#666'>(recombined)</span>")
            lab.setToolTip(f"The three channel maps shown as one colour picture: "
                           f"{RGB_MAPPING}")
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._layout.addWidget(lab, row, rgb_col)
            self._col_labels.append(lab)
        row += 1
        for li, lvl in enumerate(levels):
            per_col: dict[int, list[int]] = {}
            for m, col in enumerate(lvl.columns):
                per_col.setdefault(col, []).append(m)
            nsub = max(len(v) for v in per_col.values())
            bands = -(-(max(per_col) + 1) // wrap)  # display rows a level's columns need
            header = LevelHeader()
            self._layout.addWidget(header, row, 0, 1, bar_col + 1)
            self._headers[lvl.index] = header
            row += 1
            bar = ColorBar()
            self._layout.addWidget(bar, row, bar_col, nsub * bands, 1,
                                   Qt.AlignmentFlag.AlignTop)
            self._bars[lvl.index] = bar
            for col, maps in per_col.items():
                band, col = divmod(col, wrap)
                for sub, m in enumerate(maps):
                    v = self._new_view(lvl.index, m)
                    self._layout.addWidget(v, row + band * nsub + sub, col,
                                           Qt.AlignmentFlag.AlignTop)
                    self._views[(lvl.index, m)] = v
            if has_rgb:
                for k, group in enumerate(self._groups[li]):
                    v = self._new_view(lvl.index, group[0], rgb_group=tuple(group))
                    self._layout.addWidget(v, row + k, rgb_col, Qt.AlignmentFlag.AlignTop)
                    self._rgb_views[(lvl.index, k)] = v
            row += nsub * bands
        self._ncols = ncols + (1 if has_rgb else 0)
        self._layout.setRowStretch(row, 1)
        self._layout.setColumnStretch(bar_col + 1, 1)
        # shown with the grid, not by Qt's queued show: until then the layout counted
        # none of them, and in the real window (the Inspect tab first opened after the
        # window was maximised) it kept that minimum height for ~2 s, every row of maps
        # squashed to a strip
        for i in range(self._layout.count()):
            w = self._layout.itemAt(i).widget()
            if w is not None:
                w.show()

    def _fit_width(self) -> int:
        """Map width that fits every column in the visible width."""
        m = self._layout.contentsMargins()
        bar = self.style().pixelMetric(self.style().PixelMetric.PM_ScrollBarExtent)
        avail = (self.viewport().width() if self.verticalScrollBar().isVisible()
                 else self.width() - 2 * self.frameWidth() - bar)
        avail -= 64 + m.left() + m.right() + 6 * (self._ncols + 1) + 4 * self._ncols
        return int(np.clip(avail // max(self._ncols, 1), 60, 640))

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if self.auto_size:
            self._apply_sizes()

    def map_size(self) -> tuple[int, int]:
        """(width, height) in screen pixels at which every map is drawn."""
        h, w = self._output.result.input.maps.shape[1:]
        mw = self._fit_width() if self.auto_size else self.map_width
        mh = int(np.clip(round(mw * h / w), 40, 2 * mw))
        return mw, mh

    def preview_side(self) -> int:
        """Longest preview side worth computing: the maps' size on screen (device
        pixels), rounded up to a multiple of 128, at most PREVIEW_MAX_SIDE. Before the
        first result the window's size gives an estimate."""
        if self._output is None:
            mw = max(self.width() // 3, 200)
            mh = mw
        else:
            mw, mh = self.map_size()
        px = max(mw, mh) * self.devicePixelRatioF()
        return int(min(PREVIEW_MAX_SIDE, max(MIN_PREVIEW_SIDE, 128 * math.ceil(px / 128))))

    def _align_stats(self, level: int) -> None:
        """One statistics form per row: the short "min … max" for every map of a level
        when any map's whole line does not fit (one caption differing from its
        neighbours looked like an error)."""
        views = [v for (lv, _), v in self._views.items() if lv == level]
        short = not all(v.stats_fit() for v in views)
        for v in views:
            v.set_short(short)

    def _apply_sizes(self):
        if self._output is None:
            return
        if self.preview_side() > getattr(self._output, "preview_side", PREVIEW_MAX_SIDE):
            self.previewsTooSmall.emit()
        mw, mh = self.map_size()
        for v in self.all_views():
            v.set_width(mw, mh)
        for level in self._headers:
            self._align_stats(level)
        sample = next(iter(self._views.values()), None)
        extra = 0 if sample is None else sample.title.height() + sample.stats.height() + 6
        for bar in self._bars.values():
            bar.setFixedHeight(mh + extra)

    #: the "Map size" choices: a fixed map width in pixels, or None (fit the window)
    MAP_SIZES = {"fit": None, "small": 160, "medium": 280, "large": 480}

    def bind_document(self, doc) -> None:
        """Show ``doc``'s results with its display settings, mark its explained cell,
        and ask it to explain the cell clicked (or Enter) and to forget one (Esc)."""
        doc.resultChanged.connect(self.set_output)
        doc.displayChanged.connect(self.apply_display_settings)
        doc.selectionChanged.connect(self._follow_selection)
        self.clicked.connect(lambda level, m, row, col: doc.select(level, m, row, col))
        self.selectionCleared.connect(doc.clear_selection)

    def apply_display_settings(self, d: dict) -> None:
        """The display toolbar's settings (app.document.DISPLAY_DEFAULTS' keys)."""
        self.set_map_width(self.MAP_SIZES.get(d["map_size"]))
        self.cmap_choice, self.scale, self.robust = d["colormap"], d["scale"], d["clip"]
        self.refresh()

    def _follow_selection(self, sel, _source: str) -> None:
        if sel is None:
            self.clear_selection()
        else:
            self.select(*sel)

    def set_map_width(self, px: int | None):
        """Fixed map width in pixels, or None to fit the columns to the window."""
        self.auto_size = px is None
        if px is not None:
            self.map_width = int(px)
        self._apply_sizes()

    def all_views(self):
        yield from self._views.values()
        yield from self._rgb_views.values()

    # ----------------------------------------------------------------- content
    def set_output(self, out):
        """Show a :class:`app.compute.RunOutput` (builds widgets only if the layout changed).

        The shared zoom survives results of the same input size; another size fits."""
        self._output = out
        self._groups = list(getattr(out, "colour_groups", None) or [])
        self._groups += [[]] * (1 + len(out.result.stages) - len(self._groups))
        structure = self._structure_of(out)
        if structure != self._structure:
            self._build(out)
            self._structure = structure
        self.range.set_extent(*out.result.input.maps.shape[1:])
        self.refresh()
        self.set_stale(False)
        if self.selection is not None:
            self._show_selection()

    def refresh(self):
        """Re-apply images, colour maps and scales (after a display option changed)."""
        out = self._output
        if out is None:
            return
        res = out.result
        levels = [res.input, *res.stages]
        ranges = value_ranges([d.stats for d in out.levels], self.scale, self.robust)
        self.ranges = ranges
        extent = res.input.maps.shape[1:]
        self.luts = []
        for li, (lvl, disp) in enumerate(zip(levels, out.levels)):
            signed = any(s.min < 0 for s in disp.stats)
            cmap_name = "gray" if li == 0 and self.cmap_choice == "auto" else \
                resolve_cmap(self.cmap_choice, signed)
            cmap = colormap(cmap_name)
            self.luts.append(lookup_table(cmap))
            for m, label in enumerate(lvl.labels):
                view = self._views.get((lvl.index, m))
                if view is None:
                    continue
                st = disp.stats[m]
                view.set_map(disp.previews[m], lvl.maps.shape[1:], extent, ranges[li][m], cmap,
                             label, st.text(), full=lvl.maps[m], short_stats=st.short_text())
            self._align_stats(lvl.index)
            colours = getattr(disp, "colours", None) or []
            for k, group in enumerate(self._groups[li] if li < len(self._groups) else []):
                view = self._rgb_views.get((lvl.index, k))
                if view is None or k >= len(colours):
                    continue
                view.set_map(colours[k], lvl.maps.shape[1:], extent, (0.0, 1.0), None,
                             "RGB of " + ", ".join(lvl.labels[i] for i in group),
                             "clipped to 0..1")
            line1, line2, note = self._header_text(lvl, disp)
            self._headers[lvl.index].set_text(line1, line2, note)
            bar = self._bars[lvl.index]
            if self.scale == "map" and len(lvl.labels) > 1:
                bar.hide()
            else:
                bar.show()
                bar.set(ranges[li][0], cmap)
        self._update_detail()
        self.updated.emit()

    def _update_detail(self):
        """When zoomed in on maps whose previews are coarser than the screen, show the
        visible part of the full-resolution map instead, sampled no finer than the
        screen (so one crop costs at most a screenful of pixels to draw)."""
        out = self._output
        if out is None or not self._views:
            return
        vr = self.range.effective()
        res = out.result
        eh, ew = res.input.maps.shape[1:]
        sample = next(iter(self._views.values()))
        dpr = self.devicePixelRatioF()
        vw, vh = sample.view.width() * dpr, sample.view.height() * dpr
        for li, (lvl, disp) in enumerate(zip([res.input, *res.stages], out.levels)):
            if disp.factor == 1:
                continue
            h, w = lvl.maps.shape[1:]
            sy, sx = eh / h, ew / w
            r0 = max(0, int(np.floor(vr.top() / sy)) - 1)
            r1 = min(h, int(np.ceil(vr.bottom() / sy)) + 1)
            c0 = max(0, int(np.floor(vr.left() / sx)) - 1)
            c1 = min(w, int(np.ceil(vr.right() / sx)) + 1)
            step = max(1, int(max((r1 - r0) / max(vh, 1), (c1 - c0) / max(vw, 1))))
            crop = None
            if not self.range.is_fit and r1 > r0 and c1 > c0 and step < disp.factor:
                crop = (r0, r1, c0, c1, step)
            for m in range(len(lvl.labels)):
                view = self._views.get((lvl.index, m))
                if view is None:
                    continue
                if crop is not None:
                    view.set_detail(lvl.maps[m, r0:r1:step, c0:c1:step], crop, None)
                else:
                    view.set_detail(None, None, disp.previews[m])
            groups = self._groups[li] if li < len(self._groups) else []
            for k, group in enumerate(groups):
                view = self._rgb_views.get((lvl.index, k))
                if view is None or k >= len(disp.colours or ()):
                    continue
                if crop is not None:
                    part = compose_rgb(*(lvl.maps[i, r0:r1:step, c0:c1:step] for i in group))
                    view.set_detail(part, crop, None)
                else:
                    view.set_detail(None, None, disp.colours[k])

    def _header_text(self, lvl, disp) -> tuple[str, str, str]:
        m, h, w = lvl.maps.shape
        note = ""  # previews match the screen; zoomed in, the maps are shown at full detail
        if lvl.index < 0:
            return (f"Input · {m} channel{'s' if m != 1 else ''} of {size_text(h, w)} "
                    f"(rows×columns)", self.input_note, note)
        timing = f"{lvl.seconds * 1e3:.1f} ms"
        return (f"Stage {lvl.index + 1} · {lvl.stage.describe()} → "
                f"{m} map{'s' if m != 1 else ''} of {size_text(h, w)} · {timing}",
                lvl.formula, note)

    def header_text(self, level: int) -> str:
        return self._headers[level].text()

    # ----------------------------------------------------------------- zoom
    def reset_view(self):
        """Fit: every map shows its whole extent."""
        self.range.fit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None):
        """Zoom in (> 1) or out (< 1) about ``anchor`` (input coordinates; default: the
        centre of what is shown)."""
        if not self._views:
            return
        v = next(iter(self._views.values()))
        if anchor is None:
            anchor = self.range.effective().center()
        self.range.zoom(factor, anchor, (v.view.width(), v.view.height()))

    def _on_range(self):
        for v in self.all_views():
            v.apply_range()
        self._detail_timer.start()

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        t = ev.type()
        if t == QEvent.Type.Wheel:
            if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
                view = self._view_of_viewport(obj)
                delta = ev.angleDelta().y() or ev.angleDelta().x()
                if view is not None and delta:
                    anchor = view.vb.mapSceneToView(view.view.mapToScene(
                        ev.position().toPoint()))
                    self.zoom_by(WHEEL_ZOOM ** (delta / 120.0), anchor)
                return True
            # a plain wheel scrolls the page, as everywhere else
            self._scroll(ev)
            return True
        if t == QEvent.Type.NativeGesture and \
                ev.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            view = self._view_of_viewport(obj)
            if view is not None:
                anchor = view.vb.mapSceneToView(view.view.mapToScene(ev.position().toPoint()))
                self.zoom_by(1.0 + ev.value(), anchor)
            return True
        if t == QEvent.Type.MouseButtonDblClick and ev.button() == Qt.MouseButton.LeftButton:
            self.reset_view()
            return False
        if t == QEvent.Type.Leave:
            self._clear_hover()
        return super().eventFilter(obj, ev)

    def _scroll(self, ev) -> None:
        """Scroll the grid by a wheel event (trackpads give pixels, wheels notches)."""
        pixels, angle = ev.pixelDelta(), ev.angleDelta()
        horizontal = abs(angle.x()) > abs(angle.y()) or \
            ev.modifiers() & Qt.KeyboardModifier.ShiftModifier
        bar = self.horizontalScrollBar() if horizontal else self.verticalScrollBar()
        if not pixels.isNull():
            step = pixels.x() if abs(pixels.x()) > abs(pixels.y()) else pixels.y()
        else:
            notches = (angle.x() if abs(angle.x()) > abs(angle.y()) else angle.y()) / 120.0
            step = notches * QApplication.wheelScrollLines() * 20
        bar.setValue(int(bar.value() - step))

    def _view_of_viewport(self, obj):
        for v in self.all_views():
            if v.view.viewport() is obj:
                return v
        return None

    # ----------------------------------------------------------------- stale
    def set_stale(self, stale: bool) -> None:
        """Mark every map as being recomputed (dimmed, and said in the headers)."""
        if stale == self._stale:
            return
        self._stale = stale
        for v in self.all_views():
            v.set_stale(stale)
        for h in self._headers.values():
            h.stale = stale
            h.update()

    @property
    def is_stale(self) -> bool:
        return self._stale

    def views(self):
        return dict(self._views)

    def rgb_views(self):
        return dict(self._rgb_views)

    # ----------------------------------------------------------------- hover
    def _clear_hover(self):
        for v in self.all_views():
            v.show_box(None, False)
        self.hoverText.emit("")

    def _on_hover(self, view: MapView, row: int, col: int):
        out = self._output
        if out is None:
            return
        if row < 0:
            self._clear_hover()
            return
        boxes = project(out.result, view.level, row, col)
        for v in self.all_views():
            box = boxes.get(v.level)
            v.show_box(box, v.level == view.level, crosshair=v is view)
        lvl = out.result.level(view.level)
        where = "input" if view.level < 0 else f"stage {view.level + 1}"
        if view.rgb_group is not None:
            vals = ", ".join(f"{float(lvl.maps[i, row, col]):.6g}" for i in view.rgb_group)
            self.hoverText.emit(f"{where} · RGB · row {row}, col {col} = ({vals})")
            return
        value = float(lvl.maps[view.map_index, row, col])
        self.hoverText.emit(f"{where} · {lvl.labels[view.map_index]} · row {row}, col {col} "
                            f"= {value:.6g}")
        self.hovered.emit(view.level, view.map_index, row, col, value)

    # ----------------------------------------------------------------- selection
    def _on_click(self, view: MapView, row: int, col: int):
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.selection = (view.level, view.map_index, row, col)
        self.cursor = self.selection
        self._show_selection()
        self.clicked.emit(view.level, view.map_index, row, col)

    def select(self, level: int, m: int, row: int, col: int) -> None:
        """Mark a cell as the explained one (as a click does, without the signal)."""
        self.selection = (level, m, row, col)
        self._show_selection()

    def clear_selection(self) -> None:
        self.selection = None
        for v in self.all_views():
            v.show_selection(None, False)

    def _show_selection(self):
        out = self._output
        level, m, row, col = self.selection
        try:
            lvl = out.result.level(level)
            inside = m < lvl.maps.shape[0] and row < lvl.maps.shape[1] and \
                col < lvl.maps.shape[2]
        except IndexError:
            inside = False
        if not inside:
            self.clear_selection()
            return
        boxes = project(out.result, level, row, col)
        for v in self.all_views():
            if v.level == level and (v.map_index == m or v.rgb_group is not None):
                v.show_selection(boxes.get(level), True)
            elif v.level < level:
                v.show_selection(boxes.get(v.level), False)  # its window on earlier maps
            else:
                v.show_selection(None, False)

    # ----------------------------------------------------------------- keyboard
    def move_cursor(self, drow: int = 0, dcol: int = 0, dlevel: int = 0) -> None:
        """Move the keyboard cursor cell (shown like the hover): arrows by one cell,
        PgUp/PgDn to the previous/next stage at the same place of the image."""
        out = self._output
        if out is None:
            return
        res = out.result
        if self.cursor is None:
            self.cursor = self.selection or (-1, 0, 0, 0)
        level, m, row, col = self.cursor
        level = min(level, len(res.stages) - 1)
        if dlevel:
            new = int(np.clip(level + dlevel, -1, len(res.stages) - 1))
            if new != level:
                h0, w0 = res.level(level).maps.shape[1:]
                h1, w1 = res.level(new).maps.shape[1:]
                row = int((row + 0.5) * h1 / h0)
                col = int((col + 0.5) * w1 / w0)
                m = min(m, res.level(new).maps.shape[0] - 1)
                level = new
        n, h, w = res.level(level).maps.shape
        row = int(np.clip(row + drow, 0, h - 1))
        col = int(np.clip(col + dcol, 0, w - 1))
        m = min(m, n - 1)
        self.cursor = (level, m, row, col)
        view = self._views.get((level, m))
        if view is None:
            return
        self._on_hover(view, row, col)
        self.ensure_visible(level, row, col)
        self.ensureWidgetVisible(view, 10, 10)

    def ensure_visible(self, level: int, row: int, col: int) -> None:
        """Pan a zoomed view so that the cell is in sight."""
        if self.range.is_fit or self._output is None:
            return
        h, w = self._output.result.level(level).maps.shape[1:]
        eh, ew = self.range.extent
        cx, cy = (col + 0.5) * ew / w, (row + 0.5) * eh / h
        r = self.range.effective()
        dx = min(0.0, cx - r.left() - 1) + max(0.0, cx - r.right() + 1)
        dy = min(0.0, cy - r.top() - 1) + max(0.0, cy - r.bottom() + 1)
        if dx or dy:
            self.range.pan(dx, dy)

    def keyPressEvent(self, ev):  # noqa: N802 (Qt API)
        key = ev.key()
        moves = {Qt.Key.Key_Left: (0, -1, 0), Qt.Key.Key_Right: (0, 1, 0),
                 Qt.Key.Key_Up: (-1, 0, 0), Qt.Key.Key_Down: (1, 0, 0),
                 Qt.Key.Key_PageUp: (0, 0, -1), Qt.Key.Key_PageDown: (0, 0, 1)}
        if key in moves and not ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.move_cursor(*moves[key])
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and \
                self.cursor is not None:
            level, m, row, col = self.cursor
            self.selection = self.cursor
            self._show_selection()
            self.clicked.emit(level, m, row, col)
            return
        if key == Qt.Key.Key_Escape and self.selection is not None:
            self.clear_selection()
            self.selectionCleared.emit()
            return
        super().keyPressEvent(ev)

    def focusInEvent(self, ev):  # noqa: N802 (Qt API)
        super().focusInEvent(ev)
        if self.cursor is None and self._output is not None and \
                ev.reason() in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason):
            self.move_cursor()  # show where the arrow keys start
