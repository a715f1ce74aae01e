"""Tests of core.conv: conv2d (every method) against conv2d_naive, scipy.ndimage and
hand-computed vectors; conv2d_backward against centred finite differences.

Oracles: REFERENCE.md's test vectors, the naive loop twin, scipy.ndimage.correlate /
convolve (mode names mapped as in core/padding.py), finite differences in float64.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage

import convscope.core.conv as conv_module
from convscope.core import _jit
from convscope.core.conv import CONV_METHODS, conv2d, conv2d_backward, conv2d_naive
from convscope.core.geometry import output_size, resolve_padding
from convscope.core.padding import PADDING_MODES
from gradcheck import numeric_grad

# --------------------------------------------------------------------------- engines

# Every test runs with the numpy paths and, when numba is installed, again with the
# compiled loop of core._jit; tests of which numpy path is taken are marked
# ``numpy_paths`` and run with numpy only.
ENGINES = ("numpy", "jit") if _jit.available() else ("numpy",)


@pytest.fixture(scope="module")
def conv_engine(request):
    old = _jit.set_enabled(request.param == "jit")
    yield request.param
    _jit.set_enabled(old)


@pytest.fixture(autouse=True)
def _engine(conv_engine):
    assert _jit.enabled() == (conv_engine == "jit")  # no test left it switched


def pytest_generate_tests(metafunc):
    if "conv_engine" in metafunc.fixturenames:
        numpy_only = metafunc.definition.get_closest_marker("numpy_paths") is not None
        metafunc.parametrize("conv_engine", ("numpy",) if numpy_only else ENGINES,
                             indirect=True, scope="module")


# --------------------------------------------------------------------------- helpers

METHODS = ("direct", "gemm", "fft", "flat", "auto")
PAD_FORMS = ("int", "pair", "nested", "valid", "same", "full")
KERNEL_SHAPES = ((1, 1), (2, 2), (1, 3), (3, 1), (3, 3), (2, 3))
STRIDES = (1, 2, 3, (1, 2), (2, 1))
DILATIONS = (1, 2, (1, 2), (2, 1))
# PyTorch mode -> scipy.ndimage mode (and cval) for the second oracle
SCIPY_MODE = {"zeros": "constant", "constant": "constant", "reflect": "mirror",
              "replicate": "nearest", "circular": "wrap"}

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
IMAGE_5X5 = np.array([[105, 102, 100, 97, 96],
                      [103, 99, 103, 101, 102],
                      [101, 98, 104, 102, 100],
                      [99, 101, 106, 104, 99],
                      [104, 104, 104, 100, 98]], float)


def fmt(**kw) -> str:
    """The trial's parameters, for assertion messages."""
    return "; ".join(f"{k}={v!r}" for k, v in kw.items())


def spy(monkeypatch, name, record=lambda args: args[0].shape, calls=None):
    """Wrap ``core.conv.<name>`` so that each call appends ``record(args)`` to ``calls``
    (a new list unless given) before running it; returns ``calls``."""
    calls = [] if calls is None else calls
    real = getattr(conv_module, name)
    monkeypatch.setattr(conv_module, name,
                        lambda *a, **k: calls.append(record(a)) or real(*a, **k))
    return calls


def seed_of(*names) -> int:
    """A seed derived from names (stable across runs, unlike hash())."""
    return zlib.crc32("/".join(names).encode())


def tolerance(x, w, dtype) -> float:
    """Absolute tolerance: rounding error scales with sum|w| * max|x|."""
    scale = 1.0 + float(np.abs(np.asarray(x, float)).max()) * float(
        np.abs(np.asarray(w, float)).reshape(len(w), -1).sum(axis=1).max())
    return scale * (1e-11 if np.dtype(dtype) == np.float64 else 2e-6)


def assert_conv_close(got, ref, x, w, msg, dtype=np.float64):
    assert got.shape == ref.shape, f"shape {got.shape} != {ref.shape}: {msg}"
    np.testing.assert_allclose(got, ref, rtol=0, atol=tolerance(x, w, dtype), err_msg=msg)


def axis_fits(n, k, s, d, pb, pa, mode) -> bool:
    if n + pb + pa - d * (k - 1) - 1 < 0:
        return False
    if mode == "reflect" and max(pb, pa) >= n:
        return False
    if mode == "circular" and max(pb, pa) > n:
        return False
    return True


