"""The feature-map grid: one column per channel, one row per stage (and per kernel).

Every map is drawn in the input image's coordinates (its ImageItem's rect is the input
extent), so a pooled map lies exactly over the region it summarises, zoom and pan are
linked across all maps, and the hover crosshair can be drawn on every map at once:
the hovered position is projected to every level by :func:`core.explain.project`
(receptive field backwards, covering outputs forwards).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QPen
from PyQt6.QtWidgets import (QGraphicsRectItem, QGridLayout, QLabel, QScrollArea,
                             QVBoxLayout, QWidget)

from core.display import PREVIEW_MAX_SIDE, value_ranges
from core.explain import project

COLORMAPS = {
    "auto": None,  # gray for images and non-negative maps, diverging for signed maps
    "gray": "gray",
    "diverging": "CET-D1A",
    "viridis": "viridis",
    "magma": "magma",
    "inferno": "inferno",
    "cividis": "cividis",
}

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


class MapView(QWidget):
    """One feature map: title, image (linked view), statistics line."""

    hovered = pyqtSignal(object, int, int)   # self, row, col (-1, -1 when leaving)
    clicked = pyqtSignal(object, int, int)

    def __init__(self, level: int, map_index: int, parent=None):
        super().__init__(parent)
        self.level = level
        self.map_index = map_index
        self.map_shape = (1, 1)
        self.extent = (1, 1)  # input (H, W)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(1)
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet("font-size: 11px; color: #333;")
        self.view = pg.GraphicsView()
        self.view.setBackground("w")
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setDefaultPadding(0.0)
        self.view.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        pen = QPen(QColor(255, 200, 0))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.box = QGraphicsRectItem()
        self.box.setPen(pen)
        self.box.setZValue(10)
        self.box.hide()
        self.vb.addItem(self.box, ignoreBounds=True)
        mpen = QPen(QColor(255, 40, 40))
        mpen.setCosmetic(True)
        mpen.setWidthF(2.0)
        self.marker = QGraphicsRectItem()
        self.marker.setPen(mpen)
        self.marker.setZValue(11)
        self.marker.hide()
        self.vb.addItem(self.marker, ignoreBounds=True)
        self._title = ""
        self._levels = (0.0, 1.0)
        self._lut = None
        self.detail = None  # (r0, r1, c0, c1) when showing a full-resolution crop
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stats.setStyleSheet("font-size: 10px; color: #555;")
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.stats)
        self.view.scene().sigMouseMoved.connect(self._moved)
        self.view.scene().sigMouseClicked.connect(self._clicked)
        self.setMouseTracking(True)

    def set_map(self, data: np.ndarray, map_shape, extent, levels, cmap: pg.ColorMap, title: str,
                stats_text: str):
        self.map_shape = tuple(map_shape)
        self.extent = tuple(extent)
        self._levels = levels
        self._lut = lookup_table(cmap)
        self.detail = None
        self.image.setImage(data, levels=levels, lut=self._lut, autoLevels=False)
        self.image.setRect(QRectF(0, 0, extent[1], extent[0]))
        if title != self._title:
            self._title = title
            self.title.setToolTip(title)
            self._elide()
        if stats_text != self.stats.text():
            self.stats.setText(stats_text)
            self.stats.setToolTip(stats_text)

    def set_detail(self, data: np.ndarray, crop, preview: np.ndarray):
        """Show full-resolution ``data`` for map rows/cols ``crop`` = (r0, r1, c0, c1), or
        the whole-map ``preview`` again when ``crop`` is None."""
        if crop == self.detail:
            return
        self.detail = crop
        h, w = self.map_shape
        sy, sx = self.extent[0] / h, self.extent[1] / w
        if crop is None:
            self.image.setImage(preview, levels=self._levels, lut=self._lut, autoLevels=False)
            self.image.setRect(QRectF(0, 0, self.extent[1], self.extent[0]))
            return
        r0, r1, c0, c1 = crop
        self.image.setImage(data, levels=self._levels, lut=self._lut, autoLevels=False)
        self.image.setRect(QRectF(c0 * sx, r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy))

    def _elide(self):
        width = max(40, self.view.width())
        fm = self.title.fontMetrics()
        self.title.setText(fm.elidedText(self._title, Qt.TextElideMode.ElideMiddle, width))

    def set_width(self, w: int, h: int):
        self.view.setFixedSize(w, h)
        self.setFixedWidth(w + 4)
        self._elide()

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
        hit = self.pixel_at(ev.scenePos())
        if hit is not None:
            self.clicked.emit(self, *hit)

    def _rect(self, box):
        top, bottom, left, right = box
        h, w = self.map_shape
        sy, sx = self.extent[0] / h, self.extent[1] / w
        return QRectF(left * sx, top * sy, (right - left + 1) * sx, (bottom - top + 1) * sy)

    def show_box(self, box, is_source: bool):
        if box is None:
            self.box.hide()
            self.marker.hide()
            return
        item = self.marker if is_source else self.box
        other = self.box if is_source else self.marker
        item.setRect(self._rect(box))
        item.show()
        other.hide()


class ColorBar(pg.GraphicsLayoutWidget):
    """A vertical colour bar with numbers."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        self.setFixedWidth(64)
        self.bar = pg.ColorBarItem(values=(0, 1), colorMap=colormap("gray"), interactive=False,
                                   width=12, orientation="vertical")
        self.addItem(self.bar)
        self.bar.getAxis("right").setTextPen("k")
        self.bar.getAxis("right").setPen("k")

    def set(self, levels, cmap: pg.ColorMap):
        self.bar.setColorMap(cmap)
        self.bar.setLevels(values=levels)


