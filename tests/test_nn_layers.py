"""Tests of core.nn layers, loss, optimisers and Sequential models.

Every backward pass is checked against centred finite differences in float64: the
layers' parameters are replaced by float64 arrays and the inputs are float64, so the
engine (core.conv / core.pool) computes in float64. The scalar whose gradient is
checked is ``sum(forward(x) * R)`` for a fixed random ``R``, so the upstream gradient
passed to ``backward`` is ``R``.

The optimiser expectations are PyTorch's update rules written out by hand (the suite
never imports torch).
"""

from __future__ import annotations

import copy
import json
import zlib

import numpy as np
import pytest

from convscope.core.conv import conv2d_naive
from convscope.core.geometry import conv_geometry, pool_geometry
from convscope.core.nn import (ARCHITECTURES, SGD, Activation, Adam, AvgPool2D, BatchNorm2D, Conv2D, Dense,
                     Dropout, Flatten, Layer, MaxPool2D, build,
                     softmax_cross_entropy)
from convscope.core.pipeline import ACTIVATIONS
from convscope.core.pool import pool2d_naive
from gradcheck import numeric_grad


# --------------------------------------------------------------------------- helpers


def fmt(**kw) -> str:
    """The trial's parameters, for assertion messages."""
    return "; ".join(f"{k}={v!r}" for k, v in kw.items())


def assert_grad_close(analytic, numeric, what: str, rtol=1e-5, atol=1e-7):
    analytic = np.asarray(analytic, np.float64)
    mask = ~np.isnan(numeric)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    diff = np.abs(analytic[mask] - numeric[mask])
    tol = atol + rtol * np.abs(numeric[mask])
    if not np.all(diff <= tol):
        k = int(np.argmax(diff - tol))
        raise AssertionError(f"{what}: max |analytic - numeric| = {diff.max():.3g}; worst entry "
                             f"analytic {analytic[mask][k]!r} vs numeric {numeric[mask][k]!r}")


def to_float64(layer: Layer, rng: np.random.Generator, scale: float = 0.5) -> None:
    """Replace the layer's parameters by random float64 arrays of the same shapes."""
    for k, v in layer.params.items():
        layer.params[k] = rng.standard_normal(v.shape) * scale


def check_layer(layer: Layer, x: np.ndarray, rng, *, train=False, what="", reset=None,
                max_entries: int | None = None, rtol=1e-5, atol=1e-7):
    """Finite-difference check of the input gradient and every parameter gradient.

    ``reset`` is called before every forward (e.g. to restore a dropout RNG).
    ``max_entries`` limits how many entries of each array are checked (random subset).
    """
    reset = reset or (lambda: None)
    reset()
    y = layer.forward(x, train)
    r = rng.standard_normal(y.shape)

    def f():
        reset()
        return float(np.sum(layer.forward(x, train) * r))

    reset()
    layer.forward(x, train)
    gx = layer.backward(r.copy())
    grads = {k: np.array(v, copy=True) for k, v in layer.grads.items()}

    def pick(a):
        if max_entries is None or a.size <= max_entries:
            return None
        return rng.choice(a.size, max_entries, replace=False)

    assert_grad_close(gx, numeric_grad(f, x, indices=pick(x)), f"{what} d/dx")
    for k, p in layer.params.items():
        assert k in grads, f"{what}: no gradient for parameter {k!r}"
        assert_grad_close(grads[k], numeric_grad(f, p, indices=pick(p)), f"{what} d/d{k}",
                          rtol=rtol, atol=atol)
    return y


# --------------------------------------------------------------------------- Conv2D


def _conv_trials(seed: int, n: int):
    rng = np.random.default_rng(seed)
    paddings = [0, 1, (1, 2), (0, 1), "same", "valid", ((1, 0), (0, 2))]
    kernels = [1, (1, 1), 2, (2, 2), (3, 1), 3, (1, 3), (2, 3)]
    strides = [1, 2, (1, 2), (2, 1), 3]
    dilations = [1, 2, (2, 1), (1, 2)]
    trials = []
    while len(trials) < n:
        k = kernels[rng.integers(len(kernels))]
        s = strides[rng.integers(len(strides))]
        p = paddings[rng.integers(len(paddings))]
        d = dilations[rng.integers(len(dilations))]
        c, f = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = (int(v) for v in rng.integers(3, 8, 2))
        try:
            conv_geometry((h, w), k, s, p, d)
        except ValueError:
            continue  # an empty output: refused (tested in test_conv.py)
        trials.append(dict(kernel_size=k, stride=s, padding=p, dilation=d, c=c, f=f, h=h, w=w))
    return trials


def _kernel_pair(k):
    return (k, k) if np.isscalar(k) else tuple(k)