def pair2(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def case_fits(hw, khw, stride, padding, dilation, mode) -> bool:
    stride, dilation = pair2(stride), pair2(dilation)
    pads = resolve_padding(padding, khw, stride, dilation, hw)
    return all(axis_fits(n, k, s, d, pb, pa, mode)
               for n, k, s, d, (pb, pa) in zip(hw, khw, stride, dilation, pads))


def make_padding(rng, form):
    if form == "int":
        return int(rng.integers(0, 3))
    if form == "pair":
        return (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    if form == "nested":
        return tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
    return form


def groups_for(kind, c):
    """(groups, filters) for a grouping kind: '1', 'C' (depthwise), '2', 'mult' (groups=C, F=2C)."""
    if kind == "1":
        return 1, None
    if kind == "C":
        return c, c
    if kind == "2":
        return 2, None
    return c, 2 * c


@dataclass
class Case:
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    kwargs: dict = field(default_factory=dict)

    def describe(self, **extra) -> str:
        return fmt(x_shape=self.x.shape, x_dtype=str(self.x.dtype), w_shape=self.weight.shape,
                   bias=self.bias is not None, **self.kwargs, **extra)


def random_case(rng, *, mode=None, form=None, groups_kind=None, kernel=None, stride=None,
                dilation=None, flip=None, max_hw=7, n=None, channels=None,
                big_kernel_p=0.1) -> Case:
    """A random valid convolution; any argument fixed by the caller is kept."""
    while True:
        m = mode or PADDING_MODES[int(rng.integers(len(PADDING_MODES)))]
        pf = form or PAD_FORMS[int(rng.integers(len(PAD_FORMS)))]
        gk = groups_kind or ("1", "C", "2", "mult")[int(rng.integers(4))]
        c = int(rng.choice([2, 4])) if gk == "2" else int(rng.integers(1, 5))
        c = channels or c
        g, f = groups_for(gk, c)
        if f is None:
            f = g * int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(3, max_hw + 1, 2))
        kh, kw = kernel or KERNEL_SHAPES[int(rng.integers(len(KERNEL_SHAPES)))]
        padding = make_padding(rng, pf)
        if kernel is None and rng.random() < big_kernel_p:
            # a kernel larger than the image, made to fit by padding
            kh, kw = h + int(rng.integers(1, 3)), w + int(rng.integers(0, 2))
            padding = pf if pf in ("same", "full") else (kh - 1, kw - 1)
        s = stride if stride is not None else STRIDES[int(rng.integers(len(STRIDES)))]
        d = dilation if dilation is not None else DILATIONS[int(rng.integers(len(DILATIONS)))]
        if not case_fits((h, w), (kh, kw), s, padding, d, m):
            continue
        nn = n or int(rng.integers(1, 3))
        x = rng.standard_normal((nn, c, h, w))
        weight = rng.standard_normal((f, c // g, kh, kw))
        bias = rng.standard_normal(f) if rng.random() < 0.5 else None
        fl = bool(rng.integers(2)) if flip is None else flip
        kwargs = dict(stride=s, padding=padding, dilation=d, groups=g, padding_mode=m,
                      flip=fl)
        if m == "constant":
            kwargs["cval"] = float(np.round(rng.standard_normal(), 3))
        return Case(x, weight, bias, kwargs)


def channels_last(x):
    """An (N, C, H, W) view of (N, H, W, C) memory."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# ------------------------------------------------------------------ reference vectors


@pytest.mark.parametrize("method", METHODS)
def test_vector1_sharpen_top_left_is_320(method):
    x = IMAGE_5X5[None, None]
    y = conv2d(x, SHARPEN[None, None], padding=1, method=method)
    assert y.shape == (1, 1, 5, 5)
    # 0*0 + 0*-1 + 0*0 + 0*-1 + 105*5 + 102*-1 + 0*0 + 103*-1 + 99*0
    assert y[0, 0, 0, 0] == pytest.approx(320.0)
    # a cell away from the border: 99*5 - 102 - 103 - 103 - 98 = 89
    assert y[0, 0, 1, 1] == pytest.approx(89.0)
    np.testing.assert_allclose(y, conv2d_naive(x, SHARPEN[None, None], padding=1), atol=1e-9)


def test_vector1_naive_whole_output_by_hand():
    padded = np.pad(IMAGE_5X5, 1)
    expected = np.array([[np.sum(padded[i:i + 3, j:j + 3] * SHARPEN) for j in range(5)]
                         for i in range(5)])
    np.testing.assert_array_equal(conv2d_naive(IMAGE_5X5[None], SHARPEN[None, None],
                                               padding=1)[0], expected)
    assert expected[0, 0] == 320


@pytest.mark.parametrize("method", METHODS)
def test_vector2_window_times_kernel_is_8(method):
    window = np.array([[1.0, 6.0], [5.0, 3.0]])
    kernel = np.array([[1.0, 2.0], [-1.0, 0.0]])
    y = conv2d(window[None, None], kernel[None, None], method=method)
    assert y.shape == (1, 1, 1, 1)
    assert y[0, 0, 0, 0] == pytest.approx(8.0)
    # plus a bias, as s = w11*p11 + ... + b
    y = conv2d(window[None, None], kernel[None, None], np.array([0.5]), method=method)
    assert y[0, 0, 0, 0] == pytest.approx(8.5)


def test_feature_maps_equal_number_of_kernels_and_sum_channels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 6))  # an RGB image
    w = rng.standard_normal((5, 3, 3, 3))
    y = conv2d(x, w, np.arange(5.0))
    assert y.shape == (5, 4, 4)
    # one filter spans all input channels and sums them, plus one bias
    per_channel = sum(conv2d(x[c:c + 1], w[1:2, c:c + 1]) for c in range(3))
    np.testing.assert_allclose(y[1], per_channel[0] + 1.0, atol=1e-10)


# --------------------------------------------------------- random sweeps vs the naive


SWEEP_SEEDS = (0, 1, 2, 3)
SWEEP_TRIALS = 30


@functools.lru_cache(maxsize=None)
def sweep_cases(seed):
    rng = np.random.default_rng(seed)
    cases = [random_case(rng) for _ in range(SWEEP_TRIALS)]
    return [(c, conv2d_naive(c.x, c.weight, c.bias, **c.kwargs)) for c in cases]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", SWEEP_SEEDS)
def test_random_sweep_matches_naive(seed, method):
    for trial, (case, ref) in enumerate(sweep_cases(seed)):
        got = conv2d(case.x, case.weight, case.bias, method=method, **case.kwargs)
        msg = case.describe(seed=seed, trial=trial, method=method)
        assert got.dtype == np.float64, msg
        assert_conv_close(got, ref, case.x, case.weight, msg)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("form", PAD_FORMS)
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_every_mode_and_padding_form(mode, form, method):
    rng = np.random.default_rng(seed_of(mode, form))
    for trial in range(3):
        case = random_case(rng, mode=mode, form=form, big_kernel_p=0.0)
        ref = conv2d_naive(case.x, case.weight, case.bias, **case.kwargs)
        got = conv2d(case.x, case.weight, case.bias, method=method, **case.kwargs)
        assert_conv_close(got, ref, case.x, case.weight, case.describe(trial=trial,
                                                                          method=method))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("option, values", [
    ("stride", STRIDES),
    ("dilation", DILATIONS),
    ("groups_kind", ("1", "C", "2", "mult")),
    ("kernel", KERNEL_SHAPES + ((3, 2), (1, 5), (4, 4))),
    ("flip", (False, True)),
])
def test_each_option_value_matches_naive(option, values, method):
    rng = np.random.default_rng(len(option))
    for value in values:
        for trial in range(2):
            case = random_case(rng, **{option: value})
            ref = conv2d_naive(case.x, case.weight, case.bias, **case.kwargs)
            got = conv2d(case.x, case.weight, case.bias, method=method, **case.kwargs)
            assert_conv_close(got, ref, case.x, case.weight,
                              case.describe(option=option, value=value, method=method))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["zeros", "constant", "replicate", "circular"])
def test_kernel_larger_than_image_with_padding(method, mode):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 3, 4))
    w = rng.standard_normal((3, 2, 5, 6))
    for padding in ("full", "same", (2, 3), ((4, 0), (1, 2))):
        if not case_fits((3, 4), (5, 6), 1, padding, 1, mode):
            continue
        kw = dict(padding=padding, padding_mode=mode, cval=0.25)
        ref = conv2d_naive(x, w, **kw)
        got = conv2d(x, w, method=method, **kw)
        assert_conv_close(got, ref, x, w, fmt(method=method, **kw))
    # 'full' gives in + k - 1 and every window overlaps the image
    assert conv2d(x, w, padding="full", method=method).shape == (1, 3, 7, 9)


@pytest.mark.parametrize("method", METHODS)
def test_depth_multiplier(method):
    """groups=C with F=2C: filters 2c and 2c+1 see only channel c."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((6, 1, 3, 3))
    y = conv2d(x, w, groups=3, padding=1, method=method)
    for f in range(6):
        single = conv2d(x[:, f // 2:f // 2 + 1], w[f:f + 1], padding=1, method=method)
        np.testing.assert_allclose(y[:, f], single[:, 0], atol=1e-10, err_msg=f"filter {f}")


@pytest.mark.parametrize("method", METHODS)
def test_two_groups_are_independent(method):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 4, 5, 5))
    w = rng.standard_normal((6, 2, 2, 3))
    y = conv2d(x, w, groups=2, method=method)
    np.testing.assert_allclose(y[:, :3], conv2d(x[:, :2], w[:3], method=method), atol=1e-10)
    np.testing.assert_allclose(y[:, 3:], conv2d(x[:, 2:], w[3:], method=method), atol=1e-10)


# ------------------------------------------------------------- layouts and dtypes


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("groups_kind", ["1", "C", "mult"])
def test_channels_last_view_same_values(method, mode, groups_kind):
    rng = np.random.default_rng(21)
    for stride in (1, 2):
        case = random_case(rng, mode=mode, groups_kind=groups_kind, stride=stride,
                           kernel=(3, 3), dilation=1, channels=3, big_kernel_p=0.0)
        kw = case.kwargs
        ref = conv2d(case.x, case.weight, case.bias, method=method, **kw)
        for dtype in (np.float64, np.float32):
            xcl = channels_last(case.x.astype(dtype))
            assert xcl.shape == case.x.shape and not xcl.flags.c_contiguous
            got = conv2d(xcl, case.weight.astype(dtype), case.bias, method=method, **kw)
            assert got.dtype == dtype
            assert_conv_close(got, ref, case.x, case.weight,
                              case.describe(method=method, dtype=dtype.__name__), dtype)


@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_views(method):
    rng = np.random.default_rng(22)
    base = rng.standard_normal((2, 3, 9, 10))
    w = rng.standard_normal((3, 1, 3, 2))
    for x in (base[:, :, ::2, ::-1], base[:, ::-1, 1:, :], channels_last(base)[:1, :, 2:, 1:],
              channels_last(base)[:, :, ::2]):
        ref = conv2d_naive(x, w, groups=3, padding=1, padding_mode="reflect")
        got = conv2d(x, w, groups=3, padding=1, padding_mode="reflect", method=method)
        assert_conv_close(got, ref, x, w, fmt(shape=x.shape, strides=x.strides, method=method))


@pytest.mark.parametrize("method", METHODS)
def test_3d_input_returns_3d(method):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((3, 6, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    y = conv2d(x, w, np.ones(4), padding="same", method=method)
    assert y.shape == (4, 6, 7)
    np.testing.assert_allclose(y, conv2d(x[None], w, np.ones(4), padding="same",
                                         method=method)[0], atol=1e-10)
    np.testing.assert_allclose(y, conv2d_naive(x, w, np.ones(4), padding="same"), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x_dtype, w_dtype, out_dtype", [
    (np.float64, np.float64, np.float64),
    (np.float32, np.float32, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.uint8, np.float32, np.float32),
    (np.uint8, np.int64, np.float32),
    (np.float16, np.float32, np.float32),
    (np.int32, np.float64, np.float64),
])
def test_dtypes(method, x_dtype, w_dtype, out_dtype):
    rng = np.random.default_rng(24)
    if np.dtype(x_dtype).kind in "ui":
        x = rng.integers(0, 256, (2, 3, 7, 6)).astype(x_dtype)
    else:
        x = rng.standard_normal((2, 3, 7, 6)).astype(x_dtype)
    w = (rng.integers(-3, 4, (3, 1, 3, 3)) if np.dtype(w_dtype).kind == "i"
         else rng.standard_normal((3, 1, 3, 3))).astype(w_dtype)
    for groups, weight in ((3, w), (1, np.repeat(w, 3, axis=1))):
        y = conv2d(x, weight, groups=groups, padding=1, padding_mode="replicate", method=method)
        assert y.dtype == out_dtype
        ref = conv2d_naive(x, weight, groups=groups, padding=1, padding_mode="replicate")
        assert_conv_close(y, ref, x, weight, fmt(method=method, groups=groups), out_dtype)


@pytest.mark.parametrize("method", METHODS)
def test_uint8_image_with_sharpen(method):
    img = IMAGE_5X5.astype(np.uint8)
    y = conv2d(img[None], SHARPEN[None, None].astype(np.float32), padding=1, method=method)
    assert y.dtype == np.float32
    assert y[0, 0, 0] == pytest.approx(320.0)
    np.testing.assert_allclose(y, conv2d_naive(img[None], SHARPEN[None, None], padding=1),
                               atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_inputs_are_not_modified(method):
    rng = np.random.default_rng(25)
    x, w, b = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 3, 3)), np.ones(2)
    copies = x.copy(), w.copy(), b.copy()
    conv2d(x, w, b, padding=1, flip=True, method=method)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


# --------------------------------------- internal code paths (chunks, threads, fft)


@pytest.mark.parametrize("groups_kind", ["1", "C", "2", "mult"])
def test_gemm_chunked_path(monkeypatch, groups_kind):
    """A tiny chunk budget forces the per-image, per-row-block matrix products."""
    monkeypatch.setattr(conv_module, "GEMM_CHUNK_BYTES", 64)
    rng = np.random.default_rng(31)
    for trial in range(4):
        case = random_case(rng, groups_kind=groups_kind, max_hw=8)
        ref = conv2d_naive(case.x, case.weight, case.bias, **case.kwargs)
        got = conv2d(case.x, case.weight, case.bias, method="gemm", **case.kwargs)
        assert_conv_close(got, ref, case.x, case.weight, case.describe(trial=trial))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("groups_kind", ["1", "C", "mult"])
@pytest.mark.numpy_paths
def test_direct_threaded_row_blocks(monkeypatch, layout, groups_kind):
    """Force one-row blocks split over two threads."""
    monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
    monkeypatch.setattr(conv_module, "_BLOCK_ELEMS", 1)
    rng = np.random.default_rng(32)
    for trial in range(3):
        case = random_case(rng, groups_kind=groups_kind, stride=1, max_hw=9, channels=3,
                           big_kernel_p=0.0)
        x = channels_last(case.x) if layout == "channels_last" else case.x
        ref = conv2d_naive(x, case.weight, case.bias, **case.kwargs)
        got = conv2d(x, case.weight, case.bias, method="direct", **case.kwargs)
        assert_conv_close(got, ref, case.x, case.weight, case.describe(trial=trial,
                                                                          layout=layout))


@pytest.mark.parametrize("groups_kind", ["1", "C", "2", "mult"])
def test_fft_small_tiles_and_chunks(monkeypatch, groups_kind):
    """Overlap-save with tiny tiles (many per axis, ragged last tile) and one tile row
    per work item, on two threads: the same values as the naive loop."""
    monkeypatch.setattr(conv_module, "fft_tile",
                        lambda n_out, span: conv_module.next_fast_len(span + 2))
    monkeypatch.setattr(conv_module, "FFT_CHUNK_BYTES", 1)
    rng = np.random.default_rng(seed_of("fft tiles", groups_kind))
    for trial in range(6):
        case = random_case(rng, groups_kind=groups_kind, max_hw=13)
        ref = conv2d_naive(case.x, case.weight, case.bias, **case.kwargs)
        got = conv2d(case.x, case.weight, case.bias, method="fft", **case.kwargs)
        assert_conv_close(got, ref, case.x, case.weight, case.describe(trial=trial))


@pytest.mark.parametrize("n_out, span", [(1, 1), (7, 3), (512, 15), (1080, 15), (4096, 15),
                                         (1920, 7), (5, 40)])
def test_fft_tile_covers_the_kernel_and_is_fast_length(n_out, span):
    t = conv_module.fft_tile(n_out, span)
    assert t >= span and t == conv_module.next_fast_len(t)
    assert t <= conv_module.next_fast_len(n_out + span - 1)  # never more than one tile


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("forced", ["none", "threads", "column_chunks", "pad_whole"])
@pytest.mark.numpy_paths
def test_depthwise_rows_path_every_band(monkeypatch, mode, layout, forced):
    """The depthwise stride-1 einsum path: interior read in place, the four border
    bands from padded copies (or, for small inputs, the input padded whole); kernels up
    to larger than the image, dilation, batches, float32/float64, threads and column
    chunks forced by the tuning constants."""
    monkeypatch.setattr(conv_module, "_ROWS_MIN_IMAGE_WORK", 0)  # small batches too
    if forced != "pad_whole":
        monkeypatch.setattr(conv_module, "_PAD_WHOLE_ELEMS", 0)  # the bands, not one copy
    if forced == "threads":
        monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
    elif forced == "column_chunks":
        monkeypatch.setattr(conv_module, "_EINSUM_WEIGHT_BYTES", 1)
    rng = np.random.default_rng(seed_of("rows", mode, layout, forced))
    for trial in range(12):
        case = random_case(rng, mode=mode, groups_kind="C", stride=1, max_hw=9,
                           channels=int(rng.integers(2, 5)), big_kernel_p=0.25)
        assert conv_module._depthwise_rows_ok(case.x, case.weight, (1, 1),
                                              case.kwargs["groups"])
        # every channel its own kernel, and one kernel shared by all (its own loop)
        shared = np.repeat(case.weight[:1], len(case.weight), axis=0)
        for dtype, weight in ((np.float32, case.weight), (np.float64, case.weight),
                              (np.float32, shared)):
            xd = case.x.astype(dtype)
            x = channels_last(xd) if layout == "channels_last" else xd
            ref = conv2d_naive(xd, weight, case.bias, **case.kwargs)
            got = conv2d(x, weight.astype(dtype), case.bias, method="direct", **case.kwargs)
            assert got.dtype == dtype
            assert_conv_close(got, ref, xd, weight, case.describe(
                trial=trial, layout=layout, dtype=dtype.__name__,
                shared=weight is shared), dtype=dtype)


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("forced", ["none", "threads", "column_chunks"])
@pytest.mark.numpy_paths
def test_depthwise_low_rank_path(monkeypatch, mode, rank, forced):
    """Kernels of rank 1 (separable) or 2 go through horizontal then vertical 1-D passes:
    same values as the naive loop, for every padding mode, dilation, non-square and
    larger-than-image kernels, batches, float32 and float64, small row ranges."""
    monkeypatch.setattr(conv_module, "_LOW_RANK_BLOCK_ELEMS", 1)  # 8-row ranges
    monkeypatch.setattr(conv_module, "SEPARABLE_MAX_COST", 1.0)  # whenever rank < size
    monkeypatch.setattr(conv_module, "_LOW_RANK_MIN_IMAGE_WORK", 0)  # small batches too
    if forced == "threads":
        monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
    elif forced == "column_chunks":
        monkeypatch.setattr(conv_module, "_EINSUM_WEIGHT_BYTES", 1)
    calls = spy(monkeypatch, "_conv_depthwise_low_rank", lambda a: 1)
    rng = np.random.default_rng(seed_of("low rank", mode, str(rank), forced))
    used = 0
    for trial in range(8):
        kh, kw = (int(v) for v in rng.integers(5, 9, 2))
        case = random_case(rng, mode=mode, groups_kind="C", stride=1, max_hw=11,
                           channels=int(rng.integers(2, 4)), kernel=(kh, kw))
        c = case.weight.shape[0]
        weight = np.einsum("cmh,cmw->chw", rng.standard_normal((c, rank, kh)),
                           rng.standard_normal((c, rank, kw)))[:, None]
        for dtype in (np.float32, np.float64):
            factors = conv_module._cheap_low_rank(weight, dtype)
            assert factors is not None and factors[0].shape[1] == rank
            used += 1
            xd = case.x.astype(dtype)
            ref = conv2d_naive(xd, weight, case.bias, **case.kwargs)
            got = conv2d(channels_last(xd), weight.astype(dtype), case.bias, method="direct",
                         **case.kwargs)
            assert got.dtype == dtype
            assert_conv_close(got, ref, xd, weight, case.describe(trial=trial, rank=rank),
                              dtype=dtype)
    assert used == 16 and len(calls) == 16


def test_low_rank_factors_only_for_exact_low_rank():
    rng = np.random.default_rng(7)
    full = rng.standard_normal((3, 5, 5))
    assert conv_module._low_rank_factors(full, np.float32) is None
    gauss = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    u, v = conv_module._low_rank_factors(np.stack([gauss, 2 * gauss]), np.float64)
    assert u.shape == (2, 1, 5) and v.shape == (2, 1, 5)
    np.testing.assert_allclose(np.einsum("cmh,cmw->chw", u, v)[1], 2 * gauss, atol=1e-15)
    # nearly rank 1 (a perturbation far above float rounding) is not treated as rank 1
    nearly = gauss + 1e-4 * rng.standard_normal((5, 5))
    assert conv_module._low_rank_factors(nearly[None], np.float32) is None
    assert conv_module._low_rank_factors(np.zeros((1, 3, 3)), np.float32) is None
    assert conv_module._low_rank_factors(np.ones((1, 1, 7)), np.float32) is None


def test_depthwise_rows_path_nan_stays_local():
    """A NaN pixel spoils exactly the outputs whose windows contain it."""
    x = np.ones((1, 3, 9, 10), np.float32)
    x[0, 1, 4, 5] = np.nan
    w = np.ones((3, 1, 3, 3), np.float32)
    y = conv2d(channels_last(x), w, groups=3, padding=1, method="direct")
    bad = np.isnan(y)
    expected = np.zeros_like(bad)
    expected[0, 1, 3:6, 4:7] = True
    assert np.array_equal(bad, expected)
    assert np.all(y[~bad] > 0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_direct_large_image_threads_match_scipy(layout):
    """A real-size RGB image (600x600, float32) takes the threaded direct path."""
    rng = np.random.default_rng(33)
    img = rng.random((600, 600, 3), dtype=np.float32)
    x = img.transpose(2, 0, 1)[None] if layout == "channels_last" else np.ascontiguousarray(
        img.transpose(2, 0, 1))[None]
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    y = conv2d(x, w, groups=3, padding="same", padding_mode="replicate", method="direct")
    assert y.dtype == np.float32 and y.shape == (1, 3, 600, 600)
    for c in range(3):
        ref = ndimage.correlate(img[..., c].astype(np.float64), w[c, 0].astype(np.float64),
                                mode="nearest")
        np.testing.assert_allclose(y[0, c], ref, atol=1e-4, err_msg=f"channel {c}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_auto_with_large_kernel(dtype):
    """Kernels of 100+ taps (auto picks the FFT) still match the direct loop."""
    rng = np.random.default_rng(34)
    x = rng.standard_normal((1, 3, 24, 20)).astype(dtype)
    w = rng.standard_normal((3, 1, 11, 10)).astype(dtype)
    for kw in (dict(padding="same"), dict(padding=0, stride=2), dict(padding=3, dilation=(1, 2)),
               dict(padding="full", padding_mode="circular")):
        try:
            ref = conv2d(x.astype(np.float64), w.astype(np.float64), groups=3,
                         method="direct", **kw)
        except ValueError:
            continue
        for method in ("auto", "fft", "gemm"):
            got = conv2d(x, w, groups=3, method=method, **kw)
            assert got.dtype == dtype
            assert_conv_close(got, ref, x, w, fmt(method=method, **kw), dtype)


@pytest.mark.parametrize("c, f, groups, kernel", [
    (4, 8, 1, (3, 3)),    # a CNN layer: many filters (auto -> gemm)
    (3, 32, 1, (3, 3)),
    (2, 4, 1, (9, 9)),    # 81 taps, few filters
    (4, 4, 2, (11, 10)),  # 110 taps, grouped
    (1, 1, 1, (12, 12)),  # large single kernel (auto -> fft)
])
def test_auto_matches_naive_across_method_choices(c, f, groups, kernel):
    rng = np.random.default_rng(35)
    x = rng.standard_normal((2, c, 14, 13))
    w = rng.standard_normal((f, c // groups) + kernel)
    b = rng.standard_normal(f)
    kw = dict(padding="same", groups=groups, padding_mode="reflect")
    ref = conv2d_naive(x, w, b, **kw)
    for method in METHODS:
        assert_conv_close(conv2d(x, w, b, method=method, **kw), ref, x, w,
                          fmt(method=method, c=c, f=f, kernel=kernel, **kw))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kernel", [(3, 3), (10, 10)])
def test_a_nan_pixel_only_reaches_the_windows_that_contain_it(method, kernel):
    """All methods "give the same result up to float rounding" (conv2d's docstring), so a
    non-finite input pixel must poison only the outputs whose window covers it, as in
    the naive loop (and PyTorch). With 100+ taps "auto" picks the FFT."""
    x = np.zeros((1, 1, 16, 16))
    x[0, 0, 7, 6] = np.nan
    x[0, 0, 12:, 12:] = 1.0
    w = np.ones((1, 1) + kernel)
    ref = conv2d_naive(x, w, padding="same")
    got = conv2d(x, w, padding="same", method=method)
    msg = fmt(method=method, kernel=kernel)
    assert np.isnan(ref).sum() == kernel[0] * kernel[1]
    assert np.isnan(got).sum() == np.isnan(ref).sum(), (
        f"{np.isnan(got).sum()} NaN outputs instead of {np.isnan(ref).sum()}: {msg}")
    np.testing.assert_allclose(got, ref, atol=1e-9, err_msg=msg)


# ---------------------------------------------------------- scipy.ndimage as oracle


def scipy_same(x2, k2, mode, cval, flip=False):
    """PyTorch 'same' (stride 1) through scipy.ndimage.

    scipy centres a kernel of size k at index k // 2. For odd k that is PyTorch's
    'same'. For even k PyTorch pads (k-1)//2 before and k//2 after, i.e. the window of
    output i starts at i - (k-1)//2, one cell later than scipy's i - k//2: correlate
    needs origin=-1 on even axes. scipy.ndimage.convolve already shifts even kernels by
    one (it is correlate with the flipped kernel and origin -origin-1), so for flip=True
    origin=0 is right for odd and even sizes alike.
    """
    smode = SCIPY_MODE[mode]
    cv = cval if mode == "constant" else 0.0
    if flip:
        return ndimage.convolve(x2, k2, mode=smode, cval=cv, origin=0)
    origin = tuple(-1 if k % 2 == 0 else 0 for k in k2.shape)
    return ndimage.correlate(x2, k2, mode=smode, cval=cv, origin=origin)


def dilate_kernel(k2, d):
    dh, dw = pair2(d)
    out = np.zeros((dh * (k2.shape[0] - 1) + 1, dw * (k2.shape[1] - 1) + 1))
    out[::dh, ::dw] = k2
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 3), (1, 3), (3, 1),
                                    (2, 2), (4, 2), (2, 3), (3, 4)])
def test_same_per_channel_matches_scipy(method, mode, kernel):
    rng = np.random.default_rng(41)
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((3, 1) + kernel)
    for dilation in (1, (2, 1)):
        for flip in (False, True):
            kw = dict(padding="same", dilation=dilation, padding_mode=mode, cval=-0.75,
                      flip=flip)
            y = conv2d(x, w, groups=3, method=method, **kw)
            assert y.shape == x.shape
            for c in range(3):
                ref = scipy_same(x[c], dilate_kernel(w[c, 0], dilation), mode, -0.75, flip)
                np.testing.assert_allclose(y[c], ref, atol=1e-10,
                                           err_msg=fmt(channel=c, method=method, **kw))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_flip_equals_scipy_convolve(method, mode):
    rng = np.random.default_rng(42)
    x = rng.standard_normal((1, 1, 7, 7))
    for kernel in ((3, 3), (3, 5), (2, 2), (1, 4)):
        w = rng.standard_normal((1, 1) + kernel)
        y = conv2d(x, w, padding="same", padding_mode=mode, cval=2.0, flip=True, method=method)
        ref = ndimage.convolve(x[0, 0], w[0, 0], mode=SCIPY_MODE[mode],
                               cval=2.0 if mode == "constant" else 0.0)
        np.testing.assert_allclose(y[0, 0], ref, atol=1e-10, err_msg=fmt(kernel=kernel))
        # and flip is exactly correlation with the kernel rotated by 180 degrees
        np.testing.assert_allclose(
            y, conv2d(x, w[..., ::-1, ::-1], padding="same", padding_mode=mode, cval=2.0,
                      method=method), atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_multichannel_valid_strided_matches_scipy(method):
    """groups=1, no padding, stride 2: y[f] = sum_c correlate(x[c], w[f, c]) on the valid
    region, every second row/column (odd kernel: centres k//2 .. n-1-k//2)."""
    rng = np.random.default_rng(43)
    x = rng.standard_normal((3, 11, 9))
    w = rng.standard_normal((2, 3, 3, 5))
    y = conv2d(x, w, stride=2, method=method)
    assert y.shape == (2, 5, 3)
    for f in range(2):
        full = sum(ndimage.correlate(x[c], w[f, c], mode="constant") for c in range(3))
        ref = full[1:-1:2, 2:-2:2]
        np.testing.assert_allclose(y[f], ref, atol=1e-10)


# -------------------------------------------------------------- backward passes


def check_conv_gradients(case, msg):
    x, w = case.x.copy(), case.weight.copy()
    b = case.bias
    y = conv2d(x, w, b, **case.kwargs)
    rng = np.random.default_rng(x.size)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = conv2d_backward(g, x, w, **case.kwargs)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (w.shape[0],), msg

    def loss():
        return float(np.sum(conv2d(x, w, b, method="gemm", **case.kwargs) * g))

    np.testing.assert_allclose(gx, numeric_grad(loss, x), rtol=1e-6, atol=1e-6,
                               err_msg="grad_x: " + msg)
    np.testing.assert_allclose(gw, numeric_grad(loss, w), rtol=1e-6, atol=1e-6,
                               err_msg="grad_weight: " + msg)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12,
                               err_msg="grad_bias: " + msg)
    if b is not None:
        bb = b.copy()

        def loss_b():
            return float(np.sum(conv2d(x, w, bb, method="gemm", **case.kwargs) * g))

        np.testing.assert_allclose(gb, numeric_grad(loss_b, bb), rtol=1e-6, atol=1e-6,
                                   err_msg="grad_bias (fd): " + msg)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_backward_random_sweep(seed):
    rng = np.random.default_rng(1000 + seed)
    for trial in range(10):
        case = random_case(rng, max_hw=5, n=1)
        check_conv_gradients(case, case.describe(seed=seed, trial=trial))


@pytest.mark.parametrize("form", PAD_FORMS)
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_backward_every_mode_and_form(mode, form):
    rng = np.random.default_rng(seed_of("backward", mode, form))
    for trial in range(2):
        case = random_case(rng, mode=mode, form=form, max_hw=5, n=1, big_kernel_p=0.0)
        check_conv_gradients(case, case.describe(trial=trial))


@pytest.mark.parametrize("option, values", [
    ("stride", STRIDES),
    ("dilation", DILATIONS),
    ("groups_kind", ("1", "C", "2", "mult")),
    ("kernel", ((1, 1), (2, 2), (1, 3), (3, 1), (2, 3))),
    ("flip", (False, True)),
])
def test_backward_each_option(option, values):
    rng = np.random.default_rng(7 + len(option))
    for value in values:
        case = random_case(rng, max_hw=5, n=1, **{option: value})
        check_conv_gradients(case, case.describe(option=option, value=value))


def test_backward_batch_and_3d_input():
    rng = np.random.default_rng(50)
    x = rng.standard_normal((2, 2, 4, 4))
    w = rng.standard_normal((3, 2, 2, 3))
    kw = dict(padding=((1, 0), (2, 1)), padding_mode="circular", stride=(1, 2))
    g = rng.standard_normal(conv2d(x, w, **kw).shape)
    gx, gw, gb = conv2d_backward(g, x, w, **kw)
    gx0, gw0, gb0 = conv2d_backward(g[0], x[0], w, **kw)
    gx1, gw1, gb1 = conv2d_backward(g[1], x[1], w, **kw)
    assert gx0.shape == x[0].shape
    np.testing.assert_allclose(gx, np.stack([gx0, gx1]), atol=1e-12)
    np.testing.assert_allclose(gw, gw0 + gw1, atol=1e-12)
    np.testing.assert_allclose(gb, gb0 + gb1, atol=1e-12)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), atol=1e-12)


def test_backward_need_x_false_and_cval_irrelevant():
    rng = np.random.default_rng(51)
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3))
    g = rng.standard_normal((1, 2, 5, 5))
    gx, gw, gb = conv2d_backward(g, x, w, padding=1, padding_mode="constant", cval=3.0)
    gx2, gw2, gb2 = conv2d_backward(g, x, w, padding=1, padding_mode="constant", cval=0.0,
                                    need_x=False)
    assert gx2 is None
    # the border value enters grad_weight through the padded windows
    assert not np.allclose(gw, gw2)
    gxz, _, _ = conv2d_backward(g, x, w, padding=1, padding_mode="zeros")
    np.testing.assert_allclose(gx, gxz, atol=1e-12)
    np.testing.assert_allclose(gb, gb2)


