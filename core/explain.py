"""Explanations of single output pixels, and receptive fields across stages.

:func:`explain` answers "where does this number come from?" for any map position of
a :class:`~core.pipeline.PipelineResult`: for a convolution the input window of every
map it reads (padding cells marked), the applied weights, the element-wise products,
their sum, the bias and the value; for an activation the input and the function; for
pooling the window and its winner (max/min) or its divisor (average). The arithmetic
is also written out as text (``"105*5 + 102*-1 + ... = 320"``).

The window is gathered independently of the engine (index arithmetic per padding
mode), and the sum is recomputed in float64, so an explanation is a check of the
engine, not a copy of its output.

:func:`receptive_field` maps a position back to the box it depends on at every
earlier level down to the image; :func:`project` maps a position at one level to
the corresponding boxes at every level (back through receptive fields, forward
through the outputs whose windows contain it), which the GUI uses to link the
crosshair across maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import conv_geometry, pool_geometry
from .padding import source_index
from .pipeline import ActivationStage, ConvStage, PipelineResult, PoolStage, activate

__all__ = ["Explanation", "explain", "receptive_field", "project", "format_arithmetic",
           "format_number"]


@dataclass
class Explanation:
    """Everything behind one output value.

    Attributes
    ----------
    kind : "input", "conv", "activation" or "pool"
    level, map_index, row, col : where the value is
    value : float
        The value the engine computed (float32, as shown on the map).
    inputs : list of int
        The input maps read (indices into the previous level's maps).
    window : ndarray (len(inputs), kh, kw)
        The input values under the window (padding cells hold the padding value).
    rows, cols : ndarray (kh,), (kw,)
        Input coordinates of the window's rows/columns (-1: outside the input).
    in_input : ndarray of bool (kh, kw)
        True where the window cell is a real input pixel (False: padding).
    weights, products : ndarray (len(inputs), kh, kw), conv only
    total : float   sum of products (conv), or the pooled/activated input
    bias : float    conv only
    winner : (row, col) in the input, max/min pooling only
    divisor : int   average pooling only
    text : str      the arithmetic written out
    """

    kind: str
    level: int
    map_index: int
    row: int
    col: int
    value: float
    label: str = ""
    inputs: list[int] = field(default_factory=list)
    window: np.ndarray | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    in_input: np.ndarray | None = None
    weights: np.ndarray | None = None
    products: np.ndarray | None = None
    total: float = 0.0
    bias: float = 0.0
    pre_activation: float | None = None
    function: str = ""
    winner: tuple[int, int] | None = None
    divisor: int | None = None
    text: str = ""
    recomputed: float = 0.0


def format_number(v: float, digits: int = 4) -> str:
    """Compact number for arithmetic text: integers without decimals, else ``digits``
    significant digits (``-0`` shown as ``0``)."""
    v = float(v)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    text = f"{v:.{digits}g}"
    return "0" if float(text) == 0 else text


def format_arithmetic(values, weights, bias: float, result: float, max_terms: int = 12) -> str:
    """``"105*5 + 102*-1 + ... + 4 = 320"`` (long sums are elided in the middle)."""
    terms = [f"{format_number(v)}*{format_number(w)}" for v, w in zip(np.ravel(values), np.ravel(weights))]
    if len(terms) > max_terms:
        head = max_terms // 2
        terms = terms[:head] + [f"... ({len(terms) - max_terms} more)"] + terms[-(max_terms - head):]
    s = " + ".join(terms)
    if bias:
        s += f" + {format_number(bias)}"
    return f"{s} = {format_number(result)}"


def _check_position(res: PipelineResult, level: int, map_index: int, row: int, col: int):
    if not -1 <= level < len(res.stages):
        raise IndexError(f"level {level} out of range: the result has {len(res.stages)} "
                         f"stages (and the input, level -1)")
    lvl = res.level(level)
    m, h, w = lvl.maps.shape
    if not (0 <= map_index < m and 0 <= row < h and 0 <= col < w):
        raise IndexError(f"position (map {map_index}, row {row}, col {col}) is outside "
                         f"{lvl.name}'s {m} maps of {h}x{w}")
    return lvl


def explain(res: PipelineResult, level: int, map_index: int, row: int, col: int) -> Explanation:
    """Explain the value at ``(map_index, row, col)`` of level ``level`` (-1: the input)."""
    lvl = _check_position(res, level, map_index, row, col)
    value = float(lvl.maps[map_index, row, col])
    ex = Explanation("input", level, map_index, row, col, value, lvl.labels[map_index])
    if level < 0:
        ex.text = f"{lvl.labels[map_index]}[{row}, {col}] = {format_number(value)} (image pixel)"
        ex.recomputed = value
        return ex
    prev = res.level(level - 1)
    st = lvl.stage
    parents = lvl.parents[map_index]
    ex.inputs = list(parents)
    x = prev.maps
    if isinstance(st, ActivationStage):
        ex.kind = "activation"
        pre = float(x[parents[0], row, col])
        ex.pre_activation = pre
        ex.function = st.function
        ex.recomputed = float(activate(np.array([pre], np.float64), st.function, st.alpha)[0])
        fname = {"leaky_relu": f"leaky_relu_{st.alpha:g}"}.get(st.function, st.function)
        ex.text = f"{fname}({format_number(pre)}) = {format_number(ex.recomputed)}"
        return ex
    if isinstance(st, ConvStage):
        ex.kind = "conv"
        kh, kw = st.kernels[0].shape
        g = conv_geometry(x.shape[1:], (kh, kw), st.stride, st.padding, st.dilation)
        mode = st.padding_mode
        cval = 0.0 if mode == "zeros" else st.cval
    else:
        ex.kind = "pool"
        g = pool_geometry(x.shape[1:], st.kernel_size, st.stride, st.padding, st.dilation,
                          st.ceil_mode)
        kh, kw = g[0].kernel, g[1].kernel
        mode = "zeros"
        cval = np.nan  # marks padding; pooling never reads it
    # window taps in input coordinates (negative or past the end: padding)
    prow = row * g[0].stride + np.arange(kh) * g[0].dilation - g[0].pad_before
    pcol = col * g[1].stride + np.arange(kw) * g[1].dilation - g[1].pad_before
    rows = source_index(prow, g[0].in_size, mode)
    cols = source_index(pcol, g[1].in_size, mode)
    ex.rows, ex.cols = rows, cols
    inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    real = ((prow >= 0) & (prow < g[0].in_size))[:, None] & \
        ((pcol >= 0) & (pcol < g[1].in_size))[None, :]
    ex.in_input = real
    win = np.full((len(parents), kh, kw), cval, np.float64)
    for p, m in enumerate(parents):
        src = x[m].astype(np.float64)
        win[p][inside] = src[np.clip(rows, 0, None)[:, None].repeat(kw, 1)[inside],
                             np.clip(cols, 0, None)[None, :].repeat(kh, 0)[inside]]
    ex.window = win
    if ex.kind == "conv":
        nk = len(st.kernels)
        if st.mode == "per_channel":
            ker = st.kernels[map_index % nk]
            eff = ker.effective()
            w = eff[parents[0]][None] if eff.ndim == 3 else eff[None]
        else:
            ker = st.kernels[map_index]
            eff = ker.effective()
            w = eff if eff.ndim == 3 else np.broadcast_to(eff, win.shape)
        ex.weights = np.array(w, np.float64)
        ex.products = win * ex.weights
        ex.total = float(ex.products.sum())
        ex.bias = float(ker.bias)
        ex.recomputed = ex.total + ex.bias
        text = format_arithmetic(win, ex.weights, ex.bias, ex.recomputed)
        if ker.divisor != 1:
            text += f"   (weights already divided by {format_number(ker.divisor)})"
        ex.text = text
        return ex
    # pooling
    vals = np.where(real[None], win, np.nan)[0]
    if st.mode in ("max", "min"):
        flat = np.where(real.ravel(), vals.ravel(), -np.inf if st.mode == "max" else np.inf)
        k = int(np.nanargmax(flat) if st.mode == "max" else np.nanargmin(flat)) \
            if not np.isnan(flat).any() else int(np.flatnonzero(np.isnan(flat))[0])
        a, b = divmod(k, kw)
        ex.winner = (int(prow[a]), int(pcol[b]))
        ex.recomputed = float(flat[k])
        ex.total = ex.recomputed
        shown = ", ".join(format_number(v) for v in vals[real])
        ex.text = f"{st.mode}({shown}) = {format_number(ex.recomputed)} at row {prow[a]}, col {pcol[b]}"
    elif st.mode == "avg":
        count_rows = _count(g[0], st.count_include_pad, row)
        count_cols = _count(g[1], st.count_include_pad, col)
        ex.divisor = max(1, count_rows * count_cols)
        ex.total = float(np.nansum(vals))
        ex.recomputed = ex.total / ex.divisor
        shown = " + ".join(format_number(v) for v in vals[real])
        note = " (padding counted)" if st.count_include_pad and ex.divisor > real.sum() else ""
        ex.text = f"({shown}) / {ex.divisor}{note} = {format_number(ex.recomputed)}"
    else:  # l2
        ex.total = float(np.nansum(vals ** 2))
        ex.recomputed = float(np.sqrt(ex.total))
        shown = " + ".join(f"{format_number(v)}^2" for v in vals[real])
        ex.text = f"sqrt({shown}) = {format_number(ex.recomputed)}"
    return ex


def _count(g, include_pad: bool, pos: int) -> int:
    taps = pos * g.stride - g.pad_before + np.arange(g.kernel) * g.dilation
    lo, hi = (-g.pad_before, g.in_size + g.pad_after) if include_pad else (0, g.in_size)
    return int(((taps >= lo) & (taps < hi)).sum())


def _stage_axes(st, in_hw):
    """(row geometry, col geometry, padding mode) of a conv/pool stage, None otherwise."""
    if isinstance(st, ConvStage):
        g = conv_geometry(in_hw, st.kernels[0].shape, st.stride, st.padding, st.dilation)
        return g[0], g[1], st.padding_mode
    if isinstance(st, PoolStage):
        g = pool_geometry(in_hw, st.kernel_size, st.stride, st.padding, st.dilation,
                          st.ceil_mode)
        return g[0], g[1], "zeros"  # pooling never reads its padding
    return None


def _taps(outputs: np.ndarray, g) -> np.ndarray:
    return outputs[:, None] * g.stride - g.pad_before + np.arange(g.kernel)[None, :] * g.dilation


def _back(lo: int, hi: int, g, mode: str):
    """Input cells read (through the padding mode) by outputs lo..hi along one axis."""
    src = source_index(_taps(np.arange(lo, hi + 1), g), g.in_size, mode)
    src = src[src >= 0]
    return (int(src.min()), int(src.max())) if src.size else None


def _forward(lo: int, hi: int, g, n_out: int, mode: str):
    """Outputs along one axis whose window reads any input cell in lo..hi."""
    src = source_index(_taps(np.arange(n_out), g), g.in_size, mode)
    hit = np.flatnonzero(((src >= lo) & (src <= hi)).any(axis=1))
    return (int(hit.min()), int(hit.max())) if hit.size else None


def receptive_field(res: PipelineResult, level: int, row: int, col: int, *, clip: bool = True):
    """The box each earlier level contributes to position (row, col) of ``level``.

    Returns ``{level: (top, bottom, left, right)}`` (inclusive) for every level from
    ``level`` down to -1 (the image). With ``clip`` (default) each box spans the cells
    actually read, through the padding mode (a circular border reads the far edge,
    so the box can span the whole axis); without, the boxes are the plain window
    arithmetic and show how far into the padding they reach.
    """
    _check_position(res, level, 0, row, col)
    boxes = {level: (row, row, col, col)}
    top, bottom, left, right = row, row, col, col
    for lv in range(level, -1, -1):
        st = res.stages[lv].stage
        axes = _stage_axes(st, res.level(lv - 1).maps.shape[1:])
        if axes is not None:
            gh, gw, mode = axes
            if clip:
                rows, cols = _back(top, bottom, gh, mode), _back(left, right, gw, mode)
                if rows is None or cols is None:  # only padding is read
                    break
                (top, bottom), (left, right) = rows, cols
            else:
                top, bottom = (top * gh.stride - gh.pad_before,
                               bottom * gh.stride - gh.pad_before + gh.span - 1)
                left, right = (left * gw.stride - gw.pad_before,
                               right * gw.stride - gw.pad_before + gw.span - 1)
        boxes[lv - 1] = (top, bottom, left, right)
    return boxes


def project(res: PipelineResult, level: int, row: int, col: int):
    """Boxes at every level that correspond to position (row, col) of ``level``.

    Earlier levels get the receptive field; later levels get the outputs whose
    windows read the position (through their padding modes). Returns
    ``{level: (top, bottom, left, right)}`` inclusive; a level where nothing
    corresponds is omitted.
    """
    boxes = receptive_field(res, level, row, col)
    top, bottom, left, right = row, row, col, col
    for lv in range(level + 1, len(res.stages)):
        st = res.stages[lv].stage
        axes = _stage_axes(st, res.level(lv - 1).maps.shape[1:])
        if axes is not None:
            gh, gw, mode = axes
            out_h, out_w = res.stages[lv].maps.shape[1:]
            rows = _forward(top, bottom, gh, out_h, mode)
            cols = _forward(left, right, gw, out_w, mode)
            if rows is None or cols is None:
                break
            (top, bottom), (left, right) = rows, cols
        boxes[lv] = (top, bottom, left, right)
    return boxes
