"""The compiled pooling loop (core._jit.pool_rows) gives the numpy passes' values for
every mode, geometry and memory layout, NaN included (max/min bitwise, sums to an
ulp: the loop adds in another order)."""

import numpy as np
import pytest

from convscope.core import _jit
from convscope.core.pool import pool2d

pytestmark = pytest.mark.skipif(not _jit.available(), reason="numba is not installed")


@pytest.fixture
def engines(monkeypatch):
    old = _jit.enabled()
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)  # these small cases load the loop too

    def run(*args, jit, **kw):
        _jit.set_enabled(jit)
        try:
            return pool2d(*args, **kw)
        finally:
            _jit.set_enabled(old)
    return run


def layouts(base):
    yield "planar", base
    yield "channels-last", np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    yield "3-D", base[0]
    yield "channels-last 3-D", np.ascontiguousarray(base[0].transpose(1, 2, 0)).transpose(2, 0, 1)


@pytest.mark.parametrize("mode", ["max", "min", "avg", "l2"])
def test_compiled_pooling_matches_the_numpy_passes(engines, mode):
    rng = np.random.default_rng(hash(mode) % 2**32)
    checked = 0
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(1, 15, 2))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        ceil, cip = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        dtype = np.float64 if trial % 5 == 0 else np.float32
        base = rng.normal(size=(2, 3, h, w)).astype(dtype)
        if trial % 6 == 0:
            base[0, 1, rng.integers(0, h), rng.integers(0, w)] = np.nan
        for name, x in layouts(base):
            kw = dict(padding=p, dilation=d, mode=mode, ceil_mode=ceil, count_include_pad=cip)
            try:
                want = engines(x, k, s, jit=False, **kw)
            except ValueError:
                break
            got = engines(x, k, s, jit=True, **kw)
            assert got.shape == want.shape and got.dtype == want.dtype, name
            if mode in ("max", "min"):
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {trial}")
            else:
                # sums of N(0, 1) values in another order: float32 rounding, absolute
                tol = 2e-6 if dtype == np.float32 else 1e-13
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol,
                                           err_msg=f"{name} {trial}")
            checked += 1
    assert checked > 200


def test_large_inputs_split_across_threads_give_the_same_maps(engines):
    x = np.random.default_rng(3).random((3, 700, 900), dtype=np.float32)
    for mode in ("max", "avg"):
        np.testing.assert_allclose(engines(x, 3, 2, mode=mode, jit=True),
                                   engines(x, 3, 2, mode=mode, jit=False), rtol=1e-6)