@pytest.mark.parametrize("trial", _conv_trials(2024, 40), ids=lambda t: fmt(**t))
def test_conv2d_gradients(trial):
    rng = np.random.default_rng(zlib.crc32(fmt(**trial).encode()))
    t = dict(trial)
    c, f, h, w = t.pop("c"), t.pop("f"), t.pop("h"), t.pop("w")
    layer = Conv2D(f, **t)
    layer.init((c, h, w), rng)
    kh, kw = _kernel_pair(t["kernel_size"])
    assert layer.params["weight"].shape == (f, c, kh, kw)
    assert layer.params["bias"].shape == (f,)
    shape = layer.output_shape((c, h, w))
    to_float64(layer, rng)
    x = rng.standard_normal((2, c, h, w))
    y = check_layer(layer, x, rng, what=fmt(**trial))
    assert y.dtype == np.float64
    assert y.shape == (2,) + tuple(shape), fmt(**trial)
    ref = conv2d_naive(x, layer.params["weight"], layer.params["bias"], stride=t["stride"],
                       padding=t["padding"], dilation=t["dilation"])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12, err_msg=fmt(**trial))


def test_conv2d_sweep_covers_every_option():
    trials = _conv_trials(2024, 40)
    for key in ("kernel_size", "stride", "padding", "dilation"):
        seen = {json.dumps(t[key]) for t in trials}
        assert len(seen) >= 4, f"the seeded sweep covers too few {key} values: {seen}"
    assert {"same", "valid"} <= {t["padding"] for t in trials if isinstance(t["padding"], str)}


def test_conv2d_same_keeps_size_at_stride_1():
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, (3, 1), (2, 3)):
        layer = Conv2D(3, kernel_size=k, padding="same")
        layer.init((2, 7, 6), rng)
        assert layer.output_shape((2, 7, 6)) == (3, 7, 6), k
        to_float64(layer, rng)
        y = check_layer(layer, rng.standard_normal((1, 2, 7, 6)), rng, what=f"same k={k}")
        assert y.shape == (1, 3, 7, 6)


def test_conv2d_float32_gradients_match_float64():
    """The training path (float32, channels-last activations) agrees with float64."""
    rng = np.random.default_rng(5)
    layer = Conv2D(8, 3, padding=1)
    layer.init((4, 9, 9), rng)
    x32 = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)
    x_cl = np.ascontiguousarray(x32.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = rng.standard_normal((3, 8, 9, 9)).astype(np.float32)
    y32 = layer.forward(x_cl)
    gx32 = layer.backward(g)
    gw32 = layer.grads["weight"].copy()
    assert y32.dtype == np.float32 and gx32.dtype == np.float32 and gw32.dtype == np.float32
    layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    y64 = layer.forward(x32.astype(np.float64))
    gx64 = layer.backward(g.astype(np.float64))
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx32, gx64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw32, layer.grads["weight"], rtol=1e-4, atol=1e-4)


def test_conv2d_backward_without_input_grad():
    rng = np.random.default_rng(1)
    layer = Conv2D(2, 3)
    layer.init((1, 6, 6), rng)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    assert layer.backward(np.ones_like(y), need_input_grad=False) is None
    assert layer.grads["weight"].shape == (2, 1, 3, 3)


def test_conv2d_init_schemes():
    rng = np.random.default_rng(0)
    for scheme, bound in (("he", np.sqrt(6 / 27)), ("glorot", np.sqrt(6 / (27 + 144)))):
        layer = Conv2D(16, 3, init=scheme)
        layer.init((3, 8, 8), rng)
        wt = layer.params["weight"]
        assert wt.dtype == np.float32 and np.abs(wt).max() <= bound
        assert np.abs(wt).max() > 0.8 * bound, scheme
        assert not layer.params["bias"].any()
    with pytest.raises(ValueError, match="init"):
        Conv2D(2, 3, init="lecun").init((1, 5, 5), rng)


# ---------------------------------------------------------------------------- Dense


@pytest.mark.parametrize("n,d,u", [(1, 1, 1), (3, 5, 4), (4, 12, 10)])
def test_dense_gradients(n, d, u):
    rng = np.random.default_rng(n * 100 + d * 10 + u)
    layer = Dense(u)
    layer.init((d,), rng)
    assert layer.params["weight"].shape == (u, d) and layer.output_shape((d,)) == (u,)
    to_float64(layer, rng)
    x = rng.standard_normal((n, d))
    y = check_layer(layer, x, rng, what=fmt(n=n, d=d, u=u))
    np.testing.assert_allclose(y, x @ layer.params["weight"].T + layer.params["bias"])


def test_dense_takes_flattened_chw():
    rng = np.random.default_rng(0)
    layer = Dense(3)
    layer.init((2, 3, 4), rng)
    assert layer.params["weight"].shape == (3, 24)


# -------------------------------------------------------------------------- Flatten


def test_flatten_pytorch_order_and_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    assert layer.output_shape((3, 4, 5)) == (60,)
    # a channels-last view (what Conv2D returns) still flattens in (C, H, W) order
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(layer.forward(x_cl), x.reshape(2, -1))
    check_layer(layer, x, rng, what="flatten")
    g = rng.standard_normal((2, 60))
    layer.forward(x_cl)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(2, 3, 4, 5))