class FeatureGrid(QScrollArea):
    """All maps of a pipeline result, laid out by channel column and stage row."""

    hovered = pyqtSignal(int, int, int, int, float)  # level, map, row, col, value
    clicked = pyqtSignal(int, int, int, int)
    updated = pyqtSignal()  # images were set on screen

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._host = QWidget()
        self._host.setStyleSheet("background: white;")
        self._layout = QGridLayout(self._host)
        self._layout.setHorizontalSpacing(6)
        self._layout.setVerticalSpacing(4)
        self.setWidget(self._host)
        self._structure = None
        self._views: dict[tuple[int, int], MapView] = {}
        self._headers: dict[int, QLabel] = {}
        self._bars: dict[int, ColorBar] = {}
        self._col_labels: list[QLabel] = []
        self._output = None
        self.cmap_choice = "auto"
        self.scale = "stage"
        self.robust = True  # 1..99 % contrast
        self.map_width = 230
        self.auto_size = True
        self.max_columns: int | None = None  # wrap levels with more columns (CNN layers)
        self.column_labels = True  # R / G / B above the columns
        # when zoomed in on a large image, previews are swapped for full-resolution crops
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(120)
        self._detail_timer.timeout.connect(self._update_detail)
        self._master = None
        self._fresh = False
        self._ncols = 1

    # ----------------------------------------------------------------- layout
    @staticmethod
    def _structure_of(out):
        res = out.result
        levels = [res.input, *res.stages]
        return tuple((lvl.index, tuple(lvl.columns)) for lvl in levels)

    def _clear(self):
        while self._layout.count():
            item = self._layout.takeAt(0)
            w = item.widget()
            if w is not None:
                w.setParent(None)
                w.deleteLater()
        self._views.clear()
        self._headers.clear()
        self._bars.clear()
        self._col_labels.clear()

    def _build(self, out):
        self._clear()
        res = out.result
        levels = [res.input, *res.stages]
        ncols = max(max(lvl.columns) + 1 for lvl in levels)
        wrap = self.max_columns or ncols  # columns per display row
        ncols = min(ncols, wrap)
        in_names = res.input.labels
        row = 0
        for c in range(ncols if self.column_labels else 0):
            name = in_names[c] if c < len(in_names) else f"map {c + 1}"
            lab = QLabel(f"<b>{name}</b>" if c < len(in_names) else f"<b>column {c + 1}</b>")
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._layout.addWidget(lab, row, c)
            self._col_labels.append(lab)
        row += 1
        master = None
        for lvl in levels:
            per_col: dict[int, list[int]] = {}
            for m, col in enumerate(lvl.columns):
                per_col.setdefault(col, []).append(m)
            nsub = max(len(v) for v in per_col.values())
            bands = -(-(max(per_col) + 1) // wrap)  # display rows a level's columns need
            header = QLabel()
            header.setWordWrap(True)
            header.setTextFormat(Qt.TextFormat.RichText)
            header.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            header.setStyleSheet("font-size: 11px; padding: 3px 6px; background: #eef2f7; "
                                 "border-radius: 4px; color: #222;")
            header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._layout.addWidget(header, row, 0, 1, ncols + 1)
            self._headers[lvl.index] = header
            row += 1
            bar = ColorBar()
            self._layout.addWidget(bar, row, ncols, nsub * bands, 1)
            self._bars[lvl.index] = bar
            for col, maps in per_col.items():
                band, col = divmod(col, wrap)
                for sub, m in enumerate(maps):
                    v = MapView(lvl.index, m)
                    v.hovered.connect(self._on_hover)
                    v.clicked.connect(self._on_click)
                    if master is None:
                        master = v.vb
                        master.sigRangeChanged.connect(lambda *_: self._detail_timer.start())
                        self._master = master
                    else:
                        v.vb.setXLink(master)
                        v.vb.setYLink(master)
                    self._layout.addWidget(v, row + band * nsub + sub, col)
                    self._views[(lvl.index, m)] = v
            row += nsub * bands
        self._ncols = ncols
        self._layout.setRowStretch(row, 1)
        self._layout.setColumnStretch(ncols + 1, 1)
        self._apply_sizes()

    def _fit_width(self) -> int:
        """Map width that fits every column in the visible width."""
        avail = self.viewport().width() - 64 - 30 - 12 * self._ncols
        return int(np.clip(avail // max(self._ncols, 1), 100, 640))

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if self.auto_size:
            self._apply_sizes()

    def _apply_sizes(self):
        if self._output is None:
            return
        h, w = self._output.result.input.maps.shape[1:]
        mw = self._fit_width() if self.auto_size else self.map_width
        mh = int(np.clip(mw * h / w, 80, 2 * mw))
        for v in self._views.values():
            v.set_width(mw, mh)
        for bar in self._bars.values():
            bar.setFixedHeight(mh + 30)

    def set_map_width(self, px: int | None):
        """Fixed map width in pixels, or None to fit the columns to the window."""
        self.auto_size = px is None
        if px is not None:
            self.map_width = int(px)
        self._apply_sizes()

    # ----------------------------------------------------------------- content
    def set_output(self, out):
        """Show a :class:`app.compute.RunOutput` (builds widgets only if the layout changed)."""
        first = self._output is None or \
            self._output.result.input.maps.shape[1:] != out.result.input.maps.shape[1:]
        self._output = out
        structure = self._structure_of(out)
        if structure != self._structure:
            self._build(out)
            self._structure = structure
        # new views have no meaningful range until reset_view: no detail crops yet
        self._fresh = first
        self.refresh()
        self._fresh = False
        if first:
            self.reset_view()

    def refresh(self):
        """Re-apply images, colour maps and scales (after a display option changed)."""
        out = self._output
        if out is None:
            return
        res = out.result
        levels = [res.input, *res.stages]
        ranges = value_ranges([d.stats for d in out.levels], self.scale, self.robust)
        extent = res.input.maps.shape[1:]
        for li, (lvl, disp) in enumerate(zip(levels, out.levels)):
            signed = any(s.min < 0 for s in disp.stats)
            cmap_name = "gray" if li == 0 and self.cmap_choice == "auto" else \
                resolve_cmap(self.cmap_choice, signed)
            cmap = colormap(cmap_name)
            for m, label in enumerate(lvl.labels):
                view = self._views.get((lvl.index, m))
                if view is None:
                    continue
                st = disp.stats[m]
                view.set_map(disp.previews[m], lvl.maps.shape[1:], extent, ranges[li][m], cmap,
                             label, st.text())
            self._headers[lvl.index].setText(self._header_html(lvl, disp))
            bar = self._bars[lvl.index]
            if self.scale == "map" and len(lvl.labels) > 1:
                bar.hide()
            else:
                bar.show()
                bar.set(ranges[li][0], cmap)
        if not self._fresh:
            self._update_detail()
        self.updated.emit()

    def _update_detail(self):
        """Full-resolution crops for maps shown at reduced size, when zoomed in enough."""
        out = self._output
        if out is None or self._master is None:
            return
        vr = self._master.viewRect()
        res = out.result
        eh, ew = res.input.maps.shape[1:]
        for li, (lvl, disp) in enumerate(zip([res.input, *res.stages], out.levels)):
            if disp.factor == 1:
                continue
            h, w = lvl.maps.shape[1:]
            sy, sx = eh / h, ew / w
            r0 = max(0, int(np.floor(vr.top() / sy)))
            r1 = min(h, int(np.ceil(vr.bottom() / sy)) + 1)
            c0 = max(0, int(np.floor(vr.left() / sx)))
            c1 = min(w, int(np.ceil(vr.right() / sx)) + 1)
            fits = r1 > r0 and c1 > c0 and max(r1 - r0, c1 - c0) <= PREVIEW_MAX_SIDE
            for m in range(len(lvl.labels)):
                view = self._views.get((lvl.index, m))
                if view is None:
                    continue
                if fits:
                    view.set_detail(lvl.maps[m, r0:r1, c0:c1], (r0, r1, c0, c1), None)
                else:
                    view.set_detail(None, None, disp.previews[m])

    @staticmethod
    def _header_html(lvl, disp) -> str:
        m, h, w = lvl.maps.shape
        ds = f" · <span style='color:#888'>shown at 1/{disp.factor}</span>" \
            if disp.factor > 1 else ""
        if lvl.index < 0:
            return (f"<b>Input</b> · {m} channel{'s' if m != 1 else ''} of {h}x{w}, "
                    f"values 0..1{ds}")
        timing = f"{lvl.seconds * 1e3:.1f} ms"
        return (f"<b>Stage {lvl.index + 1} · {lvl.stage.describe()}</b> → "
                f"{m} map{'s' if m != 1 else ''} of {h}x{w} · {timing}{ds}<br>"
                f"<tt>{lvl.formula}</tt>")

    def reset_view(self):
        if not self._views:
            return
        h, w = self._output.result.input.maps.shape[1:]
        first = next(iter(self._views.values()))
        first.vb.setRange(QRectF(0, 0, w, h), padding=0)

    def views(self):
        return dict(self._views)

    # ----------------------------------------------------------------- hover
    def _on_hover(self, view: MapView, row: int, col: int):
        out = self._output
        if out is None:
            return
        if row < 0:
            for v in self._views.values():
                v.show_box(None, False)
            return
        boxes = project(out.result, view.level, row, col)
        for (lv, m), v in self._views.items():
            box = boxes.get(lv)
            v.show_box(box, lv == view.level)
        value = float(out.result.level(view.level).maps[view.map_index, row, col])
        self.hovered.emit(view.level, view.map_index, row, col, value)

    def _on_click(self, view: MapView, row: int, col: int):
        self.clicked.emit(view.level, view.map_index, row, col)
