"""The sheet: every feature map of a pipeline result in one picture, drawn from the data.

Unlike a screen grab of the map grid, the sheet shows each map at its native data
resolution (one data cell = one sheet pixel, no interpolation), with a header per
level (what the stage does, the output size and its formula), each map's label, and a
colour bar per level with its numbers. It is written as PNG or PDF (both lossless).

Layout, top to bottom: a title line; then for every level (the input first) a header
band and the level's maps laid out by display column (``columns[m]``; several maps of
one column stack as sub-rows, in order) with the level's colour bar to the right of
the columns. A column is as wide as its widest map (or label) on any level, so columns
line up across levels.

Value -> colour, for a map with display range ``(lo, hi)`` and colour map ``lut``::

    idx = clip(round((v - lo) / (hi - lo) * 255), 0, 255);  colour = lut[idx]

NaN cells are drawn in :data:`NAN_COLOUR` (magenta), named under the colour bar of a
level that has any. When the sheet would have more than ``max_pixels`` pixels, every
map is shrunk by one integer factor N (the mean of each N x N block of cells, edge
blocks over the cells that exist) and the title says "maps shown at 1/N".
"""

from __future__ import annotations

import io
import math
import os
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .display import is_signed, map_stats, preview, value_ranges
from .fileio import atomic_write_bytes

__all__ = ["render_sheet", "save_sheet", "sheet_format", "default_lut", "default_style",
           "colour_indices", "SheetLayout", "NAN_COLOUR", "SHEET_FORMATS"]

#: colour of NaN cells (no colour map used here has it)
NAN_COLOUR = (255, 0, 255)
BACKGROUND = (255, 255, 255)
TEXT = (30, 30, 30)
#: extensions :func:`save_sheet` writes, and the format of each
SHEET_FORMATS = {".png": "PNG", ".pdf": "PDF"}
#: longest side of a PDF page in points (Acrobat's limit is 200 inches)
_PDF_MAX_POINTS = 14_400

# what a font without the glyph shows instead (the scalable default font, Aileron,
# has "·" and "…" but not "→", "−" or "×")
_FALLBACK = {"→": "->", "←": "<-", "−": "-", "×": "x", "·": "-", "…": "...", "≈": "~",
             "⌊": "floor(", "⌋": ")", "⌈": "ceil(", "⌉": ")", "²": "^2", "α": "alpha",
             "≤": "<=", "≥": ">=", "–": "-", "—": "-"}


@dataclass(frozen=True)
class SheetLayout:
    """Where things are on a sheet, in sheet pixels.

    ``boxes[(level, m)] = (x, y, w, h)``: the block of map ``m`` of ``level`` (0 is
    the input), ``w, h`` its (downscaled) data size; ``bars[level]`` the colour bar of
    a level; ``factor`` the downscaling factor N (1: one data cell = one pixel);
    ``title`` the title line as drawn (it states the factor).
    """

    boxes: dict
    bars: dict
    factor: int
    size: tuple[int, int]
    title: str


# ----------------------------------------------------------------------- colour maps


def default_lut(signed: bool) -> np.ndarray:
    """The colour map the sheet uses without a GUI: uint8 array of shape (256, 3).

    ``signed=False``: gray, black (0) to white (255). ``signed=True``: diverging
    blue-white-red (ColorBrewer RdBu's ends, (33, 102, 172) and (178, 24, 43)), white
    between entries 127 and 128, where a symmetric range ``-m..m`` puts 0.
    """
    t = np.arange(256, dtype=np.float64) / 255.0
    if not signed:
        return np.repeat(np.round(t * 255.0).astype(np.uint8)[:, None], 3, axis=1)
    blue = np.array([33.0, 102.0, 172.0])
    red = np.array([178.0, 24.0, 43.0])
    white = np.full(3, 255.0)
    low = np.clip(t * 2.0, 0.0, 1.0)[:, None]           # 0..0.5 -> blue..white
    high = np.clip(t * 2.0 - 1.0, 0.0, 1.0)[:, None]    # 0.5..1 -> white..red
    rgb = np.where(t[:, None] <= 0.5, blue + (white - blue) * low, white + (red - white) * high)
    return np.round(rgb).astype(np.uint8)


