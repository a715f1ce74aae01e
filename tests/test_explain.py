"""Explanations of single pixels, receptive fields and cross-level projection.

The REFERENCE test vectors are checked literally; a seeded sweep over random
pipelines checks that every explanation's independent float64 recomputation matches
the engine's map value; receptive fields and projections are checked by hand and
empirically (perturb one pixel, see which outputs change).
"""

from __future__ import annotations

import numpy as np
import pytest

from convscope.core.explain import explain, format_arithmetic, project, receptive_field
from convscope.core.geometry import conv_geometry
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PipelineError, PoolStage,
                           run, stage_output_shape)
from convscope.core.pool import pool2d

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
VECTOR1 = np.array([[105, 102, 100, 97, 96],
                    [103, 99, 103, 101, 102],
                    [101, 98, 104, 102, 100],
                    [99, 101, 106, 104, 99],
                    [104, 104, 104, 100, 98]], float)


# ------------------------------------------------------------------ REFERENCE vectors


def test_reference_vector_1_sharpen_top_left():
    res = run(VECTOR1[:, :, None], Pipeline([ConvStage([Kernel(SHARPEN, name="sharpen")],
                                                       padding=1)]))
    assert res.error is None
    ex = explain(res, 0, 0, 0, 0)
    assert ex.kind == "conv"
    assert ex.text == ("0*0 + 0*-1 + 0*0 + 0*-1 + 105*5 + 102*-1 + 0*0 + 103*-1 + 99*0 = 320")
    assert ex.value == 320.0 and ex.recomputed == 320.0
    assert ex.total == 320.0 and ex.bias == 0.0
    assert ex.inputs == [0]
    assert ex.label == "gray * sharpen"
    window = np.array([[0, 0, 0], [0, 105, 102], [0, 103, 99]], float)
    np.testing.assert_array_equal(ex.window, window[None])
    np.testing.assert_array_equal(ex.weights, SHARPEN[None])
    np.testing.assert_array_equal(ex.products, (window * SHARPEN)[None])
    np.testing.assert_array_equal(ex.in_input, [[False, False, False], [False, True, True],
                                                [False, True, True]])
    np.testing.assert_array_equal(ex.rows, [-1, 0, 1])
    np.testing.assert_array_equal(ex.cols, [-1, 0, 1])
    # an interior pixel: 5*99 - 102 - 103 - 103 - 98 = 89
    ex = explain(res, 0, 0, 1, 1)
    assert ex.text == "105*0 + 102*-1 + 100*0 + 103*-1 + 99*5 + 103*-1 + 101*0 + 98*-1 + 104*0 = 89"
    assert ex.in_input.all()


def test_reference_vector_2():
    img = np.array([[1, 6], [5, 3]], float)[:, :, None]
    res = run(img, Pipeline([ConvStage([Kernel([[1, 2], [-1, 0]])], padding="valid")]))
    assert res.stages[0].shape == (1, 1, 1)
    ex = explain(res, 0, 0, 0, 0)
    assert ex.text == "1*1 + 6*2 + 5*-1 + 3*0 = 8"
    assert ex.value == 8.0 and ex.recomputed == 8.0
    np.testing.assert_array_equal(ex.products, [[[1, 12], [-5, 0]]])
    assert ex.in_input.all()


def _vector3_map():
    rng = np.random.default_rng(0)
    m = rng.integers(-5, 5, size=(8, 8)).astype(float)
    m[0:2, 0:2] = [[8, -1], [2, 0]]
    m[0:2, 2:4] = [[3, 3], [1, 9]]
    m[2:4, 0:2] = [[4, 7], [7, 7]]  # tie: the first 7 (row 2, col 1) wins
    return m