def test_backward_float32_and_channels_last():
    rng = np.random.default_rng(52)
    x = rng.standard_normal((1, 3, 6, 6))
    w = rng.standard_normal((3, 1, 3, 3))
    g = rng.standard_normal((1, 3, 6, 6))
    ref = conv2d_backward(g, x, w, padding=1, groups=3, padding_mode="reflect")
    got = conv2d_backward(g.astype(np.float32), channels_last(x.astype(np.float32)),
                          w.astype(np.float32), padding=1, groups=3, padding_mode="reflect")
    for r, a in zip(ref, got):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- properties


@st.composite
def conv_setups(draw):
    c = draw(st.integers(1, 3))
    gk = draw(st.sampled_from(["1", "C", "mult"]))
    g, f = groups_for(gk, c)
    if f is None:
        f = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    form = draw(st.sampled_from(PAD_FORMS))
    padding = {"int": draw(st.integers(0, 3)),
               "pair": (draw(st.integers(0, 3)), draw(st.integers(0, 3))),
               "nested": ((draw(st.integers(0, 3)), draw(st.integers(0, 3))),
                          (draw(st.integers(0, 3)), draw(st.integers(0, 3))))}.get(form, form)
    mode = draw(st.sampled_from(PADDING_MODES))
    assume(case_fits((h, w), (kh, kw), stride, padding, dilation, mode))
    seed = draw(st.integers(0, 2**32 - 1))
    method = draw(st.sampled_from(METHODS))
    flip = draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((draw(st.integers(1, 2)), c, h, w))
    weight = rng.standard_normal((f, c // g, kh, kw))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=g,
                  padding_mode=mode, cval=0.5, flip=flip, method=method)
    return x, weight, kwargs, rng


@settings(deadline=None, max_examples=60)
@given(conv_setups(), st.floats(-3, 3), st.floats(-3, 3))
def test_linear_in_x(setup, a, b):
    x, w, kw, rng = setup
    kw = dict(kw, padding_mode="zeros" if kw["padding_mode"] == "constant" else kw["padding_mode"])
    x2 = rng.standard_normal(x.shape)
    lhs = conv2d(a * x + b * x2, w, **kw)
    rhs = a * conv2d(x, w, **kw) + b * conv2d(x2, w, **kw)
    np.testing.assert_allclose(lhs, rhs, atol=1e-9, err_msg=fmt(**kw))


@settings(deadline=None, max_examples=60)
@given(conv_setups(), st.floats(-3, 3), st.floats(-3, 3))
def test_linear_in_weight(setup, a, b):
    x, w, kw, rng = setup
    w2 = rng.standard_normal(w.shape)
    lhs = conv2d(x, a * w + b * w2, **kw)
    rhs = a * conv2d(x, w, **kw) + b * conv2d(x, w2, **kw)
    np.testing.assert_allclose(lhs, rhs, atol=1e-9, err_msg=fmt(**kw))


@settings(deadline=None, max_examples=60)
@given(conv_setups())
def test_output_shape_is_output_size(setup):
    x, w, kw, _ = setup
    y = conv2d(x, w, **kw)
    ho, wo = output_size(x.shape[2:], w.shape[2:], kw["stride"], kw["padding"], kw["dilation"])
    assert y.shape == (x.shape[0], w.shape[0], ho, wo), fmt(**kw)


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.sampled_from(METHODS),
       st.sampled_from(["zeros", "reflect", "replicate", "circular"]), st.booleans())
