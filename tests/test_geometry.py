"""Tests of core.geometry: output sizes, padding presets, formulas and their explanations.

The oracles here are independent of the code under test: hand-computed PyTorch
results (checked against torch 2.13 by hand, never imported by the suite) and a
brute-force count of window positions.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.core.geometry import (
    AxisGeometry,
    conv_geometry,
    explain_output_size,
    output_size,
    pair,
    pool_geometry,
    resolve_padding,
)

# --------------------------------------------------------------------------- helpers


def count_conv_windows(n, k, s, pb, pa, d=1):
    """Brute force: how many window starts i*s fit entirely in the padded axis."""
    span = d * (k - 1) + 1
    length = n + pb + pa
    return sum(1 for i in range(length + 1) if i * s + span <= length)


def count_pool_windows(n, k, s, p, d=1, ceil_mode=False):
    """Brute force of PyTorch's pooling rule along one axis.

    floor mode: windows that fit in the padded axis. ceil mode: keep adding windows
    while the previous one has not reached the end of the padded axis (so the last may
    hang off), but never start one inside the right padding.
    """
    if not ceil_mode:
        return count_conv_windows(n, k, s, p, p, d)
    span = d * (k - 1) + 1
    length = n + 2 * p
    count = 0
    for i in range(length + 1):
        start = i * s
        if start >= n + p:  # would start in the right padding
            break
        # stop once the previous window reached the end (for i = 0 the "previous" window
        # is the one at -s: a window larger than the input still gets one position when
        # the stride covers the shortfall, as in PyTorch: 1x1 input, k=2, s=2 -> 1x1)
        if (i - 1) * s + span >= length:
            break
        count += 1
    return count


def evaluate_formula(text: str) -> tuple[float, int]:
    """Evaluate 'X = <expr> = <out>' and return (value of expr, printed out)."""
    _, expr, out = text.split(" = ")
    assert re.fullmatch(r"[0-9 ()+\-*/a-z]+", expr), text
    value = eval(expr, {"__builtins__": {}}, {"floor": math.floor, "ceil": math.ceil})  # noqa: S307
    return value, int(out)


def params(**kw) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


# ------------------------------------------------------------------ reference vectors


def test_reference_256_example_is_86():
    assert output_size((256, 256), 3, 3, 1) == (86, 86)


def test_reference_256_example_explained():
    assert explain_output_size((256, 256), 3, 3, 1) == "D = 1 + (256 - 3 + 2*1) / 3 = 86"


def test_axis_geometry_formula_docstring():
    g = AxisGeometry(256, 3, 3, 1, 1, out=86)
    assert g.formula() == "D = 1 + (256 - 3 + 2*1) / 3 = 86"
    assert g.formula("W") == "W = 1 + (256 - 3 + 2*1) / 3 = 86"


def test_axis_geometry_properties():
    g = conv_geometry((8, 8), 3, stride=2)[0]
    assert (g.span, g.numerator, g.out) == (3, 5, 3)
    # windows start at 0, 2, 4 and end at 7 (exclusive): cell 7 is never visited
    assert g.unvisited == 1
    g = conv_geometry((9, 9), 3, stride=2, dilation=2)[0]
    assert (g.span, g.numerator, g.out) == (5, 4, 3)
    assert g.unvisited == 0


@pytest.mark.parametrize("in_size, k, s, p, d, expected", [
    (28, 3, 1, 0, 1, 26),
    (28, 3, 1, 1, 1, 28),
    (28, 5, 1, 2, 1, 28),
    (7, 3, 2, 0, 1, 3),
    (8, 3, 2, 0, 1, 3),      # (8-3)/2 = 2.5 floors
    (10, 3, 1, 0, 2, 6),     # span 5
    (5, 5, 1, 0, 1, 1),
    (5, 1, 1, 0, 1, 5),
    (5, 1, 3, 0, 1, 2),
    (3, 5, 1, 1, 1, 1),      # kernel larger than the image, padding makes it fit
    (1, 3, 1, 1, 1, 1),
    (224, 7, 2, 3, 1, 112),  # ResNet stem
])
def test_conv_output_size_table(in_size, k, s, p, d, expected):
    assert output_size((in_size, in_size), k, s, p, d) == (expected, expected)


def test_conv_output_size_non_square_everything():
    # H: (10 + 2 - 2*(3-1) - 1)/1 + 1 = 8 ; W: (7 + 0 - 1*(2-1) - 1)/2 + 1 = 3
    assert output_size((10, 7), (3, 2), (1, 2), (1, 0), (2, 1)) == (8, 3)


def test_conv_stride_defaults_to_one_and_pool_stride_to_window():
    assert output_size((8, 8), 2) == (7, 7)
    assert output_size((8, 8), 2, kind="pool") == (4, 4)
    assert output_size((28, 28), 2, kind="pool") == (14, 14)
    assert output_size((9, 6), (3, 2), kind="pool") == (3, 3)


# ------------------------------------------------------------------ padding presets


def test_resolve_padding_forms():
    assert resolve_padding(0, 3) == ((0, 0), (0, 0))
    assert resolve_padding(2, 3) == ((2, 2), (2, 2))
    assert resolve_padding((1, 2), 3) == ((1, 1), (2, 2))
    assert resolve_padding([1, 2], 3) == ((1, 1), (2, 2))
    assert resolve_padding(((1, 2), (3, 0)), 3) == ((1, 2), (3, 0))
    assert resolve_padding(np.int64(1), 3) == ((1, 1), (1, 1))


def test_resolve_padding_valid_and_full():
    assert resolve_padding("valid", (3, 5)) == ((0, 0), (0, 0))
    assert resolve_padding("full", (3, 5)) == ((2, 2), (4, 4))
    assert resolve_padding("full", (3, 2), dilation=(2, 3)) == ((4, 4), (3, 3))
    assert resolve_padding("VALID", 3) == ((0, 0), (0, 0))


@pytest.mark.parametrize("k, d, expected", [
    (1, 1, (0, 0)),
    (3, 1, (1, 1)),
    (5, 1, (2, 2)),
    (2, 1, (0, 1)),   # odd extra cell at the end (bottom/right), as PyTorch/TensorFlow
    (4, 1, (1, 2)),
    (3, 2, (2, 2)),   # total d*(k-1) = 4
    (2, 3, (1, 2)),   # total 3
])
def test_resolve_padding_same_stride_one(k, d, expected):
    assert resolve_padding("same", k, 1, d) == (expected, expected)


@pytest.mark.parametrize("n, k, s", [(n, k, s) for n in (1, 2, 5, 7, 8, 13)
                                     for k in (1, 2, 3, 4) for s in (1, 2, 3)])
def test_same_padding_gives_ceil_in_over_stride(n, k, s):
    """TensorFlow's 'same': out = ceil(in / stride); at stride 1 that is the input size."""
    assert output_size((n, n), k, s, "same") == (-(-n // s),) * 2
    (pt, pb), _ = resolve_padding("same", k, s, 1, (n, n))
    assert pt <= pb <= pt + 1  # the odd cell goes to the end


def test_full_padding_output_is_in_plus_k_minus_one():
    assert output_size((5, 6), (3, 2), 1, "full") == (7, 7)
    assert output_size((5, 6), (3, 2), 1, "full", (2, 1)) == (9, 7)


def test_same_with_stride_needs_input_size():
    with pytest.raises(ValueError, match="input size"):
        resolve_padding("same", 3, 2)


# ------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("in_size, k, s, p, ceil, expected", [
    (5, 2, 2, 0, True, 3),    # ceil lets the last window hang off
    (5, 2, 2, 0, False, 2),
    (4, 2, 2, 1, True, 3),    # (4+2-2)/2 + 1 = 3 exactly
    (5, 3, 2, 1, True, 3),    # (5+2-3)/2 + 1 = 3 exactly
    (6, 3, 3, 1, True, 3),    # ceil(5/3) + 1 = 3, last starts at padded 6 < 6+1: kept
    (6, 3, 3, 1, False, 2),
    # the rule "a window may not start in the right padding" removes one:
    (5, 2, 2, 1, True, 3),    # ceil(5/2)+1 = 4, but window 3 would start at padded 6 >= 5+1
    (3, 2, 2, 1, True, 2),    # ceil(3/2)+1 = 3, but window 2 would start at padded 4 >= 3+1
    (28, 2, 2, 0, False, 14),
    (8, 2, 2, 0, False, 4),
    (13, 3, 2, 0, True, 6),   # overlapping pooling, exact
    (14, 3, 2, 0, True, 7),   # (14-3)/2 = 5.5 -> ceil 6 -> 7; starts at 12 < 14
    (14, 3, 2, 0, False, 6),
    (1, 2, 2, 0, True, 1),    # ceil((1-2)/2) + 1 = 1: one window hanging off (PyTorch too)
    (2, 3, 3, 0, True, 1),
])
def test_pool_output_size_table(in_size, k, s, p, ceil, expected):
    assert output_size((in_size, in_size), k, s, p, kind="pool", ceil_mode=ceil) == (
        expected, expected)
    assert count_pool_windows(in_size, k, s, p, ceil_mode=ceil) == expected