def test_max_pool_winner_reference_vector_3():
    m = _vector3_map()
    res = run(m[:, :, None], Pipeline([PoolStage("max", 2)]))
    assert res.stages[0].shape == (1, 4, 4)
    ex = explain(res, 0, 0, 0, 0)
    assert (ex.kind, ex.value, ex.winner) == ("pool", 8.0, (0, 0))
    assert ex.text == "max(8, -1, 2, 0) = 8 at row 0, col 0"
    ex = explain(res, 0, 0, 0, 1)
    assert (ex.value, ex.recomputed, ex.winner) == (9.0, 9.0, (1, 3))
    assert ex.text == "max(3, 3, 1, 9) = 9 at row 1, col 3"
    ex = explain(res, 0, 0, 1, 0)
    assert ex.winner == (2, 1) and ex.value == 7.0
    # every window's winner agrees with the engine's argmax (first of ties)
    _, idx = pool2d(m, 2, return_indices=True)
    for r in range(4):
        for c in range(4):
            ex = explain(res, 0, 0, r, c)
            assert ex.winner == divmod(int(idx[r, c]), 8)
            assert m[ex.winner] == ex.value


def test_min_pool_ties_first_wins_and_padding_never_wins():
    m = np.array([[2, 1, 1], [1, 5, 6], [7, 8, 1]], float)
    res = run(m[:, :, None], Pipeline([PoolStage("min", 3, stride=2, padding=1)]))
    ex = explain(res, 0, 0, 0, 0)  # window rows -1..1, cols -1..1: real cells 2 1 / 1 5
    assert ex.value == 1.0 and ex.winner == (0, 1)
    assert ex.text == "min(2, 1, 1, 5) = 1 at row 0, col 1"
    res = run(-m[:, :, None], Pipeline([PoolStage("max", 3, stride=2, padding=1)]))
    ex = explain(res, 0, 0, 1, 1)  # rows 1..3, cols 1..3: real 5 6 / 8 1 negated
    assert ex.value == -1.0 and ex.winner == (2, 2)


@pytest.mark.parametrize("include, divisor", [(True, 9), (False, 4)])
def test_avg_pool_divisor_at_padded_corner(include, divisor):
    m = np.arange(36, dtype=float).reshape(6, 6)
    res = run(m[:, :, None], Pipeline([PoolStage("avg", 3, stride=2, padding=1,
                                                 count_include_pad=include)]))
    ex = explain(res, 0, 0, 0, 0)
    total = m[0, 0] + m[0, 1] + m[1, 0] + m[1, 1]
    assert ex.divisor == divisor
    assert ex.total == total
    assert ex.recomputed == pytest.approx(total / divisor)
    assert ex.value == pytest.approx(total / divisor, rel=1e-6)
    note = " (padding counted)" if include else ""
    assert ex.text == f"(0 + 1 + 6 + 7) / {divisor}{note} = {14 / divisor:.4g}"
    # an interior window has 9 real cells either way
    ex = explain(res, 0, 0, 1, 1)
    assert ex.divisor == 9 and "(padding counted)" not in ex.text
    assert ex.recomputed == pytest.approx(m[1:4, 1:4].mean())


def test_avg_pool_ceil_mode_hanging_window_counts_only_existing_cells():
    m = np.arange(25, dtype=float).reshape(5, 5)
    res = run(m[:, :, None], Pipeline([PoolStage("avg", 2, ceil_mode=True)]))
    assert res.stages[0].shape == (1, 3, 3)
    ex = explain(res, 0, 0, 2, 2)
    assert ex.divisor == 1 and ex.recomputed == 24.0 == ex.value
    ex = explain(res, 0, 0, 2, 0)
    assert ex.divisor == 2 and ex.recomputed == (20 + 21) / 2


def test_l2_pool():
    m = np.array([[3, 4], [0, 12]], float)
    res = run(m[:, :, None], Pipeline([PoolStage("l2", 2)]))
    ex = explain(res, 0, 0, 0, 0)
    assert ex.recomputed == 13.0 and ex.value == 13.0
    assert ex.total == 169.0
    assert ex.text == "sqrt(3^2 + 4^2 + 0^2 + 12^2) = 13"