def test_identity_kernel_returns_x(c, h, w, method, mode, depthwise):
    x = np.random.default_rng(c * 100 + h * 10 + w).standard_normal((2, c, h, w))
    weight = np.ones((c, 1, 1, 1)) if depthwise else np.eye(c)[:, :, None, None]
    y = conv2d(x, weight, groups=c if depthwise else 1, padding_mode=mode, method=method)
    np.testing.assert_allclose(y, x, atol=1e-12)
    # a 3x3 identity (centre tap) with 'same' padding too, whatever the border mode
    if h > 1 and w > 1:
        k3 = np.zeros((c, 1, 3, 3))
        k3[:, 0, 1, 1] = 1
        y = conv2d(x, k3, groups=c, padding="same", padding_mode=mode, method=method)
        np.testing.assert_allclose(y, x, atol=1e-12)


@settings(deadline=None, max_examples=40)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.integers(1, 6),
       st.data(), st.sampled_from(METHODS), st.integers(0, 2**32 - 1))
def test_delta_image_reproduces_the_kernel(kh, kw, h, w, data, method, seed):
    r, c = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    x = np.zeros((1, 1, h, w))
    x[0, 0, r, c] = 1.0
    k = np.random.default_rng(seed).standard_normal((1, 1, kh, kw))
    y = conv2d(x, k, padding="full", method=method)
    assert y.shape == (1, 1, h + kh - 1, w + kw - 1)
    expected = np.zeros(y.shape)
    expected[0, 0, r:r + kh, c:c + kw] = k[0, 0, ::-1, ::-1]  # correlation flips the response
    np.testing.assert_allclose(y, expected, atol=1e-12)
    yf = conv2d(x, k, padding="full", flip=True, method=method)
    expected[0, 0, r:r + kh, c:c + kw] = k[0, 0]  # true convolution reproduces the kernel
    np.testing.assert_allclose(yf, expected, atol=1e-12)