# -------------------------------------------------------------------------- Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_scaling_and_gradient(p):
    rng = np.random.default_rng(int(p * 10))
    x = rng.uniform(0.5, 1.5, (4, 3, 5, 5)) * rng.choice([-1, 1], (4, 3, 5, 5))
    layer = Dropout(p, seed=7)
    state = copy.deepcopy(layer.rng.bit_generator.state)

    def reset():
        layer.rng.bit_generator.state = copy.deepcopy(state)

    reset()
    y = layer.forward(x, train=True)
    mask = y / x
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-12)
    assert 0 < kept.sum() < x.size
    # backward uses the forward's mask and scale
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(g), g * mask, rtol=1e-12)
    # finite differences with the same (fixed) mask
    check_layer(layer, x, rng, train=True, reset=reset, what=f"dropout p={p}")


def test_dropout_rate_and_fresh_masks():
    layer = Dropout(0.3, seed=1)
    x = np.ones((200, 500), np.float32)
    y1 = layer.forward(x, train=True)
    y2 = layer.forward(x, train=True)
    assert y1.dtype == np.float32
    assert abs((y1 == 0).mean() - 0.3) < 0.01
    assert not np.array_equal(y1, y2), "each training forward draws a new mask"
    np.testing.assert_allclose(y1.mean(), 1.0, atol=0.01)  # inverted dropout keeps the mean


@pytest.mark.parametrize("p, shape", [(0.9, (301, 333)), (0.05, (7, 13)), (0.5, (1,))])
def test_dropout_odd_sizes_and_extreme_rates(p, shape):
    """The mask is drawn from 32-bit halves of the generator's words: odd sizes use
    half a word, and the keep rate is 1 - p at both ends."""
    layer = Dropout(p, seed=3)
    x = np.ones(shape, np.float64)
    y = layer.forward(x, train=True)
    assert y.shape == shape and y.dtype == np.float64
    assert set(np.unique(y)) <= {0.0, 1 / (1 - p)}
    if x.size > 10_000:
        assert abs((y == 0).mean() - p) < 0.005


def test_dropout_eval_and_p0_are_identity():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    g = rng.standard_normal((3, 4))
    layer = Dropout(0.5)
    layer.forward(x, train=True)  # a mask from training must not leak into evaluation
    np.testing.assert_array_equal(layer.forward(x, train=False), x)
    np.testing.assert_array_equal(layer.backward(g), g)
    zero = Dropout(0.0)
    np.testing.assert_array_equal(zero.forward(x, train=True), x)
    np.testing.assert_array_equal(zero.backward(g), g)


@pytest.mark.parametrize("p", [-0.1, 1.0, 2])
def test_dropout_refuses_bad_p(p):
    with pytest.raises(ValueError, match="dropout p"):
        Dropout(p)


# ----------------------------------------------------------------------- Activation


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_activation_gradients(function):
    rng = np.random.default_rng(len(function))
    # magnitudes in [0.1, 2] with random signs: no kink of relu/leaky_relu/abs within eps
    x = rng.uniform(0.1, 2.0, (2, 3, 4, 4)) * rng.choice([-1, 1], (2, 3, 4, 4))
    layer = Activation(function, alpha=0.1)
    y = check_layer(layer, x, rng, what=function)
    ref = {"none": x, "relu": np.maximum(x, 0), "leaky_relu": np.where(x > 0, x, 0.1 * x),
           "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x), "abs": np.abs(x)}[function]
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_activation_float32_and_extremes():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32)
    for f in ACTIVATIONS:
        layer = Activation(f)
        y = layer.forward(x)
        g = layer.backward(np.ones_like(x))
        assert y.dtype == np.float32 and g.dtype == np.float32, f
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(g)), f


def test_activation_refuses_unknown():
    with pytest.raises(ValueError, match="gelu"):
        Activation("gelu")


# ------------------------------------------------------------------------- pooling


def _pool_trials(seed: int, n: int):
    rng = np.random.default_rng(seed)
    trials = []
    while len(trials) < n:
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        if kh == kw == 1:
            continue
        stride = None if rng.random() < 0.3 else (int(rng.integers(1, 4)),
                                                   int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
        if rng.random() < 0.3:
            padding = min(padding)
        dilation = 1 if rng.random() < 0.7 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ceil_mode = bool(rng.integers(2))
        h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        try:
            pool_geometry((h, w), (kh, kw), stride, padding, dilation, ceil_mode)
        except ValueError:
            continue
        trials.append(dict(kernel_size=(kh, kw), stride=stride, padding=padding,
                           dilation=dilation, ceil_mode=ceil_mode,
                           count_include_pad=bool(rng.integers(2)), h=h, w=w))
    return trials


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D], ids=["max", "avg"])
@pytest.mark.parametrize("trial", _pool_trials(77, 24), ids=lambda t: fmt(**t))
def test_pool_gradients(cls, trial):
    t = dict(trial)
    h, w = t.pop("h"), t.pop("w")
    rng = np.random.default_rng(zlib.crc32(fmt(cls=cls.__name__, **trial).encode()))
    layer = cls(**t)
    shape = layer.output_shape((2, h, w))
    size = 2 * 2 * h * w
    # distinct values 0.01 apart: no ties, so max pooling is differentiable within eps
    x = (rng.permutation(size).reshape(2, 2, h, w) - size / 2) * 0.01
    y = check_layer(layer, x, rng, what=fmt(cls=cls.__name__, **trial))
    assert y.shape == (2,) + shape
    ref = pool2d_naive(x, t["kernel_size"], t["stride"], padding=t["padding"],
                       dilation=t["dilation"], mode=layer.mode, ceil_mode=t["ceil_mode"],
                       count_include_pad=t["count_include_pad"])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_pool_sweep_covers_every_option():
    trials = _pool_trials(77, 24)
    assert {t["ceil_mode"] for t in trials} == {True, False}
    assert {t["count_include_pad"] for t in trials} == {True, False}
    assert any(t["stride"] is None for t in trials)
    assert any(t["padding"] not in (0, (0, 0)) for t in trials)
    assert any(t["dilation"] != 1 for t in trials)
    assert any(t["ceil_mode"] and t["padding"] not in (0, (0, 0)) and not t["count_include_pad"]
               for t in trials)


