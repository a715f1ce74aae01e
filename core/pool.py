"""2-D pooling with PyTorch's ``max_pool2d`` / ``avg_pool2d`` semantics, plus min and L2.

Pooling works on the last two axes of any array (``(N, C, H, W)``, ``(C, H, W)`` or
``(H, W)``): every channel is pooled independently, so the brightest R, G and B of a
window may come from different pixels.

Rules (PyTorch's):

- ``stride`` defaults to the window size; padding is symmetric and at most half the
  window;
- max pooling pads with -inf (min pooling with +inf), so padding never wins;
- ``ceil_mode=True`` lets the last window hang off the bottom/right edge, but never
  start in the right padding;
- average pooling divides by the number of window cells inside the *padded* input
  when ``count_include_pad=True`` (PyTorch's default: padded zeros count, cells hanging
  off in ceil mode do not), or by the number of real cells when False (Keras'
  'same' pooling);
- ``"l2"`` is ``sqrt(sum of squares of the real cells)`` (PyTorch's ``lp_pool2d`` with
  ``norm_type=2`` when there is no padding);
- NaN propagates through max/min as in PyTorch.

Max and min pooling without indices are separable: a running maximum over the
window's rows, then over its columns (``kh + kw`` passes instead of ``kh * kw``).
"""

from __future__ import annotations

import numpy as np

from . import _jit
from .geometry import pool_geometry

__all__ = ["pool2d", "pool2d_naive", "pool2d_backward", "POOL_MODES"]

POOL_MODES = ("max", "avg", "min", "l2")
_FILL = {"max": -np.inf, "min": np.inf, "avg": 0.0, "l2": 0.0}


