"""Viewer numbers computed in core: map statistics, previews and colour-bar ranges."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.core.display import (PREVIEW_MAX_SIDE, SCALES, MapStats, is_signed, map_stats, preview,
                          preview_factor, value_ranges)


# -------------------------------------------------------------------------- stats


def test_map_stats_plain():
    m = np.array([[1, -2], [4, 0.5]], np.float32)
    s = map_stats(m)
    assert (s.min, s.max) == (-2.0, 4.0)
    assert s.mean == pytest.approx(0.875)
    assert s.text() == "min -2 · max 4 · mean 0.875"


def test_map_stats_ignore_nan_and_inf():
    m = np.array([[1.0, np.nan], [np.inf, -2.0], [-np.inf, 4.0]], np.float32)
    s = map_stats(m)
    assert (s.min, s.max) == (-2.0, 4.0)
    assert s.mean == pytest.approx(1.0)
    only_inf = map_stats(np.array([np.inf, -np.inf, 5.0]))
    assert (only_inf.min, only_inf.max, only_inf.mean) == (5.0, 5.0, 5.0)
    for bad in (np.full((2, 2), np.nan), np.array([np.inf, -np.inf]), np.array([np.nan, np.inf])):
        s = map_stats(bad)
        assert np.isnan(s.min) and np.isnan(s.max) and np.isnan(s.mean)


def test_map_stats_mean_is_accumulated_in_float64():
    m = np.full((1000, 1000), 0.1, np.float32)
    m[0, 0] = 1e4
    expected = (float(np.float32(0.1)) * (10 ** 6 - 1) + 1e4) / 10 ** 6
    assert map_stats(m).mean == pytest.approx(expected, rel=1e-12)


def test_stats_text_formats():
    assert MapStats(0.0, 123.456, 1e-5).text() == "min 0 · max 123.5 · mean 1.00e-05"
    assert MapStats(-0.00123, 2e4, 0.5).text() == "min -0.00123 · max 2.00e+04 · mean 0.5"


# ------------------------------------------------------------------------ preview


def _block_mean_loop(m, f):
    h, w = m.shape
    oh, ow = -(-h // f), -(-w // f)
    out = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = m[i * f:(i + 1) * f, j * f:(j + 1) * f].astype(np.float64).mean()
    return out


@pytest.mark.parametrize("shape, factor", [
    ((8, 8), 2), ((9, 8), 2), ((8, 9), 2), ((9, 11), 2), ((10, 10), 3), ((10, 11), 4),
    ((7, 13), 5), ((3, 3), 3), ((5, 5), 5), ((6, 17), 16),
    # maps thinner than one block along an axis (a 3 x 5001 map has factor 5)
    ((3, 10), 4), ((10, 3), 4), ((3, 3), 4), ((2, 9), 3), ((3, 8), 4), ((8, 3), 4),
])
def test_preview_block_average_matches_loop(shape, factor):
    m = np.random.default_rng(sum(shape) * factor).normal(size=shape).astype(np.float32)
    p = preview(m, factor)
    expected = _block_mean_loop(m, factor)
    assert p.shape == expected.shape
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_preview_of_a_long_thin_map():
    m = np.random.default_rng(1).random((3, 5001)).astype(np.float32)
    f = preview_factor(m.shape)
    assert f == 5
    p = preview(m, f)
    assert p.shape == (1, 1001)
    np.testing.assert_allclose(p, _block_mean_loop(m, f), rtol=1e-5)


def test_preview_keeps_one_pixel_edges_visible():
    m = np.zeros((64, 64), np.float32)
    m[:, 33] = 1.0  # a one-pixel line that subsampling by 4 would drop
    p = preview(m, 4)
    assert p[:, 8].tolist() == [0.25] * 16
    assert p.sum() == pytest.approx(m.sum() / 16)


def test_preview_factor_one_returns_the_map():
    m = np.ones((5, 4), np.float32)
    assert preview(m, 1) is m


def test_preview_factor():
    assert preview_factor((1024, 1024)) == 1
    assert preview_factor((1025, 10)) == 2
    assert preview_factor((3, 1000, 3000)) == 3
    assert preview_factor((4096, 4097)) == 5
    assert PREVIEW_MAX_SIDE == 1024
    for n in range(1, 200):
        for max_side in (1, 7, 10, 64):
            f = preview_factor((n, 1), max_side)
            assert -(-n // f) <= max_side  # the preview fits
            assert f == 1 or -(-n // (f - 1)) > max_side  # and is the smallest such factor
            assert preview_factor((1, n), max_side) == f


# ------------------------------------------------------------------------- ranges


def S(lo, hi, mean=None):
    return MapStats(float(lo), float(hi), float((lo + hi) / 2 if mean is None else mean))


def _levels():
    return [
        [S(0.0, 0.9), S(0.1, 1.0), S(0.2, 0.6)],    # input, inside [0, 1]
        [S(-2.0, 1.0), S(0.0, 3.0)],                 # signed stage
        [S(0.5, 5.0), S(1.0, 2.0), S(0.0, 0.0)],    # non-negative stage, one constant map
    ]


def test_value_ranges_stage_scale():
    r = value_ranges(_levels(), "stage")
    assert r == value_ranges(_levels())  # the default
    assert r[0] == [(0.0, 1.0)] * 3
    assert r[1] == [(-3.0, 3.0)] * 2  # symmetric: max(|-2|, |3|)
    assert r[2] == [(0.0, 5.0)] * 3


def test_value_ranges_map_scale():
    r = value_ranges(_levels(), "map")
    assert r[1] == [(-2.0, 2.0), (0.0, 3.0)]
    assert r[2] == [(0.5, 5.0), (1.0, 2.0), (0.0, 1.0)]  # a constant 0 map gets [0, 1]


def test_value_ranges_global_scale():
    r = value_ranges(_levels(), "global")
    assert r[0] == [(0.0, 1.0)] * 3
    assert r[1] == [(-5.0, 5.0)] * 2
    assert r[2] == [(-5.0, 5.0)] * 3


@pytest.mark.parametrize("scale", SCALES)
def test_input_level_is_shown_as_unit_range_in_every_scale(scale):
    # value_ranges' docstring: the input level is "always shown as [0, 1] when it lies
    # within it".
    r = value_ranges(_levels(), scale)
    assert r[0] == [(0.0, 1.0)] * 3


@pytest.mark.parametrize("scale", SCALES)
def test_signed_maps_get_symmetric_ranges(scale):
    levels = [[S(0, 1)], [S(-0.5, 4.0), S(-7.0, -1.0)], [S(-1e-3, 1e-4)]]
    for lv, maps in zip(value_ranges(levels, scale)[1:], levels[1:]):
        for (lo, hi), s in zip(lv, maps):
            assert lo == -hi and hi > 0
            assert lo <= s.min and s.max <= hi
    r = value_ranges(levels, "map")
    assert r[1] == [(-4.0, 4.0), (-7.0, 7.0)]
    assert r[2] == [(-1e-3, 1e-3)]


def test_input_outside_unit_range_is_not_forced_to_it():
    levels = [[S(-0.5, 0.25), S(0.0, 2.0)], [S(0, 1)]]
    r = value_ranges(levels, "stage")
    assert r[0] == [(-2.0, 2.0)] * 2
    r = value_ranges(levels, "global")
    assert r[0] == [(-2.0, 2.0)] * 2 and r[1] == [(0.0, 1.0)]


def test_constant_and_non_finite_maps():
    nan = MapStats(float("nan"), float("nan"), float("nan"))
    levels = [[S(0, 1)], [nan, nan], [S(5, 5)], [S(-3, -3)], [nan, S(2, 4)]]
    r = value_ranges(levels, "stage")
    assert r[1] == [(0.0, 1.0)] * 2  # nothing finite: a harmless default
    assert r[2] == [(0.0, 5.0)]
    assert r[3] == [(-3.0, 3.0)]
    assert r[4] == [(2.0, 4.0)] * 2  # the NaN map does not poison the level
    g = value_ranges(levels, "global")
    assert g[1] == g[4] == [(-5.0, 5.0)] * 2
    # every range has positive width (a colour bar can divide by it)
    for scale in SCALES:
        for lv in value_ranges(levels, scale):
            for lo, hi in lv:
                assert hi > lo


def test_value_ranges_shape_and_errors():
    levels = _levels()
    for scale in SCALES:
        r = value_ranges(levels, scale)
        assert [len(x) for x in r] == [len(x) for x in levels]
    assert value_ranges([[S(0, 1)]], "global") == [[(0.0, 1.0)]]
    with pytest.raises(ValueError, match="'linear'"):
        value_ranges(levels, "linear")


def test_is_signed():
    assert is_signed([S(0, 1), S(-1, 0)])
    assert not is_signed([S(0, 1), S(2, 3)])
    assert not is_signed([MapStats(float("nan"), float("nan"), float("nan"))])


# ------------------------------------------------------------- clipped signed ranges


@pytest.mark.parametrize("scale", ["stage", "map", "global"])
def test_clipping_never_uncentres_a_signed_map(scale):
    """Issue 11.5: 'Clip 1 %' trimmed the few negatives of a signed map (1st percentile
    0) and the range became 0..0.8, so white (the diverging map's centre) sat at 0.4."""
    rng = np.random.default_rng(0)
    m = rng.uniform(0, 0.8, (100, 100)).astype(np.float32)
    m[0, :5] = -0.3  # 0.05 % negatives: below the 1st percentile
    st = map_stats(m)
    assert st.p_low >= 0 > st.min
    lo, hi = value_ranges([[S(0, 1)], [st]], scale, robust=True)[1][0]
    assert lo == -hi and hi == pytest.approx(st.p_high)


def test_colour_groups_follow_per_channel_stages():
    from convscope.core.display import colour_groups
    from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, PoolStage, run
    img = np.random.default_rng(1).random((12, 10, 3)).astype(np.float32)
    k1, k2 = Kernel(np.eye(3), name="a"), Kernel(np.ones((3, 3)), name="b")
    pipe = Pipeline([ConvStage([k1, k2], mode="per_channel", padding="same"),
                     ActivationStage("relu"), PoolStage(),
                     ConvStage([k1], mode="sum", padding="same"), ActivationStage("relu")])
    res = run(img, pipe)
    groups = colour_groups(res)
    assert groups[0] == [(0, 1, 2)]
    for g in groups[1:4]:  # R*a, R*b, G*a, G*b, B*a, B*b
        assert g == [(0, 2, 4), (1, 3, 5)]
        assert [res.stages[0].labels[i] for i in g[1]] == ["R * b", "G * b", "B * b"]
    assert groups[4] == [] and groups[5] == []          # summed over channels: no colours
    gray = run(img[:, :, :1], Pipeline([ActivationStage("relu")]))
    assert colour_groups(gray) == [[], []]


def test_compose_rgb_clips_and_cell_labels_stay_short():
    from convscope.core.display import cell_label, compose_rgb
    r = np.array([[-1.0, 0.5]], np.float32)
    rgb = compose_rgb(r, r * 0 + 2, np.array([[np.nan, 0.25]], np.float32))
    np.testing.assert_array_equal(rgb, [[[0, 1, 0], [0.5, 1, 0.25]]])
    assert rgb.dtype == np.float32
    cases = {320.0: "320", -3.25: "-3.25", 0.125: "0.125", -1 / 3: "-0.33", 123456.0: "1e5",
             2.5e10: "2e10", float("nan"): "nan", float("-inf"): "-inf", 0.0: "0"}
    for v, text in cases.items():
        assert cell_label(v) == text, (v, cell_label(v))
        assert len(cell_label(v)) <= 5
