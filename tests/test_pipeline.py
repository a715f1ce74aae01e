"""The pipeline model: stages against independent oracles, reuse, errors, JSON files.

Oracles: ``scipy.ndimage.correlate`` / ``convolve`` per channel (mode='constant' is
PyTorch's zero padding; with an odd kernel and 'same' padding scipy's centring is
the same), numpy formulas for the activations and :func:`core.pool.pool2d` (tested
against its loop twin elsewhere) for pooling.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from scipy import ndimage

import convscope.core.pipeline as pl
from convscope.core.pipeline import (VERSION, ActivationStage, ConvStage, Kernel, Pipeline, PipelineError,
                           PipelineFileError, PoolStage, activate, atomic_write_bytes,
                           default_pipeline, load_pipeline, pipeline_from_dict, run,
                           save_pipeline)
from convscope.core.pool import pool2d

RTOL = 1e-5
ATOL = 1e-5


def _rgb(h=9, w=11, seed=0):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _corr(plane, kernel, *, flip=False):
    """scipy oracle for 'same' zero padding (odd kernels), float64."""
    fn = ndimage.convolve if flip else ndimage.correlate
    return fn(np.asarray(plane, np.float64), np.asarray(kernel, np.float64), mode="constant",
              cval=0.0)


def _close(actual, expected, msg=""):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=msg)


# ------------------------------------------------------------------ per-channel conv


def test_per_channel_shared_kernel_equals_correlate_per_channel():
    img = _rgb()
    k = np.random.default_rng(1).normal(size=(3, 3))
    res = run(img, Pipeline([ConvStage([Kernel(k, name="k")])]))
    assert res.error is None
    st = res.stages[0]
    assert st.maps.shape == (3, 9, 11)
    assert st.maps.dtype == np.float32
    for c in range(3):
        _close(st.maps[c], _corr(img[:, :, c], k), f"channel {c}")
    assert st.labels == ["R * k", "G * k", "B * k"]
    assert st.parents == [[0], [1], [2]]
    assert st.columns == [0, 1, 2]


def test_per_channel_3d_kernel_uses_one_kernel_per_channel():
    img = _rgb()
    k = np.random.default_rng(2).normal(size=(3, 5, 3))  # non-square, odd
    res = run(img, Pipeline([ConvStage([Kernel(k, name="pc")])]))
    assert res.error is None
    for c in range(3):
        _close(res.stages[0].maps[c], _corr(img[:, :, c], k[c]), f"channel {c}")
    # the kernels are really per channel: channel 0's kernel is not used for channel 1
    assert not np.allclose(res.stages[0].maps[1], _corr(img[:, :, 1], k[0]), atol=1e-3)


def test_per_channel_several_kernels_channel_major_order():
    img = _rgb()
    rng = np.random.default_rng(3)
    ks = [Kernel(rng.normal(size=(3, 3)), name="a"),
          Kernel(rng.normal(size=(3, 3, 3)), name="b", bias=0.5),
          Kernel(rng.normal(size=(3, 3)), name="c", bias=-1.0)]
    res = run(img, Pipeline([ConvStage(ks)]))
    assert res.error is None
    st = res.stages[0]
    assert st.maps.shape == (9, 9, 11)
    names = "RGB"
    for c in range(3):
        for k, ker in enumerate(ks):
            w = ker.weights[c] if ker.weights.ndim == 3 else ker.weights
            m = c * len(ks) + k
            _close(st.maps[m], _corr(img[:, :, c], w) + ker.bias, f"channel {c} kernel {k}")
            assert st.labels[m] == f"{names[c]} * {ker.name}"
            assert st.parents[m] == [c]
            assert st.columns[m] == c


def test_sum_mode_sums_channels_plus_bias():
    img = _rgb()
    rng = np.random.default_rng(4)
    ks = [Kernel(rng.normal(size=(3, 3)), name="shared", bias=0.25),
          Kernel(rng.normal(size=(3, 3, 3)), name="full", bias=-2.0),
          Kernel(rng.normal(size=(3, 3)), name="third")]
    res = run(img, Pipeline([ConvStage(ks, mode="sum")]))
    assert res.error is None
    st = res.stages[0]
    assert st.maps.shape == (3, 9, 11)
    for k, ker in enumerate(ks):
        expected = sum(_corr(img[:, :, c], ker.weights[c] if ker.weights.ndim == 3
                             else ker.weights) for c in range(3)) + ker.bias
        _close(st.maps[k], expected, f"kernel {k}")
    assert st.labels == ["sum * shared", "sum * full", "sum * third"]
    assert st.parents == [[0, 1, 2]] * 3
    assert st.columns == [0, 1, 2]


def test_divisor_divides_the_weights():
    img = _rgb()
    k = np.random.default_rng(5).integers(-4, 5, size=(3, 3)).astype(float)
    res = run(img, Pipeline([ConvStage([Kernel(k, divisor=-6.0, bias=0.5)])]))
    for c in range(3):
        _close(res.stages[0].maps[c], _corr(img[:, :, c], k / -6.0) + 0.5)


@pytest.mark.parametrize("mode", ["per_channel", "sum"])
def test_flip_is_true_convolution(mode):
    img = _rgb()
    k = np.random.default_rng(6).normal(size=(3, 5))  # asymmetric: flipping matters
    res = run(img, Pipeline([ConvStage([Kernel(k, flip=True)], mode=mode)]))
    conv = [_corr(img[:, :, c], k, flip=True) for c in range(3)]
    if mode == "per_channel":
        for c in range(3):
            _close(res.stages[0].maps[c], conv[c])
    else:
        _close(res.stages[0].maps[0], sum(conv))
    # and it is not the correlation
    assert not np.allclose(res.stages[0].maps[0],
                           _corr(img[:, :, 0], k) if mode == "per_channel"
                           else sum(_corr(img[:, :, c], k) for c in range(3)), atol=1e-3)


def test_bias_is_added():
    img = _rgb()
    k = np.random.default_rng(7).normal(size=(3, 3))
    a = run(img, Pipeline([ConvStage([Kernel(k)])])).stages[0].maps
    b = run(img, Pipeline([ConvStage([Kernel(k, bias=3.5)])])).stages[0].maps
    _close(b - a, np.full(a.shape, 3.5))


def test_stride_padding_dilation_and_padding_modes_reach_the_engine():
    # reflect padding 2 and dilation 2 stride 2: compare with numpy's own pad ('reflect'
    # is PyTorch's, not scipy's) and a slice of scipy's valid correlation
    img = _rgb(12, 10)
    k = np.random.default_rng(8).normal(size=(3, 3))
    st = ConvStage([Kernel(k)], stride=2, padding=2, padding_mode="reflect", dilation=2)
    res = run(img, Pipeline([st]))
    assert res.error is None
    kd = np.zeros((5, 5))
    kd[::2, ::2] = k
    for c in range(3):
        padded = np.pad(img[:, :, c].astype(np.float64), 2, mode="reflect")
        full = ndimage.correlate(padded, kd, mode="constant")[2:-2, 2:-2]  # valid part
        _close(res.stages[0].maps[c], full[::2, ::2])


# ---------------------------------------------------------------------- activations


def _act_pipeline(function, alpha=0.01):
    return Pipeline([ConvStage([Kernel(np.array([[2.0]]), bias=-1.0)]),
                     ActivationStage(function, alpha)])


@pytest.mark.parametrize("function, alpha, formula", [
    ("relu", 0.01, lambda x: np.maximum(x, 0)),
    ("leaky_relu", 0.2, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("leaky_relu", 0.01, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("sigmoid", 0.01, lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", 0.01, np.tanh),
    ("abs", 0.01, np.abs),
    ("none", 0.01, lambda x: x),
])
def test_activations_match_numpy(function, alpha, formula):
    img = _rgb()
    res = run(img, _act_pipeline(function, alpha))
    assert res.error is None
    pre = res.stages[0].maps.astype(np.float64)
    assert (pre < 0).any() and (pre > 0).any()  # both branches exercised
    _close(res.stages[1].maps, formula(pre))
    assert res.stages[1].labels == [f"{function}({lab})" for lab in res.stages[0].labels]
    assert res.stages[1].columns == res.stages[0].columns


def test_sigmoid_is_stable_for_huge_inputs_without_warnings():
    x = np.array([-1000.0, -80.0, 0.0, 80.0, 1000.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = activate(x, "sigmoid")
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.exp(80.0)), 0.5, 1 / (1 + np.exp(-80.0)),
                                   1.0], rtol=1e-6, atol=0)
    # the same through a pipeline stage
    img = np.array([[-1000.0, 1000.0]], np.float32)[:, :, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = run(img, Pipeline([ActivationStage("sigmoid")]))
    np.testing.assert_array_equal(res.stages[0].maps, [[[0.0, 1.0]]])


def test_activate_returns_a_new_array_of_the_same_dtype():
    x = np.array([-1.5, 0.0, 2.0], np.float32)
    for f in pl.ACTIVATIONS:
        y = activate(x, f, 0.1)
        assert y.dtype == np.float32, f
        assert not np.shares_memory(x, y), f
    with pytest.raises(ValueError, match="swish"):
        activate(x, "swish")


# -------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("kw", [
    dict(mode="max", kernel_size=2),
    dict(mode="avg", kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(mode="avg", kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(mode="min", kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    dict(mode="l2", kernel_size=2, stride=1, ceil_mode=True),
    dict(mode="max", kernel_size=3, stride=2, padding=1, ceil_mode=True),
])
def test_pool_stage_equals_pool2d(kw):
    img = _rgb(11, 9)
    res = run(img, Pipeline([PoolStage(**kw)]))
    assert res.error is None
    expected = pool2d(img.transpose(2, 0, 1), kw["kernel_size"], kw.get("stride"),
                      padding=kw.get("padding", 0), dilation=kw.get("dilation", 1),
                      mode=kw["mode"], ceil_mode=kw.get("ceil_mode", False),
                      count_include_pad=kw.get("count_include_pad", True))
    np.testing.assert_array_equal(res.stages[0].maps, expected)
    assert res.stages[0].labels == [f"{kw['mode']}pool({c})" for c in "RGB"]
    assert res.stages[0].parents == [[0], [1], [2]]


# --------------------------------------------------------------------------- stacks


def _stack():
    rng = np.random.default_rng(9)
    return Pipeline([
        ConvStage([Kernel(rng.normal(size=(3, 3)), name="a"),
                   Kernel(rng.normal(size=(3, 3)), name="b")], stride=1, padding=1),
        ActivationStage("relu"),
        PoolStage("max", 2),
        ConvStage([Kernel(rng.normal(size=(6, 3, 3)), name="s1"),
                   Kernel(rng.normal(size=(3, 3)), name="s2"),
                   Kernel(rng.normal(size=(3, 3)), name="s3", bias=1.0)], mode="sum",
                  padding="valid"),
        PoolStage("avg", 2, stride=1),
    ])


def test_stacked_stages_shapes_match_validate():
    img = _rgb(20, 17)
    pipe = _stack()
    shapes = pipe.validate((3, 20, 17))
    assert shapes == [(6, 20, 17), (6, 20, 17), (6, 10, 8), (3, 8, 6), (3, 7, 5)]
    res = run(img, pipe)
    assert res.error is None
    assert [s.shape for s in res.stages] == shapes
    assert res.output is res.stages[-1]
    assert res.stages[3].labels == ["sum * s1", "sum * s2", "sum * s3"]
    assert res.stages[3].columns == [0, 1, 2]
    assert res.stages[3].parents == [list(range(6))] * 3
    assert res.stages[4].columns == [0, 1, 2]
    # stage 3 recomputed from stage 2's maps with the scipy oracle (valid = interior)
    x = res.stages[2].maps
    for k, ker in enumerate(pipe.stages[3].kernels):
        w = ker.weights
        exp = sum(_corr(x[m], w[m] if w.ndim == 3 else w) for m in range(6))[1:-1, 1:-1]
        _close(res.stages[3].maps[k], exp + ker.bias, f"kernel {k}")
    # formulas name the output size of each geometry stage
    assert "= 20" in res.stages[0].formula and "= 17" in res.stages[0].formula
    assert "= 10" in res.stages[2].formula
    assert "unchanged" in res.stages[1].formula


def test_all_maps_yields_every_map_input_first():
    res = run(_rgb(), default_pipeline())
    items = list(res.all_maps())
    assert len(items) == 12
    assert items[0][0] is res.input and items[0][1] == "R"
    assert items[-1][0] is res.stages[-1]
    assert res.level(-1) is res.input and res.level(1) is res.stages[1]


@pytest.mark.parametrize("shape", [(7, 8, 1), (7, 8)])
def test_grayscale_images(shape):
    img = np.random.default_rng(10).random(shape).astype(np.float32)
    k = np.random.default_rng(11).normal(size=(3, 3))
    pipe = Pipeline([ConvStage([Kernel(k, name="k")]), ActivationStage("tanh"),
                     PoolStage("avg", 2)])
    res = run(img, pipe)
    assert res.error is None
    assert res.input.maps.shape == (1, 7, 8)
    assert res.input.labels == ["gray"]
    plane = img.reshape(7, 8)
    _close(res.stages[0].maps[0], _corr(plane, k))
    assert res.stages[0].labels == ["gray * k"]
    assert [s.shape for s in res.stages] == [(1, 7, 8), (1, 7, 8), (1, 3, 4)]


def test_two_dimensional_and_single_channel_images_agree():
    img = np.random.default_rng(12).random((10, 9)).astype(np.float32)
    pipe = _stack()
    pipe.stages[3].kernels[0] = Kernel(np.ones((2, 3, 3)), name="s1")
    a = run(img, pipe)
    b = run(img[:, :, None], pipe)
    assert a.error is None and b.error is None
    for x, y in zip(a.stages, b.stages):
        np.testing.assert_array_equal(x.maps, y.maps)


def test_bad_image_shapes_are_refused():
    for bad in (np.zeros((0, 3, 3)), np.zeros((2, 2, 2, 2)), np.zeros(5)):
        with pytest.raises(ValueError, match="shape"):
            run(bad, default_pipeline())


# ------------------------------------------------------------------------ reuse


def test_rerun_with_previous_reuses_every_unchanged_stage():
    img = _rgb()
    pipe = default_pipeline()
    first = run(img, pipe)
    again = run(img, pipe, previous=first)
    assert again.input is first.input
    assert all(a is b for a, b in zip(again.stages, first.stages))
    # a copy of the pipeline (equal settings) reuses too
    third = run(img, pipe.copy(), previous=again)
    assert all(a is b for a, b in zip(third.stages, first.stages))


def test_rerun_recomputes_from_the_first_changed_stage():
    img = _rgb()
    pipe = _stack()
    first = run(img, pipe)
    changed = pipe.copy()
    changed.stages[2] = PoolStage("avg", 2)
    res = run(img, changed, previous=first)
    assert res.error is None
    assert res.stages[0] is first.stages[0] and res.stages[1] is first.stages[1]
    assert all(res.stages[i] is not first.stages[i] for i in (2, 3, 4))
    fresh = run(img.copy(), changed)
    for a, b in zip(res.stages, fresh.stages):
        np.testing.assert_array_equal(a.maps, b.maps)


def test_rerun_notices_a_kernel_edited_in_place():
    img = _rgb()
    pipe = default_pipeline()
    first = run(img, pipe)
    pipe.stages[0].kernels[0].weights[1, 1] = 4.0
    res = run(img, pipe, previous=first)
    assert res.stages[0] is not first.stages[0]
    _close(res.stages[0].maps[0], _corr(img[:, :, 0], pipe.stages[0].kernels[0].weights))


def test_rerun_after_a_failed_stage_reuses_the_good_prefix():
    img = _rgb()
    pipe = default_pipeline()
    pipe.stages[1] = ActivationStage("nope")
    bad = run(img, pipe, previous=None)
    assert bad.error is not None and len(bad.stages) == 1
    pipe.stages[1] = ActivationStage("relu")
    good = run(img, pipe, previous=bad)
    assert good.error is None and good.stages[0] is bad.stages[0]
    assert len(good.stages) == 3


def test_new_image_array_recomputes_everything():
    img = _rgb(seed=1)
    pipe = default_pipeline()
    first = run(img, pipe)
    other = _rgb(seed=2)
    res = run(other, pipe, previous=first)
    assert res.input is not first.input
    assert all(a is not b for a, b in zip(res.stages, first.stages))
    np.testing.assert_array_equal(res.input.maps, other.transpose(2, 0, 1))
    # equal values in a new array are also a new image (identity, not content)
    same = run(img.copy(), pipe, previous=first)
    assert all(a is not b for a, b in zip(same.stages, first.stages))
    for a, b in zip(same.stages, first.stages):
        np.testing.assert_array_equal(a.maps, b.maps)


def test_new_image_is_recomputed_after_the_old_array_was_freed():
    # The app replaces the image and drops the old array; a new array may then get the
    # old one's id() and data address. The result must still be that of the new image.
    rng = np.random.default_rng(13)
    pipe = default_pipeline()
    res = run(rng.random((8, 8, 3)), pipe)  # a temporary: freed after the call
    for trial in range(5):
        img = rng.random((8, 8, 3))
        res = run(img, pipe, previous=res)
        np.testing.assert_array_equal(
            res.input.maps, img.transpose(2, 0, 1).astype(np.float32),
            err_msg=f"trial {trial}: stale input reused for a new image")
        fresh = run(img.copy(), pipe)
        np.testing.assert_array_equal(res.output.maps, fresh.output.maps)
        del img


def test_progress_is_called_before_each_stage_and_can_cancel():
    img = _rgb()
    pipe = default_pipeline()
    calls = []
    res = run(img, pipe, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert len(res.stages) == 3

    seen = []

    def stop_at_two(done, total):
        seen.append(done)
        return done < 2

    res = run(img, pipe, progress=stop_at_two)
    assert seen == [0, 1, 2]
    assert len(res.stages) == 2 and res.error is None
    full = run(img, pipe)
    np.testing.assert_array_equal(res.stages[1].maps, full.stages[1].maps)
    assert len(run(img, pipe, progress=lambda d, t: False).stages) == 0


# ------------------------------------------------------------------------- errors


def _prefix():
    return [ConvStage([Kernel(np.ones((3, 3)) / 9, name="box")]), ActivationStage("relu")]


BAD_STAGES = {
    "stride 0": (ConvStage([Kernel(np.ones((3, 3)))], stride=0), "stride", ["0"]),
    "stride pair with 0": (ConvStage([Kernel(np.ones((3, 3)))], stride=(1, 0)), "stride",
                           ["0"]),
    "pool window larger than the map": (PoolStage("max", 9), "kernel_size", ["=", "8", "9"]),
    "reflect padding too big": (ConvStage([Kernel(np.ones((3, 3)))], padding=8,
                                          padding_mode="reflect"), "padding", ["reflect", "8"]),
    "kernel with NaN": (ConvStage([Kernel([[1, 2, 3], [4, np.nan, 6], [7, 8, 9]],
                                          name="bad")]), "kernel 1 (bad)",
                        ["nan", "row 2, column 2"]),
    "per-channel weights with the wrong number of maps": (
        ConvStage([Kernel(np.ones((3, 3)), name="ok"), Kernel(np.ones((2, 3, 3)), name="pc")]),
        "kernel 2 (pc)", ["2", "3"]),
    "divisor 0": (ConvStage([Kernel(np.ones((3, 3)), divisor=0.0, name="d")]),
                  "kernel 1 (d) divisor", ["0"]),
    "unknown activation": (ActivationStage("swish"), "function", ["swish"]),
    "unknown conv mode": (ConvStage([Kernel(np.ones((3, 3)))], mode="depthwise"), "mode",
                          ["depthwise"]),
    "unknown padding mode": (ConvStage([Kernel(np.ones((3, 3)))], padding_mode="mirror"),
                             "padding_mode", ["mirror"]),
    "unknown pool mode": (PoolStage("median"), "mode", ["median"]),
    "no kernels": (ConvStage([]), "kernels", []),
    "kernels of different sizes": (ConvStage([Kernel(np.ones((3, 3))), Kernel(np.ones((5, 5)),
                                                                             name="big")]),
                                   "kernel 2 (big)", ["5x5", "3x3"]),
    "kernel larger than 15x15": (ConvStage([Kernel(np.ones((17, 3)), name="huge")],
                                           padding="valid"), "kernel 1 (huge)", ["17"]),
    "bias inf": (ConvStage([Kernel(np.ones((3, 3)), bias=float("inf"), name="b")]),
                 "kernel 1 (b) bias", ["inf"]),
    "leaky alpha nan": (ActivationStage("leaky_relu", float("nan")), "alpha", ["nan"]),
}


@pytest.mark.parametrize("name", list(BAD_STAGES))
def test_failing_stage_keeps_earlier_results_and_names_the_field(name):
    stage, fieldname, words = BAD_STAGES[name]
    img = _rgb(8, 8)
    pipe = Pipeline(_prefix() + [stage, PoolStage("max", 2)])
    res = run(img, pipe)
    err = res.error
    assert isinstance(err, PipelineError)
    assert err.stage == 2
    assert err.field == fieldname
    text = str(err)
    assert text.startswith(f"stage 3 / {fieldname}: ")
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert len(res.stages) == 2
    ok = run(img, Pipeline(_prefix()))
    for a, b in zip(res.stages, ok.stages):
        np.testing.assert_array_equal(a.maps, b.maps)
    with pytest.raises(PipelineError) as info:
        pipe.validate((3, 8, 8))
    assert (info.value.stage, info.value.field) == (2, fieldname)
    assert str(info.value) == text


def test_empty_conv_output_shows_the_formula():
    res = run(_rgb(4, 4), Pipeline([ConvStage([Kernel(np.ones((5, 5)))], padding="valid")]))
    err = res.error
    assert isinstance(err, PipelineError) and err.stage == 0 and err.field
    assert "empty" in str(err)
    assert "1 + (4 - 5) = 0" in str(err)
    assert res.stages == []
    with pytest.raises(PipelineError, match=r"1 \+ \(4 - 5\) = 0"):
        Pipeline([ConvStage([Kernel(np.ones((5, 5)))], padding="valid")]).validate((3, 4, 4))


def test_pool_padding_over_half_the_window_names_padding():
    res = run(_rgb(8, 8), Pipeline([PoolStage("max", 2, padding=2)]))
    assert isinstance(res.error, PipelineError)
    assert "padding 2" in str(res.error)
    assert res.error.field == "padding"


def test_circular_padding_larger_than_the_map_is_a_stage_error_not_an_exception():
    # conv2d refuses circular padding wider than the input; run() must report that as
    # the stage's PipelineError (the documented contract), and validate() must agree.
    pipe = Pipeline(_prefix() + [ConvStage([Kernel(np.ones((3, 3)))], padding=5,
                                           padding_mode="circular")])
    res = run(_rgb(4, 4), pipe)
    assert isinstance(res.error, PipelineError)
    assert (res.error.stage, res.error.field) == (2, "padding")
    assert "5" in str(res.error)
    assert len(res.stages) == 2
    with pytest.raises(PipelineError):
        pipe.validate((3, 4, 4))


def test_weights_that_overflow_float32_are_a_stage_error_not_an_exception():
    # 1e39 is a finite float64 but overflows the engine's float32
    pipe = Pipeline([ConvStage([Kernel(np.full((3, 3), 1e39), name="big")])])
    res = run(_rgb(4, 4), pipe)
    assert isinstance(res.error, PipelineError)
    assert res.error.stage == 0 and res.error.field.startswith("kernel 1")


# --------------------------------------------------------------------------- JSON


def _every_option():
    rng = np.random.default_rng(14)
    return Pipeline([
        ConvStage([Kernel(rng.normal(size=(3, 3)), bias=0.25, divisor=4.0, flip=True, name="a"),
                   Kernel(rng.normal(size=(3, 3, 3)), bias=-1.5, name="per channel")],
                  mode="per_channel", stride=(1, 2), padding=((1, 0), (2, 1)),
                  padding_mode="constant", cval=0.5, dilation=(2, 1)),
        ActivationStage("leaky_relu", alpha=0.2),
        PoolStage("avg", kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=1,
                  ceil_mode=True, count_include_pad=False),
        ConvStage([Kernel(rng.normal(size=(6, 2, 2)), name="sum")], mode="sum",
                  padding="valid", padding_mode="reflect", stride=1, dilation=1),
        ActivationStage("sigmoid"),
        PoolStage("l2", 2, stride=None, padding=1, ceil_mode=False),
        ConvStage([Kernel(np.ones((3, 3)), name="c")], padding="same",
                  padding_mode="circular"),
        ConvStage([Kernel(np.ones((3, 1)), name="r")], padding="full",
                  padding_mode="replicate"),
        PoolStage("min", 2),
        ActivationStage("none"),
    ])


def test_save_load_round_trip_keeps_every_option(tmp_path):
    pipe = _every_option()
    path = tmp_path / "p.json"
    save_pipeline(path, pipe)
    doc = json.loads(path.read_text("utf-8"))
    assert doc["format"] == "convscope-pipeline" and doc["version"] == VERSION
    loaded = load_pipeline(path)
    assert loaded.to_dict() == pipe.to_dict()
    assert loaded.stages[0].stride == (1, 2)
    assert loaded.stages[0].padding == ((1, 0), (2, 1))
    assert loaded.stages[0].kernels[0].flip is True
    assert loaded.stages[2].ceil_mode is True and loaded.stages[2].count_include_pad is False
    assert loaded.stages[2].kernel_size == (3, 2)
    assert loaded.stages[5].stride is None
    assert loaded.stages[1].alpha == 0.2
    assert loaded.stages[0].kernels[1].weights.shape == (3, 3, 3)
    # loaded from a string and from str(path) too
    assert load_pipeline(path.read_text("utf-8")).to_dict() == pipe.to_dict()
    assert load_pipeline(str(path)).to_dict() == pipe.to_dict()
    # and it computes the same maps
    img = _rgb(16, 15)
    a, b = run(img, pipe), run(img, loaded)
    assert a.error is None and b.error is None
    for x, y in zip(a.stages, b.stages):
        np.testing.assert_array_equal(x.maps, y.maps)


def test_pipeline_copy_is_deep():
    pipe = _every_option()
    cp = pipe.copy()
    cp.stages[0].kernels[0].weights[0, 0] += 1
    assert cp.to_dict() != pipe.to_dict()


def _write(tmp_path, content, name="bad.json"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, str):
        p.write_text(content, "utf-8")
    else:
        p.write_text(json.dumps(content), "utf-8")
    return p


def _good_dict():
    return default_pipeline().to_dict()


def _with(path_fn):
    d = _good_dict()
    path_fn(d)
    return d


MALFORMED = {
    "invalid JSON": ('{"format": "convscope-pipeline",\n "version": 1,,}', ["line 2", "column"]),
    "not an object": ([1, 2, 3], ["object"]),
    "wrong format": (_with(lambda d: d.update(format="something-else")), ["something-else"]),
    "no format": (_with(lambda d: d.pop("format")), ["format"]),
    "newer version": (_with(lambda d: d.update(version=VERSION + 1)),
                      [f"version {VERSION + 1}", "newer"]),
    "version a string": (_with(lambda d: d.update(version="1")), ["version"]),
    "stages not a list": (_with(lambda d: d.update(stages={"a": 1})), ["stages", "list"]),
    "unknown stage type": (_with(lambda d: d["stages"].append({"type": "dropout"})),
                           ["stage 4", "dropout"]),
    "stage not an object": (_with(lambda d: d["stages"].append(3)), ["stage 4", "object"]),
    "unknown stage field": (_with(lambda d: d["stages"][1].update(beta=2)),
                            ["stage 2", "beta"]),
    "unknown kernel field": (_with(lambda d: d["stages"][0]["kernels"][0].update(scale=2)),
                             ["stage 1 kernel 1", "scale"]),
    "non-numeric weight": (_with(lambda d: d["stages"][0]["kernels"][0].update(
        weights=[["a", 1], [2, 3]])), ["stage 1 kernel 1", "weights"]),
    "ragged weights": (_with(lambda d: d["stages"][0]["kernels"][0].update(
        weights=[[1, 2, 3], [4, 5]])), ["stage 1 kernel 1", "weights"]),
    "1-D weights": (_with(lambda d: d["stages"][0]["kernels"][0].update(weights=[1, 2, 3])),
                    ["stage 1 kernel 1", "weights"]),
    "bias a string": (_with(lambda d: d["stages"][0]["kernels"][0].update(bias="0.5")),
                      ["stage 1 kernel 1", "bias", "'0.5'"]),
    "divisor boolean": (_with(lambda d: d["stages"][0]["kernels"][0].update(divisor=True)),
                        ["divisor"]),
    "flip a string": (_with(lambda d: d["stages"][0]["kernels"][0].update(flip="yes")),
                      ["flip"]),
    "empty kernels": (_with(lambda d: d["stages"][0].update(kernels=[])), ["kernels"]),
    "unknown activation": (_with(lambda d: d["stages"][1].update(function="gelu")), ["gelu"]),
    "stride 0": (_with(lambda d: d["stages"][0].update(stride=0)), ["stride", "0"]),
    "null weight": (_with(lambda d: d["stages"][0]["kernels"][0].update(
        weights=[[1, None], [2, 3]])), ["kernel 1", "None is not a number"]),
    # review regressions: each of these escaped as a RecursionError, OverflowError,
    # bare ValueError or TypeError (a traceback from convscope-run)
    "nested JSON bomb": ('{"format":"convscope-pipeline","version":1,"stages":[{"type":"conv",'
                         '"kernels":[{"weights":' + "[" * 100000 + "]" * 100000 + '}]}]}',
                         ["nested too deeply"]),
    "weights nested 4 deep": (_with(lambda d: d["stages"][0]["kernels"][0].update(
        weights=[[[[1.0]]]])), ["kernel 1", "nested more than 3 deep"]),
    "400-digit weight": (_with(lambda d: d["stages"][0]["kernels"][0].update(
        weights=[[10 ** 400, 1], [1, 1]])), ["kernel 1", "401 digits"]),
    "400-digit bias": (_with(lambda d: d["stages"][0]["kernels"][0].update(bias=10 ** 400)),
                       ["kernel 1", "bias", "401 digits"]),
    "400-digit cval": (_with(lambda d: d["stages"][0].update(cval=-10 ** 400)),
                       ["stage 1", "cval"]),
    "5000-digit alpha": ('{"format":"convscope-pipeline","version":1,"stages":[{"type":'
                         '"activation","function":"leaky_relu","alpha":' + "9" * 5000 + '}]}',
                         ["digits"]),
    "cval a string": (_with(lambda d: d["stages"][0].update(cval="abc")),
                      ["stage 1", "cval", "'abc'"]),
    "alpha a boolean": (_with(lambda d: d["stages"][1].update(alpha=True)),
                        ["stage 2", "alpha"]),
    "alpha 1e300": (_with(lambda d: d["stages"][1].update(function="leaky_relu", alpha=1e300)),
                    ["stage 2", "alpha", "1000"]),
    "type a list": (_with(lambda d: d["stages"][0].update(type=["conv"])),
                    ["stage 1", "unknown stage type ['conv']"]),
    "version 0": (_with(lambda d: d.update(version=0)), ["version", "positive"]),
    "version true": (_with(lambda d: d.update(version=True)), ["version"]),
    "padding 100000": (_with(lambda d: d["stages"][0].update(padding=100000)),
                       ["stage 1", "padding", "4096", "100000"]),
    "dilation a float": (_with(lambda d: d["stages"][0].update(dilation=1.5)),
                         ["stage 1", "dilation", "1.5"]),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_files_are_refused_with_file_and_reason(tmp_path, name):
    content, words = MALFORMED[name]
    path = _write(tmp_path, content)
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(path)
    msg = str(info.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


@pytest.mark.parametrize("name, bad", [
    ("weight a numeric string", lambda d: d["stages"][0]["kernels"][0].update(
        weights=[["1", "2"], ["3", "4"]])),
    ("weight a boolean", lambda d: d["stages"][0]["kernels"][0].update(
        weights=[[True, 1], [1, 1]])),
    ("ceil_mode a string", lambda d: d["stages"][2].update(ceil_mode="false")),
    ("count_include_pad a string", lambda d: d["stages"][2].update(count_include_pad="false")),
])
def test_wrongly_typed_values_are_refused_not_coerced(tmp_path, name, bad):
    # JSON strings/booleans are not numbers, and "false" is not False: a file saying
    # "ceil_mode": "false" must not silently load as ceil_mode=True.
    path = _write(tmp_path, _with(bad))
    with pytest.raises(PipelineFileError, match="stage"):
        load_pipeline(path)


def test_missing_file_directory_garbage_and_empty_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(missing)
    assert str(missing) in str(info.value) and "No such file" in str(info.value)

    with pytest.raises(PipelineFileError) as info:
        load_pipeline(tmp_path)
    assert str(tmp_path) in str(info.value) and "directory" in str(info.value).lower()

    garbage = _write(tmp_path, bytes(range(128, 256)) * 4, "garbage.json")
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(garbage)
    assert str(garbage) in str(info.value) and "UTF-8" in str(info.value)

    png_like = _write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.json")
    with pytest.raises(PipelineFileError, match="image.json"):
        load_pipeline(png_like)

    empty = _write(tmp_path, b"", "empty.json")
    with pytest.raises(PipelineFileError) as info:
        load_pipeline(empty)
    assert str(empty) in str(info.value) and "line 1" in str(info.value)


def test_pipeline_from_dict_raises_value_error_naming_the_part():
    with pytest.raises(ValueError, match="stage 2"):
        pipeline_from_dict(_with(lambda d: d["stages"][1].update(function=7)))
    assert pipeline_from_dict(_good_dict()).to_dict() == _good_dict()


def test_failed_save_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    save_pipeline(path, default_pipeline())
    before = path.read_bytes()

    # a save that fails in the middle of writing
    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        save_pipeline(path, _every_option())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["p.json"]

    # a save whose content cannot be serialised writes nothing
    broken = default_pipeline()
    broken.stages[0].cval = object()
    with pytest.raises(TypeError):
        save_pipeline(path, broken)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["p.json"]
    assert load_pipeline(path).to_dict() == default_pipeline().to_dict()


def test_save_into_missing_folder_fails_and_creates_nothing(tmp_path):
    target = tmp_path / "no such folder" / "p.json"
    with pytest.raises(OSError):
        save_pipeline(target, default_pipeline())
    assert not (tmp_path / "no such folder").exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_bytes_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["data.bin"]

    def fail_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pl.os, "replace", fail_replace)
    with pytest.raises(PermissionError):
        atomic_write_bytes(path, b"third")
    monkeypatch.undo()
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["data.bin"]

    (tmp_path / "sub").mkdir()
    with pytest.raises(OSError):  # the target is a directory: replace fails
        atomic_write_bytes(tmp_path / "sub", b"x")
    assert sorted(os.listdir(tmp_path)) == ["data.bin", "sub"]
    assert os.listdir(tmp_path / "sub") == []


def test_describe_texts():
    pipe = _every_option()
    d0 = pipe.stages[0].describe()
    assert d0.startswith("conv 2 kernels 3x3 per channel") and "constant" in d0
    assert "dilation 2x1" in d0 and "stride 1x2" in d0
    assert pipe.stages[1].describe() == "leaky ReLU (alpha 0.2)"
    assert pipe.stages[2].describe() == "avg pool 3x2, stride 2x1, pad 1x0, ceil, pad excluded"
    assert "summed over channels" in pipe.stages[3].describe()
    assert default_pipeline().stages[2].describe() == "max pool 2x2, stride 2"


def test_a_stage_too_large_for_memory_is_refused_naming_the_sizes():
    """Review regression: padding 100000 loaded, then run() died in a MemoryError
    (449 GiB). Padding is capped in files, and any stage whose padded input or output
    would exceed MAX_STAGE_ELEMENTS is refused before it allocates."""
    img = _rgb(40, 40)
    big = Pipeline([ConvStage([Kernel(np.ones((3, 3)), name=f"k{i}") for i in range(64)],
                              padding=4000)])
    res = run(img, big)
    assert res.stages == [] and res.error is not None
    assert res.error.stage == 0 and res.error.field == "kernels"
    assert "192 map(s) of 8038x8038" in str(res.error) and "GiB" in str(res.error)
    wide = Pipeline([ConvStage([Kernel(np.ones((3, 3)), name=f"k{i}") for i in range(12)]),
                     ConvStage([Kernel(np.ones((3, 3)))], padding=4096)])
    res = run(img, wide)
    assert len(res.stages) == 1 and res.error.stage == 1 and res.error.field == "padding"
    assert "padded input would be 36 map(s) of 8232x8232" in str(res.error)


def test_run_reports_memory_error_as_a_stage_error(monkeypatch):
    def exhausted(*a, **k):
        raise MemoryError
    monkeypatch.setattr(pl, "conv2d", exhausted)
    res = run(_rgb(), default_pipeline())
    assert res.error is not None and res.error.stage == 0
    assert "not enough memory" in str(res.error)


@pytest.mark.parametrize("spoil, field", [
    (lambda p: p.stages[0].kernels[0].weights.__setitem__((0, 0), np.nan), "kernel 1"),
    (lambda p: setattr(p.stages[0], "stride", 0), "stride"),
])
def test_save_refuses_a_pipeline_load_would_refuse_and_keeps_the_old_file(tmp_path, spoil,
                                                                          field):
    """Review regression: a NaN weight or stride 0 was saved (as non-standard JSON) over
    a good file, which then no longer loaded."""
    path = tmp_path / "p.json"
    save_pipeline(path, default_pipeline())
    before = path.read_bytes()
    bad = default_pipeline()
    spoil(bad)
    with pytest.raises(PipelineError, match=field):
        save_pipeline(path, bad)
    assert path.read_bytes() == before
    assert load_pipeline(path).to_dict() == default_pipeline().to_dict()
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


@pytest.mark.parametrize("spoil, field", [
    (lambda p: setattr(p.stages[0], "padding", 5000), "padding"),
    (lambda p: setattr(p.stages[2], "stride", (2, 5000)), "stride"),
    (lambda p: setattr(p.stages[2], "ceil_mode", 1), "ceil_mode"),
    (lambda p: setattr(p.stages[0].kernels[0], "name", None), "kernel 1"),
])
def test_what_load_refuses_save_and_run_refuse_too(tmp_path, spoil, field):
    """Review regression: these passed save_pipeline (giving files load refused), and a
    pool stage with ceil_mode=1 escaped run() as a TypeError."""
    bad = default_pipeline()
    spoil(bad)
    with pytest.raises(PipelineError, match=field):
        save_pipeline(tmp_path / "p.json", bad)
    assert not (tmp_path / "p.json").exists()
    res = run(_rgb(), bad)
    assert res.error is not None and field in str(res.error)


def test_run_hands_each_stage_to_on_stage_as_it_is_made():
    """The GUI prepares a stage's previews while the next one computes."""
    from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, PoolStage, run
    img = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    pipe = Pipeline([ConvStage([Kernel(np.ones((3, 3)), name="box")]), ActivationStage("relu"),
                     PoolStage()])
    seen = []
    first = run(img, pipe, on_stage=seen.append)
    assert [s.index for s in seen] == [0, 1, 2]
    assert all(a is b for a, b in zip(seen, first.stages))
    seen.clear()
    again = run(img, pipe, previous=first, on_stage=seen.append)   # reused stages too
    assert [s.index for s in seen] == [0, 1, 2] and again.stages[0] is first.stages[0]