def test_ceil_rule_drops_a_window_that_would_start_in_padding():
    # Without the rule: 1 + ceil((5 + 2 - 2) / 2) = 4. With it, 3 (PyTorch agrees).
    g = pool_geometry((5, 5), 2, 2, 1, ceil_mode=True)[0]
    assert -(-g.numerator // g.stride) + 1 == 4
    assert g.out == 3


def test_explain_ceil_drop_is_consistent():
    """The printed arithmetic must equal the printed result, or the note must say why.

    AxisGeometry.note() promises to mention "ceil-mode drops".
    """
    g = pool_geometry((5, 5), 2, 2, 1, ceil_mode=True)[0]
    value, out = evaluate_formula(g.formula())
    assert out == 3
    assert value == out or g.note(), (
        f"formula {g.formula()!r} evaluates to {value} but says {out}, and the note is empty")
    assert "4 windows" in g.note() and "dropped" in g.note()
    text = explain_output_size((5, 5), 2, 2, 1, kind="pool", ceil_mode=True)
    assert text.startswith("D = 1 + ceil((5 - 2 + 2*1) / 2) = 3 (")
    assert "dropped" in text
    # no drop, no such note
    assert "dropped" not in pool_geometry((6, 6), 3, 3, 1, ceil_mode=True)[0].note()


def test_pool_padding_limit_is_half_the_undilated_window():
    # PyTorch checks pad <= k // 2 with the undilated kernel size.
    pool_geometry((8, 8), 3, 1, 1)
    pool_geometry((8, 8), 4, 1, 2)
    pool_geometry((8, 8), 2, 1, 1, dilation=3)
    with pytest.raises(ValueError, match=r"padding 2 > 3//2 = 1"):
        pool_geometry((8, 8), 3, 1, 2)
    with pytest.raises(ValueError, match=r"cols"):
        pool_geometry((8, 8), (4, 2), 1, (2, 2))
    with pytest.raises(ValueError):
        pool_geometry((8, 8), 3, 1, 2, dilation=2)


# --------------------------------------------------------------------- explanations


def test_explain_floor_names_the_unvisited_cells():
    text = explain_output_size((8, 8), 3, 2)
    assert text.startswith("D = 1 + floor((8 - 3) / 2) = 3")
    assert "5/2 is not whole" in text
    assert "last 1 input cell(s) are never visited" in text


def test_explain_exact_division_has_no_note():
    assert explain_output_size((7, 7), 3, 2) == "D = 1 + (7 - 3) / 2 = 3"
    assert explain_output_size((5, 5), 3, 1, 1) == "D = 1 + (5 - 3 + 2*1) = 5"


def test_explain_dilation_and_asymmetric_padding():
    assert explain_output_size((10, 10), 3, 1, 0, 2) == "D = 1 + (10 - (2*(3 - 1) + 1)) = 6"
    # 'same' with an even kernel pads 0 before and 1 after
    assert explain_output_size((6, 6), 2, 1, "same") == "D = 1 + (6 - 2 + 0 + 1) = 6"


def test_explain_ceil_mode_pool():
    assert explain_output_size((5, 5), 2, kind="pool", ceil_mode=True) == (
        "D = 1 + ceil((5 - 2) / 2) = 3")
    assert explain_output_size((5, 5), 2, kind="pool").startswith(
        "D = 1 + floor((5 - 2) / 2) = 2")


def test_explain_different_axes_names_both():
    text = explain_output_size((256, 100), 3, 3, 1)
    assert "86" in text and "100" in text and "34" in text
    h, w = text.split("; ", 1)
    assert h.startswith("H") and "256" in h
    assert "W" in w and "100" in w


def test_explain_rejects_unknown_kind():
    # output_size raises for an unknown kind; explain_output_size must too (it must not
    # silently explain a pooling geometry).
    with pytest.raises(ValueError, match="kind"):
        output_size((5, 5), 3, kind="foo")
    with pytest.raises(ValueError, match="kind"):
        explain_output_size((5, 5), 3, kind="foo")


# ------------------------------------------------------------------- property tests


@st.composite
def conv_axes(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 7))
    s = draw(st.integers(1, 4))
    d = draw(st.integers(1, 3))
    pb = draw(st.integers(0, 4))
    pa = draw(st.integers(0, 4))
    return n, k, s, d, pb, pa


