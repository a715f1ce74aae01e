"""Tests of core.pool: pool2d against pool2d_naive and hand-computed PyTorch results;
pool2d_backward against centred finite differences.

The PyTorch expectations below were computed by hand and confirmed once against
torch 2.13 outside the suite (the suite never imports torch).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convscope.core.pool import POOL_MODES, pool2d, pool2d_backward, pool2d_naive
from gradcheck import numeric_grad

# --------------------------------------------------------------------------- helpers


def fmt(**kw) -> str:
    """The trial's parameters, for assertion messages."""
    return "; ".join(f"{k}={v!r}" for k, v in kw.items())


def pool_out(n, k, s, p, d, ceil) -> int:
    """Output length along one axis (PyTorch's rule), used only to pick valid trials."""
    num = n + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def random_pool_case(rng, *, mode=None, ndim=None, max_hw=9, distinct=False, dilation=None):
    """A random valid pooling trial: (x, kwargs)."""
    while True:
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        stride = None if rng.random() < 0.25 else (int(rng.integers(1, 4)),
                                                    int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
        dil = dilation or (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ceil = bool(rng.integers(2))
        h, w = (int(v) for v in rng.integers(1, max_hw + 1, 2))
        sh, sw = stride or (kh, kw)
        if min(pool_out(h, kh, sh, padding[0], dil[0], ceil),
               pool_out(w, kw, sw, padding[1], dil[1], ceil)) <= 0:
            continue
        nd = ndim or int(rng.integers(2, 5))
        lead = tuple(int(v) for v in rng.integers(1, 3, nd - 2))
        shape = lead + (h, w)
        if distinct:  # no ties anywhere: gaps of 1 between values
            x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(float) - 7.5
        else:
            x = rng.standard_normal(shape)
        kwargs = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dil,
                      mode=mode or POOL_MODES[int(rng.integers(len(POOL_MODES)))],
                      ceil_mode=ceil, count_include_pad=bool(rng.integers(2)))
        return x, kwargs


def call(fn, x, kwargs, **extra):
    kw = dict(kwargs, **extra)
    return fn(x, kw.pop("kernel_size"), kw.pop("stride"), **kw)


# ------------------------------------------------------------------ reference vectors


def vector3_map():
    """An 8x8 map whose first 2x2 window is {8, -1, 2, 0} and window (1, 2) is {3, 3, 1, 9}."""
    m = np.arange(64, dtype=float).reshape(8, 8) % 7 - 3  # values in -3..3
    m[0:2, 0:2] = [[8, -1], [2, 0]]
    m[2:4, 4:6] = [[3, 3], [1, 9]]
    return m


def test_vector3_max_pool_8x8_to_4x4():
    m = vector3_map()
    out = pool2d(m, 2, 2)
    assert out.shape == (4, 4)
    assert out[0, 0] == 8
    assert out[1, 2] == 9
    expected = m.reshape(4, 2, 4, 2).max(axis=(1, 3))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, pool2d_naive(m, 2, 2))
    _, idx = pool2d(m, 2, return_indices=True)
    assert idx[0, 0] == 0             # the 8 at (0, 0)
    assert idx[1, 2] == 3 * 8 + 5     # the 9 at (3, 5)


def test_28_to_14_and_stride_defaults_to_window():
    x = np.random.default_rng(0).standard_normal((28, 28))
    assert pool2d(x, 2).shape == (14, 14)
    np.testing.assert_array_equal(pool2d(x, 2), pool2d(x, 2, 2))
    assert pool2d(x, (2, 4)).shape == (14, 7)