def test_the_maps_of_a_run_stay_within_a_memory_budget():
    """Issue 13: 10,000 ReLU stages on a photo reached 16.9 GB; the stage that would
    pass the budget now fails with a message, before it allocates."""
    from convscope.core.pipeline import ActivationStage, Pipeline, memory_budget, run
    img = np.zeros((100, 100, 3), np.float32)            # 120 kB per level
    pipe = Pipeline([ActivationStage("relu") for _ in range(50)])
    res = run(img, pipe, max_bytes=1_000_000)
    assert res.error is not None and res.error.stage == 7   # 8 levels of 120 kB fit
    assert len(res.stages) == 7
    assert "memory budget" in str(res.error)
    assert run(img, pipe).error is None
    assert memory_budget() >= 1 << 30


def test_an_empty_output_names_the_field_that_can_fix_it():
    """Issue 12: an empty output caused by dilation was put on 'kernels', and the advice
    suggested a smaller stride, which cannot help."""
    from convscope.core.pipeline import ConvStage, Kernel, Pipeline, PoolStage, run
    img = np.zeros((10, 10, 1), np.float32)
    err = run(img, Pipeline([ConvStage([Kernel(np.ones((3, 3)))], padding=0,
                                       dilation=6)])).error
    assert err.field == "dilation" and "smaller dilation" in str(err)
    assert "stride" not in str(err).split("(")[-1]
    err = run(img, Pipeline([ConvStage([Kernel(np.ones((13, 3)))], padding=0)])).error
    assert err.field == "kernels" and "smaller kernel" in str(err)
    assert "spans 13 cells, the padded input has 10" in str(err)
    err = run(img, Pipeline([PoolStage("max", 3, dilation=6)])).error
    assert err.field == "dilation"


