"""The kernel editor's model (core.kernel_draft), without Qt."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.core.conv import conv2d
from convscope.core.kernel_draft import KernelDraft, number_text, parse_number, resize_centred
from convscope.core.kernels import PRESETS
from convscope.core.pipeline import Kernel


def test_new_draft_is_a_valid_identity_with_no_change_pending():
    d = KernelDraft()
    k = d.kernel()
    np.testing.assert_array_equal(k.weights, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert not d.has_error() and not d.take_change() and d.messages() == []


def test_invalid_cell_keeps_last_value_and_reports_no_change_until_fixed():
    d = KernelDraft()
    assert d.set_cell_text(0, 0, "abc") == "invalid"
    assert d.kernel().weights[0, 0] == 0          # the last valid weight is used
    assert d.has_error() and not d.take_change()
    assert d.messages()[0].startswith("row 1, column 1:")
    assert "keeps its last valid weights" in d.messages()[-1]
    assert d.set_cell_text(0, 0, "1/4") == "changed"
    assert d.kernel().weights[0, 0] == 0.25
    assert d.take_change() and not d.take_change()   # once per edit
    assert d.set_cell_text(0, 0, "0.25") == "same" and not d.take_change()


def test_divisor_zero_is_refused_naming_the_value_kept():
    d = KernelDraft()
    assert d.set_number_text("divisor", "4")
    assert not d.set_number_text("divisor", "0")
    assert "0 is refused" in d.field_error("divisor") and "still using 4" in d.field_error("divisor")
    assert d.kernel().divisor == 4.0 and d.has_error()
    assert not d.set_number_text("bias", "")
    assert d.field_error("bias") == "Bias: enter a number"


def test_failed_paste_says_why_and_changes_nothing():
    d = KernelDraft()
    before = d.w.copy()
    assert not d.paste("[1 2; 3]")
    assert d.notice.startswith("Paste:") and d.messages()[0] == d.notice
    np.testing.assert_array_equal(d.w, before)
    assert not d.take_change()
    assert d.paste("[1 2 1; 2 4 2; 1 2 1] / 16")
    assert d.notice == "" and d.take_change()
    assert d.matching_preset() == "gaussian_3x3"


def test_preset_renames_a_shared_kernel_and_resets_divisor_and_bias():
    d = KernelDraft()
    d.set_number_text("divisor", "9")
    d.set_number_text("bias", "0.5")
    d.load_preset("sobel_left")
    k = d.kernel()
    assert k.name == PRESETS["sobel_left"].label
    assert (k.divisor, k.bias) == (1.0, 0.0)
    np.testing.assert_array_equal(k.weights, PRESETS["sobel_left"].weights)


def test_preset_into_one_slice_of_a_per_channel_kernel_keeps_the_name():
    d = KernelDraft()
    d.load(Kernel(np.eye(3), name="mine"), n_maps=3)
    d.set_per_channel(True)
    d.select_slice(1)
    d.load_preset("gaussian_5x5")
    k = d.kernel()
    assert k.weights.shape == (3, 5, 5) and k.name == "mine"
    np.testing.assert_array_equal(k.weights[1], PRESETS["gaussian_5x5"].weights)
    np.testing.assert_array_equal(k.weights[0, 1:4, 1:4], np.eye(3))   # centred


def test_resizing_keeps_an_identity_kernel_centred_for_same_output():
    img = np.random.default_rng(0).random((11, 13))
    d = KernelDraft()
    for size in ((5, 5), (7, 3), (3, 3)):
        assert d.resize(*size)
        out = conv2d(img[None], d.kernel().weights[None, None], padding="same")[0]
        np.testing.assert_allclose(out, img, atol=1e-12)
    assert not d.resize(3, 3)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=8))
def test_any_sequence_of_sizes_keeps_an_identity_an_identity(sizes):
    """One step at a time (3 -> 4 -> 5: the spin box's arrows, as a user resizes) the
    kernel ended in the top-left corner and a 'same' output shifted a pixel per step;
    shrinking to an even size dropped the middle's row."""
    img = np.random.default_rng(1).random((9, 10))
    d = KernelDraft()
    for size in sizes:
        d.resize(*size)
        w = d.kernel().weights
        assert w.shape == size and w.sum() == 1
        out = conv2d(img[None], w[None, None], padding="same")[0]
        np.testing.assert_allclose(out, img, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(kh=st.integers(1, 7), kw=st.integers(1, 7), gh=st.integers(0, 6), gw=st.integers(0, 6))
def test_growing_then_shrinking_back_restores_the_kernel(kh, kw, gh, gw):
    w = np.random.default_rng(kh * 10 + kw).normal(size=(2, kh, kw))
    big = resize_centred(w, kh + gh, kw + gw)
    assert big.sum() == pytest.approx(w.sum())
    np.testing.assert_array_equal(resize_centred(big, kh, kw), w)


def test_per_channel_toggle_copies_the_shared_kernel_and_back_keeps_the_shown_slice():
    d = KernelDraft()
    d.load(Kernel(np.arange(9.0).reshape(3, 3)), n_maps=2, map_names=["a", "b"])
    assert d.set_per_channel(True) and not d.set_per_channel(True)
    assert d.w.shape == (2, 3, 3) and d.map_name(1) == "b" and d.map_name(5) == "map 6"
    d.select_slice(1)
    d.set_cell_text(0, 0, "-1")
    d.set_per_channel(False)
    k = d.kernel()
    assert k.weights.shape == (3, 3) and k.weights[0, 0] == -1


def test_normalise_and_randomise_are_reproducible_and_structural():
    d = KernelDraft()
    d.load(Kernel(np.ones((3, 3))))
    d.set_number_text("divisor", "x")       # invalid field text is replaced
    d.normalise()
    assert d.kernel().divisor == 9.0 and not d.field_errors and d.take_change()
    a, b = KernelDraft(), KernelDraft()
    a.randomise()
    b.randomise()
    np.testing.assert_array_equal(a.w, b.w)
    assert a.random_seed == 1 and a.kernel().divisor == 1.0
    a.randomise()
    assert not np.array_equal(a.w, b.w)


def test_pipeline_error_marks_the_field_or_the_whole_kernel():
    d = KernelDraft()
    d.mark("divisor", "divisor too small")
    assert d.field_error("divisor") == "divisor too small" and d.messages() == []
    d.mark(None, "the kernel is larger than the input")
    assert d.messages() == ["the kernel is larger than the input"]
    d.mark(None, None)
    assert d.messages() == []


def test_number_forms():
    assert parse_number(" 1/16 ", "Bias") == 0.0625
    assert parse_number("-0", "Bias") == 0.0 and str(parse_number("-0", "Bias")) == "0.0"
    with pytest.raises(ValueError, match="Bias: .*not a single number"):
        parse_number("1 2", "Bias")
    with pytest.raises(ValueError, match="^row 2, column 3: the cell is empty"):
        parse_number("", "row 2, column 3")
    assert number_text(0.25) == "0.25" and number_text(16.0) == "16"