# --------------------------------------------------------- random sweeps vs the naive


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sweep_matches_naive(mode, seed):
    rng = np.random.default_rng(seed)
    for trial in range(40):
        x, kw = random_pool_case(rng, mode=mode)
        msg = fmt(seed=seed, trial=trial, shape=x.shape, **kw)
        got = call(pool2d, x, kw)
        ref = call(pool2d_naive, x, kw)
        assert got.shape == ref.shape, msg
        assert got.dtype == np.float64, msg
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=msg)
        if mode in ("max", "min"):
            gv, gi = call(pool2d, x, kw, return_indices=True)
            rv, ri = call(pool2d_naive, x, kw, return_indices=True)
            np.testing.assert_array_equal(gv, got, err_msg=msg)
            np.testing.assert_array_equal(gv, rv, err_msg=msg)
            np.testing.assert_array_equal(gi, ri, err_msg=msg)
            # the index points at the value it claims (for windows with a real cell)
            flat = x.reshape(x.shape[:-2] + (-1,))
            real = gi >= 0
            picked = np.take_along_axis(flat, np.maximum(gi, 0).reshape(
                gi.shape[:-2] + (-1,)), -1).reshape(gi.shape)
            np.testing.assert_array_equal(picked[real], gv[real], err_msg=msg)


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_grid_of_options_matches_naive(mode, ceil_mode, count_include_pad):
    x = np.random.default_rng(9).standard_normal((2, 7, 8))
    for k in (1, 2, 3, 4, (1, 3), (3, 2)):
        kh, kw = (k, k) if isinstance(k, int) else k
        for stride in (None, 1, 2, 3, (2, 1)):
            for padding in {0, (kh // 2, kw // 2), (0, kw // 2)}:
                for dilation in (1, 2, (1, 2)):
                    kw_ = dict(padding=padding, dilation=dilation, mode=mode,
                               ceil_mode=ceil_mode, count_include_pad=count_include_pad)
                    try:
                        ref = pool2d_naive(x, k, stride, **kw_)
                    except ValueError:
                        continue
                    got = pool2d(x, k, stride, **kw_)
                    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12,
                                               err_msg=fmt(k=k, stride=stride, **kw_))


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("mode", POOL_MODES)
def test_2d_3d_4d_inputs_pool_each_plane(ndim, mode):
    rng = np.random.default_rng(ndim)
    shape = (2, 3, 6, 7)[4 - ndim:]
    x = rng.standard_normal(shape)
    out = pool2d(x, 3, 2, padding=1, mode=mode)
    assert out.shape == shape[:-2] + (3, 4)
    planes = x.reshape(-1, 6, 7)
    per_plane = np.stack([pool2d(p, 3, 2, padding=1, mode=mode) for p in planes])
    np.testing.assert_allclose(out.reshape(-1, 3, 4), per_plane, rtol=1e-12)


@pytest.mark.parametrize("mode", POOL_MODES)
def test_channels_last_view_same_values(mode):
    """Activations in (N, H, W, C) memory seen as (N, C, H, W) pool like contiguous ones."""
    rng = np.random.default_rng(12)
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6).astype(float)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for k, s, p, ceil in ((2, None, 0, False), (3, 2, 1, True), ((3, 2), (1, 2), (1, 1), True)):
        kw = dict(padding=p, mode=mode, ceil_mode=ceil)
        ref = pool2d_naive(x, k, s, **kw)
        np.testing.assert_allclose(pool2d(x_cl, k, s, **kw), ref, rtol=1e-12,
                                   err_msg=fmt(k=k, s=s, **kw))
        g = np.random.default_rng(1).standard_normal(ref.shape)
        np.testing.assert_allclose(pool2d_backward(g, x_cl, k, s, **kw),
                                   pool2d_backward(g, x, k, s, **kw), rtol=1e-12)
        if mode in ("max", "min"):
            np.testing.assert_array_equal(pool2d(x_cl, k, s, return_indices=True, **kw)[1],
                                          pool2d_naive(x, k, s, return_indices=True, **kw)[1])


# --------------------------------------------------- hand-computed PyTorch facts


def test_avg_count_include_pad_divides_by_full_window():
    x = np.ones((2, 2))
    np.testing.assert_allclose(pool2d(x, 3, 1, padding=1, mode="avg"), np.full((2, 2), 4 / 9))
    np.testing.assert_allclose(pool2d(x, 3, 1, padding=1, mode="avg", count_include_pad=False),
                               np.ones((2, 2)))


def test_avg_ceil_overhang_does_not_count():
    x = np.arange(25.0).reshape(5, 5)
    out = pool2d(x, 2, 2, mode="avg", ceil_mode=True)
    assert out.shape == (3, 3)
    assert out[0, 0] == (0 + 1 + 5 + 6) / 4
    assert out[0, 2] == (4 + 9) / 2          # only two cells are real; the overhang is not
    assert out[2, 2] == 24.0
    np.testing.assert_allclose(out, [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]])