def test_avgpool_count_include_pad_values():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    inc = AvgPool2D(2, 2, padding=1, count_include_pad=True).forward(x)
    exc = AvgPool2D(2, 2, padding=1, count_include_pad=False).forward(x)
    # top-left window holds [pad, pad, pad, 1]
    assert inc[0, 0, 0, 0] == pytest.approx(1 / 4)
    assert exc[0, 0, 0, 0] == pytest.approx(1.0)
    assert inc[0, 0, 1, 1] == pytest.approx((5 + 6 + 8 + 9) / 4)


def test_maxpool_gradient_goes_to_first_of_ties():
    x = np.zeros((1, 1, 2, 2))
    layer = MaxPool2D(2)
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0], [[1, 0], [0, 0]])


# ----------------------------------------------------------------------- BatchNorm


def _bn(c, rng, eps=1e-5):
    layer = BatchNorm2D(eps=eps)
    layer.init((c, 4, 4), rng)
    to_float64(layer, rng)
    layer.params["weight"] += 1.0
    return layer


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (2, 2, 5, 4), (1, 1, 3, 2)])
def test_batchnorm_train_gradients(shape):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    layer = _bn(shape[1], rng)
    x = rng.standard_normal(shape) * 2 + 1
    y = check_layer(layer, x, rng, train=True, what=f"bn train {shape}", rtol=1e-5, atol=1e-6)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    ref = ((x - mean) / np.sqrt(var + 1e-5) * layer.params["weight"][None, :, None, None]
           + layer.params["bias"][None, :, None, None])
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_batchnorm_eval_gradients_and_running_stats():
    rng = np.random.default_rng(11)
    layer = _bn(3, rng)
    layer.buffers["running_mean"] = rng.standard_normal(3).astype(np.float32)
    layer.buffers["running_var"] = rng.uniform(0.5, 2, 3).astype(np.float32)
    x = rng.standard_normal((2, 3, 4, 4))
    y = check_layer(layer, x, rng, train=False, what="bn eval")
    rm = layer.buffers["running_mean"].astype(np.float64)[None, :, None, None]
    rv = layer.buffers["running_var"].astype(np.float64)[None, :, None, None]
    ref = ((x - rm) / np.sqrt(rv + 1e-5) * layer.params["weight"][None, :, None, None]
           + layer.params["bias"][None, :, None, None])
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_batchnorm_running_stats_update_like_pytorch():
    rng = np.random.default_rng(12)
    layer = BatchNorm2D(momentum=0.1)
    layer.init((2, 3, 3), rng)
    x = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 3 + 2
    layer.forward(x, train=True)
    n = 4 * 3 * 3
    mean = x.astype(np.float64).mean(axis=(0, 2, 3))
    var_unbiased = x.astype(np.float64).var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * var_unbiased, rtol=1e-5)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    layer.forward(x, train=False)  # evaluation does not touch the running estimates
    for k in before:
        np.testing.assert_array_equal(layer.buffers[k], before[k])


# -------------------------------------------------------------------------- loss


def _log_softmax_direct(z):
    z = np.asarray(z, np.float64)
    return z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))


@pytest.mark.parametrize("n,k", [(1, 2), (5, 10), (8, 3)])
def test_softmax_cross_entropy_gradient_and_value(n, k):
    rng = np.random.default_rng(n * k)
    logits = rng.standard_normal((n, k)) * 3
    labels = rng.integers(0, k, n)
    loss, grad, probs = softmax_cross_entropy(logits, labels)
    direct = -_log_softmax_direct(logits)[np.arange(n), labels].mean()
    assert loss == pytest.approx(direct, rel=1e-12)
    np.testing.assert_allclose(probs, np.exp(_log_softmax_direct(logits)), rtol=1e-12)
    num = numeric_grad(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert_grad_close(grad, num, f"softmax_cross_entropy n={n} k={k}")
    assert grad.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_for_large_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype)
    labels = np.array([0, 0, 2])
    loss, grad, probs = softmax_cross_entropy(logits, labels)
    # per sample: 0, 1e4 + log 2, log 3
    assert loss == pytest.approx((0 + 1e4 + np.log(2) + np.log(3)) / 3, rel=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(probs))
    assert grad.dtype == dtype
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(grad, (probs - np.eye(3)[labels]) / 3, atol=1e-7)
    shifted = softmax_cross_entropy(logits.astype(np.float64) + 1e3, labels)[0]
    assert shifted == pytest.approx(loss, rel=1e-6), "the loss is shift-invariant"


