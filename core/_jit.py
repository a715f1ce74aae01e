"""Compiled loops for the direct convolution, when numba is installed (optional).

numpy runs a shift-and-add convolution as one pass over memory per tap (an einsum
fused multiply-add, or a ufunc multiply and add): about 0.3 ns per multiply-add here,
far from what the CPU can do. The loop below, compiled by numba, does the same sums
with the tap weights in registers and the row being built in L1 cache: at 1920x1080
RGB it is 1.7-3.5x faster than the numpy paths (bench/bench_ops.py --methods, column
``numpy``).

numba is a dependency that :mod:`core` can do without: where it is missing (no wheel
yet for a new Python) or the environment variable ``CONVSCOPE_JIT=0`` is set,
:mod:`core.conv` uses its numpy paths, which give the same results (the tests run
both against the naive twin). The first call per
dtype compiles the loop (a few seconds; cached on disk by numba afterwards, and the
app does it in a background thread at start-up).

The loop (:func:`conv_rows`) serves every direct convolution: any groups, stride,
dilation and padding mode. For each image and block of output rows it gathers the
padded input rows it needs into a planar scratch block (padding applied through the
row and column source maps of :func:`core.padding.padding_index`, so the input is
never padded as a whole and may have any memory layout), then builds each output row
in place: ``acc[x] += w[f, c, i, j] * rows[c, i, x + j]``, nine taps (a 3x3 block of
the kernel) per pass over the row, which stays in L1 cache. No fast-math: NaN and inf
propagate as in the naive sum (only multiply-adds are contracted into FMAs).

numba keeps the compiled code in its on-disk cache (``__pycache__`` beside this file,
or the user's cache folder), which it writes and reads itself, like Python's own
``.pyc`` files; no user data goes through it.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

__all__ = ["available", "enabled", "set_enabled", "ready", "conv_rows", "warm_up"]

try:  # pragma: no cover - depends on the environment
    if os.environ.get("CONVSCOPE_JIT", "1").strip().lower() in ("0", "no", "false", "off"):
        raise ImportError("disabled by CONVSCOPE_JIT")
    import numba
except Exception:  # noqa: BLE001 - missing, disabled, or broken (numpy too new for it)
    numba = None

_enabled = numba is not None
_compile_lock = threading.Lock()


def available() -> bool:
    """Whether numba could be imported (and was not disabled by ``CONVSCOPE_JIT=0``)."""
    return numba is not None


def enabled() -> bool:
    """Whether :mod:`core.conv` uses the compiled loop now."""
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Use (True) or bypass (False) the compiled loop; returns the previous setting.

    For tests and benchmarks that compare the two implementations. Enabling has no
    effect when numba is not available.
    """
    global _enabled
    old = _enabled
    _enabled = bool(flag) and numba is not None
    return old