def test_avg_ceil_with_padding_counts_padding_but_not_overhang():
    # 4x4 ones, k=3, s=2, p=1, ceil: the last window covers real col 3, the right
    # padding col 4 and the overhang col 5: divisor 2 along that axis, not 3.
    out = pool2d(np.ones((4, 4)), 3, 2, padding=1, mode="avg", ceil_mode=True)
    expected = np.array([[4 / 9, 6 / 9, 2 / 6],
                         [6 / 9, 9 / 9, 3 / 6],
                         [2 / 6, 3 / 6, 1 / 4]])
    np.testing.assert_allclose(out, expected)
    out = pool2d(np.ones((4, 4)), 3, 2, padding=1, mode="avg", ceil_mode=True,
                 count_include_pad=False)
    np.testing.assert_allclose(out, np.ones((3, 3)))


def test_ceil_mode_5x5_k2_s2():
    x = np.arange(25.0).reshape(5, 5)
    assert pool2d(x, 2, 2, ceil_mode=True).shape == (3, 3)
    assert pool2d(x, 2, 2).shape == (2, 2)
    np.testing.assert_array_equal(pool2d(x, 2, 2, ceil_mode=True),
                                  [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


def test_ceil_window_may_not_start_in_right_padding():
    # in=5, k=2, s=2, p=1: 1 + ceil((5 + 2 - 2) / 2) = 4 windows by the formula, but the
    # 4th would start at padded index 6 >= 5 + 1 (inside the right padding): dropped.
    x = np.arange(25.0).reshape(5, 5)
    out = pool2d(x, 2, 2, padding=1, ceil_mode=True)
    assert out.shape == (3, 3)
    # windows cover real rows/cols {-1, 0}, {1, 2}, {3, 4}
    np.testing.assert_array_equal(out, [[0, 2, 4], [10, 12, 14], [20, 22, 24]])
    # and in=4, k=2, s=2, p=1 with ceil: (4 + 2 - 2) / 2 + 1 = 3, nothing dropped
    assert pool2d(np.ones((4, 4)), 2, 2, padding=1, ceil_mode=True).shape == (3, 3)


def test_max_pool_pads_with_minus_infinity():
    x = -np.arange(1.0, 10.0).reshape(3, 3)  # all negative
    out = pool2d(x, 3, 1, padding=1)
    assert (out < 0).all()
    np.testing.assert_array_equal(out, [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])
    out = pool2d(-x, 3, 1, padding=1, mode="min")
    np.testing.assert_array_equal(out, [[1, 1, 2], [1, 1, 2], [4, 4, 5]])


def test_l2_pool():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert pool2d(x, 2, mode="l2")[0, 0] == pytest.approx(5.0)
    # padding contributes nothing to the sum of squares
    out = pool2d(x, 3, 1, padding=1, mode="l2")
    np.testing.assert_allclose(out, np.full((2, 2), 5.0))


def test_overlapping_pooling_3x3_stride_2():
    x = np.arange(49.0).reshape(7, 7)
    out, idx = pool2d(x, 3, 2, return_indices=True)
    assert out.shape == (3, 3)
    # window (i, j) covers rows 2i..2i+2, cols 2j..2j+2: its max is the bottom-right cell
    np.testing.assert_array_equal(out, [[16, 18, 20], [30, 32, 34], [44, 46, 48]])
    np.testing.assert_array_equal(idx, out.astype(int))
    avg = pool2d(x, 3, 2, mode="avg")
    np.testing.assert_allclose(avg, out - 8)  # centre value = mean of an arithmetic 3x3


def test_channels_are_pooled_independently():
    """The brightest R, G and B of a window may come from different pixels."""
    img = np.zeros((3, 2, 2))
    img[0] = [[200, 10], [10, 10]]   # R brightest at (0, 0)
    img[1] = [[10, 10], [10, 220]]   # G brightest at (1, 1)
    img[2] = [[10, 230], [10, 10]]   # B brightest at (0, 1)
    out, idx = pool2d(img, 2, return_indices=True)
    np.testing.assert_array_equal(out[:, 0, 0], [200, 220, 230])
    np.testing.assert_array_equal(idx[:, 0, 0], [0, 3, 1])
    # no single pixel of the window has that colour
    assert not any((img[:, r, c] == out[:, 0, 0]).all() for r in range(2) for c in range(2))


# --------------------------------------------------------------- NaN and ties


@pytest.mark.parametrize("mode", ["max", "min"])
def test_nan_propagates_and_is_the_index(mode):
    x = np.arange(16.0).reshape(4, 4)
    x[1, 2] = np.nan
    out = pool2d(x, 2, mode=mode)
    assert np.isnan(out[0, 1])
    assert np.isfinite(np.delete(out.ravel(), 1)).all()
    vals, idx = pool2d(x, 2, mode=mode, return_indices=True)
    assert np.isnan(vals[0, 1]) and idx[0, 1] == 1 * 4 + 2
    nvals, nidx = pool2d_naive(x, 2, mode=mode, return_indices=True)
    np.testing.assert_array_equal(nvals, vals)
    np.testing.assert_array_equal(nidx, idx)


def test_nan_in_overlapping_windows_and_with_padding():
    x = np.arange(25.0).reshape(5, 5)
    x[2, 2] = np.nan
    out = pool2d(x, 3, 1, padding=1)
    assert np.isnan(out[1:4, 1:4]).all()
    assert np.isnan(out).sum() == 9
    np.testing.assert_array_equal(out, pool2d_naive(x, 3, 1, padding=1))
    assert np.isnan(pool2d(x, 3, 1, padding=1, mode="avg")[2, 2])


def test_two_nans_pytorch_picks_the_last():
    # torch.nn.functional.max_pool2d([[nan, 1, nan, 2]], (1, 4), return_indices=True)
    # gives (nan, 2): its loop updates on "val > max or isnan(val)".
    x = np.array([[np.nan, 1.0, np.nan, 2.0]])
    vals, idx = pool2d(x, (1, 4), return_indices=True)
    assert np.isnan(vals[0, 0]) and idx[0, 0] == 2


@pytest.mark.parametrize("mode", ["max", "min"])
def test_ties_first_wins(mode):
    x = np.array([[3.0, 1.0, 5.0, 5.0],
                  [3.0, 2.0, 5.0, 5.0]])
    if mode == "min":
        x = -x
    vals, idx = pool2d(x, 2, return_indices=True, mode=mode)
    np.testing.assert_array_equal(idx, [[0, 2]])
    # overlapping windows over a constant plane: each picks its own top-left cell
    vals, idx = pool2d(np.zeros((4, 4)), 2, 1, return_indices=True, mode=mode)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [4, 5, 6], [8, 9, 10]])
    # with padding the first *real* cell wins (padding never does)
    vals, idx = pool2d(np.zeros((3, 3)), 3, 1, padding=1, return_indices=True, mode=mode)
    np.testing.assert_array_equal(idx, [[0, 0, 1], [0, 0, 1], [3, 3, 4]])
    np.testing.assert_array_equal(vals, np.zeros((3, 3)))


