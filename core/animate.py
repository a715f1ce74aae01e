"""Watch a stage compute: the steps of a convolution or pooling stage, and frames of them.

:func:`steps` walks the output cells of one map of one stage in row-major order, as
the window slides with the stage's stride, dilation and padding. Each step carries
the :class:`~core.explain.Explanation` of its cell (the window, weights, products,
bias, pooling winner), so what is drawn is what ``core.explain`` computed. With
``granularity="tap"`` a convolution cell is walked one product at a time (the
running sum builds up), then the bias is added; ``"cell"`` gives one step per cell.

:func:`render_step` draws one step as a picture (Pillow, no Qt): the input around
the window with its numbers (padding cells hatched and filled per padding mode),
the kernel over the window, the products, the sum so far, and the output map
filling in. :func:`save_animation` writes frames as an animated GIF or APNG, for
slides. The GUI's step-through shows the same frames.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .explain import Explanation, explain, format_number
from .fileio import atomic_write_bytes
from .geometry import conv_geometry, pool_geometry
from .padding import source_index
from .pipeline import ConvStage, PipelineResult, PoolStage

__all__ = ["Step", "steps", "count_steps", "render_step", "save_animation",
           "AnimationError", "ANIMATION_SUFFIXES"]

ANIMATION_SUFFIXES = (".gif", ".png", ".apng")


class AnimationError(ValueError):
    """The stage, map or file cannot be animated; the message says why."""


@dataclass
class Step:
    """One step of a stage's computation.

    ``cell`` counts output cells in row-major order; ``tap`` is how many products
    are summed so far (``taps`` in all; for pooling and for ``"cell"`` steps it is
    ``taps``); ``done`` is True once the cell's value is complete (bias added, or
    the pooling result). ``running`` is the sum so far (conv) or the value (pool);
    ``partials`` the per-input-channel sums of a summing convolution.
    """

    level: int
    map_index: int
    cell: int
    row: int
    col: int
    tap: int
    taps: int
    done: bool
    running: float
    partials: list
    ex: Explanation

    @property
    def kind(self) -> str:
        return self.ex.kind


def _check(res: PipelineResult, level: int, map_index: int):
    if not 0 <= level < len(res.stages):
        raise AnimationError(f"stage {level + 1} does not exist: the pipeline has "
                             f"{len(res.stages)} stage(s)")
    lvl = res.stages[level]
    if not isinstance(lvl.stage, (ConvStage, PoolStage)):
        raise AnimationError(f"stage {level + 1} is an activation: only convolution and "
                             f"pooling stages slide a window")
    if not 0 <= map_index < lvl.maps.shape[0]:
        raise AnimationError(f"stage {level + 1} has {lvl.maps.shape[0]} map(s); map "
                             f"{map_index + 1} does not exist")
    return lvl


def count_steps(res: PipelineResult, level: int, map_index: int, *,
                granularity: str = "cell", cells: int | None = None) -> int:
    lvl = _check(res, level, map_index)
    n = lvl.maps.shape[1] * lvl.maps.shape[2]
    n = n if cells is None else min(n, int(cells))
    if granularity == "cell" or isinstance(lvl.stage, PoolStage):
        return n
    kh, kw = lvl.stage.kernels[0].shape
    return n * (kh * kw + 1)


def steps(res: PipelineResult, level: int, map_index: int, *, granularity: str = "cell",
          cells: int | None = None, start: int = 0) -> Iterator[Step]:
    """The steps of map ``map_index`` of stage ``level`` (0-based), from output cell
    ``start``, at most ``cells`` cells."""
    if granularity not in ("cell", "tap"):
        raise ValueError(f"granularity must be 'cell' or 'tap', got {granularity!r}")
    lvl = _check(res, level, map_index)
    h, w = lvl.maps.shape[1:]
    end = h * w if cells is None else min(h * w, start + int(cells))
    for cell in range(start, end):
        row, col = divmod(cell, w)
        ex = explain(res, level, map_index, row, col)
        if ex.kind == "pool":
            taps = int(np.asarray(ex.in_input).size)
            yield Step(level, map_index, cell, row, col, taps, taps, True, ex.recomputed,
                       [], ex)
            continue
        prods = ex.products
        taps = prods.shape[1] * prods.shape[2]
        partials = [float(p.sum()) for p in prods] if prods.shape[0] > 1 else []
        if granularity == "tap":
            flat = prods.sum(axis=0).ravel()
            running = np.cumsum(flat)
            for t in range(taps):
                yield Step(level, map_index, cell, row, col, t + 1, taps, False,
                           float(running[t]), partials, ex)
        yield Step(level, map_index, cell, row, col, taps, taps, True, ex.recomputed,
                   partials, ex)


# ---------------------------------------------------------------------- drawing

_BG = (255, 255, 255)
_INK = (30, 30, 30)
_MUTED = (120, 120, 120)
_GRID = (200, 200, 200)
_WINDOW = (230, 40, 200)        # the window / current cell (magenta, as the app marks)
_PAD = (238, 238, 238)
_TAP = (255, 214, 0)            # the product being added
_fonts: dict[int, ImageFont.ImageFont] = {}


def _font(size: int):
    size = int(max(8, size))
    if size not in _fonts:
        try:
            _fonts[size] = ImageFont.load_default(size=size)
        except (TypeError, OSError):  # Pillow without FreeType: the bitmap font
            _fonts[size] = ImageFont.load_default()
    return _fonts[size]


def _text_w(draw, text, font) -> float:
    return draw.textlength(text, font=font)


def _grey(v: float, lo: float, hi: float) -> tuple[int, int, int]:
    if not math.isfinite(v) or hi <= lo:
        return (200, 200, 200)
    t = min(1.0, max(0.0, (v - lo) / (hi - lo)))
    g = int(round(60 + 195 * t))
    return (g, g, g)


def _cell_text(v: float) -> str:
    if not math.isfinite(v):
        return format_number(v)
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{v:.1e}"
    return format_number(v, 3)


def _draw_grid(draw, x0, y0, cell, values, *, lo, hi, pad=None, labels=True, font=None,
               highlight=None, hollow=None):
    """A grid of cells shaded by value with their numbers. ``pad``: bool mask of
    padding cells (hatched); ``values`` NaN: empty cell; ``highlight``: set of (i, j)
    outlined in the window colour."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            x, y = x0 + j * cell, y0 + i * cell
            v = float(values[i, j])
            is_pad = pad is not None and pad[i, j]
            if hollow is not None and hollow[i, j]:
                fill = _BG
            elif is_pad:
                fill = _PAD
            else:
                fill = _grey(v, lo, hi) if math.isfinite(v) else _BG
            draw.rectangle([x, y, x + cell, y + cell], fill=fill, outline=_GRID)
            if is_pad:
                for k in range(-cell, cell, 6):
                    draw.line([x + max(0, k), y + max(0, -k), x + min(cell, k + cell),
                               y + min(cell, cell - k)], fill=(215, 215, 215))
            if labels and math.isfinite(v) and (hollow is None or not hollow[i, j]):
                text = _cell_text(v)
                ink = _INK if (is_pad or sum(fill) / 3 > 140) else (255, 255, 255)
                tw = _text_w(draw, text, font)
                if tw <= cell - 2:
                    draw.text((x + (cell - tw) / 2, y + cell / 2), text, fill=ink, font=font,
                              anchor="lm")
    for (i, j) in (highlight or ()):
        x, y = x0 + j * cell, y0 + i * cell
        draw.rectangle([x, y, x + cell, y + cell], outline=_WINDOW, width=3)