def test_activation_explanation():
    img = np.array([[-2.0, 3.0]])[:, :, None]
    res = run(img, Pipeline([ActivationStage("leaky_relu", 0.1), ActivationStage("sigmoid")]))
    ex = explain(res, 0, 0, 0, 0)
    assert ex.kind == "activation" and ex.function == "leaky_relu"
    assert ex.pre_activation == -2.0
    assert ex.recomputed == pytest.approx(-0.2)
    assert ex.value == pytest.approx(-0.2)
    assert ex.text == "leaky_relu_0.1(-2) = -0.2"
    assert explain(res, 0, 0, 0, 1).text == "leaky_relu_0.1(3) = 3"
    ex = explain(res, 1, 0, 0, 1)
    assert ex.pre_activation == 3.0 and ex.recomputed == pytest.approx(1 / (1 + np.exp(-3)))
    assert ex.text.startswith("sigmoid(3) = 0.9526")


def test_input_level_explanation():
    img = np.arange(12, dtype=float).reshape(2, 2, 3)
    res = run(img, Pipeline([]))
    ex = explain(res, -1, 2, 1, 0)
    assert ex.kind == "input" and ex.value == 8.0 == ex.recomputed
    assert ex.text == "B[1, 0] = 8 (image pixel)"


def test_sum_mode_with_three_inputs_and_bias():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 10, size=(4, 5, 3)).astype(float)
    w = rng.integers(-3, 4, size=(3, 3, 3)).astype(float)
    shared = rng.integers(-3, 4, size=(3, 3)).astype(float)
    pipe = Pipeline([ConvStage([Kernel(w, bias=2.0, name="full"),
                                Kernel(shared, bias=-1.0, name="shared")], mode="sum",
                               padding="valid")])
    res = run(img, pipe)
    assert res.stages[0].shape == (2, 2, 3)
    ex = explain(res, 0, 0, 1, 2)
    assert ex.inputs == [0, 1, 2]
    win = img[1:4, 2:5, :].transpose(2, 0, 1)
    np.testing.assert_array_equal(ex.window, win)
    np.testing.assert_array_equal(ex.weights, w)
    np.testing.assert_array_equal(ex.products, win * w)
    expected = float((win * w).sum() + 2)
    assert ex.bias == 2.0 and ex.total == expected - 2
    assert ex.value == expected == ex.recomputed
    assert "... (15 more)" in ex.text
    assert ex.text.endswith(f" + 2 = {int(expected)}")
    assert ex.text.startswith(f"{int(win[0, 0, 0])}*{int(w[0, 0, 0])} + ")
    ex = explain(res, 0, 1, 0, 0)
    np.testing.assert_array_equal(ex.weights, np.broadcast_to(shared, (3, 3, 3)))
    assert ex.value == float((img[0:3, 0:3, :].transpose(2, 0, 1) * shared).sum() - 1)
    assert ex.text.endswith(f" + -1 = {int(ex.value)}")


def test_per_channel_explanation_divisor_flip_and_padding_modes():
    img = np.arange(20, dtype=float).reshape(4, 5)[:, :, None] * np.array([1, 2, 3])
    w = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], float)
    pipe = Pipeline([ConvStage([Kernel(w, divisor=4, flip=True, name="a"),
                                Kernel(np.ones((3, 3, 3)), name="b")], padding=1,
                               padding_mode="replicate")])
    res = run(img, pipe)
    # map 2 = G * a
    ex = explain(res, 0, 2, 0, 0)
    assert ex.inputs == [1] and ex.label == "G * a"
    np.testing.assert_array_equal(ex.weights[0], w[::-1, ::-1] / 4)
    np.testing.assert_array_equal(ex.rows, [0, 0, 1])  # replicate: -1 -> 0
    assert not ex.in_input[0].any() and ex.in_input[1:, 1:].all()
    g = img[:, :, 1]
    expected_window = g[np.ix_([0, 0, 1], [0, 0, 1])]
    np.testing.assert_array_equal(ex.window[0], expected_window)
    assert ex.text.endswith("(weights already divided by 4)")
    assert ex.recomputed == pytest.approx(ex.value, rel=1e-6)


def test_format_arithmetic():
    assert format_arithmetic([1, 2], [3, -4], 0.0, -5) == "1*3 + 2*-4 = -5"
    assert format_arithmetic([1.5], [0.333333], 1.25, 1.75) == "1.5*0.3333 + 1.25 = 1.75"
    long = format_arithmetic(np.arange(20), np.ones(20), 0, 190)
    assert long == ("0*1 + 1*1 + 2*1 + 3*1 + 4*1 + 5*1 + ... (8 more) + 14*1 + 15*1 + 16*1 + "
                    "17*1 + 18*1 + 19*1 = 190")