# ------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("dtype, out_dtype", [
    (np.float64, np.float64), (np.float32, np.float32), (np.uint8, np.float32),
    (np.int64, np.float32), (np.float16, np.float32), (np.bool_, np.float32),
])
@pytest.mark.parametrize("mode", POOL_MODES)
def test_dtypes(dtype, out_dtype, mode):
    x = (np.arange(48).reshape(3, 4, 4) * 37 % 200).astype(dtype)
    out = pool2d(x, 2, mode=mode)
    assert out.dtype == out_dtype
    np.testing.assert_allclose(out, pool2d_naive(x, 2, mode=mode), rtol=1e-6)
    if mode == "max":
        assert out.max() == x.astype(float).max()


def test_input_not_modified():
    x = np.random.default_rng(1).standard_normal((2, 5, 5))
    copy = x.copy()
    for mode in POOL_MODES:
        pool2d(x, 3, 2, padding=1, mode=mode, ceil_mode=True)
        pool2d_backward(np.ones((2, 3, 3)), x, 3, 2, padding=1, mode=mode, ceil_mode=True)
    np.testing.assert_array_equal(x, copy)


# ------------------------------------------------------------------ backward


def check_pool_gradient(x, kw, msg):
    x = x.copy()
    out = call(pool2d, x, kw)
    g = np.random.default_rng(x.size).standard_normal(out.shape)
    rest = {k: v for k, v in kw.items() if k not in ("kernel_size", "stride")}
    gx = pool2d_backward(g, x, kw["kernel_size"], kw["stride"], **rest)
    assert gx.shape == x.shape and gx.dtype == x.dtype, msg
    finite = np.isfinite(out)  # a window with no real cell is constant (-inf/+inf/0)

    def loss():
        y = call(pool2d, x, kw)
        return float(np.sum(np.where(finite, y, 0.0) * g))

    np.testing.assert_allclose(gx, numeric_grad(loss, x), rtol=1e-6, atol=1e-6, err_msg=msg)


