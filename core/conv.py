"""2-D convolution (cross-correlation, as deep learning does it) with PyTorch's semantics.

One engine serves the visualiser and the CNN: :func:`conv2d` chooses among three
exact methods per call, all tested against the naive loop twin :func:`conv2d_naive`:

``direct``
    The sums over the ``kh*kw`` taps. When numba is installed (:mod:`core._jit`), one
    compiled loop does every direct convolution (:func:`_conv_jit`): it gathers the
    padded input rows a block of output rows needs into planar scratch, then builds
    each output row with nine taps per pass (2-5x faster than the numpy paths
    below; the result is planar). Low-rank kernels keep their 1-D passes where those
    are cheaper still (:data:`SEPARABLE_MAX_COST_JIT`). Without numba, or with
    ``CONVSCOPE_JIT=0``, the numpy paths: shift-and-add, ``y += w[i, j] * x[shifted]``.
    For per-channel (depthwise) filtering at stride 1 of two or more channels, the input is
    seen as channels-last rows of ``W*C`` values and one ``np.einsum`` call does every
    tap as a fused multiply-add pass over each row, without padding the whole input
    (:func:`_conv_depthwise_rows`); the result is then a channels-last view. Low-rank
    kernels (Gaussian, box, Sobel: checked exactly, per channel) take ``r`` horizontal
    and ``r`` vertical 1-D passes instead (:func:`_conv_depthwise_low_rank`). One
    channel and one filter with a 5x5 or larger kernel on a large image is cut into
    row strips stacked as channels for the same einsum loop
    (:func:`_conv_single_strips`). Otherwise (stride > 1, filters summed over
    channels, small kernels on one channel, batches of small images, where a Python
    call per image would dominate) the taps are numpy ufunc passes over row blocks
    that stay in cache. Large work runs on two threads (both einsum and ufuncs release
    the GIL). Best for small kernels.
``gemm``
    im2col + one matrix product per group: windows are gathered into a
    ``(N*Ho*Wo, kh*kw*C/groups)`` matrix (processed in chunks of at most
    :data:`GEMM_CHUNK_BYTES`), multiplied by the ``(kh*kw*C/groups, F/groups)`` weights.
    Best when there are many filters (CNN layers).
``fft``
    Overlap-save: the padded input is cut into overlapping tiles (:func:`fft_tile`
    picks their size), each multiplied in the Fourier domain by the kernel's spectrum
    (kernel dilated with zeros, flipped for correlation); the valid part of each tile
    is kept, then subsampled for stride. Tile rows are processed in chunks on two
    threads. Best for large kernels (from about 12x12, :data:`FFT_MIN_TAPS`, with the
    numpy paths; from about 29x29, :data:`FFT_MIN_TAPS_JIT`, with the loop). An input
    with NaN or inf is computed with ``direct`` instead (a transform would spread them
    over the tile).

``flat``
    For training batches of small images with few channels (a CNN's first layer):
    each image planar with its padded rows laid end to end, one long multiply-add per
    tap over the whole padded width (:func:`core._jit._conv_flat`), and the weight
    gradient as one dot product per tap (:func:`conv2d_backward` with the same
    method). Needs the compiled loop, stride 1, zero padding, no groups and at most
    :data:`FLAT_MAX_CHANNELS` input channels; elsewhere it is ``gemm``. Never chosen
    by ``auto``: the CNN's layer asks for it.

float64 inputs are computed in float64 (for gradient checks); everything else in
float32.
"""

from __future__ import annotations

import collections
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _jit
from .geometry import conv_geometry, pair
from .padding import check_extent, check_mode, pad2d, pad2d_adjoint, padding_index

__all__ = ["conv2d", "conv2d_naive", "conv2d_backward", "auto_method", "choose_method",
           "flat_applies", "CONV_METHODS", "FLAT_MAX_CHANNELS"]

CONV_METHODS = ("auto", "direct", "gemm", "fft", "flat")
#: the flat method's limit on input channels: LeNet's 5x5 first layer (1 channel, 8
#: filters) 1.1 ms flat vs 1.9-3.0 gemm, the Keras convnet's (1 channel, 32 filters,
#: 3x3) 1.4 vs 1.7-2.4, 3 channels and 16 5x5 filters on 32x32 5.3 vs 17.8; with 8
#: channels gemm was faster (LeNet's second layer: weight gradient 2.4 vs 1.0 ms)
FLAT_MAX_CHANNELS = 3
GEMM_CHUNK_BYTES = 64 << 20
#: kernels with at least this many taps use the FFT (per-channel filtering):
#: bench/bench_ops.py --methods, RGB float32, 'same': K=11 direct and FFT tie at
#: 512x512, 1920x1080 and 4096x4096 (10 vs 12, 85 vs 92, 618 vs 631 ms); at K=15 the
#: tiled FFT takes about half the time of direct (11 vs 21, 78 vs 142, 623 vs 1198 ms)
FFT_MIN_TAPS = 130
#: spectra per FFT work item (tile rows are grouped up to this size)
FFT_CHUNK_BYTES = 16 << 20
#: multiply-adds above which the direct method splits its row blocks over threads
THREAD_MIN_WORK = 4_000_000
_BLOCK_ELEMS = 1 << 18  # 1 MiB of float32 per scratch block (measured best, bench/)
#: strips stacked as channels for one-channel images (:func:`_conv_single_strips`)
_STRIPS = 4
#: ... used from this many taps (measured at 1080p: 3x3 is 25% slower stacked, 5x5 1.3x
#: faster, 7x7 1.9x) and this many output pixels per image (a batch of small images
#: would cost a Python call per image)
_STRIPS_MIN_TAPS = 20
_STRIPS_MIN_PIXELS = 1 << 16
#: the einsum paths (rows, low-rank) are taken for a batch of several images only from
#: this many multiply-adds per image: they make a few Python calls per image, where
#: the planar shift-and-add does each tap over the whole batch at once (measured:
#: 1000 RGB 16x16 images, 3x3: 84 vs 23 ms; 200 RGB 32x32, 7x7: 29 vs 36 ms)
_ROWS_MIN_IMAGE_WORK = 1 << 18
#: ... and the low-rank path from this many (its saving is larger: 500 RGB 16x16
#: images, 5x5 Gaussian, tie at 19 ms; 9x9 at 62k per image: 19 vs 45 ms)
_LOW_RANK_MIN_IMAGE_WORK = 1 << 14
#: inputs up to this many elements are padded whole for the einsum rows path instead
#: of filtering four border bands (512x512 RGB, 'same': 3x3 2.1 vs 2.5 ms, 7x7 4.9 vs
#: 5.9; at 1920x1080 the copy costs as much as it saves)
_PAD_WHOLE_ELEMS = 1 << 20
#: row ranges per threaded call of the einsum path (taken by whichever thread is free)
_SPLIT_PIECES = 8
#: use the low-rank path when r*(kh+kw) taps are at most this share of kh*kw
#: (bench: at 1920x1080 RGB, rank 1 5x5 10 vs 20 ms, 7x7 14 vs 31, 15x15 26 vs 99 (FFT);
#: rank 2 9x9 (0.44) 34 vs 43-52; rank 2 7x7 (0.57) 30 vs 35; rank 1 3x3 (0.67) no gain)
SEPARABLE_MAX_COST = 0.45
#: scratch elements per row range of the low-rank path (stays in the 1 MiB L2 cache)
_LOW_RANK_BLOCK_ELEMS = 1 << 17
#: cap on the tiled weights of the einsum path (columns are done in chunks beyond it)
_EINSUM_WEIGHT_BYTES = 8 << 20