def test_out_of_range_positions_raise_index_error():
    res = run(np.zeros((6, 6, 3)), Pipeline([PoolStage("max", 2)]))
    for args in [(1, 0, 0, 0), (-2, 0, 0, 0), (0, 3, 0, 0), (0, -1, 0, 0), (0, 0, 3, 0),
                 (0, 0, 0, 3), (0, 0, -1, 0), (-1, 0, 6, 0)]:
        with pytest.raises(IndexError):
            explain(res, *args)
    with pytest.raises(IndexError):
        receptive_field(res, 0, 3, 0)
    with pytest.raises(IndexError):
        receptive_field(res, 2, 0, 0)
    with pytest.raises(IndexError):
        project(res, -1, 0, 6)


# ---------------------------------------------------------------- random sweep


PADDINGS = [0, 1, 2, (1, 0), (0, 2), ((1, 0), (2, 1)), ((0, 2), (1, 1)), "valid", "same", "full"]
PAD_MODES = ["zeros", "constant", "reflect", "replicate", "circular"]


def _random_stage(rng, maps, hw):
    kind = rng.choice(["conv", "conv", "act", "pool"])
    if kind == "act":
        f = str(rng.choice(["none", "relu", "leaky_relu", "sigmoid", "tanh", "abs"]))
        return ActivationStage(f, float(rng.choice([0.01, 0.2, 1.5])))
    if kind == "pool":
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = None if rng.random() < 0.4 else (int(rng.integers(1, 4)),
                                                  int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        # dilation only where there is no padding: a dilated window straddling a tiny map
        # can miss every real cell (-inf by design), which a later conv turns into NaN
        dil = tuple(1 if p else int(rng.integers(1, 3)) for p in pad)
        return PoolStage(str(rng.choice(["max", "avg", "min", "l2"])), k, stride, pad, dil,
                         bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    mode = "sum" if maps > 9 or rng.random() < 0.4 else "per_channel"
    kernels = []
    for k in range(int(rng.integers(1, 4))):
        shape = (maps, kh, kw) if rng.random() < 0.35 else (kh, kw)
        kernels.append(Kernel(np.round(rng.normal(size=shape), 2),
                              bias=float(rng.choice([0.0, 0.5, -1.25])),
                              divisor=float(rng.choice([1.0, 1.0, 2.0, -3.0, 0.5])),
                              flip=bool(rng.random() < 0.3), name=f"k{k}"))
    st = ConvStage(kernels, mode,
                   stride=(int(rng.integers(1, 3)), int(rng.integers(1, 4))),
                   padding=PADDINGS[int(rng.integers(len(PADDINGS)))],
                   padding_mode=str(rng.choice(PAD_MODES)), cval=float(rng.normal()),
                   dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))))
    if st.padding_mode == "circular":  # run() does not pre-check this (see test_pipeline)
        try:
            g = conv_geometry(hw, (kh, kw), st.stride, st.padding, st.dilation)
        except ValueError:
            return None
        if max(g[0].pad_before, g[0].pad_after) > hw[0] or \
                max(g[1].pad_before, g[1].pad_after) > hw[1]:
            return None
    return st


def _random_pipeline(rng, shape):
    stages = []
    for _ in range(int(rng.integers(1, 5))):
        for _attempt in range(20):
            st = _random_stage(rng, shape[0], shape[1:])
            if st is None:
                continue
            try:
                new = stage_output_shape(len(stages), st, shape)
            except PipelineError:
                continue
            stages.append(st)
            shape = new
            break
    return Pipeline(stages)