@pytest.mark.parametrize("mode", POOL_MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_random_sweep(mode, seed):
    rng = np.random.default_rng(500 + seed)
    for trial in range(12):
        x, kw = random_pool_case(rng, mode=mode, max_hw=6, distinct=mode in ("max", "min"))
        if mode == "l2":
            x = x + np.sign(x) * 0.5  # keep every window's norm away from 0
        check_pool_gradient(x, kw, fmt(seed=seed, trial=trial, shape=x.shape, **kw))


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
def test_backward_avg_options(ceil_mode, count_include_pad):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 6))
    for k, s, p in ((3, 2, 1), (2, 2, 1), ((3, 2), (2, 3), (1, 1)), (4, 3, 2)):
        kw = dict(kernel_size=k, stride=s, padding=p, dilation=1, mode="avg",
                  ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        check_pool_gradient(x, kw, fmt(**kw))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_backward_max_min_with_padding_and_overlap(mode):
    # numpy-ml's max-pool backward was wrong with padding: check it here explicitly.
    rng = np.random.default_rng(8)
    x = rng.permutation(36).reshape(1, 6, 6).astype(float)
    for k, s, p, d in ((3, 2, 1, 1), (3, 1, 1, 1), (2, 1, 1, 2), ((3, 2), (1, 2), (1, 1), 1)):
        kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, mode=mode, ceil_mode=True,
                  count_include_pad=True)
        check_pool_gradient(x, kw, fmt(**kw))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_backward_ties_go_to_first_cell_only(mode):
    x = np.zeros((4, 4))
    g = np.arange(1.0, 10.0).reshape(3, 3)
    gx = pool2d_backward(g, x, 2, 1, mode=mode)
    # each window sends its whole gradient to its top-left cell
    expected = np.zeros((4, 4))
    expected[:3, :3] = g
    np.testing.assert_array_equal(gx, expected)
    # non-overlapping windows of equal values
    x = np.array([[2.0, 2.0, 1.0, 1.0], [2.0, 2.0, 1.0, 1.0]])
    gx = pool2d_backward(np.array([[10.0, 20.0]]), x, 2, mode=mode)
    np.testing.assert_array_equal(gx, [[10, 0, 20, 0], [0, 0, 0, 0]])


def test_backward_overlapping_max_accumulates():
    # a single bright pixel is the max of all four 2x2 windows around it
    x = np.zeros((3, 3))
    x[1, 1] = 5.0
    gx = pool2d_backward(np.ones((2, 2)), x, 2, 1)
    expected = np.zeros((3, 3))
    expected[1, 1] = 4.0
    np.testing.assert_array_equal(gx, expected)


def test_backward_avg_by_hand():
    # 2x2 ones, k=3, s=1, p=1: each of the 4 outputs spreads g/9 (include pad) over 4 cells
    gx = pool2d_backward(np.ones((2, 2)), np.ones((2, 2)), 3, 1, padding=1, mode="avg")
    np.testing.assert_allclose(gx, np.full((2, 2), 4 / 9))
    gx = pool2d_backward(np.ones((2, 2)), np.ones((2, 2)), 3, 1, padding=1, mode="avg",
                         count_include_pad=False)
    np.testing.assert_allclose(gx, np.ones((2, 2)))