#: with the compiled loop (:mod:`core._jit`): scratch elements per row block, and the
#: multiply-adds per work item below which whole images are grouped into one item
_JIT_BLOCK_ELEMS = 1 << 16
_JIT_ITEM_WORK = 1 << 20
#: ... batches of at least this many images whose output rows are narrower than this
#: go to gemm under "auto" (128 RGB 32x32 depthwise 3x3: 2.8 ms direct, 2.4 gemm;
#: 16 RGB 64x64, 5x5: 1.9 vs 2.8)
_JIT_MIN_BATCH_FOR_GEMM = 8
_JIT_MIN_ROW = 40
#: ... the FFT is used from this many taps (per-channel filtering; measured, RGB 'same':
#: 512x512 K 27 16 ms direct vs 20 FFT, K 31 23 vs 18; 1920x1080 K 27 141 vs 157,
#: K 31 187 vs 152)
FFT_MIN_TAPS_JIT = 800
#: ... and low-rank 1-D passes only when r*(kh+kw) is at most this share of kh*kw
#: (1920x1080 RGB Gaussians, 1-D passes vs loop: 5x5 (0.4) 14 vs 9 ms, 9x9 (0.22) tie
#: at 24, 11x11 (0.18) 38/32 vs 34, 15x15 (0.13) 47-49 vs 51-57)
SEPARABLE_MAX_COST_JIT = 0.15

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_worker_niceness = 0


def set_worker_niceness(niceness: int) -> None:
    """Run the helper threads of :func:`conv2d` at a lower priority (Unix nice
    ``niceness``; see :func:`core.memory.lower_thread_priority`). The GUI sets it at
    start-up so that its UI thread keeps a core; it applies to helper threads started
    after the call (the pool starts them on first use)."""
    global _worker_niceness
    _worker_niceness = int(niceness)


def _init_worker() -> None:
    if _worker_niceness > 0:
        from .memory import lower_thread_priority
        lower_thread_priority(_worker_niceness)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:  # two threads' first calls must not each make a pool
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=max(2, min(4, os.cpu_count() or 2)),
                thread_name_prefix="convscope-conv", initializer=_init_worker)
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


def choose_method(c, f, groups, kh, kw) -> str:
    """The method ``conv2d(method="auto")`` uses for this shape (see the module docstring)."""
    cg, fg = c // groups, f // groups
    fft_min = FFT_MIN_TAPS_JIT if _jit.enabled() else FFT_MIN_TAPS
    if kh * kw >= fft_min and fg * cg <= 16:
        return "fft"
    if fg * cg <= 16:
        return "direct"
    return "gemm"