@pytest.mark.parametrize("labels", [[0, 1], [0, 1, 3], [-1, 0, 1]])
def test_softmax_cross_entropy_refuses_bad_labels(labels):
    with pytest.raises(ValueError, match="labels"):
        softmax_cross_entropy(np.zeros((3, 3)), np.array(labels))


# ----------------------------------------------------------------------- Sequential

SMALL_KERAS = {"name": "small_keras", "input_shape": [1, 14, 14], "layers": [
    {"type": "conv2d", "filters": 4, "kernel_size": 3},
    {"type": "activation", "function": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": 3},
    {"type": "activation", "function": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.5},
    {"type": "dense", "units": 10},
]}


def _model_float64(spec, seed=0):
    model = build(spec, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        to_float64(layer, rng, scale=0.4)
    return model


def _dropout_reset(model):
    states = [(layer, copy.deepcopy(layer.rng.bit_generator.state))
              for layer in model.layers if isinstance(layer, Dropout)]

    def reset():
        for layer, st in states:
            layer.rng.bit_generator.state = copy.deepcopy(st)

    return reset


def test_sequential_small_keras_gradient_check():
    model = _model_float64(SMALL_KERAS)
    assert model.shapes == [(4, 12, 12), (4, 12, 12), (4, 6, 6), (6, 4, 4), (6, 4, 4),
                            (6, 2, 2), (24,), (24,), (10,)]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 1, 14, 14)).astype(np.float32)  # data: no gradient needed
    labels = np.array([1, 7, 3])
    reset = _dropout_reset(model)

    def loss():
        reset()
        return softmax_cross_entropy(model.forward(x, train=True), labels)[0]

    reset()
    logits = model.forward(x, train=True)
    assert logits.dtype == np.float64
    _, grad, _ = softmax_cross_entropy(logits, labels)
    model.backward(grad)
    checked = 0
    for i, layer in enumerate(model.layers):
        for k, p in layer.params.items():
            idx = rng.choice(p.size, min(p.size, 8), replace=False)
            num = numeric_grad(loss, p, indices=idx)
            assert_grad_close(layer.grads[k], num, f"layer {i} ({layer!r}) {k}")
            checked += 1
    assert checked == 6


def _manual_forward_backward(model, x, labels, train):
    """The model's layers run strictly in order (no execution reordering)."""
    h = np.asarray(x, np.float32)
    for layer in model.layers:
        h = layer.forward(h, train)
    loss, g, _ = softmax_cross_entropy(h, labels)
    for layer in reversed(model.layers):
        g = layer.backward(g)
    return h, loss, {f"{i}.{k}": v for i, layer in enumerate(model.layers)
                     for k, v in layer.grads.items()}


# the same network with each max pool before its ReLU (the plan fuses either order)
POOL_FIRST = dict(SMALL_KERAS, layers=[SMALL_KERAS["layers"][i] for i in
                                       (0, 2, 1, 3, 5, 4, 6, 7, 8)])


@pytest.mark.parametrize("spec", [SMALL_KERAS, POOL_FIRST], ids=["relu-pool", "pool-relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_sequential_relu_maxpool_reordering_is_exact(dtype, ties, spec):
    model = build(spec, seed=3) if dtype == np.float32 else _model_float64(spec, 3)
    assert any(len(step) == 2 for step in model._plan), "ReLU->MaxPool is expected to be fused"
    manual = copy.deepcopy(model)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 1, 14, 14)).astype(np.float32)
    if ties:  # many equal values and exact zeros in the windows
        x = np.round(x * 2) / 2
        for layer in (model.layers[0], manual.layers[0]):
            layer.params["bias"][:] = 0
    labels = rng.integers(0, 10, 5)
    for train in (True, False):
        ref_out, ref_loss, ref_grads = _manual_forward_backward(manual, x, labels, train)
        out = model.forward(x, train)
        loss, g, _ = softmax_cross_entropy(out, labels)
        model.backward(g)
        np.testing.assert_array_equal(out, ref_out)
        assert loss == ref_loss
        for i, layer in enumerate(model.layers):
            for k, v in layer.grads.items():
                np.testing.assert_array_equal(v, ref_grads[f"{i}.{k}"], err_msg=f"{i}.{k}")


def test_a_padded_max_pool_is_not_fused_with_its_relu():
    """relu(pool(x)) = pool(relu(x)) needs every window inside the input: a padded
    window's padding (-inf) would meet the ReLU's zeros."""
    spec = dict(SMALL_KERAS, layers=[dict(l, padding=1) if l["type"] == "maxpool2d" else l
                                     for l in SMALL_KERAS["layers"]])
    model = build(spec, seed=0)
    assert all(len(step) == 1 for step in model._plan)