def window_view(res: PipelineResult, step: Step, max_cells: int):
    """The padded input around the window: (values, padding mask, window cells,
    (row0, col0) of the crop in padded-input coordinates, title)."""
    lvl = res.stages[step.level]
    prev = res.level(step.level - 1)
    st = lvl.stage
    ex = step.ex
    src_map = ex.inputs[0]
    x = prev.maps[src_map].astype(np.float64)
    h, w = x.shape
    if isinstance(st, ConvStage):
        g = conv_geometry((h, w), st.kernels[0].shape, st.stride, st.padding, st.dilation)
        mode, cval = st.padding_mode, (0.0 if st.padding_mode == "zeros" else st.cval)
    else:
        g = pool_geometry((h, w), st.kernel_size, st.stride, st.padding, st.dilation,
                          st.ceil_mode)
        mode, cval = "zeros", float("nan")
    gh, gw = g
    ph, pw = h + gh.pad_before + gh.pad_after, w + gw.pad_before + gw.pad_after
    # window taps in padded coordinates
    r_taps = step.row * gh.stride + np.arange(gh.kernel) * gh.dilation
    c_taps = step.col * gw.stride + np.arange(gw.kernel) * gw.dilation
    rows_n = min(ph, max_cells)
    cols_n = min(pw, max_cells)
    r0 = int(np.clip(r_taps.min() - (rows_n - (r_taps.max() - r_taps.min() + 1)) // 2, 0,
                     ph - rows_n))
    c0 = int(np.clip(c_taps.min() - (cols_n - (c_taps.max() - c_taps.min() + 1)) // 2, 0,
                     pw - cols_n))
    pr = np.arange(r0, r0 + rows_n) - gh.pad_before
    pc = np.arange(c0, c0 + cols_n) - gw.pad_before
    sr = source_index(pr, h, mode)
    sc = source_index(pc, w, mode)
    vals = np.full((rows_n, cols_n), cval, np.float64)
    ok = (sr >= 0)[:, None] & (sc >= 0)[None, :]
    vals[ok] = x[np.clip(sr, 0, None)[:, None].repeat(cols_n, 1)[ok],
                 np.clip(sc, 0, None)[None, :].repeat(rows_n, 0)[ok]]
    pad = ~(((pr >= 0) & (pr < h))[:, None] & ((pc >= 0) & (pc < w))[None, :])
    window = {(int(i - r0), int(j - c0)) for i in r_taps for j in c_taps
              if r0 <= i < r0 + rows_n and c0 <= j < c0 + cols_n}
    return vals, pad, window, (r0, c0), prev.labels[src_map], (h, w), \
        (gh.pad_before, gw.pad_before)