def auto_method(x, weight, *, stride=1, groups=1) -> str:
    """The method ``conv2d(x, weight, stride=stride, groups=groups)`` picks ("auto")."""
    x4, w, _, _, dtype = _prepare(x, weight, None, groups)
    stride = pair(stride, "stride")
    if _low_rank_ok(x4, w, stride, groups) and _cheap_low_rank(w, dtype) is not None:
        return "direct"
    # the output width at 'valid' padding: enough to tell narrow rows from wide ones
    wo = max(1, (x4.shape[3] - w.shape[3]) // stride[1] + 1)
    return _auto_method(x4, w, groups, wo)


def _auto_method(x4, w, groups, wo) -> str:
    """:func:`choose_method`, except that with the compiled loop a batch of images with
    narrow output rows goes to gemm: the loop's rows are too short to pay (measured:
    128 MNIST images, 8 5x5 filters: 5.9 ms direct, 2.0 ms gemm)."""
    method = choose_method(x4.shape[1], w.shape[0], groups, *w.shape[2:])
    if (method == "direct" and _jit.enabled() and x4.shape[0] >= _JIT_MIN_BATCH_FOR_GEMM
            and wo < _JIT_MIN_ROW):
        return "gemm"
    return method


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
    method : "auto", "direct", "gemm", "fft" or "flat"
        All give the same result up to float rounding; "auto" picks the fastest
        ("flat" is for training batches and falls back to "gemm" where it does not
        apply: see the module docstring).
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
    rows_ok = _depthwise_rows_ok(x4, w, stride, groups)
    magnitude = None  # max |input|, computed when a path needs it
    factors = None
    if method in ("auto", "direct") and _low_rank_ok(x4, w, stride, groups):
        factors = _cheap_low_rank(w, dtype)
        if factors is not None:
            magnitude = _magnitude(x4, padding_mode, cval)
            if not _low_rank_safe(factors, magnitude, dtype):
                factors = None
    if method == "flat":
        if flat_applies(x4, w, stride, groups, padding_mode):
            y = _conv_flat(x4, w, b, pads, ho, wo, dilation)
            return y[0] if squeeze else y
        method = "gemm"
    if method == "auto":
        # a low-rank kernel (a 15x15 Gaussian) is cheapest as 1-D passes, even when large
        method = "direct" if factors is not None else _auto_method(x4, w, groups, wo)
    if method == "direct" and factors is None and _jit.ready(
            dtype, x4.shape[0] * f * ho * wo * kh * kw * (c // groups)):
        y = _conv_jit(x4, w, b, pads, padding_mode, cval, ho, wo, stride, dilation, groups)
        return y[0] if squeeze else y
    if method == "direct" and (factors is not None or rows_ok):
        if factors is not None:
            y = _conv_depthwise_low_rank(x4, factors, pads, padding_mode, cval, ho, wo,
                                         dilation)
        else:
            y = _conv_depthwise_rows(x4, w, pads, padding_mode, cval, ho, wo, dilation)
        _add_bias(y, b)
        return y[0] if squeeze else y
    xp = pad2d(x4, pads, padding_mode, cval)
    if (method == "direct" and c == f == 1 and stride == (1, 1) and kh * kw >= _STRIPS_MIN_TAPS
            and ho * wo >= _STRIPS_MIN_PIXELS and ho >= 2 * _STRIPS):
        y = _conv_single_strips(xp, w, ho, wo, dilation)
    elif method == "direct":
        y = _conv_direct(xp, w, ho, wo, stride, dilation, groups)
    elif method == "gemm":
        if workspace is not None:
            workspace.clear()
            workspace["key"] = _workspace_key(x4, w, stride, dilation, pads, padding_mode, cval)
        y = _conv_gemm(xp, w, ho, wo, stride, dilation, groups, workspace)
    elif _fft_safe(_magnitude(x4, padding_mode, cval) if magnitude is None else magnitude,
                   xp.shape, w, dtype):
        y = _conv_fft(xp, w, ho, wo, stride, dilation, groups)
    elif _jit.ready(dtype):
        # a Fourier transform would spread a NaN/inf (or an overflow) over the whole tile
        y = _conv_jit(x4, w, b, pads, padding_mode, cval, ho, wo, stride, dilation, groups)
        return y[0] if squeeze else y
    else:
        y = _conv_direct(xp, w, ho, wo, stride, dilation, groups)
    _add_bias(y, b)
    return y[0] if squeeze else y


def flat_applies(x4, w, stride, groups, padding_mode) -> bool:
    """Whether ``method="flat"`` runs the flat loops for this call (else gemm)."""
    n, c = x4.shape[:2]
    return (stride == (1, 1) and groups == 1 and padding_mode == "zeros"
            and c <= FLAT_MAX_CHANNELS
            and _jit.flat_ready(x4.dtype, n * w.shape[0] * x4.shape[2] * x4.shape[3]
                                * w.shape[2] * w.shape[3] * c))


def _flat_geometry(kh, kw, pads, ho, wo, dilation):
    """The padding before and the padded size the flat loops need."""
    return ((pads[0][0], pads[1][0]),
            ((ho - 1) + dilation[0] * (kh - 1) + 1, (wo - 1) + dilation[1] * (kw - 1) + 1))


def _channels_last(x4) -> np.ndarray:
    """(N, H, W, C) C-contiguous memory of (N, C, H, W) ``x4`` (a view when it is one)."""
    return np.ascontiguousarray(x4.transpose(0, 2, 3, 1))


def _conv_flat(x4, w, b, pads, ho, wo, dilation):
    n, f = x4.shape[0], w.shape[0]
    xl = _channels_last(x4)
    w = np.ascontiguousarray(w)
    b = np.zeros(f, x4.dtype) if b is None else np.ascontiguousarray(b, x4.dtype)
    out = np.empty((n, ho, wo, f), x4.dtype)
    pad, padded = _flat_geometry(*w.shape[2:], pads, ho, wo, dilation)

    def run(n0, n1):
        _jit.conv_flat(xl, w, b, out, pad, padded, dilation, n0, n1)

    _split_images(run, n, n * ho * wo * f * w[0].size)
    return out.transpose(0, 3, 1, 2)


def _conv_flat_grads(gl, x4, wshape, pads, ho, wo, dilation):
    """The flat method's weight and bias gradients; ``gl`` (N, Ho, Wo, F)
    channels-last. Each work item sums into its own arrays, added up at the end in the
    items' order, whichever thread ran them (a training run is repeatable)."""
    n = x4.shape[0]
    xl = _channels_last(x4)
    pad, padded = _flat_geometry(*wshape[2:], pads, ho, wo, dilation)
    partials = {}

    def run(n0, n1):
        gw = np.zeros(wshape, x4.dtype)
        gb = np.zeros(wshape[0], x4.dtype)
        _jit.conv_flat_grad_w(xl, gl, gw, gb, pad, padded, dilation, n0, n1)
        partials[n0] = (gw, gb)

    _split_images(run, n, n * ho * wo * int(np.prod(wshape)))
    parts = [partials[k] for k in sorted(partials)]
    gw, gb = parts[0]
    for w_part, b_part in parts[1:]:
        gw += w_part
        gb += b_part
    return gw, gb


def _magnitude(x4, mode, cval) -> float:
    """Largest ``|value|`` the convolution reads (the input, and ``cval`` for constant
    padding); ``inf`` when any is NaN or infinite. Two reductions, no temporary."""
    if x4.size == 0:
        return 0.0
    lo, hi = float(x4.min()), float(x4.max())  # both propagate NaN
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.inf
    m = max(-lo, hi)
    if mode == "constant":
        cv = float(cval)
        m = max(m, abs(cv)) if math.isfinite(cv) else math.inf
    return m


def _low_rank_safe(factors, magnitude: float, dtype) -> bool:
    """Whether the 1-D passes stay finite and exact where the 2-D sum does.

    Non-finite input is refused: the 1-D passes would turn the 2-D sum's ``0*inf`` into
    +-inf instead of NaN. Large input is refused when a partial sum could overflow:
    the horizontal pass is bounded by ``|v|_1 * magnitude``, the vertical one by
    ``sum_m |u_m|_1 |v_m|_1 * magnitude``, which for rank >= 2 can exceed the
    kernel's own ``|k|_1`` (components that cancel)."""
    if not math.isfinite(magnitude):
        return False
    u, v = factors
    vn = np.abs(v.astype(np.float64)).sum(axis=2)  # (C, r)
    amp = float((np.abs(u.astype(np.float64)).sum(axis=2) * vn).sum(axis=1).max())
    return magnitude * max(amp, float(vn.max())) <= 0.25 * float(np.finfo(dtype).max)


def _fft_safe(magnitude: float, padded_shape, w, dtype) -> bool:
    """Whether the FFT path stays finite: no NaN/inf in the input (a transform spreads
    them over the tile) and no spectrum that could overflow (a tile's transform is
    bounded by the sum of its values, at most the whole padded input's)."""
    if not math.isfinite(magnitude):
        return False
    k1 = float(np.abs(w.astype(np.float64)).sum(axis=(1, 2, 3)).max())
    tile = float(padded_shape[-2]) * float(padded_shape[-1]) * max(1.0, k1)
    return magnitude * tile <= 0.25 * float(np.finfo(dtype).max)


def _add_bias(y: np.ndarray, b) -> None:
    """``y += b`` per filter, in place, along whole rows of ``y``'s memory."""
    if b is None or not np.any(b):
        return  # adding zeros changes nothing (but the sign of a -0.0)
    n, f, ho, wo = y.shape
    yl = y.transpose(0, 2, 3, 1)
    if f > 1 and yl.flags.c_contiguous:
        # channels-last: broadcasting b over (N, F, H, W) would run an inner loop of
        # F elements per pixel (7x slower at 1080p RGB); add b tiled along each row
        rows = yl.reshape(n, ho, wo * f)
        rows += np.tile(b, wo)
    else:
        y += b[None, :, None, None]


# --------------------------------------------------------------------------- direct


def _run_shared(fn, items):
    """Call ``fn(*item)`` for every item. With two or more items the caller and one pool
    thread take them in turn from a shared queue: when the other core is busy (another
    program, or a library's spinning threads) the caller simply does more of them
    instead of waiting for a fixed half."""
    queue = collections.deque(items)

    def drain():
        while True:
            try:
                item = queue.popleft()  # atomic
            except IndexError:
                return
            fn(*item)

    if len(queue) < 2:
        drain()
        return
    fut = _pool().submit(drain)
    try:
        drain()
    except BaseException:
        queue.clear()  # the pool thread stops after its current item
        raise
    finally:
        fut.result()


def _run_blocks(fn, n_rows: int, block: int, work: int):
    """Call ``fn(r0, r1)`` over row blocks, on two threads when the work is large."""
    blocks = [(r0, min(r0 + block, n_rows)) for r0 in range(0, n_rows, block)]
    if work < THREAD_MIN_WORK:
        for r0, r1 in blocks:
            fn(r0, r1)
        return
    _run_shared(fn, blocks)


def _conv_direct(xp, w, ho, wo, stride, dilation, groups):
    n, c = xp.shape[:2]
    f, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    dtype = xp.dtype
    depthwise = cg == 1 and f == c
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


def _conv_jit(x4, w, b, pads, mode, cval, ho, wo, stride, dilation, groups):
    """Any direct convolution with the compiled loop of :mod:`core._jit`: the input is
    read in place (any layout; padding through source maps), the result is planar
    (N, F, Ho, Wo) with the bias added. Work items are row blocks of one image, or
    groups of whole small images, taken by two threads when the work is large."""
    n, c, h, wd = x4.shape
    f, cg, kh, kw = w.shape
    (pt, pb), (pl, pr) = pads
    check_extent(mode, pads, (h, wd))
    dtype = x4.dtype
    rmap = padding_index(h, pt, pb, mode).astype(np.int64)
    cmap = padding_index(wd, pl, pr, mode).astype(np.int64)
    out = np.empty((n, f, ho, wo), dtype)
    bias = np.zeros(f, dtype) if b is None else np.ascontiguousarray(b, dtype)
    w = np.ascontiguousarray(w)
    xl = x4.transpose(0, 2, 3, 1)
    wp = (wo - 1) * stride[1] + dilation[1] * (kw - 1) + 1
    span_h = dilation[0] * (kh - 1) + 1
    image_work = f * cg * ho * wo * kh * kw
    if image_work >= _JIT_ITEM_WORK:  # row blocks of one image
        fit = (_JIT_BLOCK_ELEMS // max(1, cg * wp) - span_h) // stride[0] + 1
        # at least _SPLIT_PIECES items, so that two threads finish together
        rb = max(1, min(ho, fit, -(-ho * n // _SPLIT_PIECES)))
        items = [(i, i + 1, r0, min(ho, r0 + rb)) for i in range(n)
                 for r0 in range(0, ho, rb)]
    else:  # whole images, several per item
        per = max(1, _JIT_ITEM_WORK // max(1, image_work))
        items = [(i, min(n, i + per), 0, ho) for i in range(0, n, per)]

    value = cval if mode == "constant" else 0.0

    def run(b0, b1, r0, r1):
        _jit.conv_rows(xl, w, bias, rmap, cmap, pl, value, stride, dilation, groups, out, b0,
                       b1, r0, r1)

    if n * image_work < THREAD_MIN_WORK:
        for item in items:
            run(*item)
    else:
        _run_shared(run, items)
    return out


def _depthwise_stride1(x4, w, stride, groups) -> bool:
    """Depthwise (one filter per channel), stride 1, C >= 2: the einsum paths' shape."""
    c, f, cg = x4.shape[1], w.shape[0], w.shape[1]
    return cg == 1 and f == c and groups == c and c > 1 and stride == (1, 1)


def _image_work(x4, w) -> int:
    """Multiply-adds per image of the 2-D filter."""
    return int(np.prod(x4.shape[1:], dtype=np.int64)) * w.shape[2] * w.shape[3]


def _depthwise_rows_ok(x4, w, stride, groups) -> bool:
    """Whether :func:`_conv_depthwise_rows` applies and pays: depthwise, stride 1,
    C >= 2, and one image or images big enough (:data:`_ROWS_MIN_IMAGE_WORK`)."""
    return _depthwise_stride1(x4, w, stride, groups) and (
        x4.shape[0] == 1 or _image_work(x4, w) >= _ROWS_MIN_IMAGE_WORK)


def _low_rank_ok(x4, w, stride, groups) -> bool:
    """Whether :func:`_conv_depthwise_low_rank` applies and pays, its kernel aside:
    as :func:`_depthwise_rows_ok` with :data:`_LOW_RANK_MIN_IMAGE_WORK`."""
    return _depthwise_stride1(x4, w, stride, groups) and (
        x4.shape[0] == 1 or _image_work(x4, w) >= _LOW_RANK_MIN_IMAGE_WORK)


def _conv_depthwise_rows(x4, w, pads, mode, cval, ho, wo, dilation):
    """Depthwise, stride 1, on (N, H, W, C) memory seen as rows of W*C values.

    One ``np.einsum("rije,ije->re")`` call per row range does every tap: for each output
    row and tap it runs one fused multiply-add over the whole row (``y += x * w``, the
    taps' C weights tiled along the row, or one scalar per tap when every channel has
    the same kernel). That is one pass per tap where a ufunc
    shift-and-add needs two (multiply into a scratch row, then add), and no Python call
    per tap or block. It needs the row to be the innermost, unit-stride axis with the
    taps at a different stride, which interleaved channels give (C >= 2; with one
    channel einsum picks the taps as its inner loop and is 8x slower, so a single
    channel takes the planar shift-and-add).

    The input is not padded as a whole: the interior of the output (windows inside
    the image) reads ``x`` in place; the border bands read small padded copies. A
    planar input is first copied to channels-last (one pass, repaid many times over).
    The result is a channels-last (N, C, Ho, Wo) view.
    """
    if x4.size <= _PAD_WHOLE_ELEMS and any(p for side in pads for p in side):
        # small input: one padded copy is cheaper than four border bands' calls
        x4 = pad2d(x4, pads, mode, cval)
        pads = ((0, 0), (0, 0))
    n, c, h, wd = x4.shape
    kh, kw = w.shape[2:]
    dh, dw = dilation
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    (pt, pb), (pl, pr) = pads
    xl = x4.transpose(0, 2, 3, 1)
    if not xl.flags.c_contiguous:
        xl = np.ascontiguousarray(xl)
    outl = np.empty((n, ho, wo, c), x4.dtype)
    o2 = outl.reshape(n, ho, wo * c)
    # output rows/cols whose windows lie inside the image: [r0, r1) x [c0, c1)
    r0 = min(pt, ho)
    r1 = max(r0, ho - pb)
    c0 = min(pl, wo)
    c1 = max(c0, wo - pr)
    taps = _TapRows(w[:, 0], wo, dilation)

    if r1 > r0 and c1 > c0:
        x2 = xl.reshape(n, h, wd * c)

        def interior(b, a, z):  # output rows [r0 + a, r0 + z) of image b
            taps(x2[b, a:z + span_h - 1, :(c1 - c0 + span_w - 1) * c],
                 o2[b, r0 + a:r0 + z, c0 * c:c1 * c])

        _run_split(interior, n, r1 - r0, n * c * (r1 - r0) * (c1 - c0) * kh * kw)
    # Border bands from padded copies. The left and right bands are a few columns wide:
    # they are transposed first, so that einsum's rows are long there too.
    rmap = padding_index(h, pt, pb, mode)
    cmap = padding_index(wd, pl, pr, mode)
    value = cval if mode == "constant" else 0.0
    taps_t = None
    for ra, rb, ca, cb in ((0, r0, 0, wo), (r1, ho, 0, wo), (r0, r1, 0, c0),
                           (r0, r1, c1, wo)):
        if ra >= rb or ca >= cb:
            continue
        ri = rmap[ra:rb + span_h - 1]
        ci = cmap[ca:cb + span_w - 1]
        block = xl[:, np.maximum(ri, 0)[:, None], np.maximum(ci, 0)[None, :]]
        if mode in ("zeros", "constant"):
            block[:, ri < 0] = value
            block[:, :, ci < 0] = value
        if ra == 0 or ra == r1:  # top / bottom: full-width rows
            b2 = block.reshape(n, block.shape[1], -1)
            for b in range(n):
                taps(b2[b], o2[b, ra:rb, ca * c:cb * c])
            continue
        if taps_t is None:
            taps_t = _TapRows(w[:, 0].transpose(0, 2, 1), r1 - r0, (dw, dh))
        bt = np.ascontiguousarray(block.transpose(0, 2, 1, 3))  # (n, cols, rows, c)
        bt2 = bt.reshape(n, bt.shape[1], -1)
        yt = np.empty((cb - ca, (rb - ra) * c), x4.dtype)
        for b in range(n):
            taps_t(bt2[b], yt)
            outl[b, ra:rb, ca:cb] = yt.reshape(cb - ca, rb - ra, c).transpose(1, 0, 2)
    return outl.transpose(0, 3, 1, 2)


def _conv_single_strips(xp, w, ho, wo, dilation):
    """One channel, one filter, stride 1: the einsum row path on stacked strips.

    einsum needs the taps at a stride other than the row's (see
    :func:`_conv_depthwise_rows`), which one channel does not give. So the padded input
    is cut into :data:`_STRIPS` horizontal strips (each with its ``span - 1`` rows of
    overlap), interleaved as the channels of one channels-last array, filtered with the
    kernel shared by all "channels" (einsum's scalar loop), and unstacked: two copies
    instead of a second pass per tap.
    """
    n, _, hp, wp = xp.shape
    kh, kw = w.shape[2:]
    dh, dw = dilation
    span_h = dh * (kh - 1) + 1
    s = _STRIPS
    hs = -(-ho // s)  # output rows per strip
    stacked = np.zeros((n, hs + span_h - 1, wp, s), xp.dtype)
    for k in range(s):
        rows = xp[:, 0, k * hs:k * hs + hs + span_h - 1]
        stacked[:, :rows.shape[1], :, k] = rows
    out = np.empty((n, hs, wo, s), xp.dtype)
    x2 = stacked.reshape(n, hs + span_h - 1, wp * s)
    o2 = out.reshape(n, hs, wo * s)
    taps = _TapRows(np.repeat(w[:1, 0], s, axis=0), wo, dilation)

    def rows_of(b, a, z):
        taps(x2[b, a:z + span_h - 1], o2[b, a:z])

    _run_split(rows_of, n, hs, n * ho * wo * kh * kw)
    y = out.transpose(0, 3, 1, 2).reshape(n, s * hs, wo)[:, :ho]
    return y[:, None]


class _TapRows:
    """``dst[r, e] = sum_ij src[r + i*dh, e + j*dw*C] * w[e % C, i, j]`` for 2-D row views
    of channels-last data (rows of W*C values): one einsum call per column chunk.

    The weights are tiled along the row (``(kh, kw, cols*C)``, at most
    :data:`_EINSUM_WEIGHT_BYTES`; longer rows go in chunks), or kept as one scalar per
    tap when every channel has the same kernel: einsum's scalar-times-row loop reads
    two streams instead of three (25% faster).
    """

    def __init__(self, k: np.ndarray, max_cols: int, dilation):
        c, kh, kw = k.shape
        self.c, self.kh, self.kw = c, kh, kw
        self.dh, self.dw = dilation
        self.shared = bool(np.all(k[1:] == k[:1]))
        if self.shared:
            self.chunk = None
            self.w = np.ascontiguousarray(k[0])  # (kh, kw)
        else:
            cols = max(1, min(max_cols, _EINSUM_WEIGHT_BYTES // (kh * kw * c * k.itemsize)))
            self.chunk = cols * c
            self.w = np.tile(k.transpose(1, 2, 0), (1, 1, cols))  # (kh, kw, cols*c)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> None:
        kh, kw, c = self.kh, self.kw, self.c
        rows, e_all = dst.shape
        if (src.shape[0] < rows + self.dh * (kh - 1)
                or src.shape[1] < e_all + self.dw * (kw - 1) * c):
            raise AssertionError("window view would leave its source")  # never: a guard
        sr, se = src.strides
        step = self.chunk or e_all
        for q in range(0, e_all, step):
            e = min(step, e_all - q)
            v = as_strided(src[:, q:], (rows, kh, kw, e),
                           (sr, sr * self.dh, se * c * self.dw, se), writeable=False)
            if self.shared:
                np.einsum("rije,ij->re", v, self.w, out=dst[:, q:q + e])
            else:
                np.einsum("rije,ije->re", v, self.w[..., :e], out=dst[:, q:q + e])


def _low_rank_factors(k: np.ndarray, dtype):
    """Exact low-rank factors of per-channel kernels ``k`` (C, kh, kw), or None.

    Returns ``(u, v)`` of shapes (C, r, kh) and (C, r, kw) with
    ``k[c] == sum_m outer(u[c, m], v[c, m])`` up to float rounding of ``dtype``, r the
    largest rank over the channels. Separable kernels (box, Gaussian, Sobel, ...) have
    r = 1.

    "Up to rounding" is checked per channel, in the norm that bounds the change of a
    result: ``sum |k[c] - sum_m outer(u, v)| <= 8 eps sum |k[c]|`` (a kernel stored in
    ``dtype`` is already that far from its exact value), so a kernel that is only
    nearly low-rank (a rank-1 kernel plus 1e-5 of another) is refused, not rounded.
    Each ``v[c, m]`` has unit L1 norm, so the horizontal pass never exceeds the input's
    magnitude (no overflow the 2-D sum would not have).
    """
    c, kh, kw = k.shape
    if min(kh, kw) < 2:
        return None
    k64 = k.astype(np.float64)
    u, sv, vt = np.linalg.svd(k64)
    norm1 = np.abs(k64).sum(axis=(1, 2))  # (C,)
    if not norm1.any():
        return None
    eps = np.finfo(dtype).eps
    r = int(max(1, (sv > sv[:, :1] * max(eps, 1e-13)).sum(axis=1).max()))
    if r == min(kh, kw):
        return None
    uf = u[:, :, :r] * sv[:, None, :r]  # (C, kh, r)
    vf = vt[:, :r, :]  # (C, r, kw)
    vn = np.abs(vf).sum(axis=2)  # (C, r)
    vn[vn == 0] = 1.0
    vf = vf / vn[:, :, None]
    uf = uf * vn[:, None, :]
    err = np.abs(np.einsum("chm,cmw->chw", uf, vf) - k64).sum(axis=(1, 2))
    if np.any(err > (8 * eps + 1e-13) * norm1):  # 1e-13: the float64 SVD's own error
        return None
    return uf.transpose(0, 2, 1).astype(dtype), vf.astype(dtype)


def _cheap_low_rank(w, dtype):
    """Low-rank factors of depthwise kernels ``w`` (C, 1, kh, kw) when the 1-D passes
    (``r*(kh + kw)`` taps) cost at most :data:`SEPARABLE_MAX_COST` of the 2-D ones."""
    kh, kw = w.shape[2:]
    limit = (SEPARABLE_MAX_COST_JIT if _jit.enabled() else SEPARABLE_MAX_COST) * kh * kw
    if kh + kw > limit:  # even rank 1 would not pay (3x3)
        return None
    factors = _low_rank_factors(w[:, 0], dtype)
    if factors is None or factors[0].shape[1] * (kh + kw) > limit:
        return None
    return factors


def _conv_depthwise_low_rank(x4, factors, pads, mode, cval, ho, wo, dilation):
    """Depthwise, stride 1, a rank-r kernel per channel: r horizontal 1-D passes, then r
    vertical ones, ``r*(kh + kw)`` taps per pixel instead of ``kh*kw`` (a 15x15 Gaussian:
    30 instead of 225). Each row range is filtered horizontally into a scratch block
    that the vertical pass reads while it is still in cache. Channels-last result."""
    u, v = factors  # (C, r, kh), (C, r, kw)
    n, c = x4.shape[:2]
    r, kh, kw = u.shape[1], u.shape[2], v.shape[2]
    dh, dw = dilation
    span_h = dh * (kh - 1) + 1
    xl = pad2d(x4, pads, mode, cval).transpose(0, 2, 3, 1)
    if not xl.flags.c_contiguous:
        xl = np.ascontiguousarray(xl)
    hp = xl.shape[1]
    x2 = xl.reshape(n, hp, -1)
    outl = np.empty((n, ho, wo, c), x4.dtype)
    o2 = outl.reshape(n, ho, wo * c)
    # weights tiled along at most `cols` output columns (longer rows go in chunks)
    cols = max(1, min(wo, _EINSUM_WEIGHT_BYTES // (r * (kh + kw) * c * u.itemsize)))
    chunk = cols * c
    vt = np.tile(v.transpose(1, 2, 0), (1, 1, cols))  # (r, kw, chunk)
    ut = np.tile(u.transpose(1, 2, 0), (1, 1, cols))  # (r, kh, chunk)
    _, sr, se = x2.strides
    row = wo * c

    def rows(b, a, z):
        hb = z - a + span_h - 1
        for q in range(0, row, chunk):
            e = min(chunk, row - q)
            hv = as_strided(x2[b, a:a + hb, q:], (hb, kw, e), (sr, se * c * dw, se),
                            writeable=False)
            tmp = np.einsum("rje,mje->mre", hv, vt[..., :e])  # (r, hb, e)
            t0, t1, t2 = tmp.strides
            vv = as_strided(tmp, (r, z - a, kh, e), (t0, t1, t1 * dh, t2), writeable=False)
            np.einsum("mrie,mie->re", vv, ut[..., :e], out=o2[b, a:z, q:q + e])

    _run_split(rows, n, ho, n * c * ho * wo * r * (kh + kw),
               max_rows=max(8, _LOW_RANK_BLOCK_ELEMS // max(1, r * min(row, chunk))))
    return outl.transpose(0, 3, 1, 2)


def _run_split(fn, n: int, n_rows: int, work: int, max_rows: int | None = None):
    """Call ``fn(image, r0, r1)`` over all rows of ``n`` images: at once when the work is
    small, else in about :data:`_SPLIT_PIECES` row ranges on two threads; ranges of at
    most ``max_rows`` rows either way."""
    step = n_rows if work < THREAD_MIN_WORK else -(-n_rows // max(1, _SPLIT_PIECES // n))
    step = max(1, min(step, max_rows or n_rows))
    if work < THREAD_MIN_WORK:
        for b in range(n):
            for r in range(0, n_rows, step):
                fn(b, r, min(n_rows, r + step))
        return
    _run_shared(fn, [(b, r, min(n_rows, r + step)) for b in range(n)
                     for r in range(0, n_rows, step)])


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
    size = n * ho * wo * kh * kw * cg
    if cg == xp.shape[1] and _jit.pool_back_ready(xp.dtype, size):
        cols = np.empty((n, ho, wo, kh * kw * cg), xp.dtype)
        x3 = xl.reshape(n, xl.shape[1], -1)

        def run(n0, n1):
            _jit.im2col_rows(x3, cols, (kh, kw), stride, dilation, n0, n1)

        _split_images(run, n, size)
        return cols.reshape(n * ho * wo, kh * kw * cg)
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
            if groups == 1:  # straight into the output (a copy of it took 0.5-1 ms)
                np.matmul(cols, _weight_matrix(w, 0, f), out=outl.reshape(n * ho * wo, f))
                continue
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


def fft_tile(n_out: int, span: int) -> int:
    """FFT length per tile along an axis with ``n_out`` outputs and kernel extent ``span``.

    Overlap-save: a tile of length T gives ``T - span + 1`` outputs. Candidates are the
    fast lengths from ``2*span`` up to one tile for the whole axis; the cost model is
    ``tiles * T * (log2(T) + 6)`` (transforms plus a per-line overhead), which at equal
    cost prefers the longer tile (fewer Python-level pieces).
    """
    whole = next_fast_len(n_out + span - 1)
    best, best_cost = whole, math.ceil(n_out / (whole - span + 1)) * whole * (
        math.log2(whole) + 6)
    t = next_fast_len(max(2 * span, 16))
    while t < whole:
        cost = math.ceil(n_out / (t - span + 1)) * t * (math.log2(t) + 6)
        if cost < best_cost:
            best, best_cost = t, cost
        t = next_fast_len(t + 1)
    return best


def _conv_fft(xp, w, ho, wo, stride, dilation, groups):
    """Overlap-save FFT convolution in tiles (see :func:`fft_tile`), tile rows in chunks
    of at most :data:`FFT_CHUNK_BYTES` of spectra, the chunks on two threads."""
    n, c, hp, wp = xp.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    dh, dw = dilation
    sh, sw = stride
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    full_h, full_w = hp - span_h + 1, wp - span_w + 1  # stride-1 outputs
    th, tw = fft_tile(full_h, span_h), fft_tile(full_w, span_w)
    oh, ow = th - span_h + 1, tw - span_w + 1  # outputs per tile
    na, nb = -(-full_h // oh), -(-full_w // ow)
    # the input, zero-extended to whole tiles (the extension only feeds cut outputs)
    xe = np.zeros((n, c, na * oh + span_h - 1, nb * ow + span_w - 1), xp.dtype)
    xe[:, :, :hp, :wp] = xp
    kd = np.zeros((f, cg, span_h, span_w), xp.dtype)
    kd[..., ::dh, ::dw] = w
    ks = np.fft.rfft2(kd[..., ::-1, ::-1], s=(th, tw))  # (f, cg, th, tw//2+1)
    depthwise = cg == 1 and f == c
    full = np.empty((n, f, na * oh, nb * ow), xp.dtype)
    spec_bytes = n * max(c, f) * nb * th * (tw // 2 + 1) * 2 * xp.itemsize
    rows_per_chunk = max(1, FFT_CHUNK_BYTES // spec_bytes)
    s0, s1, s2, s3 = xe.strides

    def tile_rows(a0, a1):
        tiles = as_strided(xe[:, :, a0 * oh:], (n, c, a1 - a0, nb, th, tw),
                           (s0, s1, oh * s2, ow * s3, s2, s3), writeable=False)
        xs = np.fft.rfft2(tiles)  # (n, c, rows, nb, th, tw//2+1)
        if depthwise:
            xs *= ks[None, :, :1, None]
            ys = xs
        else:
            xs_g = xs.reshape((n, groups, cg) + xs.shape[2:])
            ks_g = ks.reshape(groups, fg, cg, th, tw // 2 + 1)
            ys = np.einsum("ngcabyx,gfcyx->ngfabyx", xs_g, ks_g).reshape(
                (n, f) + xs.shape[2:])
        y = np.fft.irfft2(ys, s=(th, tw))[..., span_h - 1:, span_w - 1:]
        # (n, f, rows, nb, oh, ow) -> rows of tiles side by side
        full[:, :, a0 * oh:a1 * oh] = y.transpose(0, 1, 2, 4, 3, 5).reshape(
            n, f, (a1 - a0) * oh, nb * ow)

    chunks = [(a, min(na, a + rows_per_chunk)) for a in range(0, na, rows_per_chunk)]
    if len(chunks) == 1 and na > 1:  # split in two for the second thread
        chunks = [(0, na // 2), (na // 2, na)]
    _run_shared(tile_rows, chunks)
    return np.ascontiguousarray(full[..., :(ho - 1) * sh + 1:sh, :(wo - 1) * sw + 1:sw])


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


def _split_images(run, n: int, work: int) -> None:
    """``run(n0, n1)`` over images ``0:n``: blocks of images shared by two threads when
    there is enough work, else one call."""
    if work >= THREAD_MIN_WORK and n > 1:
        step = max(1, n // 8)
        _run_shared(run, [(b, min(n, b + step)) for b in range(0, n, step)])
    else:
        run(0, n)


def _col2im_jit(dcols, gxl, kernel, stride, dilation):
    """The compiled col2im (core._jit.col2im_rows) into channels-last ``gxl``, the
    images shared by two threads."""
    n = dcols.shape[0]
    g3 = gxl.reshape(n, gxl.shape[1], -1)

    def run(n0, n1):
        _jit.col2im_rows(dcols, g3, kernel, stride, dilation, n0, n1)

    _split_images(run, n, dcols.size)


def conv2d_backward(grad_out, x, weight, *, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", cval=0.0, flip=False, need_x=True, workspace=None,
                    method="gemm"):
    """Gradients of :func:`conv2d` with respect to ``x``, ``weight`` and ``bias``.

    Takes the forward's own arguments (``cval`` does not affect the gradients: a
    constant border has none). ``grad_x`` is the im2col gradient folded back
    (col2im, one strided add per tap) onto the padded input, then through the
    padding's adjoint (reflect/replicate/circular borders add into the cells they
    copied). ``workspace``: the dict given to the forward call, to reuse its im2col.
    ``method="flat"``: the weight gradient by the flat loops where they apply (see
    the module docstring), without im2col.

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
    flat = method == "flat" and flat_applies(x4, wf, stride, groups, padding_mode)
    reuse = workspace is not None and workspace.get("key") == _workspace_key(
        x4, wf, stride, dilation, pads, padding_mode, cval)
    xp = None if reuse or flat else pad2d(x4, pads, padding_mode, cval)
    gl = g4.transpose(0, 2, 3, 1)
    if not gl.flags.c_contiguous:
        gl = np.ascontiguousarray(gl)
    gl = gl.reshape(n * ho * wo, f)
    grad_w = np.empty((f, cg, kh, kw), dtype)
    if flat:
        grad_w, grad_b = _conv_flat_grads(gl.reshape(n, ho, wo, f), x4, w.shape, pads, ho,
                                          wo, dilation)
    else:
        # a product with ones: numpy's column sums over (N*Ho*Wo, F) took 2 ms for the
        # Keras convnet's first layer (0.5)
        grad_b = np.ones(gl.shape[0], dtype) @ gl
    hp, wp = h + pads[0][0] + pads[0][1], wd + pads[1][0] + pads[1][1]
    gxl = np.zeros((n, hp, wp, c), dtype) if need_x else None
    for g in range(groups):
        gg = gl[:, g * fg:(g + 1) * fg]  # (NHW, Fg)
        if not flat:
            cols = workspace.get(("cols", g)) if reuse else None
            if cols is None:
                cols = im2col(xp, kh, kw, ho, wo, stride, dilation, g * cg, (g + 1) * cg)
            # with few channels im2col is a transposed view: multiply in its memory order
            gw = (cols.T @ gg).T if cols.flags.f_contiguous else gg.T @ cols
            gw = gw.reshape(fg, kh, kw, cg).transpose(0, 3, 1, 2)
            grad_w[g * fg:(g + 1) * fg] = gw
        if need_x:
            dcols = (gg @ _weight_matrix(wf, g, fg).T).reshape(n, ho, wo, kh, kw, cg)
            if groups == 1 and _jit.pool_back_ready(dtype, dcols.size):
                _col2im_jit(dcols.reshape(n, ho, wo, kh * kw * cg), gxl, (kh, kw), stride,
                            dilation)
                continue
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