def _conv_rows(x, w, bias, rmap, cmap, cval, sh, sw, dh, dw, groups, out, b0, b1, r0, r1):
    """``out[b, f, r, :]`` for images ``b0:b1`` and output rows ``r0:r1``.

    x: (N, H, W, C), any strides (a transposed view of planar input);
    w: (F, C/groups, kh, kw); bias: (F,);
    rmap/cmap: source row/column of each padded row/column (-1: the value ``cval``);
    out: (N, F, Ho, Wo), C-contiguous (rows are built in place).
    """
    n_f, cg, kh, kw = w.shape
    wo = out.shape[3]
    fg = n_f // groups
    span_h = dh * (kh - 1) + 1
    wp = (wo - 1) * sw + dw * (kw - 1) + 1  # padded columns read
    nr = (r1 - r0 - 1) * sh + span_h  # padded rows read
    rows = np.empty((cg, nr, wp), out.dtype)
    # interior columns: cmap[col] == col - lo for lo <= col < hi
    lo = 0
    while lo < wp and cmap[lo] < 0:
        lo += 1
    lo = min(lo, wp)
    shift = cmap[lo] - lo if lo < wp else 0
    hi = lo
    while hi < wp and cmap[hi] == hi + shift:
        hi += 1
    for b in range(b0, b1):
        for g in range(groups):
            # gather the padded rows of this group's channels, planar
            for k in range(nr):
                src = rmap[r0 * sh + k]
                if src < 0:
                    for ci in range(cg):
                        for col in range(wp):
                            rows[ci, k, col] = cval
                    continue
                line = x[b, src, :, g * cg:(g + 1) * cg]  # (W, C/groups)
                for ci in range(cg):
                    dst = rows[ci, k]
                    chan = line[:, ci]
                    for col in range(lo):
                        sc = cmap[col]
                        dst[col] = chan[sc] if sc >= 0 else cval
                    seg = chan[lo + shift:hi + shift]
                    inner = dst[lo:hi]
                    for t in range(hi - lo):
                        inner[t] = seg[t]
                    for col in range(hi, wp):
                        sc = cmap[col]
                        dst[col] = chan[sc] if sc >= 0 else cval
            for f in range(g * fg, (g + 1) * fg):
                for r in range(r0, r1):
                    base = (r - r0) * sh
                    bf = bias[f]
                    acc = out[b, f, r]  # built in place
                    for xo in range(wo):
                        acc[xo] = bf
                    for ci in range(cg):
                        _row_taps(acc, rows[ci], w[f, ci], base, dh, dw, sw, wo)


def _row_taps(acc, src, wk, base, dh, dw, sw, wo):
    """``acc[x] += sum_ij wk[i, j] * src[base + i*dh, x*sw + j*dw]``: the taps in blocks
    of 3x3 (nine per pass over ``acc``), then columns of three, then rows of three,
    then single taps. The shifted views keep loop indices provably >= 0 and, at stride
    1, the views contiguous, so that the loops vectorise."""
    kh, kw = wk.shape
    i = 0
    while i + 3 <= kh:
        sa = src[base + i * dh]
        sb = src[base + (i + 1) * dh]
        sc = src[base + (i + 2) * dh]
        j = 0
        while j + 3 <= kw:
            o0 = j * dw
            o1 = o0 + dw
            o2 = o1 + dw
            if sw == 1:
                _taps9(acc, sa[o0:], sa[o1:], sa[o2:], sb[o0:], sb[o1:], sb[o2:], sc[o0:],
                       sc[o1:], sc[o2:], wk[i, j], wk[i, j + 1], wk[i, j + 2], wk[i + 1, j],
                       wk[i + 1, j + 1], wk[i + 1, j + 2], wk[i + 2, j], wk[i + 2, j + 1],
                       wk[i + 2, j + 2], wo)
            else:
                _taps9(acc, sa[o0::sw], sa[o1::sw], sa[o2::sw], sb[o0::sw], sb[o1::sw],
                       sb[o2::sw], sc[o0::sw], sc[o1::sw], sc[o2::sw], wk[i, j], wk[i, j + 1],
                       wk[i, j + 2], wk[i + 1, j], wk[i + 1, j + 1], wk[i + 1, j + 2],
                       wk[i + 2, j], wk[i + 2, j + 1], wk[i + 2, j + 2], wo)
            j += 3
        while j < kw:
            o0 = j * dw
            if sw == 1:
                _taps3(acc, sa[o0:], sb[o0:], sc[o0:], wk[i, j], wk[i + 1, j], wk[i + 2, j], wo)
            else:
                _taps3(acc, sa[o0::sw], sb[o0::sw], sc[o0::sw], wk[i, j], wk[i + 1, j],
                       wk[i + 2, j], wo)
            j += 1
        i += 3
    while i < kh:
        s = src[base + i * dh]
        j = 0
        while j + 3 <= kw:
            o0 = j * dw
            o1 = o0 + dw
            o2 = o1 + dw
            if sw == 1:
                _taps3(acc, s[o0:], s[o1:], s[o2:], wk[i, j], wk[i, j + 1], wk[i, j + 2], wo)
            else:
                _taps3(acc, s[o0::sw], s[o1::sw], s[o2::sw], wk[i, j], wk[i, j + 1],
                       wk[i, j + 2], wo)
            j += 3
        while j < kw:
            if sw == 1:
                _taps1(acc, s[j * dw:], wk[i, j], wo)
            else:
                _taps1(acc, s[j * dw::sw], wk[i, j], wo)
            j += 1
        i += 1


