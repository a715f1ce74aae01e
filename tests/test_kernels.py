"""Tests of core.kernels: presets, parsing/formatting, normalisation, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from convscope.core.kernels import (
    PRESETS,
    KernelParseError,
    Preset,
    apply_divisor_offset,
    format_kernel,
    gaussian,
    gimp_normalise,
    is_separable,
    laplacian_of_gaussian,
    normalise_l1,
    normalise_sum,
    parse_kernel,
    preset,
    random_kernel,
    validate_kernel,
)

# REFERENCE.md test vector 1
IMAGE_5X5 = np.array([
    [105, 102, 100, 97, 96],
    [103, 99, 103, 101, 102],
    [101, 98, 104, 102, 100],
    [99, 101, 106, 104, 99],
    [104, 104, 104, 100, 98],
], dtype=float)

GAUSS_5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_well_formed(name):
    p = PRESETS[name]
    assert isinstance(p, Preset)
    assert p.name == name
    assert name.isidentifier() and name == name.lower()
    assert p.weights.dtype == np.float64 and p.weights.ndim == 2
    assert np.all(np.isfinite(p.weights))
    assert p.description.strip() and "\n" not in p.description
    assert p.label and p.display and p.category
    assert not p.weights.flags.writeable
    with pytest.raises(ValueError):
        p.weights[0, 0] = 1.0


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if "[" in p.display])
def test_display_parses_back_to_the_weights(name):
    p = PRESETS[name]
    np.testing.assert_array_equal(parse_kernel(p.display), p.weights)
    if p.divisor != 1:  # weights * divisor is the traditional integer form
        np.testing.assert_allclose(p.weights * p.divisor, np.rint(p.weights * p.divisor),
                                   atol=1e-12)


def test_preset_offsets_follow_gimp_normalise():
    for p in PRESETS.values():
        assert p.offset == gimp_normalise(p.weights)[1]


def test_preset_categories_and_sums():
    cats = {p.category for p in PRESETS.values()}
    assert {"identity", "blur", "sharpen", "edge", "laplacian", "emboss", "random-init"} <= cats
    for p in PRESETS.values():
        if p.category in ("blur", "identity", "sharpen", "emboss"):
            assert p.weights.sum() == pytest.approx(1.0, abs=1e-9), p.name
        if p.category in ("edge", "laplacian"):
            assert abs(p.weights.sum()) < 1e-9, p.name


def test_required_presets_exist():
    required = [
        "identity", "identity_1x1", "box_blur_3x3", "box_blur_5x5", "box_blur_7x7",
        "gaussian_3x3", "gaussian_5x5", "gaussian_7x7", "sharpen", "outline", "laplacian",
        "laplacian_8", "log_5x5", "log_9x9", "sobel_left", "sobel_right", "sobel_top",
        "sobel_bottom", "prewitt_left", "prewitt_top", "scharr_left", "scharr_top", "emboss",
        "unsharp_mask_5x5", "motion_blur_5x5", "example_a", "example_b", "example_edge",
        "diff_horizontal_1x3", "diff_vertical_3x1", "roberts_cross_diagonal",
        "roberts_cross_antidiagonal",
    ]
    assert set(required) <= set(PRESETS)


def test_shapes_include_non_square_and_even():
    assert preset("identity_1x1").shape == (1, 1)
    assert preset("diff_horizontal_1x3").shape == (1, 3)
    assert preset("diff_vertical_3x1").shape == (3, 1)
    assert preset("roberts_cross_diagonal").shape == (2, 2)
    for n in (3, 5, 7):
        assert preset(f"box_blur_{n}x{n}").shape == (n, n)
        assert preset(f"gaussian_{n}x{n}").shape == (n, n)
    assert preset("log_9x9").shape == (9, 9)


def test_exact_classic_values():
    np.testing.assert_array_equal(preset("gaussian_3x3"),
                                  np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    np.testing.assert_array_equal(preset("gaussian_5x5"), GAUSS_5 / 256)
    b7 = np.array([1, 6, 15, 20, 15, 6, 1])
    np.testing.assert_array_equal(preset("gaussian_7x7"), np.outer(b7, b7) / 4096)
    np.testing.assert_array_equal(preset("box_blur_3x3"), np.ones((3, 3)) / 9)
    np.testing.assert_array_equal(preset("sharpen"), [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_array_equal(preset("outline"),
                                  [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(preset("laplacian"), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(preset("laplacian_8"), [[1, 1, 1], [1, -8, 1], [1, 1, 1]])
    np.testing.assert_array_equal(preset("log_5x5"), [
        [0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1],
        [0, -1, -2, -1, 0], [0, 0, -1, 0, 0]])
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(preset("sobel_left"), sobel)
    np.testing.assert_array_equal(preset("sobel_right"), -sobel)
    np.testing.assert_array_equal(preset("sobel_top"), [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    np.testing.assert_array_equal(preset("sobel_bottom"), -sobel.T)
    np.testing.assert_array_equal(preset("prewitt_left"), [[1, 0, -1]] * 3)
    np.testing.assert_array_equal(preset("prewitt_top"), np.array([[1, 0, -1]] * 3).T)
    scharr = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]])
    np.testing.assert_array_equal(preset("scharr_left"), scharr)
    np.testing.assert_array_equal(preset("scharr_top"), scharr.T)
    np.testing.assert_array_equal(preset("emboss"), [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(preset("motion_blur_5x5"), np.eye(5) / 5)
    np.testing.assert_array_equal(preset("example_a"),
                                  [[-0.2, 0.0, 0.5], [1.0, 0.3, -0.6], [0.0, 0.0, 0.8]])
    np.testing.assert_array_equal(preset("example_b"),
                                  [[0.0, 0.0, 0.0], [0.8, -0.5, 0.8], [0.0, -0.2, 0.0]])
    np.testing.assert_array_equal(preset("example_edge"),
                                  [[0.4, 0.2, -0.2], [-0.8, 0.0, 0.8], [0.0, -0.5, 0.2]])
    np.testing.assert_array_equal(preset("roberts_cross_diagonal"), [[1, 0], [0, -1]])
    np.testing.assert_array_equal(preset("diff_horizontal_1x3"), [[-1, 0, 1]])


def test_unsharp_mask_matches_reference():
    m = GAUSS_5.astype(float)
    m[2, 2] = -476
    expected = -1 / 256 * m
    w = preset("unsharp_mask_5x5")
    np.testing.assert_array_equal(w, expected)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    # image + (image - blur): identity * 2 - Gaussian
    np.testing.assert_allclose(w, 2 * np.pad([[1.0]], 2) - GAUSS_5 / 256, atol=1e-15)


def test_log_9x9_from_formula():
    w = preset("log_9x9")
    np.testing.assert_array_equal(w, laplacian_of_gaussian(9, 1.4))
    assert abs(w.sum()) < 1e-12
    assert w[4, 4] == w.max() > 0                    # positive centre, like log_5x5
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, ::-1])
    x = np.arange(9) - 4.0
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    raw = (1 - r2 / (2 * 1.4**2)) * np.exp(-r2 / (2 * 1.4**2)) / (math.pi * 1.4**4)
    np.testing.assert_allclose(w, raw - raw.mean(), rtol=0, atol=1e-15)


def test_sharpen_on_reference_vector_1():
    out = ndimage.correlate(IMAGE_5X5, preset("sharpen"), mode="constant", cval=0.0)
    assert out[0, 0] == 320


def test_reference_vector_2_window():
    window = np.array([[1, 6], [5, 3]])
    assert np.sum(window * parse_kernel("[[1, 2], [-1, 0]]")) == 8


def test_identity_preserves_image():
    for name in ("identity", "identity_1x1"):
        out = ndimage.correlate(IMAGE_5X5, preset(name), mode="constant")
        np.testing.assert_array_equal(out, IMAGE_5X5)


def test_sobel_left_sign_convention():
    img = np.zeros((5, 6))
    img[:, :3] = 1.0                                  # bright on the left
    out = ndimage.correlate(img, preset("sobel_left"), mode="nearest")
    assert out[2, 2] > 0 and out[2, 3] > 0
    out = ndimage.correlate(img, preset("sobel_right"), mode="nearest")
    assert out[2, 2] < 0


def test_preset_returns_writable_copy():
    w = preset("sharpen")
    assert w.flags.writeable and w.dtype == np.float64
    w[1, 1] = 0
    assert PRESETS["sharpen"].weights[1, 1] == 5


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'; known: identity, "):
        preset("nope")
    with pytest.raises(KeyError):
        preset("nope")


def test_gaussian_function():
    g = gaussian(5, 1.0)
    assert g.shape == (5, 5)
    assert g.sum() == pytest.approx(1.0)
    assert g[2, 2] == g.max()
    np.testing.assert_allclose(g, g.T)
    x = np.arange(5) - 2
    e = np.exp(-(x**2) / 2)
    np.testing.assert_allclose(g, np.outer(e, e) / np.outer(e, e).sum())
    assert gaussian(7).shape == (7, 7)                # default sigma
    with pytest.raises(ValueError, match="sigma"):
        gaussian(3, 0)
    with pytest.raises(ValueError, match="size"):
        gaussian(0, 1.0)


# --------------------------------------------------------------------------- parse_kernel


@pytest.mark.parametrize("text", [
    "[[1, 2], [3, 4]]",
    "[1 2; 3 4]",
    "1 2\n3 4",
    "1, 2; 3, 4",
    "1 2 ;\n 3 4\n\n",
    "[[1. 2.]\n [3. 4.]]",
    "array([[1., 2.],\n       [3., 4.]])",
    "np.array([[1, 2], [3, 4]])",
    "  [ 1 , 2 ; 3 , 4 ]  ",
])
def test_parse_forms(text):
    np.testing.assert_array_equal(parse_kernel(text), [[1, 2], [3, 4]])


def test_parse_3x3_plain():
    w = parse_kernel("1 2 1\n2 4 2\n1 2 1")
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_parse_number_forms_and_fractions():
    w = parse_kernel("1e-3 .5 -0.25\n1/16 -3/4 +2\n1E+2 5. 1 / 8")
    np.testing.assert_array_equal(w, [[1e-3, 0.5, -0.25], [1 / 16, -3 / 4, 2],
                                      [100, 5, 1 / 8]])
    np.testing.assert_array_equal(parse_kernel("\u22121 2"), [[-1, 2]])   # typographic minus


@pytest.mark.parametrize("text", [
    "[1 2 1; 2 4 2; 1 2 1] / 16",
    "[1 2 1; 2 4 2; 1 2 1]/16",
    "[[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 16",
    "1/16 * [1 2 1; 2 4 2; 1 2 1]",
    "0.0625*[1 2 1; 2 4 2; 1 2 1]",
    "[1 2 1; 2 4 2; 1 2 1] * 0.0625",
    "[1/16 2/16 1/16; 2/16 4/16 2/16; 1/16 2/16 1/16]",
])
def test_parse_overall_scale(text):
    np.testing.assert_array_equal(parse_kernel(text), preset("gaussian_3x3"))


def test_parse_negative_leading_scale():
    m = GAUSS_5.astype(float)
    m[2, 2] = -476
    text = "-1/256 * " + format_kernel(m, inline=True)
    np.testing.assert_array_equal(parse_kernel(text), preset("unsharp_mask_5x5"))


def test_parse_non_square_and_single():
    np.testing.assert_array_equal(parse_kernel("[1, 2, 3]"), [[1, 2, 3]])
    np.testing.assert_array_equal(parse_kernel("1\n2\n3"), [[1], [2], [3]])
    np.testing.assert_array_equal(parse_kernel("7"), [[7]])


@pytest.mark.parametrize("text, message, row, column", [
    ("1 2 3\n4 5 abc", "row 2, column 3: 'abc' is not a number", 2, 3),
    ("[1 2; 3 x4]", "row 2, column 2: 'x4' is not a number", 2, 2),
    ("1 2\n3 1/2/3", "row 2, column 2: '1/2/3' is not a number", 2, 2),
    ("nan 1", "row 1, column 1: 'nan' is not a finite number", 1, 1),
    ("1 2\n3 -inf", "row 2, column 2: '-inf' is not a finite number", 2, 2),
    ("1 1e400", "row 1, column 2: '1e400' is not a finite number", 1, 2),
    ("1 2\n3 1/0", "row 2, column 2: '1/0' divides by zero", 2, 2),
])
def test_parse_cell_errors(text, message, row, column):
    with pytest.raises(KernelParseError) as info:
        parse_kernel(text)
    assert str(info.value) == message
    assert (info.value.row, info.value.column) == (row, column)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text, message", [
    ("1 2 3\n4 5", "row 2 has 2 cells, row 1 has 3"),
    ("[[1, 2], [3, 4, 5]]", "row 2 has 3 cells, row 1 has 2"),
    ("1 2; 3 4; 5", "row 3 has 1 cells, row 1 has 2"),
    ("", "kernel text is empty"),
    ("   \n ", "kernel text is empty"),
    ("[]", "kernel text contains no numbers"),
    ("[1 2", "unbalanced brackets"),
    ("[1 2] / 0", "overall scale: cannot divide the kernel by '0'"),
    ("[1 2] / abc", "overall scale: 'abc' is not a number"),
])
def test_parse_structural_errors(text, message):
    with pytest.raises(KernelParseError) as info:
        parse_kernel(text)
    assert str(info.value) == message


def test_parse_size_limit():
    big = "\n".join(" ".join(["1"] * 16) for _ in range(3))
    with pytest.raises(KernelParseError, match=r"^kernel is 3x16; at most 15x15 is allowed$"):
        parse_kernel(big)
    tall = "\n".join(["1"] * 16)
    with pytest.raises(KernelParseError, match="16x1"):
        parse_kernel(tall)
    assert parse_kernel("\n".join(" ".join(["1"] * 15) for _ in range(15))).shape == (15, 15)
    assert parse_kernel(big, max_size=None).shape == (3, 16)
    with pytest.raises(KernelParseError, match="at most 5x5"):
        parse_kernel(format_kernel(np.ones((6, 6))), max_size=5)


# --------------------------------------------------------------------------- format_kernel


def test_format_examples():
    assert format_kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) == "1 2 1\n2 4 2\n1 2 1"
    assert format_kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], inline=True) == \
        "[0 -1 0; -1 5 -1; 0 -1 0]"
    assert format_kernel(preset("box_blur_3x3"), inline=True) == \
        "[1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9]"
    assert format_kernel([[0.25, -0.5, 1 / 3, -0.0]]) == "0.25 -0.5  1/3    0"
    assert format_kernel([[0.0625]], precision=2) == "1/16"
    assert format_kernel([[0.123456789]]) == "0.123456789"


@settings(deadline=None, max_examples=200)
@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=15),
                  elements=st.integers(-1000, 1000)),
       st.booleans())
def test_format_parse_roundtrip_integers(a, inline):
    text = format_kernel(a, inline=inline)
    assert "." not in text
    np.testing.assert_array_equal(parse_kernel(text), a.astype(np.float64))


@settings(deadline=None, max_examples=200)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=15),
                  elements=st.floats(allow_nan=False, allow_infinity=False)),
       st.booleans(), st.integers(0, 6))
def test_format_parse_roundtrip_floats(a, inline, precision):
    back = parse_kernel(format_kernel(a, precision, inline=inline))
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, a)


@settings(deadline=None)
@given(st.integers(-300, 300), st.integers(1, 300))
def test_format_parse_roundtrip_fractions(p, q):
    a = np.array([[p / q]])
    np.testing.assert_array_equal(parse_kernel(format_kernel(a)), a)


# --------------------------------------------------------------------------- normalisation


def test_gimp_normalise_positive_sum():
    assert gimp_normalise([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) == (16.0, 0.0)
    assert gimp_normalise(preset("sharpen")) == (1.0, 0.0)


def test_gimp_normalise_zero_sum():
    assert gimp_normalise(preset("sobel_left")) == (1.0, 0.5)
    assert gimp_normalise(preset("log_9x9")) == (1.0, 0.5)   # sum ~1e-17, counts as 0
    assert gimp_normalise(np.zeros((3, 3))) == (1.0, 0.5)


def test_gimp_normalise_negative_sum():
    assert gimp_normalise([[0, -1, 0], [-1, -4, -1], [0, -1, 0]]) == (8.0, 1.0)
    assert gimp_normalise([[-0.5]]) == (0.5, 1.0)


def test_apply_divisor_offset():
    w, off = apply_divisor_offset([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16, 0.0)
    np.testing.assert_array_equal(w, preset("gaussian_3x3"))
    assert off == 0.0
    w, off = apply_divisor_offset(preset("sobel_left"), *gimp_normalise(preset("sobel_left")))
    np.testing.assert_array_equal(w, preset("sobel_left"))
    assert off == 0.5
    with pytest.raises(ValueError, match=r"divisor must be a finite non-zero number, got 0\.0"):
        apply_divisor_offset([[1]], 0, 0)
    with pytest.raises(ValueError, match=r"got nan"):
        apply_divisor_offset([[1]], float("nan"), 0)
    with pytest.raises(ValueError, match=r"got inf"):
        apply_divisor_offset([[1]], float("inf"), 0)
    with pytest.raises(ValueError, match="offset"):
        apply_divisor_offset([[1]], 1, float("nan"))


def test_normalise_sum_and_l1():
    np.testing.assert_array_equal(normalise_sum(np.ones((3, 3))), np.ones((3, 3)) / 9)
    np.testing.assert_allclose(normalise_sum([[-1, -3]]), [[0.25, 0.75]])
    with pytest.raises(ValueError, match="sum to 0"):
        normalise_sum(preset("laplacian"))
    w = normalise_l1(preset("laplacian"))
    assert np.abs(w).sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(w, preset("laplacian") / 8)
    with pytest.raises(ValueError, match="all zero"):
        normalise_l1(np.zeros((2, 2)))


# --------------------------------------------------------------------------- validation


def test_validate_kernel():
    w = validate_kernel([[1, 2], [3, 4]])
    assert w.dtype == np.float64 and w.flags.writeable
    src = np.ones((3, 3))
    assert validate_kernel(src) is not src
    assert validate_kernel(np.ones((15, 1))).shape == (15, 1)
    with pytest.raises(ValueError, match=r"2-D, got 1-D with shape \(3,\)"):
        validate_kernel([1, 2, 3])
    with pytest.raises(ValueError, match=r"3-D"):
        validate_kernel(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"kernel is 16x3; each side must be between 1 and 15"):
        validate_kernel(np.ones((16, 3)))
    with pytest.raises(ValueError, match=r"0x3"):
        validate_kernel(np.ones((0, 3)))
    assert validate_kernel(np.ones((20, 20)), max_size=None).shape == (20, 20)
    with pytest.raises(ValueError, match=r"at most|between 1 and 5"):
        validate_kernel(np.ones((6, 6)), max_size=5)
    with pytest.raises(ValueError, match=r"non-finite value nan at row 2, column 1"):
        validate_kernel([[1, 2], [np.nan, 4]])
    with pytest.raises(ValueError, match=r"inf at row 1, column 2"):
        validate_kernel([[1, np.inf]])
    with pytest.raises(ValueError, match="real numbers"):
        validate_kernel([["a", "b"]])
    with pytest.raises(ValueError, match="real numbers"):
        validate_kernel([[1j, 2]])


# --------------------------------------------------------------------------- separability


@pytest.mark.parametrize("name", ["gaussian_3x3", "gaussian_5x5", "gaussian_7x7",
                                  "box_blur_3x3", "box_blur_7x7", "sobel_left", "sobel_top",
                                  "prewitt_left", "scharr_top", "identity", "identity_1x1",
                                  "diff_horizontal_1x3", "diff_vertical_3x1"])
def test_is_separable_finds_rank_one(name):
    w = preset(name)
    result = is_separable(w)
    assert result is not None
    col, row = result
    assert col.shape == (w.shape[0], 1) and row.shape == (1, w.shape[1])
    np.testing.assert_allclose(col @ row, w, atol=1e-12)


def test_is_separable_sobel_factors():
    col, row = is_separable(preset("sobel_left"))
    col, row = col / col[0, 0], row * col[0, 0]          # rescale to [1 2 1]^T [1 0 -1]
    np.testing.assert_allclose(col.ravel(), [1, 2, 1])
    np.testing.assert_allclose(row.ravel(), [1, 0, -1], atol=1e-12)
    assert is_separable(gaussian(9, 2.0)) is not None


@pytest.mark.parametrize("name", ["laplacian", "laplacian_8", "log_5x5", "log_9x9", "sharpen",
                                  "outline", "motion_blur_5x5", "example_a"])
def test_is_separable_none(name):
    assert is_separable(preset(name)) is None


# --------------------------------------------------------------------------- random_kernel


def test_random_kernel_reproducible():
    a = random_kernel((3, 5), rng=np.random.default_rng(42))
    b = random_kernel((3, 5), rng=np.random.default_rng(42))
    c = random_kernel((3, 5), rng=np.random.default_rng(43))
    assert a.shape == (3, 5) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert random_kernel(4, rng=np.random.default_rng(0)).shape == (4, 4)


@pytest.mark.parametrize("scale, fan_in, expected", [
    ("he", None, math.sqrt(2 / 225)),
    ("he", 9 * 32, math.sqrt(2 / 288)),
    ("lecun", None, math.sqrt(1 / 225)),
    (0.3, None, 0.3),
])
def test_random_kernel_std(scale, fan_in, expected):
    rng = np.random.default_rng(1234)
    samples = np.stack([random_kernel((15, 15), rng=rng, scale=scale, fan_in=fan_in)
                        for _ in range(200)])              # 45,000 weights
    assert samples.std() == pytest.approx(expected, rel=0.02)
    assert abs(samples.mean()) < 0.05 * expected


def test_random_kernel_errors():
    with pytest.raises(TypeError, match="Generator"):
        random_kernel(3, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="scale"):
        random_kernel(3, rng=np.random.default_rng(0), scale="xavier")
    with pytest.raises(ValueError, match="fan_in"):
        random_kernel(3, rng=np.random.default_rng(0), fan_in=0)
    with pytest.raises(ValueError, match="height"):
        random_kernel((0, 3), rng=np.random.default_rng(0))


def test_chained_division_is_refused_as_ambiguous():
    """Review regression: '[..] / 2 / 2' read the trailing '2 / 2' as the fraction 1 and
    silently divided by 1. Dividing by a fraction after '/' is ambiguous: refused."""
    for text in ("[1 2; 3 4] / 2 / 2", "[1 2; 3 4] / 1/16"):
        with pytest.raises(KernelParseError, match="ambiguous"):
            parse_kernel(text)
    quarter = np.array([[0.25, 0.5], [0.75, 1.0]])
    for text in ("[1 2; 3 4] / 4", "[1 2; 3 4] * 1 / 4", "1 / 4 * [1 2; 3 4]",
                 "[1 2; 3 4] * 1/4"):
        np.testing.assert_array_equal(parse_kernel(text), quarter, err_msg=text)


def test_fractions_with_spaces_and_long_space_runs():
    np.testing.assert_array_equal(parse_kernel("1 / 16   2 /16  1/ 16"),
                                  [[1 / 16, 2 / 16, 1 / 16]])
    # runs of spaces are handled in linear time (these once took seconds)
    with pytest.raises(KernelParseError, match="'array\\('"):
        parse_kernel("array(" + " " * 15000 + "x")
    np.testing.assert_array_equal(parse_kernel("1" + " " * 15000 + "2"), [[1, 2]])
    with pytest.raises(KernelParseError, match="20,000"):
        parse_kernel("1 " * 10001)


@pytest.mark.parametrize("text, column", [("1/, 2", 1), ("2,/16", 2), ("1, /2", 2)])
def test_a_comma_ends_a_cell_even_next_to_a_slash(text, column):
    with pytest.raises(KernelParseError, match=f"column {column}"):
        parse_kernel(text)