# ------------------------------------------------------------------- bad input


def backward_with_ones(x, weight, bias=None, **kw):
    """conv2d_backward with a grad_out of the right shape when the geometry has one."""
    kw.pop("method", None)
    try:
        ho, wo = output_size(np.shape(x)[-2:], np.shape(weight)[-2:], kw.get("stride", 1),
                             kw.get("padding", 0), kw.get("dilation", 1))
        g = np.ones((np.shape(x)[0], np.shape(weight)[0], ho, wo))
    except (ValueError, TypeError, IndexError):
        g = np.ones((1, 1, 1, 1))
    return conv2d_backward(g, x, weight, **kw)


def naive(x, weight, bias=None, **kw):
    kw.pop("method", None)
    return conv2d_naive(x, weight, bias, **kw)


CONV_FUNCTIONS = [pytest.param(conv2d, id="conv2d"), pytest.param(naive, id="conv2d_naive"),
                  pytest.param(backward_with_ones, id="conv2d_backward")]
X = np.ones((1, 3, 5, 5))
W = np.ones((2, 3, 3, 3))


def weight_with(index, value):
    w = W.copy()
    w[index] = value
    return w


@pytest.mark.parametrize("fn", CONV_FUNCTIONS)
@pytest.mark.parametrize("x, w, kwargs, exc, match", [
    (X, W, dict(stride=0), ValueError, "stride must be >= 1, got 0"),
    (X, W, dict(stride=(1, 0)), ValueError, r"stride\[1\]"),
    (X, W, dict(padding=-1), ValueError, "padding must be >= 0, got -1"),
    (X, W, dict(padding=((0, -1), (0, 0))), ValueError, "padding"),
    (X, W, dict(dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (X, W, dict(stride=1.5), TypeError, "stride must be an integer, got 1.5"),
    (X, W, dict(stride=True), TypeError, "stride must be an integer, got True"),
    (X, W, dict(dilation=(1, 2.0)), TypeError, "dilation"),
    (X, np.ones((2, 3, 7, 7)), {}, ValueError,
     r"5x5 input gives an empty output: height: out = 1 \+ \(5 - 7\) = -1"),
    (X, np.ones((2, 3, 3, 3)), dict(dilation=3), ValueError, r"5x5.*= -1"),
    (X, W, dict(padding="foo"), ValueError, "'valid', 'same', 'full'"),
    (X, W, dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (X, W, dict(padding=5, padding_mode="reflect"), ValueError,
     "reflect padding .* must be smaller than the input: padding 5 >= size 5"),
    (X, W, dict(padding=(0, 6), padding_mode="reflect"), ValueError, r"reflect padding \(cols\)"),
    (X, W, dict(padding=6, padding_mode="circular"), ValueError, "padding 6 > size 5"),
    (X, np.ones((2, 1, 3, 3)), dict(groups=2), ValueError, "groups=2 must divide"),
    (X, np.ones((4, 1, 3, 3)), dict(groups=3, padding=0), ValueError, r"expected|groups"),
    (X, W, dict(groups=0), ValueError, "groups must be a positive integer"),
    (X, W, dict(groups=True), ValueError, "groups"),
    (X, np.ones((2, 2, 3, 3)), {}, ValueError, "2 input channels per filter.*expected 3"),
    (X, weight_with((1, 2, 0, 1), np.nan), {}, ValueError, r"nan at index \(1, 2, 0, 1\)"),
    (X, weight_with((0, 1, 2, 2), np.inf), {}, ValueError, r"inf at index \(0, 1, 2, 2\)"),
    (X, weight_with((1, 0, 1, 0), -np.inf), {}, ValueError, r"index \(1, 0, 1, 0\)"),
    (np.ones((5, 5)), W, {}, ValueError, r"x must have shape .* got shape \(5, 5\)"),
    (np.ones((1, 1, 3, 5, 5)), W, {}, ValueError, "x must have shape"),
    (np.ones((0, 3, 5, 5)), W, {}, ValueError, "x must not be empty"),
    (np.ones((1, 3, 0, 5)), W, {}, ValueError, "x must not be empty"),
    (X, np.ones((3, 3, 3)), {}, ValueError, "weight must have shape"),
    (X, np.ones((0, 3, 3, 3)), {}, ValueError, "weight must not be empty"),
    (X.astype(complex), W, {}, TypeError, "real numeric"),
])
def test_bad_input(fn, x, w, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(x, w, **kwargs)


@pytest.mark.parametrize("fn", [conv2d, naive], ids=["conv2d", "conv2d_naive"])
@pytest.mark.parametrize("bias, match", [
    (np.ones(3), r"one value per filter \(2\), got shape \(3,\)"),
    (np.ones(1), "one value per filter"),
    (np.array([0.0, np.nan]), "non-finite"),
    (np.array([np.inf, 0.0]), "non-finite"),
])
def test_bad_bias(fn, bias, match):
    with pytest.raises(ValueError, match=match):
        fn(X, W, bias)


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        conv2d(X, W, method="winograd")
    assert set(METHODS) == set(CONV_METHODS)


@pytest.mark.parametrize("g_shape", [(1, 2, 4, 4), (2, 3, 3), (1, 3, 3, 3), (2, 3, 3, 1)])
def test_backward_grad_out_wrong_shape(g_shape):
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 3, 3\)"):
        conv2d_backward(np.ones(g_shape), X, W)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        conv2d_backward(np.ones((1, 2, 3, 3)), X[0], W)


def test_auto_takes_one_d_passes_for_a_large_separable_kernel(monkeypatch):
    """A 15x15 Gaussian per channel: auto uses the low-rank direct path, not the FFT."""
    calls = spy(monkeypatch, "_conv_depthwise_low_rank", lambda a: 1)
    g = np.exp(-0.5 * ((np.arange(15) - 7) / 3.0) ** 2)
    w = np.repeat((np.outer(g, g) / np.outer(g, g).sum())[None, None], 3, axis=0)
    x = np.random.default_rng(3).random((1, 3, 40, 50)).astype(np.float32)
    got = conv2d(channels_last(x), w.astype(np.float32), groups=3, padding="same",
                 padding_mode="reflect")
    assert calls == [1]
    ref = conv2d_naive(x.astype(np.float64), w, groups=3, padding="same",
                       padding_mode="reflect")
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.numpy_paths
def test_auto_method_names_what_conv2d_uses():
    rng = np.random.default_rng(4)
    x = rng.random((1, 3, 20, 20)).astype(np.float32)
    g = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0
    assert conv_module.auto_method(x, np.repeat(g, 3, axis=0), groups=3) == "direct"
    full = rng.standard_normal((3, 1, 15, 15))
    assert conv_module.auto_method(x, full, groups=3) == "fft"
    assert conv_module.auto_method(x, full[:, :, :3, :3], groups=3) == "direct"
    assert conv_module.auto_method(x, rng.standard_normal((32, 3, 3, 3))) == "gemm"


@pytest.mark.parametrize("strips", [2, 3, 4])
@pytest.mark.parametrize("forced", ["none", "threads"])
@pytest.mark.numpy_paths
def test_single_channel_strips_path(monkeypatch, strips, forced):
    """One channel and one filter at stride 1: strips stacked as channels for the einsum
    path, for every mode, dilation, kernel shape and row count (ragged last strip)."""
    monkeypatch.setattr(conv_module, "_STRIPS", strips)
    monkeypatch.setattr(conv_module, "_STRIPS_MIN_TAPS", 0)
    monkeypatch.setattr(conv_module, "_STRIPS_MIN_PIXELS", 0)
    if forced == "threads":
        monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
    calls = spy(monkeypatch, "_conv_single_strips", lambda a: 1)
    rng = np.random.default_rng(seed_of("strips", str(strips), forced))
    tried = 0
    for trial in range(30):
        case = random_case(rng, groups_kind="1", stride=1, channels=1, max_hw=25)
        if case.weight.shape[0] != 1:
            continue
        ho = None
        for dtype in (np.float32, np.float64):
            xd = case.x.astype(dtype)
            ref = conv2d_naive(xd, case.weight, case.bias, **case.kwargs)
            got = conv2d(xd, case.weight.astype(dtype), case.bias, method="direct",
                         **case.kwargs)
            assert got.dtype == dtype
            assert_conv_close(got, ref, xd, case.weight, case.describe(trial=trial),
                              dtype=dtype)
            ho = ref.shape[2]
        tried += ho >= 2 * strips
    assert tried >= 5 and len(calls) == 2 * tried


@pytest.mark.numpy_paths
def test_single_channel_strips_only_where_it_pays(monkeypatch):
    """The strips path is taken for a big image and a 5x5 kernel, not for a 3x3 (slower
    stacked) nor for a batch of small images (a Python call per image)."""
    calls = spy(monkeypatch, "_conv_single_strips")
    rng = np.random.default_rng(5)
    big = rng.random((1, 1, 260, 260), dtype=np.float32)
    w5 = rng.standard_normal((1, 1, 5, 5)).astype(np.float32)
    w3 = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    small = rng.random((50, 1, 20, 20), dtype=np.float32)
    for x, w in ((big, w5), (big, w3), (small, w5)):
        got = conv2d(x, w, padding=1, method="direct")
        ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), None, padding=1)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert len(calls) == 1 and calls[0][0] == 1


def test_nearly_low_rank_kernel_is_not_rounded_to_low_rank():
    """Review regression: rank 1 plus 1e-5 of a second term. Against a vertical ramp the
    rank-1 part cancels, so dropping the small term left 2.8e-08 where the answer is
    1.27e-04. The per-channel check keeps the second term (or refuses the factors)."""
    g = np.exp(-np.linspace(-2, 2, 15) ** 2)
    d = np.linspace(-1, 1, 15)
    k = np.outer(g, d) + 1e-5 * np.outer(d, g)
    w = np.stack([k, 2 * k])[:, None].astype(np.float32)
    x = np.repeat((np.arange(40, dtype=np.float32)[:, None] / 40 + 0 * np.arange(40))[None],
                  2, axis=0)[None]
    ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=2)
    assert abs(ref[0, 0, 10, 10]) > 5e-5
    for method in ("auto", "direct"):
        got = conv2d(x, w, groups=2, method=method)
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-7)
    factors = conv_module._low_rank_factors(w[:, 0], np.float32)
    assert factors is None or factors[0].shape[1] >= 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.numpy_paths