def test_sequential_features_in_layer_order():
    model = build(ARCHITECTURES["tiny"], seed=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    feats = model.features(x)
    assert [f.shape[1:] for f in feats] == [tuple(s) for s in model.shapes]
    np.testing.assert_array_equal(feats[-1], model.forward(x))
    probs = model.predict_proba(x, batch_size=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


def test_sequential_refuses_wrong_input_shape():
    model = build(ARCHITECTURES["tiny"])
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.forward(np.zeros((2, 1, 27, 28), np.float32))


# ----------------------------------------------------------------------- optimisers


class _P(Layer):
    """A layer that only holds parameters (for optimiser tests)."""

    def __init__(self, **params):
        super().__init__()
        self.params = {k: np.array(v, np.float64) for k, v in params.items()}


def _opt_case(seed=0):
    rng = np.random.default_rng(seed)
    layers = [_P(weight=rng.standard_normal((3, 2)), bias=rng.standard_normal(3)),
              _P(weight=rng.standard_normal(4))]
    grads = [[{k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
              for layer in layers] for _ in range(3)]
    return layers, grads


@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("mu", [0.0, 0.9])
def test_sgd_momentum_matches_pytorch_formula(mu, wd):
    layers, grads = _opt_case(1)
    p0 = [{k: v.copy() for k, v in layer.params.items()} for layer in layers]
    opt = SGD(layers, lr=0.1, momentum=mu, weight_decay=wd)
    for li, layer in enumerate(layers):
        for k in layer.params:
            p, buf = p0[li][k].copy(), None
            for step in range(2):
                g = grads[step][li][k] + wd * p
                buf = g.copy() if buf is None else mu * buf + g  # torch: buf = g at step 1
                p = p - 0.1 * (buf if mu else g)
            p0[li][k] = p
    for step in range(2):
        for li, layer in enumerate(layers):
            layer.grads = {k: v.copy() for k, v in grads[step][li].items()}
        opt.step()
    for li, layer in enumerate(layers):
        for k, v in layer.params.items():
            np.testing.assert_allclose(v, p0[li][k], rtol=1e-13, err_msg=f"{li}.{k}")


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_matches_pytorch_formula(wd):
    layers, grads = _opt_case(2)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    expected = []
    for li, layer in enumerate(layers):
        exp = {}
        for k, p in layer.params.items():
            p, m, v = p.copy(), 0.0, 0.0
            for t in (1, 2, 3):
                g = grads[t - 1][li][k] + wd * p
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
                p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
                if t == 1:  # first step: |update| = lr for every coordinate when wd == 0
                    first = p.copy()
            exp[k] = (first, p)
        expected.append(exp)
    opt = Adam(layers, lr=lr, weight_decay=wd)
    for t in range(3):
        for li, layer in enumerate(layers):
            layer.grads = {k: v.copy() for k, v in grads[t][li].items()}
        opt.step()
        if t == 0:
            for li, layer in enumerate(layers):
                for k, v in layer.params.items():
                    np.testing.assert_allclose(v, expected[li][k][0], rtol=1e-12)
    for li, layer in enumerate(layers):
        for k, v in layer.params.items():
            np.testing.assert_allclose(v, expected[li][k][1], rtol=1e-12, err_msg=f"{li}.{k}")


def test_adam_first_step_moves_each_weight_by_lr():
    layer = _P(weight=np.zeros(5))
    layer.grads = {"weight": np.array([1e-2, -3.0, 100.0, -1e3, 0.5])}
    Adam([layer], lr=0.01).step()
    np.testing.assert_allclose(layer.params["weight"], -0.01 * np.sign(layer.grads["weight"]),
                               rtol=1e-5)


def test_optimiser_state_dict_round_trip_continues_identically():
    for cls in (SGD, Adam):
        layers_a, grads = _opt_case(3)
        layers_b = copy.deepcopy(layers_a)
        opt_a = cls(layers_a, lr=0.01)
        for li, layer in enumerate(layers_a):
            layer.grads = grads[0][li]
        opt_a.step()
        for la, lb in zip(layers_a, layers_b):
            lb.params = {k: v.copy() for k, v in la.params.items()}
        opt_b = cls(layers_b, lr=0.01)
        opt_b.load_state_dict(opt_a.state_dict())
        assert opt_b.t == opt_a.t == 1
        for opt, layers in ((opt_a, layers_a), (opt_b, layers_b)):
            for li, layer in enumerate(layers):
                layer.grads = grads[1][li]
            opt.step()
        for la, lb in zip(layers_a, layers_b):
            for k in la.params:
                np.testing.assert_array_equal(la.params[k], lb.params[k], err_msg=cls.__name__)


def test_optimiser_skips_parameters_without_gradient():
    layer = _P(weight=np.ones(3))
    SGD([layer], lr=0.1).step()
    np.testing.assert_array_equal(layer.params["weight"], 1)


@pytest.mark.parametrize("kwargs", [dict(lr=0), dict(lr=-1), dict(lr=0.1, weight_decay=-1),
                                    dict(lr=0.1, momentum=1.0)])
def test_sgd_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        SGD([], **kwargs)


# ------------------------------------------------------------------ model summary


KERAS_SHAPES = [(32, 26, 26), (32, 26, 26), (32, 13, 13), (64, 11, 11), (64, 11, 11),
                (64, 5, 5), (1600,), (1600,), (10,)]


def test_keras_mnist_summary():
    model = build(ARCHITECTURES["keras_mnist"])
    assert model.n_params == 34_826
    rows = model.summary()
    assert [r["output_shape"] for r in rows] == KERAS_SHAPES
    assert [r["params"] for r in rows] == [320, 0, 0, 18_496, 0, 0, 0, 0, 16_010]
    assert [r["type"] for r in rows] == ["conv2d", "activation", "maxpool2d", "conv2d",
                                         "activation", "maxpool2d", "flatten", "dropout", "dense"]
    text = model.summary_text()
    assert "total parameters: 34,826" in text
    assert "(64, 5, 5)" in text and "16,010" in text
    x = np.zeros((2, 1, 28, 28), np.float32)
    assert model.forward(x).shape == (2, 10)
    assert [f.shape[1:] for f in model.features(x)] == KERAS_SHAPES


@pytest.mark.parametrize("name,n_params", [("lenet", None), ("tiny", None)])
def test_other_presets_build_and_run(name, n_params):
    model = build(ARCHITECTURES[name])
    assert model.output_shape == (10,)
    assert model.n_params == sum(r["params"] for r in model.summary())
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    logits = model.forward(x, train=True)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    _, g, _ = softmax_cross_entropy(logits, np.array([0, 1, 2]))
    model.backward(g)
    for layer in model.layers:
        for k, p in layer.params.items():
            assert layer.grads[k].shape == p.shape


def test_preset_parameter_counts():
    # lenet: conv 1->8 5x5 pad 2, conv 8->16 5x5, dense 400->64, dense 64->10
    assert build(ARCHITECTURES["lenet"]).n_params == (8 * 25 + 8) + (16 * 8 * 25 + 16) + (
        400 * 64 + 64) + (64 * 10 + 10)
    # tiny: conv 1->8 3x3, conv 8->16 3x3, 16*5*5 -> 10
    assert build(ARCHITECTURES["tiny"]).n_params == 80 + (16 * 72 + 16) + (400 * 10 + 10)


def test_build_from_json_spec_and_architecture_round_trip():
    text = json.dumps({"name": "mine", "input_shape": [3, 16, 12], "layers": [
        {"type": "conv2d", "filters": 5, "kernel_size": [3, 1], "stride": [1, 2],
         "padding": "same", "dilation": 1},
        {"type": "batchnorm2d"},
        {"type": "activation", "function": "leaky_relu", "alpha": 0.2},
        {"type": "avgpool2d", "kernel_size": 2, "ceil_mode": True, "count_include_pad": False},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.25},
        {"type": "dense", "units": 4, "init": "he"},
    ]})
    model = build(json.loads(text), seed=5)
    assert model.name == "mine" and model.input_shape == (3, 16, 12)
    assert model.shapes[0] == (5, 16, 6)
    assert model.shapes[3] == (5, 8, 3)
    assert model.output_shape == (4,)
    assert model.layers[2].alpha == 0.2 and model.layers[5].p == 0.25
    assert model.layers[0].kernel_size == (3, 1)
    again = build(json.loads(json.dumps(model.architecture())), seed=5)
    assert again.architecture() == model.architecture()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)
    other_seed = build(json.loads(text), seed=6)
    assert not np.array_equal(other_seed.layers[0].params["weight"],
                              model.layers[0].params["weight"])
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 12)).astype(np.float32)
    assert model.forward(x, train=True).shape == (2, 4)