def test_small_pooling_does_not_load_the_loop_but_uses_it_once_loaded(monkeypatch):
    """Below LOAD_MIN_WORK input cells a loop that is not loaded is not loaded for it
    (numba's cache takes 0.5-1 s to load); once loaded it is used for any size."""
    from convscope.core import pool as pool_module
    monkeypatch.setattr(_jit, "_enabled", True)
    monkeypatch.setattr(_jit, "_pool_kernels", {})
    taken = []
    real = pool_module._pool_jit
    monkeypatch.setattr(pool_module, "_pool_jit",
                        lambda *a, **k: taken.append(r := real(*a, **k)) or r)
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)
    small = pool2d(x, 2, mode="max")
    assert taken == [None] and _jit._pool_kernels == {}
    pool2d(np.zeros((1, 3, 1200, 1200), np.float32), 2, mode="max")
    assert taken[-1] is not None and np.dtype(np.float32) in _jit._pool_kernels
    again = pool2d(x, 2, mode="max")
    assert taken[-1] is not None
    np.testing.assert_array_equal(small, again)
    np.testing.assert_array_equal(small[0, 0], [[9, 11, 13, 15], [25, 27, 29, 31],
                                               [41, 43, 45, 47], [57, 59, 61, 63]])


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 32])
def test_every_channel_count_stride_and_nan_pattern(engines, channels):
    """The loop's column pass has paths per channel count (1, 3, any), per stride (up
    to 4: the span first; above: per column) and for the edges; NaN anywhere wins."""
    rng = np.random.default_rng(channels)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        s = tuple(int(v) for v in rng.integers(1, 8, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        base = rng.normal(size=(1, channels, h, w)).astype(np.float32)
        if trial % 3 == 0:
            mask = rng.random(base.shape) < 0.05
            base[mask] = np.nan
        cl = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        for mode in ("max", "min", "avg", "l2"):
            kw = dict(padding=p, dilation=d, mode=mode, ceil_mode=bool(trial % 2),
                      count_include_pad=bool(trial % 4 < 2))
            try:
                want = engines(base, k, s, jit=False, **kw)
            except ValueError:
                continue
            for x in (base, cl):
                got = engines(x, k, s, jit=True, **kw)
                if mode in ("max", "min"):
                    np.testing.assert_array_equal(got, want, err_msg=f"{mode} {trial}")
                else:
                    np.testing.assert_allclose(got, want, rtol=3e-6, atol=3e-6,
                                               err_msg=f"{mode} {trial}")


@pytest.mark.parametrize("mode", ["max", "min", "avg"])
def test_compiled_backward_matches_the_numpy_backward(engines, mode):
    """pool2d_backward's compiled loop (max/min) gives the numpy paths' gradient:
    ties to the first cell in scan order, NaN results to the last NaN, windows without
    a real cell to nowhere, overlapping windows accumulated; planar and channels-last,
    with and without the forward's output at hand."""
    from convscope.core.pool import pool2d_backward

    def back(*args, jit, **kw):
        old = _jit.enabled()
        _jit.set_enabled(jit)
        try:
            return pool2d_backward(*args, **kw)
        finally:
            _jit.set_enabled(old)

    rng = np.random.default_rng(11 if mode == "max" else 12)
    checked = 0
    for trial in range(150):
        h, w = (int(v) for v in rng.integers(1, 14, 2))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        c = int(rng.choice([1, 3, 8]))
        dtype = np.float64 if trial % 4 == 0 else np.float32
        base = rng.integers(-3, 4, size=(2, c, h, w)).astype(dtype)   # many ties
        if trial % 5 == 0:
            base[rng.random(base.shape) < 0.1] = np.nan
        kw = dict(padding=p, dilation=d, mode=mode, ceil_mode=bool(trial % 2))
        if mode == "avg":
            kw["count_include_pad"] = trial % 3 != 0
        try:
            y = engines(base, k, s, jit=False, **kw)
        except ValueError:
            continue
        g = rng.normal(size=y.shape).astype(dtype)
        want = back(g, base, k, s, jit=False, **kw)
        cl = np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        for x, out in ((base, None), (cl, None), (cl, y), (base[0], None)):
            gg = g if x.ndim == 4 else g[0]
            got = back(gg, x, k, s, jit=True, output=out, **kw)
            ref = want if x.ndim == 4 else want[0]
            assert got.shape == x.shape and got.dtype == dtype
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{trial} k{k} s{s} d{d} p{p} c{c}")
            checked += 1
    assert checked > 300


def test_compiled_backward_is_used_and_keeps_the_layout(engines, monkeypatch):
    from convscope.core import pool as pool_module
    taken = []
    real = pool_module._backward_jit
    monkeypatch.setattr(pool_module, "_backward_jit",
                        lambda *a, **k: taken.append(r := real(*a, **k)) or r)
    x = np.random.default_rng(0).random((4, 5, 5, 8), dtype=np.float32).transpose(0, 3, 1, 2)
    monkeypatch.setattr(_jit, "_enabled", True)
    gx = pool_module.pool2d_backward(np.ones((4, 8, 2, 2), np.float32), x, 2)
    assert taken and taken[0] is not None
    assert gx.transpose(0, 2, 3, 1).flags.c_contiguous     # channels-last, as x
    assert gx.sum() == 4 * 8 * 4


@pytest.mark.parametrize("jit", [True, False])
def test_relu_max_pool_backward_equals_relu_then_pool_backward(monkeypatch, jit):
    """pool2d_backward(relu=True) is the gradient of relu(maxpool(x)): the ReLU's mask
    applied inside the pooling's pass, bitwise as the two backward passes one after
    the other, with ties, zeros, NaN inputs and inf gradients; both engines, tiling
    (the CNN's) and overlapping windows, planar and channels-last."""
    from convscope.core.pool import pool2d_backward
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    old = _jit.set_enabled(jit)
    try:
        rng = np.random.default_rng(11)
        for trial in range(40):
            k, s = ((2, 2), (2, 2)) if trial % 2 == 0 else ((3, 3), (2, 1))
            c = (1, 3, 32)[trial % 3]
            base = np.round(rng.normal(size=(3, c, 9, 10)) * 2) / 2      # ties and zeros
            base = base.astype(np.float32 if trial % 4 else np.float64)
            if trial % 5 == 0:
                base[1, 0, 2, 3] = np.nan
            for name, x in layouts(base):
                y = pool2d(x, k, s)
                yr = np.maximum(y, 0)
                g = rng.normal(size=y.shape).astype(x.dtype)
                if trial % 3 == 0:
                    g.flat[rng.integers(0, g.size, 3)] = np.inf
                # reference: the ReLU's backward (mask y > 0, exact for inf), then the pool's
                masked = np.where(y > 0, g, np.zeros((), g.dtype))
                want = pool2d_backward(masked, x, k, s, output=y)
                got = pool2d_backward(g, x, k, s, output=yr, relu=True)
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {trial}")
                np.testing.assert_array_equal(pool2d_backward(g, x, k, s, relu=True), want)
    finally:
        _jit.set_enabled(old)


@pytest.mark.parametrize("jit", [True, False])
def test_relu_max_pool_forward_equals_relu_of_the_pool(monkeypatch, jit):
    """pool2d(relu=True) is np.maximum(pool2d(x), 0): NaN stays NaN, -inf gives 0,
    ties and zeros; both engines, tiling and overlapping windows,
    padding (edge windows take the exact path), every layout."""
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    old = _jit.set_enabled(jit)
    try:
        rng = np.random.default_rng(12)
        for trial in range(30):
            k, s, p = [((2, 2), (2, 2), 0), ((3, 3), (2, 1), 1), ((2, 3), (1, 2), 1)][trial % 3]
            c = (1, 3, 8, 32)[trial % 4]
            base = np.round(rng.normal(size=(3, c, 9, 11)) * 2) / 2
            base = base.astype(np.float32 if trial % 4 else np.float64)
            base[0, 0, :4, :4] = -np.inf
            base[1, 0, 2:5, 3:6] = -0.0
            base[2, -1, 1, 1] = np.nan
            for name, x in layouts(base):
                want = np.maximum(pool2d(x, k, s, padding=p), 0)
                got = pool2d(x, k, s, padding=p, relu=True)
                assert got.dtype == want.dtype and got.strides == pool2d(x, k, s, padding=p).strides
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {trial}")
    finally:
        _jit.set_enabled(old)


def test_relu_forward_refuses_other_modes_and_indices():
    x = np.zeros((1, 4, 4))
    with pytest.raises(ValueError, match="relu applies to max pooling.*'avg'"):
        pool2d(x, 2, mode="avg", relu=True)
    with pytest.raises(ValueError, match="return_indices"):
        pool2d(x, 2, relu=True, return_indices=True)


def test_a_batch_of_small_maps_is_pooled_in_blocks_of_images(engines, monkeypatch):
    """128 small channels-last maps (a CNN's batch) and 4096 small planes: the loop
    runs on blocks of whole images, a few calls in all (one call per image cost ~10 us
    of Python each, 1.4 ms for an MNIST batch), and gives the numpy passes' maps."""
    from convscope.core import pool as pool_module
    calls = []
    real = _jit.pool_rows
    monkeypatch.setattr(_jit, "pool_rows", lambda *a, **k: calls.append(a[10:14]) or real(*a, **k))
    rng = np.random.default_rng(5)
    cl = np.ascontiguousarray(rng.normal(size=(128, 28, 28, 8)).astype(np.float32))
    planar = rng.normal(size=(128, 32, 13, 13)).astype(np.float32)
    for x in (cl.transpose(0, 3, 1, 2), planar):
        calls.clear()
        got = engines(x, 2, 2, jit=True)
        assert 2 <= len(calls) <= pool_module._JIT_MAX_ITEMS
        covered = sorted((n0, n1) for n0, n1, r0, r1 in calls)
        n = 128 if x is not planar else 128 * 32
        assert covered[0][0] == 0 and covered[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
        np.testing.assert_array_equal(got, engines(x, 2, 2, jit=False))


def test_relu_backward_refuses_other_modes():
    from convscope.core.pool import pool2d_backward
    x = np.zeros((1, 4, 4))
    with pytest.raises(ValueError, match="relu applies to max pooling"):
        pool2d_backward(np.zeros((1, 2, 2)), x, 2, mode="avg", relu=True)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("k, s", [(2, 2), (3, 2)])
def test_an_inf_gradient_goes_to_the_winner_only(monkeypatch, jit, k, s):
    """PyTorch's max-pool backward gives an inf gradient to the window's winner and 0
    to its other cells; the numpy passes multiplied by the winner mask (inf * 0 = NaN
    in every other cell of the window)."""
    from convscope.core.pool import pool2d_backward
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    old = _jit.set_enabled(jit)
    try:
        x = np.arange(2 * 7 * 7, dtype=np.float32).reshape(2, 7, 7)
        y = pool2d(x, k, s)
        g = np.ones_like(y)
        g[0, 0, 0] = np.inf
        gx = pool2d_backward(g, x, k, s, output=y)
        assert np.isnan(gx).sum() == 0
        win = np.unravel_index(np.argmax(x[0, :k, :k]), (k, k))
        assert gx[0][win] == np.inf and np.isinf(gx).sum() == 1
    finally:
        _jit.set_enabled(old)


@pytest.mark.parametrize("jit", [True, False])
def test_im2col_and_the_conv_backward_agree_between_the_engines(monkeypatch, jit):
    """The compiled im2col (channels >= 8: window by window) gives numpy's strided
    copy bitwise, and conv2d_backward (compiled col2im) numpy's strided adds, for
    strides, dilations, paddings, batches and channel counts, channels-last and planar
    input: the loops' one-run path (dilation 1 along rows) and per-tap path."""
    from convscope.core import conv as conv_module
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    rng = np.random.default_rng(21)
    for trial in range(24):
        n, c = int(rng.integers(1, 4)), (8, 9, 16, 32)[trial % 4]
        h, w = (int(v) for v in rng.integers(5, 12, 2))
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        d = (1 + trial % 2, 1 + (trial // 2) % 2)
        p = int(rng.integers(0, 2))
        ho = (h + 2 * p - d[0] * (k[0] - 1) - 1) // s[0] + 1
        wo = (w + 2 * p - d[1] * (k[1] - 1) - 1) // s[1] + 1
        if ho < 1 or wo < 1:
            continue
        base = rng.normal(size=(n, h + 2 * p, w + 2 * p, c)).astype(np.float32)
        xp = base.transpose(0, 3, 1, 2) if trial % 3 else np.ascontiguousarray(
            base.transpose(0, 3, 1, 2))
        old = _jit.set_enabled(jit)
        try:
            got = conv_module.im2col(xp, k[0], k[1], ho, wo, s, d)
        finally:
            _jit.set_enabled(old)
        win = conv_module._windows_nhwc(np.ascontiguousarray(xp.transpose(0, 2, 3, 1)),
                                        k[0], k[1], ho, wo, s, d)
        np.testing.assert_array_equal(got, win.reshape(n * ho * wo, -1), err_msg=str(trial))
        x = base[:, p:p + h, p:p + w].transpose(0, 3, 1, 2)
        wt = rng.normal(size=(5, c, *k)).astype(np.float32)
        g = rng.normal(size=(n, 5, ho, wo)).astype(np.float32)
        kw = dict(stride=s, dilation=d, padding=p)
        old = _jit.set_enabled(False)
        try:
            want = conv_module.conv2d_backward(g, x, wt, **kw)
        finally:
            _jit.set_enabled(old)
        old = _jit.set_enabled(jit)
        try:
            have = conv_module.conv2d_backward(g, x, wt, **kw)
        finally:
            _jit.set_enabled(old)
        for a, b in zip(have, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=str(trial))