def _check_flags(**flags):
    """PyTorch's rule: the boolean options must be booleans ("False" is not False)."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")


def _prepare(x, kernel_size, stride, padding, dilation, mode, ceil_mode):
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
    if x.ndim < 2 or 0 in x.shape:
        raise ValueError(f"x must have shape (..., H, W) with no empty axis, got {x.shape}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = x.astype(dtype, copy=False)
    geom = pool_geometry(x.shape[-2:], kernel_size, stride, padding, dilation, ceil_mode)
    return x, geom


def _padded(x, geom, fill):
    """x placed in a canvas large enough for every window (padding + ceil overhang)."""
    gh, gw = geom
    need_h = (gh.out - 1) * gh.stride + gh.span
    need_w = (gw.out - 1) * gw.stride + gw.span
    h, w = x.shape[-2:]
    if gh.pad_before == gw.pad_before == 0 and need_h <= h and need_w <= w:
        return x
    canvas_h = max(need_h, h + 2 * gh.pad_before)
    canvas_w = max(need_w, w + 2 * gw.pad_before)
    xp = np.full(x.shape[:-2] + (canvas_h, canvas_w), fill, x.dtype)
    xp[..., gh.pad_before:gh.pad_before + h, gw.pad_before:gw.pad_before + w] = x
    return xp


def _tap(a, axis_geom, i, axis):
    """Slice of ``a`` along ``axis`` (-2 or -1) seen by tap ``i`` of every window."""
    g = axis_geom
    start = i * g.dilation
    sl = slice(start, start + (g.out - 1) * g.stride + 1, g.stride)
    return a[..., sl, :] if axis == -2 else a[..., sl]


def _divisor(geom, include_pad, dtype):
    """Average-pooling divisor per output position (at least 1: an empty window averages to 0)."""
    gh, gw = geom
    div = _axis_counts(gh, include_pad)[:, None] * _axis_counts(gw, include_pad)[None, :]
    return np.maximum(div, 1).astype(dtype)


def _axis_counts(g, include_pad: bool) -> np.ndarray:
    """Per output position: how many taps of the window fall in the counted region."""
    starts = np.arange(g.out) * g.stride - g.pad_before
    taps = starts[:, None] + np.arange(g.kernel)[None, :] * g.dilation
    hi = g.in_size + g.pad_after if include_pad else g.in_size
    lo = -g.pad_before if include_pad else 0
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


def pool2d(x, kernel_size, stride=None, *, padding=0, dilation=1, mode="max", ceil_mode=False,
           count_include_pad=True, return_indices=False, relu=False):
    """Pool the last two axes of ``x``.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    kernel_size, stride, padding, dilation : int or (rows, cols)
        ``stride`` defaults to ``kernel_size``. Output size per axis:
        ``floor_or_ceil((H + 2p - d*(k-1) - 1) / s) + 1``.
    mode : "max", "avg", "min" or "l2"
    ceil_mode, count_include_pad : bool
        As in PyTorch (see the module docstring).
    return_indices : bool
        Also return, for max/min pooling, the flat index ``row * W + col`` of each
        window's winner in its (H, W) input plane (PyTorch's convention; the first
        of tied values wins, a NaN wins over numbers). A window with no real cell
        (only possible with dilation) gives -inf (+inf for min) and index -1.
    relu : bool
        Max pooling: return ``relu(pool2d(x))`` (which equals ``pool2d(relu(x))``),
        the ReLU applied to each output row while it is in cache (a CNN's ReLU + max
        pool pair; see :func:`pool2d_backward`'s ``relu``). NaN stays NaN.

    Returns
    -------
    out : ndarray of shape (..., Ho, Wo), float32 (float64 for float64 input)
    indices : ndarray of int64, same shape, if ``return_indices``

    Raises
    ------
    ValueError
        Unknown mode, padding over half the window, or an empty output (with the
        formula and numbers).
    """
    _check_flags(ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                 return_indices=return_indices)
    x, geom = _prepare(x, kernel_size, stride, padding, dilation, mode, ceil_mode)
    if relu and (mode != "max" or return_indices):
        raise ValueError(f"relu applies to max pooling without indices, not mode {mode!r}"
                         + (" with return_indices" if return_indices else ""))
    if return_indices:
        if mode not in ("max", "min"):
            raise ValueError(f"return_indices needs mode 'max' or 'min', got {mode!r}")
        best, tap = _pool_argext(x, geom, mode)
        return best, _tap_to_flat(tap, geom, x.shape[-1])
    gh, gw = geom
    fast = _pool_jit(x, geom, mode, count_include_pad, relu)
    if fast is not None:
        return fast
    xp = _padded(x, geom, _FILL[mode])
    if mode == "l2":
        xp = np.square(xp)
    op = {"max": np.maximum, "min": np.minimum, "avg": np.add, "l2": np.add}[mode]
    rows = _reduce(xp, gh, -2, op)
    out = _reduce(rows, gw, -1, op)
    if mode == "avg":
        out /= _divisor(geom, count_include_pad, out.dtype)
    elif mode == "l2":
        np.sqrt(out, out=out)
    if relu:
        np.maximum(out, 0, out=out)
    return out


_OPS = {"max": 0, "min": 1, "avg": 2, "l2": 3}
#: output rows per work item of the compiled loop, and the least work worth a thread
_JIT_ROWS = 32
_JIT_TWO_THREADS = 1 << 18
#: at most this many work items for a batch of small maps (enough to balance two threads)
_JIT_MAX_ITEMS = 16


def _pool_jit(x, geom, mode, include_pad, relu=False):
    """The compiled loop (core._jit.pool_rows) for planar or channels-last input, or
    None where it does not apply (numba missing or off, another memory layout): the
    numpy passes below then give the same values. 1080p RGB max 2x2/2: 9.3 -> 4 ms."""
    if not _jit.pool_ready(x.dtype, x.size):
        return None
    gh, gw = geom
    if x.flags.c_contiguous:                     # planar (..., H, W): one "channel"
        lead = x.shape[:-2]
        x3 = x.reshape(-1, x.shape[-2], x.shape[-1])
        c, back = 1, None
    elif x.ndim >= 3 and np.moveaxis(x, -3, -1).flags.c_contiguous:
        # channels-last memory seen as (..., C, H, W): rows of W*C interleaved values
        hwc = np.moveaxis(x, -3, -1)
        lead = x.shape[:-3]
        c = x.shape[-3]
        x3 = hwc.reshape(-1, x.shape[-2], x.shape[-1] * c)
        back = True
    else:
        return None
    n = x3.shape[0]
    out = np.empty((n, gh.out, gw.out * c), x.dtype)
    if mode == "avg":  # per axis: the divisor is their product (as _divisor's)
        div_r = _axis_counts(gh, include_pad).astype(x.dtype)
        div_c = _axis_counts(gw, include_pad).astype(x.dtype)
    else:
        div_r = div_c = np.ones(1, x.dtype)
    op = _OPS[mode]
    if gh.out >= _JIT_ROWS:
        items = [(b, b + 1, r0, min(r0 + _JIT_ROWS, gh.out)) for b in range(n)
                 for r0 in range(0, gh.out, _JIT_ROWS)]
    else:  # a batch of small maps: blocks of whole images (an item per image cost
        # ~10 us of Python each: 1.4 ms for 128 MNIST maps of 8 channels, 0.3 now)
        step = max(1, -(-n // _JIT_MAX_ITEMS))
        items = [(b, min(n, b + step), 0, gh.out) for b in range(0, n, step)]

    def run(n0, n1, r0, r1):
        _jit.pool_rows(x3, out, div_r, div_c, c, op, (gh.kernel, gw.kernel),
                       (gh.stride, gw.stride),
                       (gh.dilation, gw.dilation), (gh.pad_before, gw.pad_before),
                       n0, n1, r0, r1, relu)

    if x.size >= _JIT_TWO_THREADS and len(items) > 1:
        from .conv import _run_shared
        _run_shared(run, items)
    else:
        run(0, n, 0, gh.out)
    if back is None:
        return out.reshape(lead + (gh.out, gw.out))
    return np.moveaxis(out.reshape(lead + (gh.out, gw.out, c)), -1, -3)


def _tiles(geom) -> bool:
    """True when the windows tile the input: stride = window, no padding/dilation/overhang."""
    return all(g.stride == g.kernel and g.dilation == 1 and not g.pad_before
               and g.out * g.kernel <= g.in_size for g in geom)


def _block_view(x, geom):
    """Windows as reshaped axes, with the memory's contiguous axis innermost.

    Returns ``(blocks, reduce_axes, expand, to_view)``: ``blocks`` is (..., Ho, kh,
    Wo, kw) for C-ordered ``x`` or (N, Ho, kh, Wo, kw, C) for channels-last memory;
    ``expand`` indexes an output-shaped array (in the blocks' axis order) to broadcast
    over the window axes; ``to_view`` puts an output-shaped array of ``x``'s axes in
    that order.
    """
    gh, gw = geom
    ho, kh, wo, kw = gh.out, gh.kernel, gw.out, gw.kernel
    if x.ndim == 4 and x.shape[1] > 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous:
        xl = x.transpose(0, 2, 3, 1)[:, :ho * kh, :wo * kw]
        blocks = xl.reshape(x.shape[0], ho, kh, wo, kw, x.shape[1])
        return (blocks, (2, 4), (slice(None), slice(None), None, slice(None), None),
                lambda a: a.transpose(0, 2, 3, 1))
    blocks = x[..., :ho * kh, :wo * kw].reshape(x.shape[:-2] + (ho, kh, wo, kw))
    return (blocks, (-3, -1), (Ellipsis, slice(None), None, slice(None), None), lambda a: a)


def _reduce(a, g, axis, op):
    if g.kernel == 1:
        return _tap(a, g, 0, axis).copy(order="K")  # keeps a channels-last layout
    # the first two taps combined straight into a new array (no copy pass first); a
    # ufunc's new output follows its inputs' memory order, so channels-last stays
    out = op(_tap(a, g, 0, axis), _tap(a, g, 1, axis))
    for i in range(2, g.kernel):
        op(out, _tap(a, g, i, axis), out=out)
    return out


def _pool_argext(x, geom, mode):
    """Running max/min over the window taps: (values, winning tap index per output).

    The tap index is ``i * kw + j`` (-1 for a window with no real cell). Scratch arrays
    follow ``x``'s memory layout, so channels-last activations stay fast.
    """
    gh, gw = geom
    h, w = x.shape[-2:]
    xp = _padded(x, geom, _FILL[mode])
    rows0 = np.arange(gh.out) * gh.stride - gh.pad_before
    cols0 = np.arange(gw.out) * gw.stride - gw.pad_before
    template = _tap(_tap(xp, gh, 0, -2), gw, 0, -1)
    best = np.empty_like(template)
    best.fill(_FILL[mode])
    tap = np.empty_like(template, dtype=np.int16)
    tap.fill(-1)
    better = np.greater if mode == "max" else np.less
    upd = np.empty_like(template, dtype=bool)
    nan = np.empty_like(template, dtype=bool)
    started = False  # True once every window has seen a real cell
    first = True
    for i in range(gh.kernel):
        r = rows0 + i * gh.dilation
        rxs = _tap(xp, gh, i, -2)
        rreal = (r >= 0) & (r < h)
        for j in range(gw.kernel):
            c = cols0 + j * gw.dilation
            real = rreal[:, None] & ((c >= 0) & (c < w))[None, :]
            if not real.any():
                continue
            v = _tap(rxs, gw, j, -1)
            t = i * gw.kernel + j
            full = bool(real.all())
            if full and first:  # the very first tap seen: every window starts with it
                np.copyto(best, v)
                tap.fill(t)
                started = True
                first = False
                continue
            first = False
            # a real cell wins over nothing yet, a larger value, or a NaN (as PyTorch)
            better(v, best, out=upd)
            np.isnan(v, out=nan)
            upd |= nan
            if not started:
                upd |= tap < 0
            if not full:
                upd &= real
            np.copyto(best, v, where=upd)
            np.copyto(tap, t, where=upd)
            started = started or full
    return best, tap


def _tap_to_flat(tap, geom, w):
    """Flat index ``row * W + col`` in the input plane of each winning tap (-1: none)."""
    gh, gw = geom
    rows0 = np.arange(gh.out) * gh.stride - gh.pad_before
    cols0 = np.arange(gw.out) * gw.stride - gw.pad_before
    ti = np.maximum(tap, 0).astype(np.int64)
    r = rows0[:, None] + (ti // gw.kernel) * gh.dilation
    c = cols0[None, :] + (ti % gw.kernel) * gw.dilation
    return np.where(tap >= 0, r * w + c, -1)


def pool2d_naive(x, kernel_size, stride=None, *, padding=0, dilation=1, mode="max",
                 ceil_mode=False, count_include_pad=True, return_indices=False):
    """Reference twin of :func:`pool2d`: explicit loops over every window, float64."""
    if return_indices and mode not in ("max", "min"):
        raise ValueError(f"return_indices needs mode 'max' or 'min', got {mode!r}")
    x, geom = _prepare(x, kernel_size, stride, padding, dilation, mode, ceil_mode)
    gh, gw = geom
    h, w = x.shape[-2:]
    flat = x.reshape(-1, h, w).astype(np.float64)
    out = np.zeros((flat.shape[0], gh.out, gw.out))
    ind = np.zeros(out.shape, np.int64)
    for p in range(flat.shape[0]):
        for oy in range(gh.out):
            for ox in range(gw.out):
                vals, where, counted = [], [], 0
                for a in range(gh.kernel):
                    r = oy * gh.stride - gh.pad_before + a * gh.dilation
                    for b in range(gw.kernel):
                        c = ox * gw.stride - gw.pad_before + b * gw.dilation
                        inside_padded = (-gh.pad_before <= r < h + gh.pad_after
                                         and -gw.pad_before <= c < w + gw.pad_after)
                        real = 0 <= r < h and 0 <= c < w
                        if real:
                            vals.append(flat[p, r, c])
                            where.append(r * w + c)
                        if real or (count_include_pad and inside_padded):
                            counted += 1
                if not vals:  # a window entirely in padding (possible with dilation)
                    out[p, oy, ox] = _FILL[mode] if mode in ("max", "min") else 0.0
                    ind[p, oy, ox] = -1
                elif mode in ("max", "min"):
                    k = 0
                    for t in range(1, len(vals)):
                        if np.isnan(vals[t]) or (vals[t] > vals[k] if mode == "max"
                                                 else vals[t] < vals[k]):
                            k = t
                    out[p, oy, ox], ind[p, oy, ox] = vals[k], where[k]
                elif mode == "avg":
                    out[p, oy, ox] = sum(vals) / max(counted, 1)
                else:
                    out[p, oy, ox] = np.sqrt(sum(v * v for v in vals))
    out = out.reshape(x.shape[:-2] + out.shape[-2:])
    if return_indices:
        return out, ind.reshape(out.shape)
    return out


def _first_only(winner, axes, kh, kw):
    """Clear every winner flag after the first in each window (in place)."""
    def tap(i, j):
        idx = [slice(None)] * winner.ndim
        idx[axes[0]], idx[axes[1]] = i, j
        return winner[tuple(idx)]

    taken = tap(0, 0).copy()
    for i in range(kh):
        for j in range(kw):
            if i == j == 0:
                continue
            t = tap(i, j)
            t &= ~taken
            taken |= t


def _rows_view(a):
    """(N, H, W*C) rows of a planar (C = 1) or channels-last array, and C; or None."""
    if a.flags.c_contiguous:
        return a.reshape(-1, a.shape[-2], a.shape[-1]), 1
    if a.ndim >= 3 and np.moveaxis(a, -3, -1).flags.c_contiguous:
        c = a.shape[-3]
        return np.moveaxis(a, -3, -1).reshape(-1, a.shape[-2], a.shape[-1] * c), c
    return None


def _backward_jit(g, x, geom, mode, output, kernel_size, stride, padding, dilation,
                  ceil_mode, count_include_pad=True, relu=False):
    """Max/min/avg backward by the compiled loops (core._jit.pool_back_rows,
    pool_back_avg_rows), for planar or channels-last ``x`` (the CNN's activations);
    None where it does not apply. The result has ``x``'s memory layout. Conv1's pool in
    the Keras convnet: 6.0 -> 1 ms."""
    if not _jit.pool_back_ready(x.dtype, x.size):
        return None
    xv = _rows_view(x)
    if xv is None:
        return None
    x3, c = xv
    gh, gw = geom

    def rows(a):  # (N, Ho, Wo*C) rows of an output-shaped array, in x's layout
        a = np.asarray(a, dtype=x.dtype)
        if c == 1:
            return np.ascontiguousarray(a).reshape(-1, gh.out, gw.out)
        return np.ascontiguousarray(np.moveaxis(a, -3, -1)).reshape(-1, gh.out, gw.out * c)

    g3 = rows(g)
    tiles = _tiles(geom)
    alloc = np.empty if tiles else np.zeros   # tiling windows write every covered cell
    if c == 1:
        gx = alloc(x.shape, x.dtype)
        gx3 = gx.reshape(x3.shape)
    else:
        gxl = alloc(np.moveaxis(x, -3, -1).shape, x.dtype)     # channels-last memory
        gx = np.moveaxis(gxl, -1, -3)
        gx3 = gxl.reshape(x3.shape)
    if tiles:  # the cells no window covers
        gx3[:, gh.out * gh.kernel:, :] = 0
        gx3[:, :, gw.out * gw.kernel * c:] = 0
    n = x3.shape[0]
    shape = ((gh.kernel, gw.kernel), (gh.stride, gw.stride), (gh.dilation, gw.dilation),
             (gh.pad_before, gw.pad_before))
    if mode == "avg":
        div_r = _axis_counts(gh, count_include_pad).astype(x.dtype)
        div_c = _axis_counts(gw, count_include_pad).astype(x.dtype)

        def run(n0, n1, r0, r1):
            _jit.pool_back_avg_rows(g3, gx3, div_r, div_c, c, *shape, n0, n1, r0, r1)
    else:
        if output is None:
            output = pool2d(x, kernel_size, stride, padding=padding, dilation=dilation,
                            mode=mode, ceil_mode=ceil_mode)
        y3 = rows(output)
        op = 0 if mode == "max" else 1

        def run(n0, n1, r0, r1):
            _jit.pool_back_rows(x3, y3, g3, gx3, c, op, *shape, n0, n1, r0, r1, relu)

    if x.size < _JIT_TWO_THREADS:
        run(0, n, 0, gh.out)
        return gx
    from .conv import _run_shared
    if n > 1:  # images never share cells
        step = max(1, n // 8)
        _run_shared(run, [(b, min(n, b + step), 0, gh.out) for b in range(0, n, step)])
        return gx
    blocks = [(0, 1, r0, min(gh.out, r0 + _JIT_ROWS)) for r0 in range(0, gh.out, _JIT_ROWS)]
    if tiles:  # row blocks never share cells
        _run_shared(run, blocks)
    elif (gh.kernel - 1) * gh.dilation < (_JIT_ROWS + 1) * gh.stride:
        # overlapping windows: blocks two apart never share cells; even ones, then odd
        _run_shared(run, blocks[0::2])
        _run_shared(run, blocks[1::2])
    else:
        run(0, 1, 0, gh.out)
    return gx


def _backward_blocks(g, x, geom, mode, output=None):
    """Backward for windows that tile the input (None: use the general path)."""
    if mode not in ("max", "min", "avg") or not _tiles(geom):
        return None
    blocks, axes, expand, to_view = _block_view(x, geom)
    gx = np.empty_like(x)  # same memory layout as x
    gh, gw = geom
    gx[..., gh.out * gh.kernel:, :] = 0  # rows and columns no window covers
    gx[..., :, gw.out * gw.kernel:] = 0
    gblocks = _block_view(gx, geom)[0]
    ge = to_view(g)[expand]
    if mode == "avg":
        np.divide(ge, gh.kernel * gw.kernel, out=gblocks, casting="unsafe")
        return gx
    if output is None:
        output = (np.max if mode == "max" else np.min)(blocks, axis=axes)
    else:
        output = to_view(output)
    if np.isnan(output).any():
        return None  # NaN winners need the general path
    winner = blocks == output[expand]
    # every window has at least one winner; with ties only the first in scan order
    # (row by row) keeps its gradient, as in PyTorch
    if np.count_nonzero(winner) != output.size:
        _first_only(winner, axes, gh.kernel, gw.kernel)
    # copied where the winner is, not multiplied by it: inf * 0 made NaN in the other taps
    gblocks[...] = 0
    np.copyto(gblocks, np.broadcast_to(ge, gblocks.shape), where=winner)
    return gx


def pool2d_backward(grad_out, x, kernel_size, stride=None, *, padding=0, dilation=1,
                    mode="max", ceil_mode=False, count_include_pad=True, output=None,
                    relu=False):
    """Gradient of :func:`pool2d` with respect to ``x`` (same arguments as the forward).

    Max/min: each window's gradient goes to its single winner (the first of ties, as
    PyTorch does). Average: spread evenly over the window's real cells, divided by
    the same divisor as the forward. L2: ``g * x / out`` (0 where ``out`` is 0).
    ``output``: the forward's result, if at hand (saves recomputing it).

    ``relu`` (max pooling): the gradient of ``relu(pool2d(x))`` (a CNN's ReLU and max
    pool, in either order: they commute), with ``output`` that ReLU's result: only
    windows whose output is > 0 pass their gradient, as the ReLU's backward would let
    through; the compiled loop does it in the same pass.
    """
    x, geom = _prepare(x, kernel_size, stride, padding, dilation, mode, ceil_mode)
    gh, gw = geom
    h, w = x.shape[-2:]
    g = np.asarray(grad_out, dtype=x.dtype)
    if g.shape != x.shape[:-2] + (gh.out, gw.out):
        raise ValueError(f"grad_out must have shape {x.shape[:-2] + (gh.out, gw.out)}, "
                         f"got {g.shape}")
    if relu:
        if mode != "max":
            raise ValueError(f"relu applies to max pooling, not {mode!r}")
        if output is None:
            output = np.maximum(pool2d(x, kernel_size, stride, padding=padding,
                                       dilation=dilation, mode=mode, ceil_mode=ceil_mode), 0)
    lead = x.shape[:-2]
    if mode in ("max", "min", "avg"):
        fast = _backward_jit(g, x, geom, mode, output, kernel_size, stride, padding,
                             dilation, ceil_mode, count_include_pad, relu)
        if fast is not None:
            return fast
    if relu:  # the ReLU's mask (a select: an inf gradient of a masked window is 0)
        g = np.where(np.asarray(output) > 0, g, np.zeros((), g.dtype))
    # (the ReLU's output is not the pooling's: the winners are found again)
    fast = _backward_blocks(g, x, geom, mode, None if relu else output)
    if fast is not None:
        return fast
    if mode in ("max", "min"):
        _, tap = _pool_argext(x, geom, mode)
    # scatter the (scaled/masked) gradient back over every tap of the padded canvas
    if mode == "avg":
        gs = g / _divisor(geom, count_include_pad, x.dtype)
    elif mode == "l2":
        out = pool2d(x, kernel_size, stride, padding=padding, dilation=dilation, mode="l2",
                     ceil_mode=ceil_mode)
        with np.errstate(divide="ignore", invalid="ignore"):
            gs = np.where(out > 0, g / out, 0).astype(x.dtype)
    need_h = max((gh.out - 1) * gh.stride + gh.span, h + 2 * gh.pad_before)
    need_w = max((gw.out - 1) * gw.stride + gw.span, w + 2 * gw.pad_before)
    gp = np.zeros(lead + (need_h, need_w), x.dtype)
    if mode in ("max", "min"):
        masked = np.empty_like(g)
    for i in range(gh.kernel):
        r0 = i * gh.dilation
        rs = slice(r0, r0 + (gh.out - 1) * gh.stride + 1, gh.stride)
        for j in range(gw.kernel):
            c0 = j * gw.dilation
            dst = gp[..., rs, c0:c0 + (gw.out - 1) * gw.stride + 1:gw.stride]
            if mode in ("max", "min"):
                # only the winner of each window gets its gradient (copied, not
                # multiplied by the mask: an inf gradient made NaN in the other taps)
                masked.fill(0)
                np.copyto(masked, g, where=tap == i * gw.kernel + j)
                dst += masked
            else:
                dst += gs
    gx = gp[..., gh.pad_before:gh.pad_before + h, gw.pad_before:gw.pad_before + w]
    if mode == "l2":
        gx = gx * x
    return np.ascontiguousarray(gx)