def test_state_dict_uses_pytorch_names():
    model = build({"input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "filters": 2}, {"type": "batchnorm2d"},
        {"type": "activation"}, {"type": "flatten"}, {"type": "dense", "units": 3}]})
    assert sorted(model.state_dict()) == ["0.bias", "0.weight", "1.bias", "1.running_mean",
                                          "1.running_var", "1.weight", "4.bias", "4.weight"]


def _spec(layers, shape=(1, 8, 8)):
    return {"input_shape": list(shape), "layers": layers}


BAD_SPECS = {
    "unknown_type": (_spec([{"type": "conv3d", "filters": 2}]), "conv3d"),
    "not_a_dict_layer": (_spec(["conv2d"]), "conv2d"),
    "no_type": (_spec([{"filters": 2}]), "unknown layer"),
    "missing_arg": (_spec([{"type": "dense"}]), "units"),
    "unexpected_arg": (_spec([{"type": "dense", "units": 3, "bias": False}]), "bias"),
    "bad_units": (_spec([{"type": "flatten"}, {"type": "dense", "units": "ten"}]), "ten"),
    "bad_activation": (_spec([{"type": "activation", "function": "gelu"}]), "gelu"),
    "bad_dropout": (_spec([{"type": "dropout", "p": 1.5}]), "1.5"),
    "bad_stride": (_spec([{"type": "conv2d", "filters": 2, "stride": 0}]), "stride"),
    "bad_padding": (_spec([{"type": "conv2d", "filters": 2, "padding": "bogus"}]), "bogus"),
    "pool_padding": (_spec([{"type": "maxpool2d", "kernel_size": 2, "padding": 2}]), "padding"),
    "kernel_too_big": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": 9}]), "empty"),
    "kernel_str": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": "x"}]), "kernel_size"),
    "kernel_float": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": 2.5}]),
                     "kernel_size"),
    "kernel_none": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": None}]),
                    "kernel_size"),
    "kernel_triple": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": [3, 3, 3]}]),
                      "kernel_size"),
    "pool_kernel_str": (_spec([{"type": "maxpool2d", "kernel_size": "a"}]), "kernel_size"),
    "zero_filters": (_spec([{"type": "conv2d", "filters": 0}]), "filters"),
    "zero_units": (_spec([{"type": "flatten"}, {"type": "dense", "units": 0}]), "units"),
    "no_layers": ({"input_shape": [1, 8, 8], "layers": []}, "layers"),
    "layers_not_list": ({"layers": {"type": "flatten"}}, "layers"),
    "shape_2d": (_spec([{"type": "flatten"}], shape=(8, 8)), "input_shape"),
    "shape_zero": (_spec([{"type": "flatten"}], shape=(0, 8, 8)), "input_shape"),
    "shape_float": ({"input_shape": [1, 8.5, 8], "layers": [{"type": "flatten"}]},
                    "input_shape"),
    "shape_too_small": (_spec([{"type": "conv2d", "filters": 2, "kernel_size": 3}],
                              shape=(1, 2, 2)), "layer 0"),
    "spec_not_dict": ([{"type": "flatten"}], "JSON object"),
}