def test_low_rank_path_keeps_nan_of_zero_times_inf(monkeypatch, dtype):
    """Review regression: with an inf in the input, the 1-D passes gave +-inf where the
    2-D sum has 0*inf = NaN (a kernel with a zero column): non-finite input takes the
    exact path, matching the naive loop's NaN/inf pattern."""
    monkeypatch.setattr(conv_module, "_LOW_RANK_MIN_IMAGE_WORK", 0)
    g = np.array([1, 4, 6, 4, 1], dtype)
    k = np.outer(g, np.array([1, 2, 0, -2, -1], dtype))  # rank 1, zero middle column
    w = np.stack([k, k / 2])[:, None]
    assert conv_module._cheap_low_rank(w, dtype) is not None
    x = np.ones((1, 2, 20, 20), dtype)
    x[0, :, 10, 10] = np.inf
    x[0, 1, 3, 4] = np.nan
    with np.errstate(invalid="ignore"):
        ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=2, padding=2)
        got = conv2d(x, w, groups=2, padding=2, method="direct")
    assert np.isnan(ref[0, 0, 10, 10])  # 0 * inf
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-5, atol=1e-5)


def test_low_rank_path_does_not_overflow_where_the_2d_sum_does_not():
    """Review regression: x = 3e38 under a 15x15 box filter is 3e38, but a horizontal
    pass weighted by an unnormalised SVD factor overflowed to inf. The horizontal factor
    now has unit L1 norm."""
    w = np.full((3, 1, 15, 15), 1 / 225, np.float32)
    assert conv_module._cheap_low_rank(w, np.float32) is not None
    x = np.full((1, 3, 40, 40), 3e38, np.float32)
    got = conv2d(x, w, groups=3)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, 3e38, rtol=1e-5)


