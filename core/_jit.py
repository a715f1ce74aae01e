"""Compiled loops for the direct convolution, when numba is installed (optional).

numpy runs a shift-and-add convolution as one pass over memory per tap (an einsum
fused multiply-add, or a ufunc multiply and add): about 0.3 ns per multiply-add here,
far from what the CPU can do. The loop below, compiled by numba, does the same sums
with the tap weights in registers and the row being built in L1 cache: at 1920x1080
RGB it is 2-5x faster than the numpy paths (bench/bench_ops.py --methods, column
``numpy``: 3x3 7.7 vs 18.7 ms, 7x7 13.3 vs 71.4 ms).

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

The training loops (loaded together, :func:`pool_back_ready`, and :func:`flat_ready`)
serve the CNN: the pooling backward, im2col and col2im (:func:`_window_runs`), and the
flat convolution of a first layer and its weight gradient (:func:`_conv_flat`,
:func:`_conv_flat_grad_w`, the one loop compiled with reassociation: its dot products
are summed in another order, NaN and inf still propagate).

numba keeps the compiled code in its on-disk cache (``__pycache__`` beside this file,
or the user's cache folder), which it writes and reads itself, like Python's own
``.pyc`` files; no user data goes through it.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

__all__ = ["available", "enabled", "set_enabled", "ready", "conv_rows", "warm_up",
           "warm_up_in_background", "pool_ready", "pool_rows", "pool_back_rows",
           "pool_back_ready", "col2im_rows", "pool_back_avg_rows", "im2col_rows",
           "flat_ready", "conv_flat", "conv_flat_grad_w"]

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


def _conv_rows(x, w, bias, rmap, cmap, pl, cval, sh, sw, dh, dw, groups, out, b0, b1, r0, r1):
    """``out[b, f, r, :]`` for images ``b0:b1`` and output rows ``r0:r1``.

    x: (N, H, W, C), any strides (a transposed view of planar input);
    w: (F, C/groups, kh, kw); bias: (F,);
    rmap/cmap: source row/column of each padded row/column (-1: the value ``cval``);
    pl: the left padding (padded columns ``pl:pl + W`` are the input's, in order);
    out: (N, F, Ho, Wo), C-contiguous (rows are built in place).

    The hot loops index arrays directly instead of slicing views: a numba view costs
    an atomic reference count on its parent, which both threads share (at 512x512 the
    views made the loop 2.5x slower). Column indices are unsigned, so numba adds no
    negative-index wraparound and the loops over a row vectorise.
    """
    n_f, cg, kh, kw = w.shape
    wo = out.shape[3]
    fg = n_f // groups
    span_h = dh * (kh - 1) + 1
    wp = (wo - 1) * sw + dw * (kw - 1) + 1  # padded columns read
    nr = (r1 - r0 - 1) * sh + span_h  # padded rows read
    rows = np.empty((cg, nr, wp), out.dtype)
    wk = w.copy()  # private copy: no reference count shared with the other thread
    # interior columns lo:hi read input columns 0:hi-lo in order (a straight copy);
    # only the border columns go through cmap (reflect, replicate, circular, constant)
    lo = min(pl, wp)
    hi = min(pl + x.shape[2], wp)
    u_lo = np.uint64(lo)
    u_n = np.uint64(hi - lo)
    for b in range(b0, b1):
        for g in range(groups):
            # gather the padded rows of this group's channels, planar
            for k in range(nr):
                src = rmap[r0 * sh + k]
                for ci in range(cg):
                    c = g * cg + ci
                    if src < 0:
                        for col in range(wp):
                            rows[ci, k, col] = cval
                        continue
                    for col in range(lo):
                        sc = cmap[col]
                        rows[ci, k, col] = x[b, src, sc, c] if sc >= 0 else cval
                    for t in range(u_n):
                        rows[ci, k, u_lo + t] = x[b, src, t, c]
                    for col in range(hi, wp):
                        sc = cmap[col]
                        rows[ci, k, col] = x[b, src, sc, c] if sc >= 0 else cval
            for f in range(g * fg, (g + 1) * fg):
                bf = bias[f]
                for r in range(r0, r1):
                    for xo in range(wo):
                        out[b, f, r, xo] = bf
                    base = (r - r0) * sh
                    for ci in range(cg):
                        _row_taps(out, b, f, r, rows, ci, wk, base, dh, dw, sw, wo)


def _row_taps(out, b, f, r, src, ci, wk, base, dh, dw, sw, wo):
    """``out[b, f, r, x] += sum_ij wk[f, ci, i, j] * src[ci, base + i*dh, x*sw + j*dw]``:
    the taps in blocks of 3x3 (nine per pass over the row), then columns of three,
    then rows of three, then single taps."""
    kh, kw = wk.shape[2], wk.shape[3]
    n = np.uint64(wo)
    us = np.uint64(sw)
    i = 0
    while i + 3 <= kh:
        ra = base + i * dh
        rb = ra + dh
        rc = rb + dh
        j = 0
        while j + 3 <= kw:
            o0 = np.uint64(j * dw)
            o1 = np.uint64((j + 1) * dw)
            o2 = np.uint64((j + 2) * dw)
            a0 = wk[f, ci, i, j]
            a1 = wk[f, ci, i, j + 1]
            a2 = wk[f, ci, i, j + 2]
            b0 = wk[f, ci, i + 1, j]
            b1 = wk[f, ci, i + 1, j + 1]
            b2 = wk[f, ci, i + 1, j + 2]
            c0 = wk[f, ci, i + 2, j]
            c1 = wk[f, ci, i + 2, j + 1]
            c2 = wk[f, ci, i + 2, j + 2]
            if sw == 1:
                for xo in range(n):
                    out[b, f, r, xo] += (
                        a0 * src[ci, ra, xo + o0] + a1 * src[ci, ra, xo + o1]
                        + a2 * src[ci, ra, xo + o2] + b0 * src[ci, rb, xo + o0]
                        + b1 * src[ci, rb, xo + o1] + b2 * src[ci, rb, xo + o2]
                        + c0 * src[ci, rc, xo + o0] + c1 * src[ci, rc, xo + o1]
                        + c2 * src[ci, rc, xo + o2])
            else:
                for xo in range(n):
                    q = xo * us
                    out[b, f, r, xo] += (
                        a0 * src[ci, ra, q + o0] + a1 * src[ci, ra, q + o1]
                        + a2 * src[ci, ra, q + o2] + b0 * src[ci, rb, q + o0]
                        + b1 * src[ci, rb, q + o1] + b2 * src[ci, rb, q + o2]
                        + c0 * src[ci, rc, q + o0] + c1 * src[ci, rc, q + o1]
                        + c2 * src[ci, rc, q + o2])
            j += 3
        while j < kw:  # a column of three taps
            o0 = np.uint64(j * dw)
            a0 = wk[f, ci, i, j]
            b0 = wk[f, ci, i + 1, j]
            c0 = wk[f, ci, i + 2, j]
            for xo in range(n):
                q = xo * us + o0
                out[b, f, r, xo] += (a0 * src[ci, ra, q] + b0 * src[ci, rb, q]
                                     + c0 * src[ci, rc, q])
            j += 1
        i += 3
    while i < kh:  # the last one or two kernel rows
        ra = base + i * dh
        j = 0
        while j + 3 <= kw:  # three taps of the row
            o0 = np.uint64(j * dw)
            o1 = np.uint64((j + 1) * dw)
            o2 = np.uint64((j + 2) * dw)
            a0 = wk[f, ci, i, j]
            a1 = wk[f, ci, i, j + 1]
            a2 = wk[f, ci, i, j + 2]
            for xo in range(n):
                q = xo * us
                out[b, f, r, xo] += (a0 * src[ci, ra, q + o0] + a1 * src[ci, ra, q + o1]
                                     + a2 * src[ci, ra, q + o2])
            j += 3
        while j < kw:
            o0 = np.uint64(j * dw)
            a0 = wk[f, ci, i, j]
            for xo in range(n):
                out[b, f, r, xo] += a0 * src[ci, ra, xo * us + o0]
            j += 1
        i += 1


_FLAGS = dict(nogil=True, boundscheck=False, fastmath={"contract"}, error_model="numpy")
if numba is not None:  # pragma: no branch - the helper the loop calls, compiled with it
    _row_taps = numba.njit(**_FLAGS)(_row_taps)



def _pool_cols_exact(tmp, o, C, op, kw, sw, dw, pw, W, c0, c1, dr, div_c):
    """Output columns ``c0:c1`` of one pooled row from the row buffer ``tmp``: taps
    outside the input skipped, NaN winning max and min (as in PyTorch). The general
    path: the edges, and rows with a NaN."""
    for c in range(c0, c1):
        for ch in range(C):
            first = True
            acc = tmp[0]
            for j in range(kw):
                col = c * sw + j * dw - pw
                if col < 0 or col >= W:
                    continue
                v = tmp[col * C + ch]
                if first:
                    acc = v
                    first = False
                elif op == 0:
                    acc = np.maximum(acc, v)
                elif op == 1:
                    acc = np.minimum(acc, v)
                else:
                    acc += v
            if first:  # no tap inside: what -inf / +inf / zero padding gives
                acc = -np.inf if op == 0 else (np.inf if op == 1 else 0.0)
            if op == 2:
                d = dr * div_c[c]
                acc /= d if d > 0 else 1.0
            elif op == 3:
                acc = np.sqrt(acc)
            o[c * C + ch] = acc


def _pool_cols_fast(tmp, m, o, C, op, kw, sw, dw, pw, c0, c1, dr, div_c):
    """Output columns ``c0:c1`` whose taps all lie inside the row: first the window's
    reduction at every position of the span (contiguous loops over slices, which
    vectorise; NaN kept by np.maximum/np.minimum), then every ``sw``-th position.
    Loops per output column and channel did not vectorise (3x slower), nor did
    indexing with a runtime offset (``tmp[s0 + k]``: numba's negative-index check)."""
    if c1 <= c0:
        return
    s0 = (c0 * sw - pw) * C
    L = ((c1 - c0 - 1) * sw + 1) * C
    a = tmp[s0:s0 + L]
    if kw == 1:
        for k in range(L):
            m[k] = a[k]
    else:
        b = tmp[s0 + dw * C:s0 + dw * C + L]
        if op == 0:
            for k in range(L):
                m[k] = np.maximum(a[k], b[k])
        elif op == 1:
            for k in range(L):
                m[k] = np.minimum(a[k], b[k])
        else:
            for k in range(L):
                m[k] = a[k] + b[k]
    for j in range(2, kw):
        t = s0 + j * dw * C
        b = tmp[t:t + L]
        if op == 0:
            for k in range(L):
                m[k] = np.maximum(m[k], b[k])
        elif op == 1:
            for k in range(L):
                m[k] = np.minimum(m[k], b[k])
        else:
            for k in range(L):
                m[k] += b[k]
    oc = o[c0 * C:c1 * C]
    n = c1 - c0
    if sw == 1:
        for k in range(L):
            oc[k] = m[k]
    elif C == 1:
        for c in range(n):
            oc[c] = m[c * sw]
    elif C == 3:
        for c in range(n):
            i = c * sw * 3
            oc[3 * c] = m[i]
            oc[3 * c + 1] = m[i + 1]
            oc[3 * c + 2] = m[i + 2]
    else:
        for c in range(n):
            i = c * sw * C
            for ch in range(C):
                oc[c * C + ch] = m[i + ch]
    if op == 2:
        dc = div_c[c0:c1]
        same = True
        for c in range(n):
            same &= dc[c] == dc[0]
        if same:  # the usual case: one divisor, a flat loop that vectorises
            d = dr * dc[0]
            d = d if d > 0 else 1.0
            for k in range(n * C):
                oc[k] /= d
        else:
            for c in range(n):
                d = dr * dc[c]
                d = d if d > 0 else 1.0
                for ch in range(C):
                    oc[c * C + ch] /= d
    elif op == 3:
        for k in range(n * C):
            oc[k] = np.sqrt(oc[k])


def _pool_rows(x, out, div_r, div_c, C, op, kh, kw, sh, sw, dh, dw, ph, pw, n0, n1, r0, r1,
               relu):
    """Pooled rows ``r0:r1`` of images ``n0:n1``: separable, a reduction over the
    window's rows into one row buffer, then over its columns.

    x: (N, H, W*C) with C-contiguous rows (planar maps: C = 1; channels-last: C
    channels interleaved); out: (N, Ho, Wo*C); div_r, div_c: the average's divisor
    per output row and column (counted cells; the divisor is their product, at least
    1, exact in floating point); op:
    0 max, 1 min, 2 sum (average: divided by ``div``), 3 sum of squares (L2: root).
    Taps outside the input are skipped, which is what -inf/+inf/0 padding gives; a
    window without a real cell gives -inf/+inf/0. NaN wins max and min, as in
    PyTorch (np.maximum/np.minimum: NaN-propagating, and they vectorise). ``relu``
    (nonzero): each output row goes through ``np.maximum(., 0)`` while in cache (a
    CNN's ReLU + max pool; a pass of its own over the output cost as much as the
    pooling for the Keras convnet's first pair).
    """
    N, H, WC = x.shape
    W = WC // C
    Wo = out.shape[2] // C
    tmp = np.empty(WC, out.dtype)
    m = np.empty(WC, out.dtype)
    # the output columns whose taps all lie inside the input
    c_lo = min(Wo, (pw + sw - 1) // sw)
    c_hi = max(c_lo, min(Wo, (W - 1 - (kw - 1) * dw + pw) // sw + 1))
    zeros = np.zeros(out.shape[2], out.dtype)
    for n in range(n0, n1):
        for r in range(r0, r1):
            first = True
            for i in range(kh):
                ir = r * sh + i * dh - ph
                if ir < 0 or ir >= H:
                    continue
                row = x[n, ir]
                if first:
                    if op == 3:
                        for k in range(WC):
                            tmp[k] = row[k] * row[k]
                    else:
                        for k in range(WC):
                            tmp[k] = row[k]
                    first = False
                elif op == 0:
                    for k in range(WC):
                        tmp[k] = np.maximum(tmp[k], row[k])
                elif op == 1:
                    for k in range(WC):
                        tmp[k] = np.minimum(tmp[k], row[k])
                elif op == 2:
                    for k in range(WC):
                        tmp[k] += row[k]
                else:
                    for k in range(WC):
                        v = row[k]
                        tmp[k] += v * v
            if first:  # no row of the window inside the input
                for k in range(WC):
                    tmp[k] = -np.inf if op == 0 else (np.inf if op == 1 else 0.0)
            o = out[n, r]
            dr = div_r[r] if op == 2 else div_r[0]
            if sw <= 4:  # the span's every position first: up to 4x the work, vectorised
                _pool_cols_exact(tmp, o, C, op, kw, sw, dw, pw, W, 0, c_lo, dr, div_c)
                _pool_cols_fast(tmp, m, o, C, op, kw, sw, dw, pw, c_lo, c_hi, dr, div_c)
                _pool_cols_exact(tmp, o, C, op, kw, sw, dw, pw, W, c_hi, Wo, dr, div_c)
            else:
                _pool_cols_exact(tmp, o, C, op, kw, sw, dw, pw, W, 0, Wo, dr, div_c)
            if relu:
                # np.maximum with an array of zeros vectorises (NaN stays NaN); with a
                # scalar zero, or as a select, numba's loop ran 4x slower, scalar
                for k in range(Wo * C):
                    o[k] = np.maximum(o[k], zeros[k])


def _back_tap(xr, gxr, yr, rem, C, sw, off, c0, c1, assign):
    """One tap of every window ``c0:c1`` of an output row (all inside the input row):
    the tap's cell is at column ``c * sw + off``. Where it equals the window's result
    it takes what the window still has to give (``rem``), then nothing is left.
    ``assign``: write the cell (tiling windows: each cell is one window's), else add.

    Branch-free arithmetic (``rem * hit``): selects compiled to branches that random
    data mispredicted (5x slower). It is exact for finite gradients; rows with inf or
    NaN take :func:`_back_row_exact`. Each case has its own loop (a branch inside one
    stopped it vectorising)."""
    if C == 1:
        for c in range(c0, c1):
            xo = c * sw + off
            t = rem[c] * (xr[xo] == yr[c])
            if assign:
                gxr[xo] = t
            else:
                gxr[xo] += t
            rem[c] -= t
    elif C == 3:
        for c in range(c0, c1):
            xo = (c * sw + off) * 3
            yo = c * 3
            t0 = rem[yo] * (xr[xo] == yr[yo])
            t1 = rem[yo + 1] * (xr[xo + 1] == yr[yo + 1])
            t2 = rem[yo + 2] * (xr[xo + 2] == yr[yo + 2])
            if assign:
                gxr[xo] = t0
                gxr[xo + 1] = t1
                gxr[xo + 2] = t2
            else:
                gxr[xo] += t0
                gxr[xo + 1] += t1
                gxr[xo + 2] += t2
            rem[yo] -= t0
            rem[yo + 1] -= t1
            rem[yo + 2] -= t2
    elif assign:
        for c in range(c0, c1):
            xs = xr[(c * sw + off) * C:(c * sw + off + 1) * C]
            gs = gxr[(c * sw + off) * C:(c * sw + off + 1) * C]
            ys = yr[c * C:(c + 1) * C]
            rs = rem[c * C:(c + 1) * C]
            for ch in range(C):
                t = rs[ch] * (xs[ch] == ys[ch])
                gs[ch] = t
                rs[ch] -= t
    else:
        for c in range(c0, c1):
            xs = xr[(c * sw + off) * C:(c * sw + off + 1) * C]
            gs = gxr[(c * sw + off) * C:(c * sw + off + 1) * C]
            ys = yr[c * C:(c + 1) * C]
            rs = rem[c * C:(c + 1) * C]
            for ch in range(C):
                t = rs[ch] * (xs[ch] == ys[ch])
                gs[ch] += t
                rs[ch] -= t


def _back_row_exact(x, y, g, gx, n, r, C, kh, kw, sh, sw, dh, dw, ph, pw, tiles, relu):
    """One output row, window by window: the winner found by comparisons (the first
    equal tap; the last NaN for a NaN result), for rows whose result has NaN or whose
    gradient has inf or NaN (where ``rem * hit`` would make NaN from inf * 0).
    ``relu``: only windows whose result is > 0 pass their gradient."""
    H = x.shape[1]
    W = x.shape[2] // C
    Wo = g.shape[2] // C
    for c in range(Wo):
        for ch in range(C):
            yv = y[n, r, c * C + ch]
            isnan = yv != yv
            li = -1
            lj = -1
            for i in range(kh):
                ir = r * sh + i * dh - ph
                if ir < 0 or ir >= H:
                    continue
                for j in range(kw):
                    col = c * sw + j * dw - pw
                    if col < 0 or col >= W:
                        continue
                    v = x[n, ir, col * C + ch]
                    if tiles:
                        gx[n, ir, col * C + ch] = 0
                    if isnan:
                        if v != v:
                            li, lj = ir, col
                    elif li < 0 and v == yv:
                        li, lj = ir, col
            if li >= 0 and (yv > 0 or not relu):
                gx[n, li, lj * C + ch] += g[n, r, c * C + ch]


def _pool_back_rows(x, y, g, gx, C, op, kh, kw, sh, sw, dh, dw, ph, pw, n0, n1, r0, r1,
                    relu):
    """Gradient of max (op 0) or min (op 1) pooling for output rows ``r0:r1`` of images
    ``n0:n1`` into ``gx``: each window's gradient goes to its winner.

    x, gx: (N, H, W*C); y (the forward's output), g: (N, Ho, Wo*C); C-contiguous rows.
    The winner is the first tap in scan order (row by row) whose value equals the
    window's result, as PyTorch keeps the first of ties; when the result is NaN, the
    last NaN tap (PyTorch's ``val > max || isnan(val)`` moves on to each NaN).

    ``relu``: ``y`` went through a ReLU after the pooling (``max(y, 0)``); windows whose
    ``y`` is not > 0 pass no gradient, as the ReLU's backward would have masked it (a
    ReLU + max pool pair's backward in one pass, without the mask's own pass).

    Windows that tile the input (stride = window, no padding or dilation: the CNN's
    pools) write every covered cell of ``gx`` once (the caller zeroes only the cells
    no window covers): 1 ms where accumulating into a zeroed ``gx`` took 4 (memory
    traffic). Other windows add into ``gx``, which the caller zeroes.
    """
    N, H, WC = x.shape
    W = WC // C
    Wo = g.shape[2] // C
    rem = np.empty(Wo * C, g.dtype)
    tiles = sh == kh and sw == kw and dh == 1 and dw == 1 and ph == 0 and pw == 0 \
        and g.shape[1] * kh <= H and Wo * kw <= W
    for n in range(n0, n1):
        for r in range(r0, r1):
            yr = y[n, r]
            gr = g[n, r]
            special = False
            if relu:
                # a select, not ``g * (y > 0)``: an inf gradient of a masked window is 0
                for k in range(Wo * C):
                    rem[k] = gr[k] if yr[k] > 0 else 0
                    special |= (yr[k] != yr[k]) | (rem[k] - rem[k] != 0)
            else:
                for k in range(Wo * C):
                    rem[k] = gr[k]
                    special |= (yr[k] != yr[k]) | (gr[k] - gr[k] != 0)   # NaN; inf or NaN
            if special:
                _back_row_exact(x, y, g, gx, n, r, C, kh, kw, sh, sw, dh, dw, ph, pw, tiles,
                                relu)
                continue
            if tiles and C != 1 and C != 3:
                # the CNN's pools (32-64 channels): window by window, taps in order
                for i in range(kh):
                    xr = x[n, r * kh + i]
                    gxr = gx[n, r * kh + i]
                    for c in range(Wo):
                        ys = yr[c * C:(c + 1) * C]
                        rs = rem[c * C:(c + 1) * C]
                        for j in range(kw):
                            xs = xr[(c * kw + j) * C:(c * kw + j + 1) * C]
                            gs = gxr[(c * kw + j) * C:(c * kw + j + 1) * C]
                            for ch in range(C):
                                t = rs[ch] * (xs[ch] == ys[ch])
                                gs[ch] = t
                                rs[ch] -= t
                continue
            for i in range(kh):
                ir = r * sh + i * dh - ph
                if ir < 0 or ir >= H:
                    continue
                xr = x[n, ir]
                gxr = gx[n, ir]
                for j in range(kw):
                    off = j * dw - pw
                    # the windows whose tap j lies inside the row: 0 <= c*sw + off < W
                    c0 = min(Wo, max(0, (-off + sw - 1) // sw))
                    c1 = max(c0, min(Wo, (W - 1 - off) // sw + 1))
                    _back_tap(xr, gxr, yr, rem, C, sw, off, c0, c1, tiles)


def _pool_back_avg_rows(g, gx, div_r, div_c, C, kh, kw, sh, sw, dh, dw, ph, pw, n0, n1,
                        r0, r1):
    """Gradient of average pooling for output rows ``r0:r1`` of images ``n0:n1``: each
    window's gradient divided by the forward's divisor (``div_r[r] * div_c[c]``, at
    least 1) goes to every tap inside the input. g: (N, Ho, Wo*C); gx: (N, H, W*C),
    written once per cell for windows that tile the input, else added into (zeroed by
    the caller)."""
    N, H, WC = gx.shape
    W = WC // C
    Wo = g.shape[2] // C
    q = np.empty(Wo * C, g.dtype)
    tiles = sh == kh and sw == kw and dh == 1 and dw == 1 and ph == 0 and pw == 0 \
        and g.shape[1] * kh <= H and Wo * kw <= W
    for n in range(n0, n1):
        for r in range(r0, r1):
            gr = g[n, r]
            for c in range(Wo):
                d = div_r[r] * div_c[c]
                d = d if d > 0 else 1.0
                for ch in range(C):
                    q[c * C + ch] = gr[c * C + ch] / d
            for i in range(kh):
                ir = r * sh + i * dh - ph
                if ir < 0 or ir >= H:
                    continue
                gxr = gx[n, ir]
                for j in range(kw):
                    off = j * dw - pw
                    c0 = min(Wo, max(0, (-off + sw - 1) // sw))
                    c1 = max(c0, min(Wo, (W - 1 - off) // sw + 1))
                    if C == 3:
                        if tiles:
                            for c in range(c0, c1):
                                xo = (c * sw + off) * 3
                                gxr[xo] = q[3 * c]
                                gxr[xo + 1] = q[3 * c + 1]
                                gxr[xo + 2] = q[3 * c + 2]
                        else:
                            for c in range(c0, c1):
                                xo = (c * sw + off) * 3
                                gxr[xo] += q[3 * c]
                                gxr[xo + 1] += q[3 * c + 1]
                                gxr[xo + 2] += q[3 * c + 2]
                    elif tiles:
                        for c in range(c0, c1):
                            gs = gxr[(c * sw + off) * C:(c * sw + off + 1) * C]
                            qs = q[c * C:(c + 1) * C]
                            for ch in range(C):
                                gs[ch] = qs[ch]
                    else:
                        for c in range(c0, c1):
                            gs = gxr[(c * sw + off) * C:(c * sw + off + 1) * C]
                            qs = q[c * C:(c + 1) * C]
                            for ch in range(C):
                                gs[ch] += qs[ch]


def _window_runs(rows, cols, kh, kw, sh, sw, dh, dw, n0, n1, gather):
    """im2col (``gather``: ``cols`` <- windows of ``rows``) or its adjoint col2im (not
    ``gather``: every window's ``cols`` added back onto ``rows``) for images
    ``n0:n1``. rows: (N, Hp, Wp*C) channels-last rows of the padded input (or its
    gradient); cols: (N, Ho, Wo, kh*kw*C), columns ordered (tap row, tap col,
    channel) as core.conv.im2col's. With dw == 1 a tap row's kw*C values are one run
    in both, one loop that vectorises (loops of C = 8 did not: 2.5x slower); numpy's
    strided copies took 0.61 ms (im2col) and its nine strided adds 6.9 ms (col2im of
    the Keras convnet's second layer); these 0.26 and about 0.5 on two threads.
    """
    N, Ho, Wo, KC = cols.shape
    C = KC // (kh * kw)
    run = kw * C
    for n in range(n0, n1):
        for r in range(Ho):
            for c in range(Wo):
                d = cols[n, r, c]
                for a in range(kh):
                    row = rows[n, r * sh + a * dh]
                    if dw == 1:
                        o = c * sw * C
                        seg = row[o:o + run]
                        win = d[a * run:(a + 1) * run]
                        if gather:
                            for k in range(run):
                                win[k] = seg[k]
                        else:
                            for k in range(run):
                                seg[k] += win[k]
                        continue
                    for b in range(kw):
                        o = (c * sw + b * dw) * C
                        seg = row[o:o + C]
                        win = d[(a * kw + b) * C:(a * kw + b + 1) * C]
                        if gather:
                            for ch in range(C):
                                win[ch] = seg[ch]
                        else:
                            for ch in range(C):
                                seg[ch] += win[ch]


def _flat_planes(x, n, xt, ph, pw, wp):
    """Image ``n`` of channels-last ``x`` (N, H, W, C) into the planar scratch ``xt``
    (C, Hp*Wp + tail): row ``r`` at flat offset ``(r + ph) * wp + pw``. The padding
    cells are never written (zero from the allocation, the same cells every image)."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    hp = xt.shape[1] // wp
    for r in range(H):
        rr = r + ph
        if rr < 0 or rr >= hp:
            continue
        for s in range(W):
            ss = s + pw
            if ss < 0 or ss >= wp:
                continue
            for c in range(C):
                xt[c, rr * wp + ss] = x[n, r, s, c]


def _conv_flat(x, w, bias, out, ph, pw, hp, wp, dh, dw, n0, n1):
    """Stride-1 convolution of images ``n0:n1`` with few input channels, for a
    training batch of small images (a CNN's first layer on MNIST).

    Each image goes planar and padded into a scratch buffer with its rows laid end
    to end (width ``wp``); every output row is then computed over the whole padded
    width, so that one tap is one long contiguous multiply-add over ``Ho * wp``
    cells (``out[p] += w * x[p + offset]``, up to three taps per pass), which vectorises;
    the ``wp - Wo`` cells past each row's end are computed and dropped when the
    planes go to the channels-last output. im2col + a product took 1.9-2.2 ms for
    LeNet's 5x5 first layer (128 MNIST images, 8 filters): its 10 MB matrix went
    through memory twice; this 1.1 ms on two threads.

    x: (N, H, W, C) channels-last; w: (F, C, KH, KW); bias: (F,); out: (N, Ho, Wo,
    F); ph, pw: the padding before; hp, wp: the padded size the output needs.
    """
    C = x.shape[3]
    F, _, KH, KW = w.shape
    Ho, Wo = out.shape[1], out.shape[2]
    L = Ho * wp
    xt = np.zeros((C, hp * wp + KW * dw + 8), x.dtype)
    o = np.empty((F, L), x.dtype)
    for n in range(n0, n1):
        _flat_planes(x, n, xt, ph, pw, wp)
        for f in range(F):
            of = o[f]
            bf = bias[f]
            for p in range(L):
                of[p] = bf
            for c in range(C):
                xc = xt[c]
                for a in range(KH):
                    base = a * dh * wp
                    b = 0
                    while b + 3 <= KW:
                        w0 = w[f, c, a, b]
                        w1 = w[f, c, a, b + 1]
                        w2 = w[f, c, a, b + 2]
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        s1 = xc[q0 + dw:q0 + dw + L]
                        s2 = xc[q0 + 2 * dw:q0 + 2 * dw + L]
                        for p in range(L):
                            of[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p]
                        b += 3
                    if b + 2 <= KW:
                        w0 = w[f, c, a, b]
                        w1 = w[f, c, a, b + 1]
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        s1 = xc[q0 + dw:q0 + dw + L]
                        for p in range(L):
                            of[p] += w0 * s0[p] + w1 * s1[p]
                        b += 2
                    if b < KW:
                        w0 = w[f, c, a, b]
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        for p in range(L):
                            of[p] += w0 * s0[p]
        for i in range(Ho):
            orow = out[n, i]
            for f in range(F):  # filter by filter: contiguous reads (2x faster)
                src = o[f, i * wp:i * wp + Wo]
                for j in range(Wo):
                    orow[j, f] = src[j]


def _conv_flat_grad_w(x, g, gw, gb, ph, pw, hp, wp, dh, dw, n0, n1):
    """The weight and bias gradients of :func:`_conv_flat` over images ``n0:n1``,
    added into ``gw`` (F, C, KH, KW) and ``gb`` (F,): ``gw[f, c, a, b] += sum_p
    x[c, p + offset(a, b)] * g[f, p]`` with the gradient laid out planar over the
    padded width (zeros past each row's end), one dot product of ``Ho * wp`` cells
    per tap, up to three taps per pass (compiled with reassociation, so that the sums
    vectorise); ``gb[f] += sum_p g[f, p]`` from the same planes (a product with ones
    over the channels-last gradient took 0.3 ms for LeNet's first layer). g: (N, Ho,
    Wo, F) channels-last."""
    C = x.shape[3]
    F, _, KH, KW = gw.shape
    Ho, Wo = g.shape[1], g.shape[2]
    L = Ho * wp
    xt = np.zeros((C, hp * wp + KW * dw + 8), x.dtype)
    gt = np.zeros((F, L), x.dtype)
    zero = np.zeros(1, x.dtype)[0]
    for n in range(n0, n1):
        _flat_planes(x, n, xt, ph, pw, wp)
        for i in range(Ho):
            gr = g[n, i]
            for f in range(F):  # filter by filter: contiguous writes (8 streams: 2x slower)
                dst = gt[f, i * wp:i * wp + Wo]
                for j in range(Wo):
                    dst[j] = gr[j, f]
        for f in range(F):
            gf = gt[f]
            acc = zero
            for p in range(L):
                acc += gf[p]
            gb[f] += acc
            for c in range(C):
                xc = xt[c]
                for a in range(KH):
                    base = a * dh * wp
                    b = 0
                    while b + 3 <= KW:
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        s1 = xc[q0 + dw:q0 + dw + L]
                        s2 = xc[q0 + 2 * dw:q0 + 2 * dw + L]
                        a0 = zero
                        a1 = zero
                        a2 = zero
                        for p in range(L):
                            v = gf[p]
                            a0 += s0[p] * v
                            a1 += s1[p] * v
                            a2 += s2[p] * v
                        gw[f, c, a, b] += a0
                        gw[f, c, a, b + 1] += a1
                        gw[f, c, a, b + 2] += a2
                        b += 3
                    if b + 2 <= KW:
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        s1 = xc[q0 + dw:q0 + dw + L]
                        a0 = zero
                        a1 = zero
                        for p in range(L):
                            v = gf[p]
                            a0 += s0[p] * v
                            a1 += s1[p] * v
                        gw[f, c, a, b] += a0
                        gw[f, c, a, b + 1] += a1
                        b += 2
                    if b < KW:
                        q0 = base + b * dw
                        s0 = xc[q0:q0 + L]
                        a0 = zero
                        for p in range(L):
                            a0 += s0[p] * gf[p]
                        gw[f, c, a, b] += a0


if numba is not None:  # pragma: no branch
    _POOL_FLAGS = dict(nogil=True, boundscheck=False, error_model="numpy")
    _pool_cols_exact = numba.njit(**_POOL_FLAGS)(_pool_cols_exact)
    _pool_cols_fast = numba.njit(**_POOL_FLAGS)(_pool_cols_fast)
    _back_tap = numba.njit(**_POOL_FLAGS)(_back_tap)
    _back_row_exact = numba.njit(**_POOL_FLAGS)(_back_row_exact)
    _pool_back_rows = numba.njit(cache=True, **_POOL_FLAGS)(_pool_back_rows)
    _window_runs = numba.njit(cache=True, **_POOL_FLAGS)(_window_runs)
    _flat_planes = numba.njit(**_FLAGS)(_flat_planes)
    _conv_flat = numba.njit(cache=True, **_FLAGS)(_conv_flat)
    # reassociation lets the dot products vectorise (a sum in another order)
    _conv_flat_grad_w = numba.njit(cache=True, nogil=True, boundscheck=False,
                                   fastmath={"contract", "reassoc"},
                                   error_model="numpy")(_conv_flat_grad_w)
    _pool_back_avg_rows = numba.njit(cache=True, **_POOL_FLAGS)(_pool_back_avg_rows)

_kernels: dict = {}


def _signature(dtype: np.dtype):
    t = numba.from_dtype(dtype)
    i64 = numba.int64
    array = numba.types.Array
    # inputs typed read-only (writable arrays convert to that; read-only ones, such as
    # np.broadcast_to views or Pillow buffers, would match no other signature), and x as
    # (N, H, W, C) of any layout: one compilation serves planar and channels-last
    x_t = array(t, 4, "A", readonly=True)
    w_t = array(t, 4, "C", readonly=True)
    b_t = array(t, 1, "C", readonly=True)
    map_t = array(i64, 1, "C", readonly=True)
    return numba.void(x_t, w_t, b_t, map_t, map_t, i64, t, i64, i64, i64, i64, i64,
                      t[:, :, :, ::1], i64, i64, i64, i64)


def _kernel(dtype: np.dtype):
    """The compiled loop for ``dtype`` (compiled, or loaded from numba's disk cache, on
    first use)."""
    fn = _kernels.get(dtype)
    if fn is None:
        with _compile_lock:
            fn = _kernels.get(dtype)
            if fn is None:
                try:
                    fn = numba.njit(_signature(dtype), cache=True, **_FLAGS)(_conv_rows)
                except Exception:  # noqa: BLE001 - a stale or foreign disk cache
                    # (one written under another module name, e.g. before the package
                    # was renamed, unpickles to ModuleNotFoundError): compile afresh
                    fn = numba.njit(_signature(dtype), cache=False, **_FLAGS)(_conv_rows)
                _kernels[dtype] = fn
    return fn


def conv_rows(x, w, bias, rmap, cmap, pl, cval, stride, dilation, groups, out, b0, b1, r0,
              r1):
    """Run the compiled loop on images ``b0:b1``, output rows ``r0:r1`` (see
    :func:`_conv_rows`). ``x``, ``w`` (C-contiguous), ``bias`` and ``out`` share one
    float dtype; ``rmap``/``cmap`` are int64."""
    if numba is None:
        raise RuntimeError("numba is not available")
    _kernel(out.dtype)(x, w, bias, rmap, cmap, pl, out.dtype.type(cval), stride[0],
                       stride[1], dilation[0], dilation[1], groups, out, b0, b1, r0, r1)


def _pool_signature(dtype: np.dtype):
    t = numba.from_dtype(dtype)
    i64 = numba.int64
    x_t = numba.types.Array(t, 3, "C", readonly=True)   # rows contiguous: they vectorise
    d_t = numba.types.Array(t, 1, "C", readonly=True)
    return numba.void(x_t, t[:, :, ::1], d_t, d_t, i64, i64, i64, i64, i64, i64, i64, i64,
                      i64, i64, i64, i64, i64, i64, numba.boolean)


_pool_kernels: dict = {}


def _pool_kernel(dtype: np.dtype):
    fn = _pool_kernels.get(dtype)
    if fn is None:
        with _compile_lock:
            fn = _pool_kernels.get(dtype)
            if fn is None:
                try:
                    fn = numba.njit(_pool_signature(dtype), cache=True, **_POOL_FLAGS)(
                        _pool_rows)
                except Exception:  # noqa: BLE001 - a stale disk cache: compile afresh
                    fn = numba.njit(_pool_signature(dtype), cache=False, **_POOL_FLAGS)(
                        _pool_rows)
                _pool_kernels[dtype] = fn
    return fn


def pool_ready(dtype, work: int | None = None) -> bool:
    """Whether :mod:`core.pool` can use the compiled pooling loop for ``dtype`` now
    (as :func:`ready` for the convolution loop)."""
    if not _enabled:
        return False
    dtype = np.dtype(dtype)
    if (_loading or (work is not None and work < LOAD_MIN_WORK)) \
            and dtype not in _pool_kernels:
        return False
    try:
        _pool_kernel(dtype)
    except Exception as exc:  # noqa: BLE001 - fall back to numpy
        set_enabled(False)
        warnings.warn(f"ConvScope: numba could not compile the pooling loop "
                      f"({type(exc).__name__}: {exc}); using the numpy paths",
                      RuntimeWarning, stacklevel=2)
        return False
    return True


def pool_rows(x, out, div_r, div_c, C, op, kernel, stride, dilation, pad, n0, n1, r0, r1,
              relu=False):
    """Run the compiled pooling loop (see :func:`_pool_rows`)."""
    _pool_kernel(out.dtype)(x, out, div_r, div_c, C, op, kernel[0], kernel[1], stride[0],
                            stride[1], dilation[0], dilation[1], pad[0], pad[1], n0, n1,
                            r0, r1, bool(relu))


_pool_back_loaded: set = set()


def pool_back_ready(dtype, work: int | None = None) -> bool:
    """Whether :mod:`core.pool` can use the compiled max/min backward for ``dtype`` now
    (as :func:`pool_ready`): compiled or loaded from the cache on first use, unless
    it is being loaded in the background or ``work`` is small."""
    return _group_ready(_pool_back_loaded, _load_pool_back, dtype, work,
                        "the pooling backward")


def _group_ready(loaded: set, load, dtype, work, what: str) -> bool:
    """Whether a group of loops (loaded together by ``load(dtype)``) is ready for
    ``dtype``; loads it unless it is being loaded in the background or ``work`` is
    below :data:`LOAD_MIN_WORK`. A compile failure switches the loops off for the
    process with a ``RuntimeWarning`` naming ``what``: the numpy paths take over."""
    if not _enabled:
        return False
    dtype = np.dtype(dtype)
    if dtype in loaded:
        return True
    if _loading or (work is not None and work < LOAD_MIN_WORK):
        return False
    try:
        load(dtype)
    except Exception as exc:  # noqa: BLE001 - fall back to numpy
        set_enabled(False)
        warnings.warn(f"ConvScope: numba could not compile {what} "
                      f"({type(exc).__name__}: {exc}); using the numpy paths",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def _load_pool_back(dtype) -> None:
    """Compile (or load from the cache) the training loops (the pooling backward,
    col2im and im2col) for ``dtype`` by calling them once."""
    with _compile_lock:
        one = np.zeros((1, 1, 1), dtype)
        _pool_back_rows(one, one, one, one.copy(), 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1,
                        False)
        for gather in (True, False):
            _window_runs(one, np.zeros((1, 1, 1, 1), dtype), 1, 1, 1, 1, 1, 1, 0, 1, gather)
        d = np.ones(1, dtype)
        _pool_back_avg_rows(one, one.copy(), d, d, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1)
    _pool_back_loaded.add(np.dtype(dtype))


def pool_back_avg_rows(g, gx, div_r, div_c, C, kernel, stride, dilation, pad, n0, n1, r0,
                       r1):
    """Run the compiled average-pooling backward (see :func:`_pool_back_avg_rows`)."""
    _pool_back_avg_rows(g, gx, div_r, div_c, C, kernel[0], kernel[1], stride[0], stride[1],
                        dilation[0], dilation[1], pad[0], pad[1], n0, n1, r0, r1)


def col2im_rows(dcols, gx, kernel, stride, dilation, n0, n1):
    """Run the compiled col2im (see :func:`_window_runs`); call only after
    :func:`pool_back_ready` said True (it loads this loop too)."""
    _window_runs(gx, dcols, kernel[0], kernel[1], stride[0], stride[1], dilation[0],
                 dilation[1], n0, n1, False)


_flat_loaded: set = set()


def flat_ready(dtype, work: int | None = None) -> bool:
    """Whether :mod:`core.conv` can use the compiled batch-of-small-images loops
    (:func:`conv_flat`, :func:`conv_flat_grad_w`) for ``dtype`` now (as
    :func:`pool_back_ready`)."""
    return _group_ready(_flat_loaded, _load_flat, dtype, work, "the training convolution")


def _load_flat(dtype) -> None:
    """Compile (or load from the cache) the flat loops for ``dtype``."""
    with _compile_lock:
        x = np.zeros((1, 1, 1, 1), dtype)
        w = np.zeros((1, 1, 1, 1), dtype)
        _conv_flat(x, w, np.zeros(1, dtype), x.copy(), 0, 0, 1, 1, 1, 1, 0, 1)
        _conv_flat_grad_w(x, x, w.copy(), np.zeros(1, dtype), 0, 0, 1, 1, 1, 1, 0, 1)
    _flat_loaded.add(np.dtype(dtype))


def conv_flat(x, w, bias, out, pad, padded, dilation, n0, n1):
    """Run :func:`_conv_flat` (call only after :func:`flat_ready` said True)."""
    _conv_flat(x, w, bias, out, pad[0], pad[1], padded[0], padded[1], dilation[0],
               dilation[1], n0, n1)


def conv_flat_grad_w(x, g, gw, gb, pad, padded, dilation, n0, n1):
    """Run :func:`_conv_flat_grad_w` (call only after :func:`flat_ready` said True)."""
    _conv_flat_grad_w(x, g, gw, gb, pad[0], pad[1], padded[0], padded[1], dilation[0],
                      dilation[1], n0, n1)


def im2col_rows(xl, cols, kernel, stride, dilation, n0, n1):
    """Run the compiled im2col (see :func:`_window_runs`); call only after
    :func:`pool_back_ready` said True (it loads this loop too)."""
    _window_runs(xl, cols, kernel[0], kernel[1], stride[0], stride[1], dilation[0],
                 dilation[1], n0, n1, True)


def pool_back_rows(x, y, g, gx, C, op, kernel, stride, dilation, pad, n0, n1, r0, r1,
                   relu=False):
    """Run the compiled max/min pooling backward (see :func:`_pool_back_rows`); call
    only after :func:`pool_back_ready` said True."""
    _pool_back_rows(x, y, g, gx, C, op, kernel[0], kernel[1], stride[0], stride[1],
                    dilation[0], dilation[1], pad[0], pad[1], n0, n1, r0, r1, bool(relu))


#: below this much work (multiply-adds, or input cells for pooling) a loop that is not
#: loaded yet is not loaded for it: loading from numba's cache takes 0.5-1 s, the numpy
#: paths do such work in milliseconds (a 5x5 worked example in a script or in
#: ``convscope-run`` took 1.5 s before)
LOAD_MIN_WORK = 4_000_000


def ready(dtype, work: int | None = None) -> bool:
    """Whether :mod:`core.conv` can use the loop for ``dtype`` now: enabled, and compiled
    (this compiles it on first use, unless ``work`` is below :data:`LOAD_MIN_WORK`).
    If numba fails to compile it, the loop is switched off for the rest of the process
    with a ``RuntimeWarning``, and the numpy paths take over."""
    if not _enabled:
        return False
    if (_loading or (work is not None and work < LOAD_MIN_WORK)) \
            and np.dtype(dtype) not in _kernels:
        return False  # being loaded in the background, or too little work: numpy
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
        pool_ready(dt)
        pool_back_ready(dt)
        flat_ready(dt)


_loading = False


def _cache_present() -> bool:
    """Whether numba's disk cache of the loop seems to exist (beside this file or in
    numba's cache folder)."""
    import glob
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    dirs = [here, os.environ.get("NUMBA_CACHE_DIR", "")]
    return any(glob.glob(os.path.join(d, "**", "_jit._conv_rows-*.nbi"), recursive=True)
               for d in dirs if d and os.path.isdir(d))


def warm_up_in_background(dtypes=(np.float32,)) -> threading.Thread:
    """Make the loop ready without making anyone wait: until it is, :func:`ready` says
    False and :mod:`core.conv` uses its numpy paths (same results).

    Without a disk cache (the first start after installing), the loop is compiled in
    a separate process: numba's compiler holds the GIL for seconds, which froze the
    window's thread for up to 0.7 s at a time; the process writes the cache, which
    this process then loads (about 0.4 s)."""
    global _loading
    if numba is None or not _enabled:
        t = threading.Thread(target=lambda: None)
        t.start()
        return t
    _loading = True

    def run():
        global _loading
        try:
            if not _cache_present():
                import subprocess
                import sys
                try:
                    # niced: on two cores the compile otherwise took the CPU the
                    # window's thread needed (a 250 ms stall at the first start)
                    subprocess.run([sys.executable, "-c",
                                    "import os\nif hasattr(os, 'nice'): os.nice(10)\n"
                                    "from convscope.core import _jit; _jit.warm_up()"],
                                   capture_output=True, timeout=300)
                except (OSError, subprocess.SubprocessError):
                    pass  # then it is compiled here, below
            for dt in dtypes:
                try:
                    _kernel(np.dtype(dt))
                    _pool_kernel(np.dtype(dt))
                    _load_pool_back(dt)
                    _load_flat(dt)  # the Train tab's first layer
                except Exception:  # noqa: BLE001 - ready() reports it on first use
                    pass
        finally:
            _loading = False

    t = threading.Thread(target=run, name="convscope-jit-warm-up", daemon=True)
    t.start()
    return t