def test_backward_l2_by_hand():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    gx = pool2d_backward(np.array([[2.0]]), x, 2, mode="l2")
    np.testing.assert_allclose(gx, [[2 * 3 / 5, 2 * 4 / 5], [0, 0]])
    # a window of zeros has no defined gradient; the code uses 0
    np.testing.assert_array_equal(pool2d_backward(np.ones((1, 1)), np.zeros((2, 2)), 2,
                                                  mode="l2"), np.zeros((2, 2)))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_backward_window_without_real_cell_has_no_gradient(mode):
    """k=2, dilation=2, padding=1 on a width-1 input: the only window has taps at -1 and 1,
    both outside the input, so the output is -inf/+inf whatever x is and index -1.
    Its gradient must go nowhere; it must not land on another plane's last cell."""
    x = np.array([[[5.0]], [[7.0]]])  # two planes of 1x1
    vals, idx = pool2d(x, (1, 2), 1, padding=(0, 1), dilation=(1, 2), mode=mode,
                       return_indices=True)
    assert np.isinf(vals).all() and (idx == -1).all()
    gx = pool2d_backward(np.array([[[10.0]], [[20.0]]]), x, (1, 2), 1, padding=(0, 1),
                         dilation=(1, 2), mode=mode)
    np.testing.assert_array_equal(gx, np.zeros_like(x))


