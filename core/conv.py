"""2-D convolution (cross-correlation, as deep learning does it) with PyTorch's semantics.

One engine serves the visualiser and the CNN: :func:`conv2d` chooses among three
exact methods per call, all tested against the naive loop twin :func:`conv2d_naive`:

``direct``
    Shift-and-add over the ``kh*kw`` taps: ``y += w[i, j] * x[shifted]``, in row
    blocks that stay in cache, optionally on two threads (numpy ufuncs release the
    GIL). Best for per-channel (depthwise) filtering of images with small kernels.
    A channels-last input (a ``(N, C, H, W)`` view of ``(N, H, W, C)`` memory, as
    ``img_hwc.transpose(2, 0, 1)[None]`` gives) is processed as long ``(H, W*C)`` rows
    and returned in the same layout. Extra memory: one padded copy of the input and a
    block-sized scratch buffer.
``gemm``
    im2col + one matrix product per group: windows are gathered into a
    ``(N*Ho*Wo, kh*kw*C/groups)`` matrix (processed in chunks of at most
    :data:`GEMM_CHUNK_BYTES`), multiplied by the ``(kh*kw*C/groups, F/groups)`` weights.
    Best when there are many filters (CNN layers).
``fft``
    Pointwise products of 2-D real FFTs (kernel dilated with zeros, flipped for
    correlation), cropped and subsampled for stride. Best for large kernels (from
    about 10x10). Costs ~2 complex copies of the padded input. An input with NaN or
    inf is computed with ``direct`` instead (a transform would spread them everywhere).

float64 inputs are computed in float64 (for gradient checks); everything else in
float32.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .geometry import conv_geometry, pair
from .padding import check_extent, check_mode, pad2d, pad2d_adjoint

__all__ = ["conv2d", "conv2d_naive", "conv2d_backward", "CONV_METHODS"]

CONV_METHODS = ("auto", "direct", "gemm", "fft")
GEMM_CHUNK_BYTES = 64 << 20
#: kernels with at least this many taps use the FFT (per-channel filtering) ...
FFT_MIN_TAPS = 100
#: ... on outputs up to this many pixels (bench/bench_ops.py: at 4096x4096, K=15, direct
#: took 1.8 s and numpy's FFT 3.3 s; at 1920x1080 the FFT won, 159 ms vs 207 ms)
FFT_MAX_PIXELS = 6_000_000
#: multiply-adds above which the direct method splits its row blocks over threads
THREAD_MIN_WORK = 4_000_000
_BLOCK_ELEMS = 1 << 18  # 1 MiB of float32 per scratch block (measured best, bench/)

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)),
                                       thread_name_prefix="convscope-conv")
    return _executor


def _result_dtype(*arrays) -> np.dtype:
    return np.dtype(np.float64) if any(a.dtype == np.float64 for a in arrays) else np.dtype(
        np.float32)


def _as_float_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _prepare(x, weight, bias, groups):
    """Validate shapes and dtypes; return (x4, w, b, squeeze, dtype)."""
    x = _as_float_array(x, "x")
    w = _as_float_array(weight, "weight")
    if x.ndim not in (3, 4):
        raise ValueError(f"x must have shape (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"weight must have shape (F, C/groups, kh, kw), got shape {w.shape}")
    squeeze = x.ndim == 3
    x4 = x[None] if squeeze else x
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    n, c, h, wd = x4.shape
    f, cg, kh, kw = w.shape
    if 0 in (n, c, h, wd):
        raise ValueError(f"x must not be empty, got shape {x.shape}")
    if 0 in (f, kh, kw):
        raise ValueError(f"weight must not be empty, got shape {w.shape}")
    if c % groups or f % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({c}) and the "
                         f"number of filters ({f})")
    if cg != c // groups:
        raise ValueError(f"weight has {cg} input channels per filter but x has {c} channels "
                         f"in {groups} group(s): expected {c // groups}")
    if not np.all(np.isfinite(w)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ValueError(f"weight contains a non-finite value {w[bad]} at index {bad}")
    dtype = _result_dtype(x4, w)
    b = None
    if bias is not None:
        b = _as_float_array(bias, "bias").astype(dtype, copy=False)
        if b.shape != (f,):
            raise ValueError(f"bias must have one value per filter ({f}), got shape "
                             f"{np.shape(bias)}")
        if not np.all(np.isfinite(b)):
            bad = int(np.flatnonzero(~np.isfinite(b))[0])
            raise ValueError(f"bias contains a non-finite value {b[bad]} at index {bad}")
    x4 = x4.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    return x4, w, b, squeeze, dtype


def _geometry(x4, w, stride, padding, dilation):
    g = conv_geometry(x4.shape[2:], w.shape[2:], stride, padding, dilation)
    pads = ((g[0].pad_before, g[0].pad_after), (g[1].pad_before, g[1].pad_after))
    return g, pads


def _is_channels_last(a: np.ndarray) -> bool:
    """True if the (N, C, H, W) array is a view of contiguous (N, H, W, C) memory."""
    return a.shape[1] > 1 and a.transpose(0, 2, 3, 1).flags.c_contiguous


def _workspace_key(x4, w, stride, dilation, pads, mode, cval):
    return (id(x4), x4.shape, x4.__array_interface__["data"][0], w.shape, stride, dilation,
            pads, mode, cval)


def choose_method(c, f, groups, kh, kw, n_out_pixels) -> str:
    """The method ``conv2d(method="auto")`` uses for this shape (see the module docstring)."""
    cg, fg = c // groups, f // groups
    # numpy's FFT slows down past a few megapixels (cache misses), direct does not
    if kh * kw >= FFT_MIN_TAPS and fg * cg <= 16 and n_out_pixels <= FFT_MAX_PIXELS:
        return "fft"
    if fg * cg <= 16:
        return "direct"
    return "gemm"


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", cval=0.0, flip=False, method="auto", workspace=None):
    """2-D cross-correlation with PyTorch's ``conv2d`` semantics.

    ``y[n, f, i, j] = bias[f] + sum_{c, a, b} w[f, c, a, b] * xpad[n, g*C/groups + c,
    i*sh + a*dh, j*sw + b*dw]`` where ``g`` is the group of filter ``f``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) or (C, H, W)
    weight : ndarray of shape (F, C/groups, kh, kw)
        Any kernel shape: 1x1, even, non-square.
    bias : ndarray of shape (F,), optional
    stride, dilation : int or (rows, cols)
    padding : int, (rows, cols), ((top, bottom), (left, right)), "valid", "same" or "full"
        ``"same"`` keeps ``out = ceil(in / stride)`` (TensorFlow's rule, which at
        stride 1 is PyTorch's 'same'; PyTorch itself refuses 'same' with stride > 1),
        the odd extra padding going to the bottom/right. ``"full"`` pads ``d*(k-1)``
        on every side.
    groups : int
        Per-channel (depthwise) filtering of an RGB image is ``groups=3`` with a
        weight of shape (3, 1, kh, kw).
    padding_mode : "zeros", "constant", "reflect", "replicate" or "circular"
    cval : float
        Border value for ``padding_mode="constant"``.
    flip : bool
        Flip the kernel in both axes first: a true convolution (scipy's ``convolve``).
    method : "auto", "direct", "gemm" or "fft"
        All give the same result up to float rounding; "auto" picks the fastest.
    workspace : dict, optional
        With the gemm method, the im2col matrices are kept here so that
        :func:`conv2d_backward` given the same dict does not gather them again (a
        training loop's forward/backward pair).

    Returns
    -------
    ndarray of shape (N, F, Ho, Wo) (or (F, Ho, Wo) for 3-D input), float32 (float64
    if ``x`` or ``weight`` is float64). ``Ho = floor((H + pt + pb - dh*(kh-1) - 1)/sh) + 1``.
    The result may be a channels-last view (as PyTorch's channels_last tensors are).

    Raises
    ------
    ValueError
        Bad shapes, groups, non-finite weights, or a geometry with an empty output
        (the message shows the size formula with the numbers).
    """
    check_mode(padding_mode)
    if method not in CONV_METHODS:
        raise ValueError(f"method must be one of {CONV_METHODS}, got {method!r}")
    x4, w, b, squeeze, dtype = _prepare(x, weight, bias, groups)
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    geom, pads = _geometry(x4, w, stride, padding, dilation)
    ho, wo = geom[0].out, geom[1].out
    if flip:
        w = w[..., ::-1, ::-1]
    n, c = x4.shape[:2]
    f, _, kh, kw = w.shape
    if method == "auto":
        method = choose_method(c, f, groups, kh, kw, n * ho * wo)
    xp = pad2d(x4, pads, padding_mode, cval)
    if method == "direct":
        y = _conv_direct(xp, w, ho, wo, stride, dilation, groups)
    elif method == "gemm":
        if workspace is not None:
            workspace.clear()
            workspace["key"] = _workspace_key(x4, w, stride, dilation, pads, padding_mode, cval)
        y = _conv_gemm(xp, w, ho, wo, stride, dilation, groups, workspace)
    elif np.isfinite(xp).all():
        y = _conv_fft(xp, w, ho, wo, stride, dilation, groups)
    else:
        # a Fourier transform would spread a NaN/inf over the whole output
        y = _conv_direct(xp, w, ho, wo, stride, dilation, groups)
    if b is not None:
        y += b[None, :, None, None]
    return y[0] if squeeze else y


# --------------------------------------------------------------------------- direct


def _run_blocks(fn, n_rows: int, block: int, work: int):
    """Call ``fn(r0, r1)`` over row blocks, on two threads when the work is large."""
    starts = list(range(0, n_rows, block))
    if work < THREAD_MIN_WORK or len(starts) < 4:
        for r0 in starts:
            fn(r0, min(r0 + block, n_rows))
        return
    # Two large work items (not one per block) keep thread hand-offs rare.
    mid = starts[len(starts) // 2]

    def half(lo, hi):
        for r0 in range(lo, hi, block):
            fn(r0, min(r0 + block, hi))

    fut = _pool().submit(half, mid, n_rows)
    half(0, mid)
    fut.result()


def _conv_direct(xp, w, ho, wo, stride, dilation, groups):
    n, c = xp.shape[:2]
    f, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    dtype = xp.dtype
    depthwise = cg == 1 and f == c
    if depthwise and sh == sw == 1 and _is_channels_last(xp):
        return _conv_direct_channels_last(xp, w, ho, wo, dilation)
    xp = np.ascontiguousarray(xp)
    out = np.empty((n, f, ho, wo), dtype)
    per_row = n * (c if depthwise else 1) * wo
    block = max(1, _BLOCK_ELEMS // per_row)
    fg = f // groups
    taps = [(i, j) for i in range(kh) for j in range(kw)]

    def rows(r0, r1):
        rb = r1 - r0
        if depthwise:
            tmp = np.empty((n, c, rb, wo), dtype)
            dst = out[:, :, r0:r1]
            for t, (i, j) in enumerate(taps):
                src = xp[:, :, r0 * sh + i * dh:(r1 - 1) * sh + i * dh + 1:sh,
                         j * dw:j * dw + (wo - 1) * sw + 1:sw]
                wt = w[:, 0, i, j][None, :, None, None]
                if t == 0:
                    np.multiply(src, wt, out=dst)
                else:
                    np.multiply(src, wt, out=tmp)
                    np.add(dst, tmp, out=dst)
            return
        tmp = np.empty((n, rb, wo), dtype)
        for fi in range(f):
            dst = out[:, fi, r0:r1]
            first = True
            for ci in range(cg):
                chan = (fi // fg) * cg + ci
                for i, j in taps:
                    src = xp[:, chan, r0 * sh + i * dh:(r1 - 1) * sh + i * dh + 1:sh,
                             j * dw:j * dw + (wo - 1) * sw + 1:sw]
                    if first:
                        np.multiply(src, w[fi, ci, i, j], out=dst)
                        first = False
                    else:
                        np.multiply(src, w[fi, ci, i, j], out=tmp)
                        np.add(dst, tmp, out=dst)

    _run_blocks(rows, ho, block, n * f * cg * ho * wo * kh * kw)
    return out


def _conv_direct_channels_last(xp, w, ho, wo, dilation):
    """Depthwise, stride 1, on (N, Hp, Wp, C) memory seen as rows of Wp*C values."""
    n, c, hp, wp = xp.shape
    kh, kw = w.shape[2:]
    dh, dw = dilation
    dtype = xp.dtype
    x2 = xp.transpose(0, 2, 3, 1).reshape(n, hp, wp * c)
    outl = np.empty((n, ho, wo, c), dtype)
    o2 = outl.reshape(n, ho, wo * c)
    # each tap's C weights tiled along the row
    wt = np.tile(w[:, 0].transpose(1, 2, 0), (1, 1, wo))  # (kh, kw, wo*c)
    row = wo * c
    block = max(1, _BLOCK_ELEMS // (n * row))
    taps = [(i, j) for i in range(kh) for j in range(kw)]

    def rows(r0, r1):
        tmp = np.empty((n, r1 - r0, row), dtype)
        dst = o2[:, r0:r1]
        for t, (i, j) in enumerate(taps):
            src = x2[:, r0 + i * dh:r1 + i * dh, j * dw * c:j * dw * c + row]
            if t == 0:
                np.multiply(src, wt[i, j], out=dst)
            else:
                np.multiply(src, wt[i, j], out=tmp)
                np.add(dst, tmp, out=dst)

    _run_blocks(rows, ho, block, n * c * ho * wo * kh * kw)
    return outl.transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------- gemm


def _windows_nhwc(xl, kh, kw, ho, wo, stride, dilation):
    """Read-only (N, Ho, Wo, kh, kw, C) view of windows of contiguous (N, Hp, Wp, C)."""
    sn, sr, sc, sch = xl.strides
    return as_strided(xl, shape=(xl.shape[0], ho, wo, kh, kw, xl.shape[3]),
                      strides=(sn, sr * stride[0], sc * stride[1], sr * dilation[0],
                               sc * dilation[1], sch), writeable=False)


#: below this many channels per group, im2col gathers tap-major (long contiguous runs)
TAP_MAJOR_MAX_CHANNELS = 8


def im2col(xp, kh, kw, ho, wo, stride, dilation, c0=0, c1=None):
    """Windows of channels ``c0:c1`` of padded ``xp`` (N, C, Hp, Wp) as a matrix.

    Returns an (N*Ho*Wo, kh*kw*Cg) matrix whose columns are ordered (tap row, tap col,
    channel), possibly a transposed view: with few channels the gather is done tap by
    tap into a (kh*kw*Cg, N*Ho*Wo) buffer (each copy a long run), with many channels
    window by window (runs of Cg values). Memory: N*Ho*Wo*kh*kw*Cg floats.
    """
    c1 = xp.shape[1] if c1 is None else c1
    cg = c1 - c0
    n = xp.shape[0]
    sh, sw = stride
    dh, dw = dilation
    if cg < TAP_MAJOR_MAX_CHANNELS:
        cols = np.empty((kh, kw, cg, n, ho, wo), xp.dtype)
        src = xp[:, c0:c1].transpose(1, 0, 2, 3)
        for i in range(kh):
            for j in range(kw):
                cols[i, j] = src[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh,
                                 j * dw:j * dw + (wo - 1) * sw + 1:sw]
        return cols.reshape(kh * kw * cg, n * ho * wo).T
    xl = xp.transpose(0, 2, 3, 1)
    if not xl.flags.c_contiguous:
        xl = np.ascontiguousarray(xl)
    win = _windows_nhwc(xl, kh, kw, ho, wo, stride, dilation)
    return win[..., c0:c1].reshape(n * ho * wo, kh * kw * cg)


def _weight_matrix(w, g, fg):
    """(kh*kw*Cg, Fg) weights of group ``g``, rows ordered like :func:`im2col`'s columns."""
    f, cg, kh, kw = w.shape
    return w[g * fg:(g + 1) * fg].transpose(2, 3, 1, 0).reshape(kh * kw * cg, fg)


def _conv_gemm(xp, w, ho, wo, stride, dilation, groups, workspace=None):
    n, c = xp.shape[:2]
    f, cg, kh, kw = w.shape
    fg = f // groups
    outl = np.empty((n, ho, wo, f), xp.dtype)
    row_bytes = wo * kh * kw * cg * xp.dtype.itemsize
    if n * ho * row_bytes <= GEMM_CHUNK_BYTES:
        for g in range(groups):
            cols = im2col(xp, kh, kw, ho, wo, stride, dilation, g * cg, (g + 1) * cg)
            if workspace is not None:
                workspace[("cols", g)] = cols
            outl[..., g * fg:(g + 1) * fg] = (cols @ _weight_matrix(w, g, fg)).reshape(
                n, ho, wo, fg)
        return outl.transpose(0, 3, 1, 2)
    # large inputs: one image and a band of rows at a time
    rows_per_chunk = max(1, GEMM_CHUNK_BYTES // row_bytes)
    sh = stride[0]
    span_h = dilation[0] * (kh - 1) + 1
    for ni in range(n):
        for r0 in range(0, ho, rows_per_chunk):
            r1 = min(ho, r0 + rows_per_chunk)
            band = xp[ni:ni + 1, :, r0 * sh:(r1 - 1) * sh + span_h]
            for g in range(groups):
                cols = im2col(band, kh, kw, r1 - r0, wo, stride, dilation, g * cg, (g + 1) * cg)
                outl[ni, r0:r1, :, g * fg:(g + 1) * fg] = (
                    cols @ _weight_matrix(w, g, fg)).reshape(r1 - r0, wo, fg)
    return outl.transpose(0, 3, 1, 2)


# ------------------------------------------------------------------------------ fft


def next_fast_len(n: int) -> int:
    """Smallest 2**a * 3**b * 5**c >= n (sizes pocketfft handles fastest)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _conv_fft(xp, w, ho, wo, stride, dilation, groups):
    n, c, hp, wp = xp.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    dh, dw = dilation
    sh, sw = stride
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    kd = np.zeros((f, cg, span_h, span_w), xp.dtype)
    kd[..., ::dh, ::dw] = w
    hf, wf = next_fast_len(hp), next_fast_len(wp)
    xs = np.fft.rfft2(xp, s=(hf, wf))
    ks = np.fft.rfft2(kd[..., ::-1, ::-1], s=(hf, wf))
    if cg == 1 and f == c:
        ys = xs * ks[:, 0][None]
    else:
        xs_g = xs.reshape(n, groups, cg, hf, wf // 2 + 1)
        ks_g = ks.reshape(groups, fg, cg, hf, wf // 2 + 1)
        ys = np.einsum("ngcyx,gfcyx->ngfyx", xs_g, ks_g).reshape(n, f, hf, wf // 2 + 1)
    del xs
    y = np.fft.irfft2(ys, s=(hf, wf))
    y = y[..., span_h - 1:span_h - 1 + (ho - 1) * sh + 1:sh,
          span_w - 1:span_w - 1 + (wo - 1) * sw + 1:sw]
    return np.ascontiguousarray(y, dtype=xp.dtype)


# ---------------------------------------------------------------------------- naive


def _naive_source(i: int, n: int, mode: str) -> int:
    """Index of the input cell that padded position ``i`` shows (-1: constant)."""
    if 0 <= i < n:
        return i
    if mode in ("zeros", "constant"):
        return -1
    if mode == "replicate":
        return 0 if i < 0 else n - 1
    if mode == "circular":
        return i % n
    # reflect (edge not repeated), folding repeatedly
    while not 0 <= i < n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def conv2d_naive(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros", cval=0.0, flip=False):
    """Reference twin of :func:`conv2d`: explicit loops over every output and tap, float64.

    Slow (pure Python); for tests and for the explanation of single pixels.
    """
    x4, w, b, squeeze, _ = _prepare(x, weight, bias, groups)
    x4 = x4.astype(np.float64)
    w = w.astype(np.float64)
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    geom, pads = _geometry(x4, w, stride, padding, dilation)
    check_mode(padding_mode)
    check_extent(padding_mode, pads, x4.shape[2:])
    if flip:
        w = w[..., ::-1, ::-1]
    n, c, h, wd = x4.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    out = np.zeros((n, f, geom[0].out, geom[1].out))
    cv = 0.0 if padding_mode == "zeros" else float(cval)
    for ni in range(n):
        for fi in range(f):
            g = fi // fg
            for oy in range(geom[0].out):
                for ox in range(geom[1].out):
                    acc = 0.0 if b is None else float(b[fi])
                    for ci in range(cg):
                        for a in range(kh):
                            sy = _naive_source(oy * stride[0] + a * dilation[0] - pads[0][0], h,
                                               padding_mode)
                            for bb in range(kw):
                                sx = _naive_source(ox * stride[1] + bb * dilation[1] - pads[1][0],
                                                   wd, padding_mode)
                                v = cv if sy < 0 or sx < 0 else x4[ni, g * cg + ci, sy, sx]
                                acc += w[fi, ci, a, bb] * v
                    out[ni, fi, oy, ox] = acc
    return out[0] if squeeze else out


# ------------------------------------------------------------------------- backward


def conv2d_backward(grad_out, x, weight, *, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", cval=0.0, flip=False, need_x=True, workspace=None):
    """Gradients of :func:`conv2d` with respect to ``x``, ``weight`` and ``bias``.

    Takes the forward's own arguments (``cval`` does not affect the gradients: a
    constant border has none). ``grad_x`` is the im2col gradient folded back
    (col2im, one strided add per tap) onto the padded input, then through the
    padding's adjoint (reflect/replicate/circular borders add into the cells they
    copied). ``workspace``: the dict given to the forward call, to reuse its im2col.

    Returns
    -------
    grad_x : ndarray like ``x`` (None if ``need_x`` is False)
    grad_weight : ndarray like ``weight``
    grad_bias : ndarray of shape (F,)
    """
    check_mode(padding_mode)
    x4, w, _, squeeze, dtype = _prepare(x, weight, None, groups)
    stride = pair(stride, "stride")
    dilation = pair(dilation, "dilation")
    geom, pads = _geometry(x4, w, stride, padding, dilation)
    ho, wo = geom[0].out, geom[1].out
    g4 = np.asarray(grad_out, dtype=dtype)
    if squeeze:
        g4 = g4[None]
    n, c, h, wd = x4.shape
    f, cg, kh, kw = w.shape
    if g4.shape != (n, f, ho, wo):
        raise ValueError(f"grad_out must have shape {(n, f, ho, wo)[1 if squeeze else 0:]}, "
                         f"got {np.shape(grad_out)}")
    wf = w[..., ::-1, ::-1] if flip else w
    fg = f // groups
    reuse = workspace is not None and workspace.get("key") == _workspace_key(
        x4, wf, stride, dilation, pads, padding_mode, cval)
    xp = None if reuse else pad2d(x4, pads, padding_mode, cval)
    gl = g4.transpose(0, 2, 3, 1)
    if not gl.flags.c_contiguous:
        gl = np.ascontiguousarray(gl)
    gl = gl.reshape(n * ho * wo, f)
    grad_w = np.empty((f, cg, kh, kw), dtype)
    grad_b = gl.sum(axis=0)
    hp, wp = h + pads[0][0] + pads[0][1], wd + pads[1][0] + pads[1][1]
    gxl = np.zeros((n, hp, wp, c), dtype) if need_x else None
    for g in range(groups):
        gg = gl[:, g * fg:(g + 1) * fg]  # (NHW, Fg)
        cols = workspace.get(("cols", g)) if reuse else None
        if cols is None:
            cols = im2col(xp, kh, kw, ho, wo, stride, dilation, g * cg, (g + 1) * cg)
        gw = (gg.T @ cols).reshape(fg, kh, kw, cg).transpose(0, 3, 1, 2)
        grad_w[g * fg:(g + 1) * fg] = gw
        if need_x:
            dcols = (gg @ _weight_matrix(wf, g, fg).T).reshape(n, ho, wo, kh, kw, cg)
            # col2im: each tap's gradient lands on a strided slice of the padded input
            for a in range(kh):
                r0 = a * dilation[0]
                for b in range(kw):
                    c0 = b * dilation[1]
                    gxl[:, r0:r0 + (ho - 1) * stride[0] + 1:stride[0],
                        c0:c0 + (wo - 1) * stride[1] + 1:stride[1],
                        g * cg:(g + 1) * cg] += dcols[:, :, :, a, b]
    if flip:
        grad_w = grad_w[..., ::-1, ::-1]
    grad_x = None
    if need_x:
        grad_x = pad2d_adjoint(gxl.transpose(0, 3, 1, 2), (h, wd), pads, padding_mode)
        if squeeze:
            grad_x = grad_x[0]
    return grad_x, np.ascontiguousarray(grad_w), grad_b