@settings(deadline=None, max_examples=200)
@given(conv_axes(), conv_axes())
def test_conv_output_size_equals_brute_force_count(ax_h, ax_w):
    (nh, kh, sh, dh, pth, pbh), (nw, kw, sw, dw, plw, prw) = ax_h, ax_w
    expected = (count_conv_windows(nh, kh, sh, pth, pbh, dh),
                count_conv_windows(nw, kw, sw, plw, prw, dw))
    args = ((nh, nw), (kh, kw), (sh, sw), ((pth, pbh), (plw, prw)), (dh, dw))
    if min(expected) <= 0:
        with pytest.raises(ValueError, match="empty output"):
            output_size(*args)
        return
    assert output_size(*args) == expected, params(args=args)
    for g, (n, k, s, d, pb, pa) in zip(conv_geometry(*args), (ax_h, ax_w)):
        # PyTorch's formula, written out independently
        assert g.out == (n + pb + pa - d * (k - 1) - 1) // s + 1
        value, out = evaluate_formula(g.formula())
        assert math.floor(value) == out == g.out, g.formula()
        if not (pb == pa and d == 1):
            continue
        # teaching form D = 1 + (W - K + 2P) / S, exact when the division is whole
        if (n - k + 2 * pb) % s == 0:
            assert value == out


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4), st.data(),
       st.integers(1, 2), st.booleans())