def render_step(res: PipelineResult, step: Step, size: tuple[int, int] = (960, 540),
                *, hide_values: bool = False) -> Image.Image:
    """One frame: input window, kernel, products, the sum so far, the output map.
    ``hide_values``: "predict, then reveal": the cell's value is shown as "?"."""
    W, H = size
    img = Image.new("RGB", (W, H), _BG)
    d = ImageDraw.Draw(img)
    unit = max(10, min(W, H * 16 // 9) // 48)           # base text size
    title_f, text_f = _font(unit * 1.25), _font(unit)
    ex = step.ex
    lvl = res.stages[step.level]
    st = lvl.stage
    oh, ow = lvl.maps.shape[1:]
    d.text((unit, unit * 0.6), f"Stage {step.level + 1} · {st.describe()} · "
                               f"{lvl.labels[step.map_index]}", fill=_INK, font=title_f)
    d.text((unit, unit * 2.3), f"output cell row {step.row}, col {step.col}  "
                               f"({step.cell + 1} of {oh * ow})", fill=_MUTED, font=text_f)
    for two_lines in (False, True):
        top = int(unit * (6.9 if two_lines else 5.6))
        avail_h = H - top - int(unit * 6.5)
        # ---- input around the window (left)
        # as many cells as stay legible (about 26 px each for a number), 5 to 11
        max_cells = int(np.clip(avail_h // 26, 5, 11))
        vals, pad, window, _crop_origin, in_name, in_hw, _pads = \
            window_view(res, step, max_cells)
        rn, cn = vals.shape
        cell = int(max(12, min(avail_h / rn, (W * 0.36) / cn, unit * 4)))
        in_label = f"input {in_name} ({in_hw[0]}x{in_hw[1]})"
        in_note = "window + padding" if pad.any() else "window"
        if two_lines or _text_w(d, f"{in_label}, {in_note}", text_f) <= cn * cell + unit * 1.5:
            break
    fin = vals[~pad & np.isfinite(vals)] if (~pad).any() else vals[np.isfinite(vals)]
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
    cell_f = _font(min(unit, cell * 0.3))
    x_in = unit
    if not two_lines:
        d.text((x_in, top - unit * 1.4), f"{in_label}, {in_note}", fill=_INK, font=text_f)
    else:  # two lines rather than running into the kernel's label
        d.text((x_in, top - unit * 2.7), in_label, fill=_INK, font=text_f)
        d.text((x_in, top - unit * 1.4), in_note, fill=_MUTED, font=text_f)
        in_label = max(in_label, in_note, key=lambda t: _text_w(d, t, text_f))
    _draw_grid(d, x_in, top, cell, vals, lo=lo, hi=hi, pad=pad, font=cell_f,
               highlight=window)
    x_mid = x_in + max(cn * cell, _text_w(d, in_label, text_f)) + unit * 2
    # ---- kernel and products (middle)
    if ex.kind == "conv":
        weights = ex.weights[0]
        kh, kw = weights.shape
        kc = int(max(12, min((H - top - unit * 6) / (2 * kh + 2), (W * 0.22) / kw, unit * 4)))
        kf = _font(min(unit, kc * 0.3))
        d.text((x_mid, top - unit * 1.4), "kernel (weights)", fill=_INK, font=text_f)
        wl = float(np.abs(weights).max()) or 1.0
        _draw_grid(d, x_mid, top, kc, weights, lo=-wl, hi=wl, font=kf)
        py = top + kh * kc + unit * 2
        d.text((x_mid, py - unit * 1.4), "window x weights", fill=_INK, font=text_f)
        prods = ex.products.sum(axis=0)
        hollow = np.zeros(prods.shape, bool)
        if step.tap < step.taps:
            hollow.ravel()[step.tap:] = True
        pl = float(np.abs(prods).max()) or 1.0
        current = set() if step.done or step.tap == 0 else {divmod(step.tap - 1, kw)}
        _draw_grid(d, x_mid, py, kc, prods, lo=-pl, hi=pl, font=kf, hollow=hollow,
                   highlight=current)
        y_sum = H - unit * 4.4
        sum_text = f"sum so far = {format_number(step.running)}" if not step.done else \
            f"sum {format_number(ex.total)} + bias {format_number(ex.bias)} = " \
            f"{format_number(ex.recomputed)}"
        if hide_values and step.done:
            sum_text = f"sum {format_number(ex.total)} + bias {format_number(ex.bias)} = ?"
        if step.partials and step.done:
            sum_text = ("per channel: " + ", ".join(format_number(p) for p in step.partials)
                        + f"  →  {sum_text}")
        d.text((x_mid, y_sum), sum_text, fill=_INK, font=text_f)
        x_out = x_mid + max(kw * kc, _text_w(d, "window x weights", text_f)) + unit * 2
    else:
        mode = st.mode
        what = {"max": "the largest value wins", "min": "the smallest value wins",
                "avg": f"the mean: sum / {ex.divisor}", "l2": "the root of the sum of squares"}
        d.text((x_mid, top), f"{mode} pooling:", fill=_INK, font=text_f)
        d.text((x_mid, top + unit * 1.6), what.get(mode, mode), fill=_INK, font=text_f)
        if ex.winner is not None and not hide_values:
            d.text((x_mid, top + unit * 3.2), f"winner at row {ex.winner[0]}, col "
                                              f"{ex.winner[1]}", fill=_MUTED, font=text_f)
        d.text((x_mid, top + unit * 4.8),
               "= ?" if hide_values else f"= {format_number(ex.recomputed)}", fill=_INK,
               font=title_f)
        if ex.winner is not None and not hide_values:  # mark the winner in the window
            wr, wc = ex.winner
            r0_in, c0_in = _crop_origin
            gi, gj = wr + _pads[0] - r0_in, wc + _pads[1] - c0_in
            if 0 <= gi < rn and 0 <= gj < cn:
                d.rectangle([x_in + gj * cell + 3, top + gi * cell + 3,
                             x_in + (gj + 1) * cell - 3, top + (gi + 1) * cell - 3],
                            outline=_TAP, width=3)
        x_out = x_mid + unit * 16
    # ---- the output map filling in (right)
    o_rows, o_cols = min(oh, max_cells), min(ow, max_cells)
    r0 = int(np.clip(step.row - o_rows // 2, 0, oh - o_rows))
    c0 = int(np.clip(step.col - o_cols // 2, 0, ow - o_cols))
    out = lvl.maps[step.map_index, r0:r0 + o_rows, c0:c0 + o_cols].astype(np.float64).copy()
    idx = (np.arange(r0, r0 + o_rows)[:, None] * ow + np.arange(c0, c0 + o_cols)[None, :])
    later = idx > step.cell if step.done else idx >= step.cell
    if hide_values:
        later |= idx == step.cell
    out[later] = np.nan
    full = lvl.maps[step.map_index]
    olo, ohi = float(np.nanmin(full)), float(np.nanmax(full))
    oc = int(max(12, min(avail_h / o_rows, (W - x_out - unit) / o_cols, unit * 4)))
    of = _font(min(unit, oc * 0.3))
    d.text((x_out, top - unit * 1.4), f"output ({oh}x{ow})", fill=_INK, font=text_f)
    _draw_grid(d, x_out, top, oc, out, lo=olo, hi=ohi, font=of,
               highlight={(step.row - r0, step.col - c0)})
    if hide_values:
        qx, qy = x_out + (step.col - c0 + 0.5) * oc, top + (step.row - r0 + 0.5) * oc
        d.text((qx, qy), "?", fill=_WINDOW, font=_font(min(unit * 1.5, oc * 0.6)),
               anchor="mm")
    # ---- the arithmetic (bottom)
    text = ex.text if step.done else _partial_text(ex, step)
    if hide_values and step.done:
        text = text.rpartition(" = ")[0] + " = ?" if " = " in text else "?"
    max_w = W - 2 * unit
    if _text_w(d, text, text_f) > max_w:  # keep the result: cut the middle terms
        head, _, result = text.rpartition(" = ")
        result = " = " + result
        while head and _text_w(d, head + " ..." + result, text_f) > max_w:
            head = head[:max(0, len(head) - 8)].rstrip(" +")
        text = head + " + ..." + result
    d.text((unit, H - unit * 2.2), text, fill=_INK, font=text_f)
    return img


def _partial_text(ex: Explanation, step: Step) -> str:
    win = ex.window.sum(axis=0).ravel() if ex.window.shape[0] == 1 else None
    wts = ex.weights[0].ravel()
    if win is None:
        return f"channels summed: sum so far = {format_number(step.running)}"
    terms = [f"{format_number(v)}*{format_number(w)}" for v, w in zip(win[:step.tap],
                                                                      wts[:step.tap])]
    return " + ".join(terms) + f" = {format_number(step.running)}"


# ---------------------------------------------------------------------- files


def save_animation(frames, path, *, ms_per_frame: int = 400) -> int:
    """Write ``frames`` (PIL images) as an animated GIF (``.gif``) or APNG (``.png``,
    ``.apng``), atomically; returns the number of frames."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise AnimationError(f"'{os.path.basename(path)}': an animation is saved as .gif or "
                             f".png (APNG), not {suffix or 'a file without extension'}")
    frames = list(frames)
    if not frames:
        raise AnimationError("there is nothing to animate (no frames)")
    import io
    buf = io.BytesIO()
    if suffix == ".gif":
        pal = [f.convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for f in frames]
        pal[0].save(buf, "GIF", save_all=True, append_images=pal[1:], duration=ms_per_frame,
                    loop=0, disposal=1)
    else:
        frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:],
                       duration=ms_per_frame, loop=0, default_image=False)
    atomic_write_bytes(path, buf.getvalue())
    return len(frames)