@pytest.mark.numpy_paths
def test_batches_of_small_images_take_the_planar_path(monkeypatch):
    """Review regression: the einsum paths make a few Python calls per image (20,000
    4x4 images took 40x longer). Batches of small images go to the planar shift-and-add
    (same values); one image, or big images, still take the einsum rows."""
    taken = []
    for name in ("_conv_depthwise_rows", "_conv_direct"):
        spy(monkeypatch, name, lambda a, _n=name: _n, calls=taken)
    rng = np.random.default_rng(11)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    cases = [(rng.random((500, 2, 4, 4), dtype=np.float32), "_conv_direct"),
             (rng.random((1, 2, 4, 4), dtype=np.float32), "_conv_depthwise_rows"),
             (rng.random((2, 2, 200, 200), dtype=np.float32), "_conv_depthwise_rows")]
    for x, path in cases:
        taken.clear()
        got = conv2d(x, w, groups=2, padding=1)
        assert taken == [path]
        ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=2, padding=1)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_run_shared_stops_the_other_thread_after_an_error():
    """An exception in one item clears the queue: the pool thread stops after its
    current item instead of running every remaining one, and the error reaches the
    caller."""
    import threading
    import time as _time
    done = []
    first = threading.Event()

    def item(i):
        if i == 0:
            first.wait(5)
            raise RuntimeError("boom")
        first.set()
        _time.sleep(0.01)
        done.append(i)

    with pytest.raises(RuntimeError, match="boom"):
        conv_module._run_shared(item, [(i,) for i in range(200)])
    assert len(done) < 20


def test_pool_is_made_once_under_concurrent_first_calls(monkeypatch):
    import threading
    monkeypatch.setattr(conv_module, "_executor", None)
    barrier = threading.Barrier(8)
    got = []

    def first_call():
        barrier.wait()
        got.append(conv_module._pool())

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len({id(p) for p in got}) == 1
    got[0].shutdown(wait=False)


@pytest.mark.numpy_paths
def test_batches_of_small_images_keep_the_low_rank_path(monkeypatch):
    """Review regression: the per-image rule meant for the rows path also switched off
    the 1-D passes, 4x slower for 64 RGB 32x32 images with a 9x9 Gaussian. The low-rank
    path has its own, lower threshold; tiny images still go planar."""
    calls = spy(monkeypatch, "_conv_depthwise_low_rank")
    rng = np.random.default_rng(12)
    for k_size, shape, expect in ((9, (64, 3, 32, 32), True), (5, (300, 3, 8, 8), False)):
        g = np.exp(-np.linspace(-2, 2, k_size) ** 2)
        k = np.outer(g, g) / np.outer(g, g).sum()
        w = np.repeat(k[None, None], 3, axis=0).astype(np.float32)
        x = rng.random(shape, dtype=np.float32)
        calls.clear()
        got = conv2d(x, w, groups=3, padding="same")
        assert bool(calls) == expect, (k_size, shape)
        ref = conv2d_naive(x[:4].astype(np.float64), w.astype(np.float64), groups=3,
                           padding="same")
        np.testing.assert_allclose(got[:4], ref, rtol=1e-5, atol=1e-6)


def test_low_rank_and_fft_paths_do_not_overflow_near_float_max():
    """Review regression: a rank-2 kernel whose components cancel (an L shape) made the
    vertical pass overflow at 0.9*FLT_MAX, a rank-1 Gaussian at FLT_MAX could round
    over, and the FFT of near-FLT_MAX input was all NaN. Such input takes the exact
    2-D sum, which stays finite wherever the true result is finite."""
    big = np.finfo(np.float32).max
    k = np.zeros((9, 9))
    k[0] = 1
    k[:, 0] = 1
    k /= k.sum()
    w_l = np.repeat(k[None, None], 3, axis=0).astype(np.float32)
    x = np.full((1, 3, 64, 64), 0.9 * big, np.float32)
    got = conv2d(x, w_l, groups=3)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0, 0, 0, 0], 0.9 * float(big) * k.sum(), rtol=1e-5)
    g = np.exp(-0.5 * ((np.arange(15) - 7) / 2.5) ** 2)
    gauss = (np.outer(g, g) / np.outer(g, g).sum()).astype(np.float32)
    for c in (1, 3):  # one channel: FFT; three: the low-rank passes
        w = np.repeat(gauss[None, None], c, axis=0)
        xm = np.full((1, c, 48, 48), 0.99 * big, np.float32)
        got = conv2d(xm, w, groups=c)
        assert np.isfinite(got).all(), c
        np.testing.assert_allclose(got, 0.99 * float(big) * gauss.astype(np.float64).sum(),
                                   rtol=1e-5)


# ------------------------------------------------------------- the compiled loop (jit)

needs_jit = pytest.mark.skipif(not _jit.available(),
                               reason="numba is not available (not installed, or CONVSCOPE_JIT=0)")


@needs_jit
@pytest.mark.numpy_paths  # switches the engine itself
@pytest.mark.parametrize("forced", ["none", "row_blocks", "image_groups", "threads"])
def test_jit_work_items_match_naive(monkeypatch, forced):
    """The compiled loop over every way conv2d cuts the work: one item, row blocks of a
    few rows, groups of whole images, and both threads; random geometry, groups, modes,
    layouts (planar, channels-last, strided views) and both float dtypes."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)  # small cases load it too
    calls = spy(monkeypatch, "_conv_jit", lambda a: 1)
    if forced == "row_blocks":
        monkeypatch.setattr(conv_module, "_JIT_ITEM_WORK", 0)
        monkeypatch.setattr(conv_module, "_JIT_BLOCK_ELEMS", 1)  # one row per block
    elif forced == "image_groups":
        monkeypatch.setattr(conv_module, "_JIT_ITEM_WORK", 300)
    elif forced == "threads":
        monkeypatch.setattr(conv_module, "_JIT_ITEM_WORK", 0)
        monkeypatch.setattr(conv_module, "_JIT_BLOCK_ELEMS", 40)
        monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
    rng = np.random.default_rng(seed_of("jit", forced))
    for trial in range(40):
        case = random_case(rng, max_hw=9, n=int(rng.integers(1, 5)))
        for layout, dtype in (("planar", np.float64), ("channels_last", np.float32),
                              ("strided", np.float32)):
            x = case.x.astype(dtype)
            if layout == "channels_last":
                x = channels_last(x)
            elif layout == "strided":
                x = np.repeat(x, 2, axis=3)[..., ::2]
            ref = conv2d_naive(case.x, case.weight, case.bias, **case.kwargs)
            got = conv2d(x, case.weight.astype(dtype), case.bias, method="direct",
                         **case.kwargs)
            assert got.dtype == dtype
            assert_conv_close(got, ref, case.x, case.weight,
                              case.describe(trial=trial, layout=layout), dtype=dtype)
    assert len(calls) >= 40  # low-rank kernels aside, every case took the loop


@needs_jit
@pytest.mark.numpy_paths
def test_jit_keeps_nan_and_inf_local(monkeypatch):
    """No fast-math: 0 * inf is NaN and a NaN pixel reaches exactly the windows that
    contain it, as in the naive sum."""
    monkeypatch.setattr(_jit, "_enabled", True)
    rng = np.random.default_rng(21)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    w[0, 0, 1, 1] = 0.0
    x = rng.random((1, 2, 30, 40), dtype=np.float32)
    x[0, 0, 10, 10] = np.inf
    x[0, 1, 20, 5] = np.nan
    with np.errstate(invalid="ignore"):
        ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=2, padding=1)
        got = conv2d(x, w, groups=2, padding=1, method="direct")
    assert np.isnan(ref[0, 0, 10, 10])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-5, atol=1e-5)


@needs_jit
@pytest.mark.numpy_paths
def test_jit_method_choice(monkeypatch):
    """With the loop, direct serves full-rank kernels up to FFT_MIN_TAPS_JIT taps (a
    15x15 is 3x faster direct than by FFT), and only cheap low-rank kernels keep the 1-D
    passes; many filters still go to gemm."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)  # small cases load it too
    rng = np.random.default_rng(4)
    x = rng.random((1, 3, 40, 40)).astype(np.float32)
    full = rng.standard_normal((3, 1, 31, 31))
    assert conv_module.auto_method(x, full[:, :, :15, :15], groups=3) == "direct"
    assert conv_module.auto_method(x, full, groups=3) == "fft"
    assert conv_module.auto_method(x, rng.standard_normal((32, 3, 3, 3))) == "gemm"
    g5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0
    assert conv_module._cheap_low_rank(np.repeat(g5, 3, axis=0), np.float32) is None
    g = np.exp(-0.5 * ((np.arange(15) - 7) / 3.0) ** 2)
    g15 = np.repeat(np.outer(g, g)[None, None], 3, axis=0)
    assert conv_module._cheap_low_rank(g15, np.float32) is not None
    calls = spy(monkeypatch, "_conv_jit", lambda a: 1)
    conv2d(x, full[:, :, :7, :7].astype(np.float32), groups=3, padding="same")
    assert calls == [1]