def test_backward_float32_and_shapes():
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 5)).astype(np.float32)
    for mode in POOL_MODES:
        g = np.ones(pool2d(x, 2, ceil_mode=True, mode=mode).shape, np.float32)
        gx = pool2d_backward(g, x, 2, ceil_mode=True, mode=mode)
        assert gx.dtype == np.float32 and gx.shape == x.shape
        ref = pool2d_backward(g.astype(float), x.astype(float), 2, ceil_mode=True, mode=mode)
        np.testing.assert_allclose(gx, ref, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- properties


@st.composite
def pool_setups(draw, dilation=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil = draw(st.booleans())
    sh, sw = stride or (kh, kw)
    assume(pool_out(h, kh, sh, padding[0], dil[0], ceil) > 0)
    assume(pool_out(w, kw, sw, padding[1], dil[1], ceil) > 0)
    lead = draw(st.sampled_from([(), (2,), (1, 3)]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal(lead + (h, w))
    return x, dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dil,
                   ceil_mode=ceil)


@settings(deadline=None, max_examples=80)
@given(pool_setups(dilation=False), st.floats(-100, 100, allow_nan=False))
def test_avg_of_constant_without_pad_count_is_the_constant(setup, value):
    x, kw = setup
    out = call(pool2d, np.full_like(x, value), kw, mode="avg", count_include_pad=False)
    np.testing.assert_allclose(out, value, rtol=1e-12, atol=1e-12, err_msg=fmt(**kw))


@settings(deadline=None, max_examples=80)
@given(pool_setups())
def test_max_ge_avg_ge_min_without_padding(setup):
    x, kw = setup
    kw = dict(kw, padding=0)
    assume(pool_out(x.shape[-2], kw["kernel_size"][0], (kw["stride"] or kw["kernel_size"])[0],
                    0, kw["dilation"][0], kw["ceil_mode"]) > 0)
    assume(pool_out(x.shape[-1], kw["kernel_size"][1], (kw["stride"] or kw["kernel_size"])[1],
                    0, kw["dilation"][1], kw["ceil_mode"]) > 0)
    mx, av, mn = (call(pool2d, x, kw, mode=m) for m in ("max", "avg", "min"))
    l2 = call(pool2d, x, kw, mode="l2")
    msg = fmt(**kw)
    assert (mx >= av - 1e-12).all(), msg
    assert (av >= mn - 1e-12).all(), msg
    assert (l2 >= np.maximum(np.abs(mx), np.abs(mn)) - 1e-12).all(), msg


@settings(deadline=None, max_examples=60)
@given(pool_setups(), st.sampled_from(POOL_MODES), st.booleans())
def test_pool_matches_naive_property(setup, mode, include_pad):
    x, kw = setup
    got = call(pool2d, x, kw, mode=mode, count_include_pad=include_pad)
    ref = call(pool2d_naive, x, kw, mode=mode, count_include_pad=include_pad)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=fmt(mode=mode, **kw))


# ------------------------------------------------------------------- bad input


def backward_with_ones(x, kernel_size, stride=None, **kw):
    kw.pop("return_indices", None)
    try:
        g = np.ones(pool2d(x, kernel_size, stride, **kw).shape)
    except (ValueError, TypeError):
        g = np.ones((1, 1))
    return pool2d_backward(g, x, kernel_size, stride, **kw)


POOL_FUNCTIONS = [pytest.param(pool2d, id="pool2d"), pytest.param(pool2d_naive, id="naive"),
                  pytest.param(backward_with_ones, id="pool2d_backward")]
XP = np.ones((2, 5, 5))


@pytest.mark.parametrize("fn", POOL_FUNCTIONS)
@pytest.mark.parametrize("x, args, kwargs, exc, match", [
    (XP, (2,), dict(mode="median"), ValueError, "mode must be one of"),
    (XP, (2, 0), {}, ValueError, "stride must be >= 1, got 0"),
    (XP, (2, (1, 0)), {}, ValueError, r"stride\[1\]"),
    (XP, (2, 1.5), {}, TypeError, "stride must be an integer, got 1.5"),
    (XP, (2, True), {}, TypeError, "stride must be an integer, got True"),
    (XP, (0,), {}, ValueError, "kernel_size must be >= 1"),
    (XP, (2,), dict(padding=-1), ValueError, "padding must be >= 0, got -1"),
    (XP, (3,), dict(padding=2), ValueError, r"at most half the window: padding 2 > 3//2 = 1"),
    (XP, ((3, 4),), dict(padding=(1, 3)), ValueError, r"\(cols\).*padding 3 > 4//2 = 2"),
    (XP, (2,), dict(padding=2), ValueError, "at most half"),
    (XP, (2,), dict(dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (XP, (7,), {}, ValueError, r"5x5 input gives an empty output.*= 0"),
    (XP, (3, 1), dict(dilation=3), ValueError, r"5x5.*empty output"),
    (np.ones(5), (2,), {}, ValueError, r"x must have shape \(\.\.\., H, W\)"),
    (np.ones((0, 5, 5)), (2,), {}, ValueError, "no empty axis"),
    (np.ones((3, 0, 5)), (2,), {}, ValueError, "no empty axis"),
    (XP.astype(complex), (2,), {}, TypeError, "real numeric"),
    (XP, (2,), dict(padding="same"), TypeError, "padding"),
])
def test_bad_input(fn, x, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(x, *args, **kwargs)


@pytest.mark.parametrize("fn", [pool2d, pool2d_naive], ids=["pool2d", "pool2d_naive"])
@pytest.mark.parametrize("mode", ["avg", "l2"])
def test_return_indices_needs_max_or_min(fn, mode):
    # pool2d raises; its naive twin must not silently return indices of 0 instead.
    with pytest.raises(ValueError, match="return_indices needs mode 'max' or 'min'"):
        fn(XP, 2, mode=mode, return_indices=True)


@pytest.mark.parametrize("g_shape", [(2, 3, 3), (2, 2), (1, 2, 2), (2, 2, 2, 1)])
def test_backward_grad_out_wrong_shape(g_shape):
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 2, 2\)"):
        pool2d_backward(np.ones(g_shape), XP, 2)


@pytest.mark.parametrize("flag", ["ceil_mode", "count_include_pad", "return_indices"])
@pytest.mark.parametrize("bad", ["False", 0, None])
def test_boolean_options_must_be_booleans(flag, bad):
    """Review regression: ceil_mode="False" switched ceil mode on (truthy string);
    PyTorch refuses non-booleans."""
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    with pytest.raises(TypeError, match=flag):
        pool2d(x, 2, **{flag: bad})


def test_naive_backward_and_geometry_refuse_string_flags_too():
    from convscope.core.geometry import pool_geometry
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    with pytest.raises(TypeError, match="ceil_mode"):
        pool2d_naive(x, 2, ceil_mode="False")
    with pytest.raises(TypeError, match="ceil_mode"):
        pool_geometry((5, 5), 2, ceil_mode="False")
    with pytest.raises(TypeError, match="ceil_mode"):
        pool2d_backward(np.ones((1, 2, 2), np.float32), x, 2, ceil_mode="False")