def _taps9(acc, a0, a1, a2, b0, b1, b2, c0, c1, c2, wa0, wa1, wa2, wb0, wb1, wb2, wc0, wc1,
           wc2, n):
    for x in range(n):
        acc[x] += (wa0 * a0[x] + wa1 * a1[x] + wa2 * a2[x] + wb0 * b0[x] + wb1 * b1[x]
                   + wb2 * b2[x] + wc0 * c0[x] + wc1 * c1[x] + wc2 * c2[x])


def _taps3(acc, a0, a1, a2, w0, w1, w2, n):
    for x in range(n):
        acc[x] += w0 * a0[x] + w1 * a1[x] + w2 * a2[x]


def _taps1(acc, a0, w0, n):
    for x in range(n):
        acc[x] += w0 * a0[x]


_FLAGS = dict(nogil=True, boundscheck=False, fastmath={"contract"}, error_model="numpy")
if numba is not None:  # pragma: no branch - the helpers the loop calls, compiled with it
    _taps9 = numba.njit(**_FLAGS)(_taps9)
    _taps3 = numba.njit(**_FLAGS)(_taps3)
    _taps1 = numba.njit(**_FLAGS)(_taps1)
    _row_taps = numba.njit(**_FLAGS)(_row_taps)

_kernels: dict = {}


def _signature(dtype: np.dtype):
    t = numba.from_dtype(dtype)
    i64 = numba.int64
    c4 = t[:, :, :, ::1]
    # x as (N, H, W, C) of any layout: one compilation serves planar and channels-last
    return numba.void(t[:, :, :, :], c4, t[::1], i64[::1], i64[::1], t, i64, i64, i64,
                      i64, i64, c4, i64, i64, i64, i64)


def _kernel(dtype: np.dtype):
    """The compiled loop for ``dtype`` (compiled, or loaded from numba's disk cache, on
    first use)."""
    fn = _kernels.get(dtype)
    if fn is None:
        with _compile_lock:
            fn = _kernels.get(dtype)
            if fn is None:
                fn = numba.njit(_signature(dtype), cache=True, **_FLAGS)(_conv_rows)
                _kernels[dtype] = fn
    return fn


def conv_rows(x, w, bias, rmap, cmap, cval, stride, dilation, groups, out, b0, b1, r0, r1):
    """Run the compiled loop on images ``b0:b1``, output rows ``r0:r1`` (see
    :func:`_conv_rows`). ``x``, ``w`` (C-contiguous), ``bias`` and ``out`` share one
    float dtype; ``rmap``/``cmap`` are int64."""
    if numba is None:
        raise RuntimeError("numba is not available")
    _kernel(out.dtype)(x, w, bias, rmap, cmap, out.dtype.type(cval), stride[0], stride[1],
                       dilation[0], dilation[1], groups, out, b0, b1, r0, r1)


def ready(dtype) -> bool:
    """Whether :mod:`core.conv` can use the loop for ``dtype`` now: enabled, and compiled
    (this compiles it on first use). If numba fails to compile it, the loop is switched
    off for the rest of the process with a ``RuntimeWarning``, and the numpy paths
    take over."""
    if not _enabled:
        return False
    try:
        _kernel(np.dtype(dtype))
    except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back to numpy
        set_enabled(False)
        warnings.warn(f"ConvScope: numba could not compile the convolution loop "
                      f"({type(exc).__name__}: {exc}); using the numpy paths",
                      RuntimeWarning, stacklevel=2)
        return False
    return True


def warm_up(dtypes=(np.float32,)) -> None:
    """Compile (or load from numba's cache) the loop for these dtypes now, e.g. in a
    background thread at application start, so that the first filter does not wait."""
    for dt in dtypes:
        ready(dt)