@pytest.mark.parametrize("name", list(BAD_SPECS))
def test_build_refuses_bad_specs(name):
    spec, needle = BAD_SPECS[name]
    try:
        build(spec)
    except ValueError as exc:
        assert needle in str(exc), f"{name}: the message does not name {needle!r}: {exc}"
    except Exception as exc:  # noqa: BLE001 - the point is which exception escapes
        pytest.fail(f"{name}: build() raised {type(exc).__name__} instead of ValueError: {exc}")
    else:
        pytest.fail(f"{name}: build() accepted the bad spec {spec!r}")


@pytest.mark.parametrize("function", ["relu", "leaky_relu"])
def test_relu_backward_is_exact_for_every_layout_and_non_finite_gradients(function):
    """The backward multiplies by the 0/1 mask (np.where was 10x slower); it still gives
    PyTorch's values: the gradient where x > 0, alpha * gradient (or 0) elsewhere, even
    when the incoming gradient is inf there."""
    from convscope.core.nn.layers import Activation
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    x[0, 0, 0, :3] = [-1.0, 0.0, 2.0]
    g[0, 0, 0, :3] = [np.inf, -np.inf, np.inf]
    alpha = np.float32(0.1)
    want = np.where(x > 0, g, g * alpha if function == "leaky_relu" else np.float32(0))
    for layout in ("planar", "channels_last"):
        xl = x if layout == "planar" else \
            np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        gl = g if layout == "planar" else \
            np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        act = Activation(function, 0.1)
        act.forward(xl, train=True)
        got = act.backward(gl)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("trial", [t for t in _conv_trials(77, 60)
                                   if t["stride"] == 1][:12], ids=lambda t: fmt(**t))
def test_conv2d_training_takes_the_flat_loops_with_exact_gradients(monkeypatch, trial):
    """In training a layer with at most FLAT_MAX_CHANNELS input channels runs the flat
    loops (forward, weight and bias gradients; the input gradient by col2im), checked
    by finite differences; inference stays gemm (the Inspect tab's maps equal
    core.pipeline's bitwise)."""
    from convscope.core import _jit
    from convscope.core import conv as conv_module
    if not _jit.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(_jit, "LOAD_MIN_WORK", 0)
    monkeypatch.setattr(_jit, "_enabled", True)
    used = []
    for name in ("_conv_flat", "_conv_flat_grads"):
        real = getattr(conv_module, name)
        monkeypatch.setattr(conv_module, name,
                            lambda *a, _r=real, _n=name, **k: used.append(_n) or _r(*a, **k))
    rng = np.random.default_rng(zlib.crc32(fmt(**trial).encode()))
    t = dict(trial)
    c, f, h, w = t.pop("c"), t.pop("f"), t.pop("h"), t.pop("w")
    layer = Conv2D(f, **t)
    layer.init((c, h, w), rng)
    to_float64(layer, rng)
    x = rng.standard_normal((3, c, h, w))
    check_layer(layer, x, rng, train=True, what=fmt(**trial))
    assert "_conv_flat" in used and "_conv_flat_grads" in used
    used.clear()
    y = layer.forward(x, train=False)
    assert used == []
    np.testing.assert_allclose(y, conv2d_naive(x, layer.params["weight"], layer.params["bias"],
                                               padding=t["padding"], dilation=t["dilation"]),
                               rtol=1e-12, atol=1e-12)