@needs_jit
def test_jit_can_be_switched_off_by_environment():
    import subprocess
    import sys
    code = "import core._jit as j; print(j.available(), j.enabled())"
    for value, expect in (("0", "False False"), ("1", "True True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**__import__("os").environ, "CONVSCOPE_JIT": value},
                             check=True)
        assert out.stdout.split() == expect.split()


@needs_jit
@pytest.mark.numpy_paths
def test_jit_compile_failure_falls_back_to_numpy(monkeypatch):
    """If numba cannot compile the loop (a broken install), conv2d warns once, switches
    the loop off and still returns the right result from the numpy paths."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)  # small cases load it too
    monkeypatch.setattr(_jit, "_kernels", {})

    def broken(*args, **kwargs):
        raise RuntimeError("LLVM exploded")

    monkeypatch.setattr(_jit.numba, "njit", lambda *a, **k: broken)
    rng = np.random.default_rng(5)
    x = rng.random((1, 3, 20, 20), dtype=np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="LLVM exploded"):
        got = conv2d(x, w, groups=3, padding=1, method="direct")
    assert not _jit.enabled()
    ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=3, padding=1)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_read_only_and_broadcast_inputs(method):
    """Review regression: the compiled loop refused read-only arrays (a Pillow buffer,
    np.broadcast_to) with a numba TypeError. Every method takes them."""
    rng = np.random.default_rng(31)
    x = rng.random((1, 3, 12, 14)).astype(np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    for arr in (x, w, b):
        arr.flags.writeable = False
    for xin in (x, np.broadcast_to(x[:, :1], x.shape)):
        ref = conv2d_naive(np.array(xin, np.float64), w.astype(np.float64),
                           b.astype(np.float64), groups=3, padding=1, padding_mode="reflect")
        got = conv2d(xin, w, b, groups=3, padding=1, padding_mode="reflect", method=method)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@needs_jit
@pytest.mark.numpy_paths  # switches the engine itself
def test_small_work_does_not_load_the_compiled_loop(monkeypatch):
    """A 5x5 worked example in a script or in convscope-run waited 0.5-1.5 s for numba's
    cache to load; work below LOAD_MIN_WORK uses the numpy paths unless the loop is
    already loaded (then it is used, as in the app after its background warm-up)."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "_kernels", {})
    calls = spy(monkeypatch, "_conv_jit", lambda a: 1)
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    w = np.ones((1, 1, 3, 3), np.float32)
    small = conv2d(x, w, method="direct", padding=1)
    assert calls == [] and _jit._kernels == {}
    big = np.random.default_rng(0).random((1, 1, 700, 700), dtype=np.float32)
    conv2d(big, w, method="direct")           # 700*700*9 > LOAD_MIN_WORK: loads it
    assert len(calls) == 1 and np.dtype(np.float32) in _jit._kernels
    again = conv2d(x, w, method="direct", padding=1)  # loaded now: used for small work
    assert len(calls) == 2
    np.testing.assert_array_equal(small, again)
    assert small[0, 0, 0, 0] == 0 + 1 + 5 + 6


@needs_jit
@pytest.mark.numpy_paths  # switches the engine itself
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_method_matches_naive_and_gemm_gradients(monkeypatch, dtype):
    """method="flat" (a CNN's first layer: few channels, stride 1, zero padding) runs
    the flat loops and gives the naive sum, and conv2d_backward(method="flat") the
    gemm method's three gradients: 1-3 channels, square, even and non-square kernels,
    dilation, int/'same'/'full'/asymmetric padding, batches 1-5, bias or none, a NaN
    in the input (it stays in its windows), float32 and float64; work split over the
    two threads too (partial gradients added up)."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    fwd = spy(monkeypatch, "_conv_flat", lambda a: a[0].shape)
    bwd = spy(monkeypatch, "_conv_flat_grads", lambda a: a[1].shape)
    rng = np.random.default_rng(31)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    paddings = [0, 1, 2, "same", "full", ((1, 0), (2, 1)), (0, 2)]
    for trial in range(28):
        n, c, f = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 10))
        h, w_ = (int(v) for v in rng.integers(3, 13, 2))
        k = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (3, 1), (4, 5)][trial % 7]
        d = [(1, 1), (2, 1), (1, 2), (2, 2)][trial % 4]
        pad = paddings[trial % len(paddings)]
        if pad == "same" and k[0] % 2 == 0:
            pad = 1
        x = rng.standard_normal((n, c, h, w_)).astype(dtype)
        if trial % 3 == 0:  # channels-last memory, as the CNN's activations
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        if trial % 9 == 4:
            x[0, 0, h // 2, w_ // 2] = np.nan
        wt = rng.standard_normal((f, c, *k)).astype(dtype)
        b = rng.standard_normal(f).astype(dtype) if trial % 2 else None
        kw = dict(padding=pad, dilation=d)
        try:
            want = conv2d_naive(x.astype(np.float64), wt.astype(np.float64),
                                None if b is None else b.astype(np.float64), **kw)
        except ValueError:
            continue
        before = len(fwd)
        got = conv2d(x, wt, b, method="flat", **kw)
        assert len(fwd) == before + 1, "the flat loop did not run"
        assert got.shape == want.shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=str(trial))
        g = rng.standard_normal(got.shape).astype(dtype)
        ref = conv2d_backward(g, x, wt, method="gemm", **kw)
        for need_x in (False, True):
            have = conv2d_backward(g, x, wt, method="flat", need_x=need_x, **kw)
            if need_x:
                np.testing.assert_allclose(have[0], ref[0], rtol=tol, atol=tol)
            else:
                assert have[0] is None
            for a, r in zip(have[1:], ref[1:]):
                np.testing.assert_allclose(a, r, rtol=tol, atol=tol * 10, err_msg=str(trial))
    assert len(fwd) >= 20 and len(bwd) >= 40
    big = rng.standard_normal((64, 1, 28, 28)).astype(dtype)  # two threads, partial sums
    wt = rng.standard_normal((8, 1, 5, 5)).astype(dtype)
    g = rng.standard_normal((64, 8, 28, 28)).astype(dtype)
    first = conv2d_backward(g, big, wt, padding=2, method="flat")
    for a, r in zip(first, conv2d_backward(g, big, wt, padding=2, method="gemm")):
        np.testing.assert_allclose(a, r, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-2 if dtype == np.float32 else 1e-9)
    for _ in range(8):  # repeatable bitwise, whichever thread ran which images
        again = conv2d_backward(g, big, wt, padding=2, method="flat")
        for a, r in zip(again, first):
            np.testing.assert_array_equal(a, r)


@needs_jit
@pytest.mark.numpy_paths
def test_flat_method_falls_back_to_gemm_where_it_does_not_apply(monkeypatch):
    """Stride 2, groups, another padding mode, more channels than FLAT_MAX_CHANNELS,
    or the loop not loadable: method="flat" is gemm (same values), never an error."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    fwd = spy(monkeypatch, "_conv_flat", lambda a: 1)
    rng = np.random.default_rng(32)
    x = rng.standard_normal((2, 2, 9, 9))
    more = rng.standard_normal((2, conv_module.FLAT_MAX_CHANNELS + 1, 9, 9))
    cases = [(x, rng.standard_normal((3, 2, 3, 3)), dict(stride=2)),
             (x, rng.standard_normal((4, 1, 3, 3)), dict(groups=2)),
             (x, rng.standard_normal((3, 2, 3, 3)), dict(padding=1, padding_mode="reflect")),
             (more, rng.standard_normal((3, more.shape[1], 3, 3)), {})]
    for xi, wt, kw in cases:
        got = conv2d(xi, wt, method="flat", **kw)
        np.testing.assert_allclose(got, conv2d_naive(xi, wt, **kw), atol=1e-10)
        g = np.ones_like(got)
        for a, r in zip(conv2d_backward(g, xi, wt, method="flat", **kw),
                        conv2d_backward(g, xi, wt, method="gemm", **kw)):
            np.testing.assert_allclose(a, r, atol=1e-10)
    assert fwd == []
    monkeypatch.setattr(_jit, "_enabled", False)  # numba off: gemm
    wt = rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(conv2d(x, wt, method="flat"), conv2d(x, wt, method="gemm"))
    assert fwd == []


@needs_jit
@pytest.mark.numpy_paths
def test_a_training_loop_group_that_fails_to_compile_falls_back_with_a_warning(monkeypatch):
    """flat_ready (and pool_back_ready, the same helper): a compile failure switches the
    compiled loops off with a RuntimeWarning naming the loops, and method="flat" gives
    gemm's values."""
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    monkeypatch.setattr(_jit, "_flat_loaded", set())

    def broken(dtype):
        raise RuntimeError("no compiler")
    monkeypatch.setattr(_jit, "_load_flat", broken)
    rng = np.random.default_rng(33)
    x, w = rng.standard_normal((2, 1, 8, 8)), rng.standard_normal((3, 1, 3, 3))
    with pytest.warns(RuntimeWarning, match="training convolution.*no compiler"):
        got = conv2d(x, w, method="flat", padding=1)
    assert not _jit.enabled()
    np.testing.assert_allclose(got, conv2d_naive(x, w, padding=1), atol=1e-10)