def _check_explanation(ex, res, where):
    lvl = res.level(ex.level)
    assert ex.value == float(lvl.maps[ex.map_index, ex.row, ex.col]), where
    if ex.kind == "conv":
        scale = float(np.abs(ex.products).sum() + abs(ex.bias))
        assert ex.window.shape == ex.weights.shape == ex.products.shape, where
        assert ex.window.shape[0] == len(ex.inputs), where
        np.testing.assert_array_equal(ex.products, ex.window * ex.weights, err_msg=where)
        assert abs(ex.recomputed - ex.value) <= 2e-5 * scale + 1e-5, \
            f"{where}: explained {ex.recomputed!r} vs engine {ex.value!r}\n{ex.text}"
    else:
        assert np.isclose(ex.recomputed, ex.value, rtol=2e-5, atol=1e-6, equal_nan=True), \
            f"{where}: explained {ex.recomputed!r} vs engine {ex.value!r}\n{ex.text}"
    if ex.kind == "pool" and ex.winner is not None and np.isfinite(ex.value):
        prev = res.level(ex.level - 1).maps[ex.inputs[0]]
        assert prev[ex.winner] == ex.value, where


def test_random_sweep_explanations_match_the_engine():
    rng = np.random.default_rng(20240607)
    n_checked = 0
    kinds = set()
    for trial in range(160):
        c = int(rng.choice([1, 3]))
        h, w = int(rng.integers(4, 13)), int(rng.integers(4, 13))
        img = rng.normal(size=(h, w, c)).astype(np.float32)
        pipe = _random_pipeline(rng, (c, h, w))
        res = run(img, pipe)
        where0 = f"trial {trial}: image {img.shape}, pipeline {pipe.to_json()}"
        assert res.error is None, f"{where0}: {res.error}"
        for lv in range(-1, len(res.stages)):
            m, hh, ww = res.level(lv).maps.shape
            positions = {(0, 0, 0), (m - 1, hh - 1, ww - 1)}
            positions |= {(int(rng.integers(m)), int(rng.integers(hh)), int(rng.integers(ww)))
                          for _ in range(3)}
            for mi, r, cc in positions:
                ex = explain(res, lv, mi, r, cc)
                kinds.add((ex.kind, getattr(res.level(lv).stage, "mode", None)))
                _check_explanation(ex, res, f"{where0}\nlevel {lv} map {mi} ({r}, {cc})")
                n_checked += 1
    assert n_checked > 1500
    for expected in [("conv", "sum"), ("conv", "per_channel"), ("pool", "max"), ("pool", "avg"),
                     ("pool", "min"), ("pool", "l2"), ("activation", None), ("input", None)]:
        assert expected in kinds, expected


# ------------------------------------------------------------- receptive fields


def _rf_pipeline(pool="avg", pad2=0, act="leaky_relu"):
    rng = np.random.default_rng(2)
    return Pipeline([
        ConvStage([Kernel(rng.uniform(0.5, 1.5, (3, 3)) * rng.choice([-1, 1], (3, 3)))],
                  stride=1, padding=1),
        ActivationStage(act, 0.1),
        PoolStage(pool, 2),
        ConvStage([Kernel(rng.uniform(0.5, 1.5, (3, 3)) * rng.choice([-1, 1], (3, 3)))],
                  padding=pad2),
    ])


def _clip(box, h, w):
    t, b, left, r = box
    return (max(t, 0), min(b, h - 1), max(left, 0), min(r, w - 1))


@pytest.mark.parametrize("pad2", [0, 1])
def test_receptive_field_by_hand(pad2):
    img = np.random.default_rng(3).random((12, 12, 1))
    res = run(img, _rf_pipeline(pad2=pad2))
    out_h = 4 if pad2 == 0 else 6
    assert res.output.shape == (1, out_h, out_h)
    for r in range(out_h):
        for c in range(out_h):
            # conv2 window on the pooled map, then pool 2x2 s2, then conv1 3x3 pad 1
            t2, l2 = r - pad2, c - pad2
            by_hand = {3: (r, r, c, c),
                       2: (t2, t2 + 2, l2, l2 + 2),
                       1: (2 * t2, 2 * t2 + 5, 2 * l2, 2 * l2 + 5),
                       0: (2 * t2, 2 * t2 + 5, 2 * l2, 2 * l2 + 5),
                       -1: (2 * t2 - 1, 2 * t2 + 6, 2 * l2 - 1, 2 * l2 + 6)}
            assert receptive_field(res, 3, r, c, clip=False) == by_hand
            sizes = {3: (out_h, out_h), 2: (6, 6), 1: (12, 12), 0: (12, 12), -1: (12, 12)}
            assert receptive_field(res, 3, r, c) == \
                {lv: _clip(box, *sizes[lv]) for lv, box in by_hand.items()}
    assert receptive_field(res, 3, 0, 0)[-1] == ((0, 6, 0, 6) if pad2 == 0 else (0, 4, 0, 4))