def test_the_documented_format_example_loads_and_computes_320():
    """docs/pipeline-format.md's example is a valid file that gives REFERENCE's 320, and
    the document names every field the reader accepts."""
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "pipeline-format.md").read_text()
    block = re.search(r"```json\n(.*?)```", doc, re.S).group(1)
    pipe = load_pipeline(block)
    ref = np.array([[105, 102, 100, 97, 96], [103, 99, 103, 101, 102], [101, 98, 104, 102, 100],
                    [99, 101, 106, 104, 99], [104, 104, 104, 100, 98]], np.float32)
    res = run(ref[:, :, None], pipe)
    assert res.error is None and res.stages[0].maps[0, 0, 0] == 320
    assert res.stages[2].maps.shape == (1, 2, 2)
    for field_name in ("format", "version", "stages", "kernels", "mode", "stride", "padding",
                       "padding_mode", "cval", "dilation", "weights", "name", "bias",
                       "divisor", "flip", "function", "alpha", "kernel_size", "ceil_mode",
                       "count_include_pad"):
        assert f"`{field_name}`" in doc, field_name
    for value in (*pl.ACTIVATIONS, "per_channel", "sum", "zeros", "constant", "reflect",
                  "replicate", "circular", "max", "avg", "min", "l2", "valid", "same", "full"):
        assert f'"{value}"' in doc, value