def default_style(result, *, scale: str = "stage", robust: bool = True):
    """Display ranges and colour maps for ``result`` without a GUI: ``(ranges, luts)``.

    Ranges are :func:`core.display.value_ranges` over each map's
    :func:`core.display.map_stats`; the input level and levels without negative values
    get the gray map, signed levels the blue-white-red one (:func:`default_lut`).
    """
    stats = [[map_stats(m) for m in lvl.maps] for lvl in _levels(result)]
    ranges = value_ranges(stats, scale, robust=robust)
    luts = [default_lut(li > 0 and is_signed(s)) for li, s in enumerate(stats)]
    return ranges, luts


def _rgb_lut(lut, level: int) -> np.ndarray:
    """A (256, 3) uint8 table; an alpha column is composited onto the white background."""
    arr = np.asarray(lut)
    if arr.ndim != 2 or arr.shape[0] != 256 or arr.shape[1] not in (3, 4):
        raise ValueError(f"luts[{level}] must have shape (256, 3) or (256, 4), "
                         f"got {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"luts[{level}] must hold values 0..255")
        arr = np.round(arr).astype(np.uint8)
    if arr.shape[1] == 3:
        return np.ascontiguousarray(arr)
    a = arr[:, 3:4].astype(np.float64) / 255.0
    return np.round(arr[:, :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)


def colour_indices(v: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray | None]:
    """LUT indices of map ``v`` for the range ``lo..hi`` and the NaN mask (None if none).

    ``idx = clip(round((v - lo) / (hi - lo) * 255), 0, 255)`` in float64 (ties round
    to even); ±inf go to the ends. With ``hi == lo``, values above ``lo`` get 255,
    the rest 0.
    """
    t = np.asarray(v, dtype=np.float64)
    if hi > lo:
        t = (t - lo) / (hi - lo) * 255.0
        np.rint(t, out=t)
    else:
        t = np.where(t > lo, 255.0, np.where(np.isnan(t), np.nan, 0.0))
    nan = np.isnan(t)
    if nan.any():
        t[nan] = 0.0
    else:
        nan = None
    np.clip(t, 0.0, 255.0, out=t)
    return t.astype(np.uint8), nan


def _colour(v: np.ndarray, lo: float, hi: float, lut3: np.ndarray) -> Image.Image:
    """Map ``v`` to an RGB picture: the indices as a palette image converted in C
    (a 1080p map in 4 ms; ``lut3[idx]`` in numpy took 21 ms)."""
    idx, nan = colour_indices(v, lo, hi)
    h, w = idx.shape
    pal = Image.frombytes("P", (w, h), idx.tobytes())
    pal.putpalette(lut3.tobytes())
    rgb = pal.convert("RGB")
    if nan is not None:
        rgb.paste(NAN_COLOUR, (0, 0, w, h), mask=Image.fromarray(nan.astype(np.uint8) * 255))
    return rgb


# ----------------------------------------------------------------------------- text


class _Typeface:
    """The font, its line height, widths, and text the font can draw."""

    def __init__(self, size: int):
        try:
            self.font = ImageFont.load_default(size=size)  # scalable from Pillow 10.1
        except (TypeError, ValueError, OSError, ImportError, AttributeError):
            self.font = ImageFont.load_default()
        bbox = self.font.getbbox("Ag|")
        self.line = int(bbox[3]) + max(2, size // 5)
        self.size = size
        self._has: dict[str, bool] = {}
        try:
            self._notdef = np.asarray(self.font.getmask("\uffff"))
        except Exception:  # noqa: BLE001 - a bitmap font without it: compare nothing
            self._notdef = None

    def _drawable(self, ch: str) -> bool:
        if ch.isascii():
            return True
        known = self._has.get(ch)
        if known is None:
            try:
                mask = np.asarray(self.font.getmask(ch))
                known = self._notdef is None or mask.shape != self._notdef.shape \
                    or not np.array_equal(mask, self._notdef)
            except (UnicodeError, ValueError, OSError):
                known = False
            self._has[ch] = known
        return known

    def clean(self, text: str) -> str:
        if text.isascii():
            return text
        return "".join(ch if self._drawable(ch) else _FALLBACK.get(ch, "?") for ch in text)

    def width(self, text: str) -> int:
        return int(math.ceil(self.font.getlength(self.clean(text)))) if text else 0

    def fit(self, text: str, width: int) -> str:
        """``text``, shortened with an ellipsis to at most ``width`` pixels."""
        text = self.clean(text)
        if self.width(text) <= width:
            return text
        dots = self.clean("…")
        lo, hi = 0, len(text)
        while lo < hi:  # longest prefix that fits with the dots
            mid = (lo + hi + 1) // 2
            if self.width(text[:mid] + dots) <= width:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo] + dots


def _num(v: float) -> str:
    """A tick or range number: 3 significant digits, ASCII minus."""
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e4:
        text = f"{v:.3g}" if a < 100 else f"{v:.1f}"
        return text[:-2] if text.endswith(".0") else text
    return f"{v:.2e}"


# --------------------------------------------------------------------------- layout


def _levels(result) -> list:
    return [result.input, *result.stages]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


@dataclass
class _Level:
    header: list[str]
    shape: tuple[int, int, int]
    labels: list[str]
    columns: list[int]
    ranges: list[tuple[float, float]]
    per_map: bool
    has_nan: bool
    ticks: list[tuple[float, str]]   # (position 0..1 from the bottom, text)
    label_widths: list[int]          # of the label, or of the range under it if wider


def _describe(li: int, lvl, ranges, tf: _Typeface) -> _Level:
    m, h, w = lvl.maps.shape
    if li == 0:
        head = [f"Input · {_plural(m, 'channel')} of {h}x{w} (HxW)"]
    else:
        head = [f"Stage {li} · {lvl.stage.describe()} → {_plural(m, 'map')} of {h}x{w}"]
    second = [lvl.formula] if lvl.formula else []
    rs = [(float(lo), float(hi)) for lo, hi in ranges]
    per_map = len(set(rs)) > 1
    if per_map:
        second.append("colours scaled per map: each map's range is under it")
    if second:
        head.append(" · ".join(second))
    lo, hi = rs[0]
    if per_map:
        centred = all(a == -b for a, b in rs)
        ticks = [(0.0, "lo"), (0.5, "0" if centred else "mid"), (1.0, "hi")]
    else:
        ticks = _ticks(lo, hi)
    widths = [max(tf.width(lab), tf.width(_range_text(r)) if per_map else 0)
              for lab, r in zip(lvl.labels, rs)]
    return _Level(head, (m, h, w), list(lvl.labels), [int(c) for c in lvl.columns], rs,
                  per_map, bool(np.isnan(lvl.maps).any()), ticks, widths)


def _ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    if not hi > lo:
        return [(0.0, _num(lo)), (1.0, _num(hi))]
    middle = 0.0 if lo < 0 < hi else (lo + hi) / 2
    pos = (middle - lo) / (hi - lo)
    if not 0.25 <= pos <= 0.75:  # 0 too near an end for its number to fit: the middle
        middle, pos = (lo + hi) / 2, 0.5
    return [(0.0, _num(lo)), (pos, _num(middle)), (1.0, _num(hi))]


@dataclass
class _Plan:
    width: int
    height: int
    title: str
    boxes: dict
    bars: dict
    texts: list      # (x, y, text)


def _plan(levels: list[_Level], factor: int, tf: _Typeface, title: str, footer: str) -> _Plan:
    fs, line = tf.size, tf.line
    margin = fs
    gap = max(6, fs * 3 // 4)              # between columns, between sub-rows
    level_gap = fs * 3 // 2
    label_cap = 18 * fs                      # longer labels are cut to the column
    bar_w = max(10, fs)
    tick_len = max(3, fs // 3)
    text_gap = max(4, fs // 2)               # a tick and its number: not read as a minus
    min_bar = 3 * line

    def scaled(n: int) -> int:
        return -(-n // factor)

    # columns: as wide as the widest map, label or range text in them on any level
    used = sorted({c for lv in levels for c in lv.columns})
    col_w = {c: 1 for c in used}
    for lv in levels:
        w = scaled(lv.shape[2])
        for m, c in enumerate(lv.columns):
            need = max(w, min(lv.label_widths[m], label_cap))
            col_w[c] = max(col_w[c], need)
    col_x, x = {}, margin
    for c in used:
        col_x[c] = x
        x += col_w[c] + gap
    bar_x = x + gap
    tick_w = max((tf.width(t) for lv in levels for _, t in lv.ticks), default=0)
    nan_w = tf.width("NaN") + line
    bar_area_w = max(bar_w + tick_len + text_gap + tick_w, nan_w)
    width = bar_x + bar_area_w + margin

    texts = [(margin, margin, title)]
    width = max(width, 2 * margin + tf.width(title))
    y = margin + line + level_gap // 2
    boxes, bars = {}, {}
    for li, lv in enumerate(levels):
        for text in lv.header:
            texts.append((margin, y, text))
            width = max(width, 2 * margin + tf.width(text))
            y += line
        y += gap // 2
        top = y
        h, w = scaled(lv.shape[1]), scaled(lv.shape[2])
        slot, seen = {}, {}             # sub-row of each map: its rank in its column
        for m, c in enumerate(lv.columns):
            slot[m] = seen[c] = seen.get(c, -1) + 1
        subrow_h = line + h + (line if lv.per_map else 0) + gap
        for m, c in enumerate(lv.columns):
            my = top + slot[m] * subrow_h
            texts.append((col_x[c], my, tf.fit(lv.labels[m], col_w[c])))
            boxes[(li, m)] = (col_x[c], my + line, w, h)
            if lv.per_map:
                texts.append((col_x[c], my + line + h + 1, _range_text(lv.ranges[m])))
        rows = 1 + max(slot.values())
        maps_bottom = top + (rows - 1) * subrow_h + line + h
        bar_top = top + line
        bar_h = max(maps_bottom - bar_top, min_bar)
        bars[li] = (bar_x, bar_top, bar_w, bar_h)
        for pos, text in lv.ticks:
            ty = bar_top + round((1.0 - pos) * (bar_h - 1)) - line // 2
            texts.append((bar_x + bar_w + tick_len + text_gap, ty, text))
        bottom = max(top + rows * subrow_h - gap, bar_top + bar_h + line // 2)
        if lv.has_nan:  # a magenta swatch and "NaN" under the bar
            texts.append((bar_x + line, bar_top + bar_h + line // 2 + 2, "NaN"))
            bottom = max(bottom, bar_top + bar_h + line // 2 + 2 + line)
        y = bottom + level_gap
    if footer:
        texts.append((margin, y, footer))
        width = max(width, 2 * margin + tf.width(footer))
        y += line
    return _Plan(width, y - level_gap // 2 + margin, title, boxes, bars, texts)


def _range_text(r) -> str:
    return f"{_num(r[0])} … {_num(r[1])}"


# --------------------------------------------------------------------------- render


def render_sheet(result, ranges, luts, *, title: str = "", max_pixels: int = 60_000_000,
                 font_size: int = 14, return_layout: bool = False):
    """Every map of ``result`` in one RGB picture, drawn from the data.

    Parameters
    ----------
    result : core.pipeline.PipelineResult
        Its levels are ``[result.input, *result.stages]``; level ``i``'s maps are an
        ndarray of shape (M, H, W).
    ranges : list of list of (lo, hi)
        ``ranges[i][m]``: the display range of map ``m`` of level ``i`` (as
        :func:`core.display.value_ranges` returns). Within a level with one range, a
        single colour bar shows it; with different ranges (per-map scale) the bar is
        marked lo/hi and each map's range is written under the map.
    luts : list of ndarray
        ``luts[i]``: uint8 array of shape (256, 3) or (256, 4), level ``i``'s colour
        map (an alpha column is composited onto the white background).
    title : str
        First line of the sheet (default "ConvScope feature maps"); the scale of the
        maps is stated after it.
    max_pixels : int
        Largest sheet (width x height). Beyond it all maps are shrunk by the smallest
        integer factor N that fits (block mean) and the title says "maps shown at 1/N".
    font_size : int
        Pixel size of the text (Pillow's default font).
    return_layout : bool
        Also return a :class:`SheetLayout` (where every map and colour bar is).

    Returns
    -------
    PIL.Image.Image (mode "RGB"), or ``(image, SheetLayout)`` with ``return_layout``.

    Raises
    ------
    ValueError
        ``ranges`` or ``luts`` do not match the levels (the message names the level),
        a range is not finite, or even 1-pixel maps leave the sheet above
        ``max_pixels`` (the text alone needs more).

    Speed: per map, vectorised indices and one palette conversion in Pillow (a 1080p
    RGB image with three stages, 12 maps of 1920x1080 on a 5884x4176 sheet, renders in
    about 0.15 s).
    """
    levels = _levels(result)
    if len(ranges) < len(levels) or len(luts) < len(levels):
        raise ValueError(f"the result has {len(levels)} levels (input + "
                         f"{len(levels) - 1} stages) but ranges has {len(ranges)} and "
                         f"luts {len(luts)}")
    if font_size < 4 or max_pixels < 1:
        raise ValueError(f"font_size must be >= 4 and max_pixels >= 1, got "
                         f"{font_size} and {max_pixels}")
    lut3 = [_rgb_lut(luts[li], li) for li in range(len(levels))]
    for li, lvl in enumerate(levels):
        rs = ranges[li]
        if len(rs) != lvl.maps.shape[0]:
            raise ValueError(f"level {li} has {lvl.maps.shape[0]} maps but "
                             f"{len(rs)} ranges")
        if len(lvl.columns) != lvl.maps.shape[0] or len(lvl.labels) != lvl.maps.shape[0]:
            raise ValueError(f"level {li} has {lvl.maps.shape[0]} maps but "
                             f"{len(lvl.labels)} labels and {len(lvl.columns)} columns")
        for m, (lo, hi) in enumerate(rs):
            if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
                raise ValueError(f"level {li} map {m}: the range must be finite with "
                                 f"lo <= hi, got ({lo}, {hi})")
    tf = _Typeface(int(font_size))
    described = [_describe(li, lvl, ranges[li], tf) for li, lvl in enumerate(levels)]
    footer = f"Stopped: {result.error}" if getattr(result, "error", None) else ""
    heading = tf.clean(title) or "ConvScope feature maps"

    def plan(factor: int) -> _Plan:
        scale = ("one map cell = one pixel" if factor == 1 else
                 f"maps shown at 1/{factor} (mean of {factor}x{factor} cells)")
        return _plan(described, factor, tf, f"{heading} · {scale}", footer)

    layout = plan(1)
    factor = 1
    if layout.width * layout.height > max_pixels:
        top = max(max(lv.shape[1:]) for lv in described)
        if top < 2 or _area(plan(top)) > max_pixels:
            smallest = _area(plan(max(top, 1)))
            raise ValueError(f"the sheet needs at least {smallest:,} pixels even with every "
                             f"map at 1/{top}, more than max_pixels = {max_pixels:,}")
        lo, hi = 1, top           # the area falls as the factor grows: bisect
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _area(plan(mid)) > max_pixels:
                lo = mid
            else:
                hi = mid
        factor, layout = hi, plan(hi)

    image = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    for li, lvl in enumerate(levels):
        for m in range(lvl.maps.shape[0]):
            x, y, w, h = layout.boxes[(li, m)]
            data = lvl.maps[m]
            if factor > 1:
                data = preview(np.asarray(data, dtype=np.float32), factor)
            lo, hi = ranges[li][m]
            image.paste(_colour(data, float(lo), float(hi), lut3[li]), (x, y))
        _draw_bar(image, layout.bars[li], lut3[li], described[li], tf)
    draw = ImageDraw.Draw(image)
    for x, y, text in layout.texts:
        draw.text((x, y), tf.clean(text), fill=TEXT, font=tf.font)
    if not return_layout:
        return image
    return image, SheetLayout(dict(layout.boxes), dict(layout.bars), factor, image.size,
                              tf.clean(layout.title))


def _area(p: _Plan) -> int:
    return p.width * p.height


def _draw_bar(image: Image.Image, box, lut3: np.ndarray, lv: _Level, tf: _Typeface) -> None:
    x, y, w, h = box
    pos = np.arange(h - 1, -1, -1, dtype=np.float64) / max(h - 1, 1)   # 1 at the top
    rgb = lut3[np.rint(pos * 255.0).astype(np.intp)]
    block = np.repeat(rgb[:, None, :], w, axis=1)
    image.paste(Image.fromarray(np.ascontiguousarray(block)), (x, y))
    draw = ImageDraw.Draw(image)
    draw.rectangle((x - 1, y - 1, x + w, y + h), outline=TEXT)
    tick = max(3, tf.size // 3)
    for pos, _ in lv.ticks:
        ty = y + round((1.0 - pos) * (h - 1))
        draw.line((x + w, ty, x + w + tick, ty), fill=TEXT)
    if lv.has_nan:
        sy = y + h + tf.line // 2 + 2
        side = max(6, tf.line - 6)
        draw.rectangle((x, sy + 2, x + side, sy + 2 + side), fill=NAN_COLOUR, outline=TEXT)


# ----------------------------------------------------------------------------- save


def sheet_format(path) -> str:
    """"PNG" or "PDF" from ``path``'s extension; ValueError naming any other."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in SHEET_FORMATS:
        shown = ext or "no extension"
        raise ValueError(f"cannot write a sheet as '{shown}' ({os.fspath(path)}): "
                         f"use .png or .pdf")
    return SHEET_FORMATS[ext]


def save_sheet(image, path) -> None:
    """Write ``image`` to ``path`` atomically as PNG or PDF, by the extension.

    Both are lossless: the PDF is one page holding the picture as a Flate-compressed
    RGB image (Pillow's own PDF writer stores RGB as JPEG, which would blur one-cell
    detail), at 72 pixels per inch unless that makes the page longer than 200 inches.
    An existing file at ``path`` stays as it was if writing fails.

    Raises ValueError naming the extension when it is not .png or .pdf, OSError
    naming ``path`` when it cannot be written.
    """
    fmt = sheet_format(path)
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    if fmt == "PNG":
        buf = io.BytesIO()
        rgb.save(buf, format="PNG", compress_level=3)  # level 6: 2.4x the time, 9 % smaller
        data = buf.getvalue()
    else:
        data = _pdf_bytes(rgb)
    atomic_write_bytes(path, data)


def _pdf_bytes(image: Image.Image, title: str = "ConvScope sheet") -> bytes:
    """A one-page PDF holding the RGB ``image`` losslessly (FlateDecode)."""
    w, h = image.size
    dpi = max(72.0, max(w, h) * 72.0 / _PDF_MAX_POINTS)
    pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
    pixels = zlib.compress(image.convert("RGB").tobytes(), 3)
    content = f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode()
    safe_title = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.4f} {ph:.4f}] "
         f"/Resources << /XObject << /Im0 4 0 R >> /ProcSet [/PDF /ImageC] >> "
         f"/Contents 5 0 R >>").encode(),
        (f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
         f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(pixels)} >>\nstream\n"
         ).encode() + pixels + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        f"<< /Title ({safe_title}) /Producer (ConvScope) >>".encode("latin-1", "replace"),
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R "
              f">>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