def _perturbation_masks(img, pipe, level=-1, eps=1.0):
    """changed[p_row, p_col] = (Ho, Wo) bool: outputs that change when pixel p changes.

    ``level`` >= 0 perturbs that level's maps (all of them at one position) and runs
    the remaining stages on them.
    """
    base_res = run(img, pipe)
    if level >= 0:
        src = base_res.level(level).maps.transpose(1, 2, 0).copy()
        rest = Pipeline(pipe.stages[level + 1:])
    else:
        src, rest = np.array(img, np.float32), pipe
    base = run(src, rest)
    outs = {}
    h, w = src.shape[:2]
    for pr in range(h):
        for pc in range(w):
            x = src.copy()
            x[pr, pc] += eps
            r = run(x, rest)
            outs[pr, pc] = [np.any(a.maps != b.maps, axis=0)
                            for a, b in zip(r.stages, base.stages)]
    return base_res, outs


def _in_box(box, r, c):
    return box[0] <= r <= box[1] and box[2] <= c <= box[3]


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_receptive_field_empirically(pool):
    img = np.random.default_rng(4).random((12, 12, 1))
    pipe = _rf_pipeline(pool=pool, pad2=1)
    res, changed = _perturbation_masks(img, pipe)
    oh, ow = res.output.shape[1:]
    for r in range(oh):
        for c in range(ow):
            raw = receptive_field(res, 3, r, c, clip=False)[-1]
            clipped = receptive_field(res, 3, r, c)[-1]
            for (pr, pc), masks in changed.items():
                did = masks[-1][r, c]
                if not _in_box(raw, pr, pc):
                    assert not did, f"pixel {pr, pc} outside {raw} changed output {r, c}"
                elif pool == "avg":
                    assert _in_box(clipped, pr, pc)
                    assert did, f"pixel {pr, pc} inside {raw} left output {r, c} unchanged"


def test_receptive_field_random_pipelines_outside_never_matters():
    rng = np.random.default_rng(5)
    for trial in range(12):
        h, w = int(rng.integers(6, 10)), int(rng.integers(6, 10))
        img = rng.normal(size=(h, w, 1)).astype(np.float32)
        shape = (1, h, w)
        stages = []
        for _ in range(3):
            for _attempt in range(20):
                st = _random_stage(rng, shape[0], shape[1:])
                if st is None or (isinstance(st, ConvStage) and
                                  st.padding_mode not in ("zeros", "constant")):
                    continue
                try:
                    shape = stage_output_shape(len(stages), st, shape)
                except PipelineError:
                    continue
                stages.append(st)
                break
        pipe = Pipeline(stages)
        res, changed = _perturbation_masks(img, pipe)
        last = len(res.stages) - 1
        oh, ow = res.output.shape[1:]
        for r in range(oh):
            for c in range(ow):
                raw = receptive_field(res, last, r, c, clip=False)[-1]
                for (pr, pc), masks in changed.items():
                    if masks[-1][r, c]:
                        assert _in_box(raw, pr, pc), \
                            f"trial {trial} {pipe.to_json()}: pixel {pr, pc} outside {raw} " \
                            f"changed output {r, c}"


@pytest.mark.parametrize("padding, mode", [(1, "circular"), ("full", "reflect"),
                                           (3, "replicate")])