def test_pool_output_size_equals_brute_force_count(n, k, s, data, d, ceil):
    p = data.draw(st.integers(0, k // 2))
    expected = count_pool_windows(n, k, s, p, d, ceil)
    if expected <= 0:
        with pytest.raises(ValueError, match="empty output"):
            output_size((n, n), k, s, p, d, kind="pool", ceil_mode=ceil)
        return
    assert output_size((n, n), k, s, p, d, kind="pool", ceil_mode=ceil) == (expected,) * 2, (
        params(n=n, k=k, s=s, p=p, d=d, ceil=ceil))
    g = pool_geometry((n, n), k, s, p, d, ceil)[0]
    value, out = evaluate_formula(g.formula())
    dropped = ceil and (-(-g.numerator // s)) * s >= n + p
    rounded = math.ceil(value) if ceil else math.floor(value)
    if dropped:  # the printed arithmetic gives one more window: the note must say why
        assert rounded == out + 1 and "dropped" in g.note(), (g.formula(), g.note())
    else:
        assert rounded == out and "dropped" not in g.note(), (g.formula(), g.note())


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [
    lambda **kw: output_size((8, 8), kw.pop("k", 3), **kw),
    lambda **kw: explain_output_size((8, 8), kw.pop("k", 3), **kw),
    lambda **kw: conv_geometry((8, 8), kw.pop("k", 3), **kw),
    lambda **kw: pool_geometry((8, 8), kw.pop("k", 3), **kw),
    lambda **kw: output_size((8, 8), kw.pop("k", 3), kind="pool", **kw),
], ids=["output_size", "explain_output_size", "conv_geometry", "pool_geometry", "pool_size"])
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(stride=0), ValueError, "stride must be >= 1, got 0"),
    (dict(stride=(1, 0)), ValueError, r"stride\[1\] must be >= 1"),
    (dict(stride=-2), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding must be >= 0, got -1"),
    (dict(dilation=0), ValueError, "dilation must be >= 1, got 0"),
    (dict(stride=1.5), TypeError, "stride must be an integer, got 1.5"),
    (dict(stride=True), TypeError, "stride must be an integer, got True"),
    (dict(dilation=False), TypeError, "dilation"),
    (dict(k=0), ValueError, "kernel_size must be >= 1"),
    (dict(k=(3, 3, 3)), ValueError, "kernel_size"),
    (dict(stride=(1, 2, 3)), ValueError, "stride"),
])
def test_bad_geometry_arguments(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(**dict(kwargs))


@pytest.mark.parametrize("in_hw", [(0, 5), (-1, 5), (5, 0)])
def test_bad_input_size(in_hw):
    with pytest.raises(ValueError, match="input size"):
        output_size(in_hw, 3)


def test_kernel_larger_than_input_shows_formula_with_numbers():
    with pytest.raises(ValueError) as err:
        output_size((3, 8), 5)
    msg = str(err.value)
    assert "3x8" in msg and "empty output" in msg
    assert "out = 1 + (3 - 5) = -1" in msg
    assert "width" not in msg  # only the failing axis is explained
    with pytest.raises(ValueError, match=r"out = 1 \+ floor\(\(5 - 7\) / 7\) = 0"):
        pool_geometry((5, 5), 7)
    with pytest.raises(ValueError, match=r"= "):
        conv_geometry((4, 4), 3, dilation=2)


@pytest.mark.parametrize("padding, exc", [
    ("foo", ValueError),
    ("", ValueError),
    (((1, 2, 3), (0, 0)), ValueError),
    (((1, -2), (0, 0)), ValueError),
    ((1,), ValueError),
    ((1, 2, 3), ValueError),
    (1.5, TypeError),
    (None, TypeError),
    (True, TypeError),
])
def test_bad_padding_specs(padding, exc):
    with pytest.raises(exc, match="padding"):
        resolve_padding(padding, 3)
    with pytest.raises(exc, match="padding"):
        conv_geometry((8, 8), 3, 1, padding)


def test_unknown_padding_string_lists_the_choices():
    with pytest.raises(ValueError, match=r"'valid', 'same', 'full'.*'foo'"):
        output_size((8, 8), 3, padding="foo")


def test_pool_rejects_string_and_nested_padding():
    with pytest.raises(TypeError):
        pool_geometry((8, 8), 3, 1, "same")
    with pytest.raises(TypeError):
        pool_geometry((8, 8), 3, 1, ((1, 1), (1, 1)))


def test_pair():
    assert pair(3, "k") == (3, 3)
    assert pair((2, 5), "k") == (2, 5)
    assert pair(np.int32(2), "k") == (2, 2)
    assert pair(0, "p", minimum=0) == (0, 0)
    with pytest.raises(ValueError, match="k must be an int or a"):
        pair((1, 2, 3), "k")
    with pytest.raises(TypeError):
        pair(2.0, "k")


def test_ceil_mode_is_refused_for_a_convolution():
    """Review regression: output_size(kind="conv", ceil_mode=True) ignored the flag."""
    with pytest.raises(ValueError, match="pooling only"):
        output_size((10, 10), 3, 2, kind="conv", ceil_mode=True)
    with pytest.raises(TypeError, match="ceil_mode"):
        output_size((10, 10), 3, 2, kind="pool", ceil_mode="yes")
    assert output_size((10, 10), 3, 2, kind="pool", ceil_mode=True) == (5, 5)