def test_receptive_field_includes_pixels_read_through_non_zero_padding(padding, mode):
    # Circular padding wraps the far edge in, reflect padding mirrors pixels that lie
    # beyond the window's span, replicate copies the edge into windows lying fully in the
    # padding: those pixels feed the output, so they belong to its receptive field.
    img = np.random.default_rng(6).random((6, 6, 1))
    pipe = Pipeline([ConvStage([Kernel(np.random.default_rng(7).uniform(1, 2, (3, 3)))],
                               padding=padding, padding_mode=mode)])
    res, changed = _perturbation_masks(img, pipe)
    oh, ow = res.output.shape[1:]
    missed = []
    for r in range(oh):
        for c in range(ow):
            box = receptive_field(res, 0, r, c)[-1]
            for (pr, pc), masks in changed.items():
                if masks[-1][r, c] and not _in_box(box, pr, pc):
                    missed.append(((r, c), box, (pr, pc)))
    assert not missed, f"{len(missed)} (output, box, pixel) misses, e.g. {missed[:3]}"


# ------------------------------------------------------------------- projection


def _project_pipeline(rng):
    return Pipeline([
        ConvStage([Kernel(rng.normal(size=(3, 3))), Kernel(rng.normal(size=(3, 3)))],
                  stride=1, padding=1),
        ActivationStage("leaky_relu", 0.1),
        PoolStage("avg", 3, stride=2, padding=1, ceil_mode=True),
        ConvStage([Kernel(rng.normal(size=(2, 3)))], mode="sum", stride=(1, 2),
                  padding=((1, 0), (0, 1))),
        PoolStage("l2", 2, stride=3),  # stride > window: gaps
    ])


def test_project_forward_boxes_are_exactly_the_changed_outputs():
    rng = np.random.default_rng(8)
    pipe = _project_pipeline(rng)
    img = rng.normal(size=(11, 13, 2)).astype(np.float32)
    res, changed = _perturbation_masks(img, pipe)
    n = len(res.stages)
    gaps_seen = False
    for (pr, pc), masks in changed.items():
        boxes = project(res, -1, pr, pc)
        assert boxes[-1] == (pr, pr, pc, pc)
        for lv in range(n):
            got = masks[lv]
            if lv not in boxes:
                assert not got.any(), f"pixel {pr, pc}: level {lv} changed but no box"
                gaps_seen = True
                continue
            t, b, left, r = boxes[lv]
            expected = np.zeros_like(got)
            expected[t:b + 1, left:r + 1] = True
            np.testing.assert_array_equal(got, expected,
                                          err_msg=f"pixel {pr, pc} level {lv} box {boxes[lv]}")
    assert gaps_seen  # the stride-3 pool has input cells no window reads


def test_project_from_an_intermediate_level():
    rng = np.random.default_rng(9)
    pipe = _project_pipeline(rng)
    img = rng.normal(size=(11, 13, 2)).astype(np.float32)
    level = 2
    res, changed = _perturbation_masks(img, pipe, level=level)
    for (pr, pc), masks in changed.items():
        boxes = project(res, level, pr, pc)
        rf = receptive_field(res, level, pr, pc)
        for lv in range(-1, level + 1):
            assert boxes[lv] == rf[lv]
        for k, lv in enumerate(range(level + 1, len(res.stages))):
            got = masks[k]
            if lv not in boxes:
                assert not got.any()
                continue
            t, b, left, r = boxes[lv]
            expected = np.zeros_like(got)
            expected[t:b + 1, left:r + 1] = True
            np.testing.assert_array_equal(got, expected, err_msg=f"{pr, pc} level {lv}")


def test_project_with_dilation_and_max_pool_contains_the_changed_outputs():
    rng = np.random.default_rng(10)
    pipe = Pipeline([ConvStage([Kernel(rng.normal(size=(3, 3)))], dilation=2, padding=2),
                     PoolStage("max", 2, stride=1),
                     ConvStage([Kernel(rng.normal(size=(2, 2)))], stride=2, padding="valid")])
    img = rng.normal(size=(9, 9, 1)).astype(np.float32)
    res, changed = _perturbation_masks(img, pipe)
    for (pr, pc), masks in changed.items():
        boxes = project(res, -1, pr, pc)
        for lv, got in enumerate(masks):
            rows, cols = np.nonzero(got)
            if rows.size == 0:
                continue
            assert lv in boxes
            t, b, left, r = boxes[lv]
            assert t <= rows.min() and rows.max() <= b and left <= cols.min() and \
                cols.max() <= r, f"pixel {pr, pc} level {lv}"
