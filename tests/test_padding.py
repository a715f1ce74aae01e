"""Tests of core.padding: pad2d against np.pad, its adjoint, and the mode pictures."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.core.padding import PADDING_MODES, pad2d, pad2d_adjoint, padding_index, source_index

# --------------------------------------------------------------------------- helpers

NP_MODE = {"zeros": "constant", "constant": "constant", "reflect": "reflect",
           "replicate": "edge", "circular": "wrap"}


def np_pad(x, pads, mode, cval=0.0):
    """The reference: np.pad on the last two axes."""
    width = [(0, 0)] * (x.ndim - 2) + [tuple(pads[0]), tuple(pads[1])]
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=cval)
    return np.pad(x, width, mode=NP_MODE[mode])


def max_pad(mode, n):
    """Largest pad allowed along an axis of size n."""
    if mode == "reflect":
        return n - 1
    if mode == "circular":
        return n
    return 2 * n + 1  # no limit; keep the sweep small


def random_pads(rng, mode, hw):
    return tuple(tuple(int(rng.integers(0, max_pad(mode, n) + 1)) for _ in range(2))
                 for n in hw)


def params(**kw) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def letters(idx):
    """Render padding_index output as the docstring's pictures ('a'..; '0' for constant)."""
    return " ".join("0" if i < 0 else "abcd"[i] for i in idx)


# --------------------------------------------------------------------- mode pictures


@pytest.mark.parametrize("mode, picture", [
    ("zeros", "0 0 0 a b c d 0 0 0"),
    ("constant", "0 0 0 a b c d 0 0 0"),
    ("reflect", "d c b a b c d c b a"),
    ("replicate", "a a a a b c d d d d"),
    ("circular", "b c d a b c d a b c"),
])
def test_padding_index_matches_docstring_pictures(mode, picture):
    assert letters(padding_index(4, 3, 3, mode)) == picture


def test_padding_index_asymmetric_and_none():
    assert list(padding_index(4, 0, 0, "reflect")) == [0, 1, 2, 3]
    assert list(padding_index(4, 1, 2, "reflect")) == [1, 0, 1, 2, 3, 2, 1]
    assert list(padding_index(3, 3, 0, "circular")) == [0, 1, 2, 0, 1, 2]
    assert list(padding_index(1, 2, 2, "replicate")) == [0] * 5
    assert list(padding_index(1, 1, 1, "circular")) == [0] * 3
    assert list(padding_index(2, 1, 1, "reflect")) == [1, 0, 1, 0]


def test_source_index_folds_and_wraps_repeatedly():
    i = np.arange(-7, 11)
    # reflect of 'a b c d' (period 6: a b c d c b), far beyond one reflection
    assert letters(source_index(i, 4, "reflect")) == "b a b c d c b a b c d c b a b c d c"
    assert letters(source_index(i, 4, "circular")) == "b c d a b c d a b c d a b c d a b c"
    assert letters(source_index(i, 4, "replicate")) == " ".join("a" * 7 + "abcd" + "d" * 7)
    assert letters(source_index(i, 4, "zeros")) == " ".join("0" * 7 + "abcd" + "0" * 7)
    assert list(source_index(np.array([-3, 0, 2]), 1, "reflect")) == [0, 0, 0]
    # it is padding_index without the extent check
    np.testing.assert_array_equal(source_index(np.arange(-2, 6), 4, "reflect"),
                                  padding_index(4, 2, 2, "reflect"))
    with pytest.raises(ValueError, match="padding_mode"):
        source_index(i, 4, "mirror")


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_padding_index_agrees_with_pad2d(mode):
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 5):
        for _ in range(5):
            before, after = (int(v) for v in rng.integers(0, max_pad(mode, n) + 1, 2))
            idx = padding_index(n, before, after, mode)
            x = np.arange(1.0, n + 1)[None, :]
            padded = pad2d(x, ((0, 0), (before, after)), mode)[0]
            expected = np.where(idx >= 0, x[0][np.maximum(idx, 0)], 0.0)
            np.testing.assert_array_equal(padded, expected,
                                          err_msg=params(n=n, before=before, after=after))


# ------------------------------------------------------------------- pad2d vs np.pad


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pad2d_matches_np_pad(mode, seed):
    rng = np.random.default_rng(seed)
    for trial in range(12):
        ndim = int(rng.integers(2, 5))
        shape = tuple(int(v) for v in rng.integers(1, 4, ndim - 2)) + tuple(
            int(v) for v in rng.integers(1, 7, 2))
        x = rng.standard_normal(shape)
        pads = random_pads(rng, mode, shape[-2:])
        cval = float(rng.standard_normal())
        got = pad2d(x, pads, mode, cval)
        ref = np_pad(x, pads, mode, cval)
        msg = params(trial=trial, shape=shape, pads=pads, mode=mode, cval=cval)
        assert got.shape == ref.shape, msg
        assert got.dtype == x.dtype, msg
        np.testing.assert_array_equal(got, ref, err_msg=msg)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_pad2d_channels_last_view(mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 4))
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    pads = ((2, 1), (0, 3))
    np.testing.assert_array_equal(pad2d(x_cl, pads, mode, 2.5), np_pad(x, pads, mode, 2.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int32])
def test_pad2d_keeps_dtype(dtype):
    x = (np.arange(12).reshape(3, 4) * 7).astype(dtype)
    for mode in PADDING_MODES:
        got = pad2d(x, ((1, 1), (2, 0)), mode, 3)
        assert got.dtype == dtype, mode
        np.testing.assert_array_equal(got, np_pad(x, ((1, 1), (2, 0)), mode, 3))


def test_pad2d_zero_pads_returns_input_itself():
    x = np.ones((2, 3))
    for mode in PADDING_MODES:
        assert pad2d(x, ((0, 0), (0, 0)), mode) is x


def test_pad2d_zeros_ignores_cval():
    got = pad2d(np.ones((2, 2)), ((1, 1), (1, 1)), "zeros", cval=9.0)
    assert got.sum() == 4.0


def test_pad2d_constant_uses_cval():
    got = pad2d(np.zeros((1, 1)), ((1, 0), (0, 1)), "constant", cval=-2.0)
    np.testing.assert_array_equal(got, [[-2.0, -2.0], [0.0, -2.0]])


def test_pad2d_limits_are_pytorch_s():
    x = np.arange(9.0).reshape(3, 3)
    pad2d(x, ((2, 2), (2, 2)), "reflect")       # reflect: pad < size
    pad2d(x, ((3, 3), (3, 3)), "circular")      # circular: pad <= size
    pad2d(x, ((10, 10), (10, 10)), "replicate")  # no limit
    with pytest.raises(ValueError, match=r"reflect padding \(rows\).*padding 3 >= size 3"):
        pad2d(x, ((3, 0), (0, 0)), "reflect")
    with pytest.raises(ValueError, match=r"reflect padding \(cols\)"):
        pad2d(x, ((0, 0), (0, 3)), "reflect")
    with pytest.raises(ValueError, match=r"circular padding \(cols\).*padding 4 > size 3"):
        pad2d(x, ((0, 0), (4, 0)), "circular")


# --------------------------------------------------------------------------- adjoint


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pad2d_adjoint_is_the_adjoint(mode, seed):
    """<pad2d(x), g> == <x, pad2d_adjoint(g)> for random x and g."""
    rng = np.random.default_rng(100 + seed)
    for trial in range(10):
        lead = tuple(int(v) for v in rng.integers(1, 3, int(rng.integers(0, 3))))
        hw = tuple(int(v) for v in rng.integers(1, 7, 2))
        pads = random_pads(rng, mode, hw)
        x = rng.standard_normal(lead + hw)
        px = pad2d(x, pads, mode, cval=0.0)
        g = rng.standard_normal(px.shape)
        gx = pad2d_adjoint(g, hw, pads, mode)
        msg = params(trial=trial, shape=x.shape, pads=pads, mode=mode)
        assert gx.shape == x.shape, msg
        np.testing.assert_allclose(np.vdot(px, g), np.vdot(x, gx), rtol=1e-12, atol=1e-12,
                                   err_msg=msg)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_pad2d_adjoint_equals_jacobian_transpose(mode):
    """Build pad2d's matrix column by column and compare with the adjoint applied to e_i."""
    hw, pads = (3, 4), ((2, 1), (3, 2))  # within every mode's limits
    n_in = hw[0] * hw[1]
    cols = [pad2d(np.eye(n_in)[i].reshape(hw), pads, mode).ravel() for i in range(n_in)]
    jac = np.stack(cols, axis=1)  # (n_out, n_in)
    out_shape = (hw[0] + 3, hw[1] + 5)
    rows = [pad2d_adjoint(np.eye(jac.shape[0])[j].reshape(out_shape), hw, pads, mode).ravel()
            for j in range(jac.shape[0])]
    np.testing.assert_array_equal(np.stack(rows, axis=0), jac)


def test_pad2d_adjoint_replicate_accumulates_on_the_edge():
    g = np.ones((1, 7))
    np.testing.assert_array_equal(pad2d_adjoint(g, (1, 3), ((0, 0), (2, 2)), "replicate"),
                                  [[3.0, 1.0, 3.0]])
    np.testing.assert_array_equal(pad2d_adjoint(g, (1, 3), ((0, 0), (2, 2)), "zeros"),
                                  [[1.0, 1.0, 1.0]])


# --------------------------------------------------------------------------- errors


def test_unknown_mode():
    x = np.ones((3, 3))
    for bad in ("mirror", "wrap", "nearest", "Zeros", ""):
        with pytest.raises(ValueError, match="padding_mode must be one of"):
            pad2d(x, ((1, 1), (1, 1)), bad)
        with pytest.raises(ValueError, match="padding_mode"):
            padding_index(3, 1, 1, bad)
    with pytest.raises(ValueError, match="padding_mode"):
        pad2d_adjoint(np.ones((5, 5)), (3, 3), ((1, 1), (1, 1)), "mirror")


def test_padding_index_limits():
    with pytest.raises(ValueError, match="reflect"):
        padding_index(3, 3, 0, "reflect")
    with pytest.raises(ValueError, match="circular"):
        padding_index(3, 0, 4, "circular")


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_negative_pads_rejected_by_pad2d(mode):
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match=r"padding \(rows\) must be >= 0, got \(-1, 0\)"):
        pad2d(x, ((-1, 0), (0, 0)), mode)
    with pytest.raises(ValueError, match=r"padding \(cols\) must be >= 0"):
        pad2d(x, ((0, 0), (0, -2)), mode)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_negative_pads_rejected_by_padding_index(mode):
    # (before the fix, padding_index(4, -1, 0, mode) silently returned [1, 2, 3], a crop)
    with pytest.raises(ValueError, match="must be >= 0"):
        padding_index(4, -1, 0, mode)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_negative_pads_rejected_by_pad2d_adjoint(mode):
    with pytest.raises(ValueError, match="must be >= 0"):
        pad2d_adjoint(np.ones((5, 5)), (4, 4), ((-1, 2), (0, 1)), mode)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_pad2d_adjoint_rejects_wrong_gradient_shape(mode):
    # pads ((1, 1), (0, 1)) around 4x4 give 6x5; a 7x5 gradient is a caller's bug.
    with pytest.raises(ValueError, match=r"padded shape \(\.\.\., 6, 5\)"):
        pad2d_adjoint(np.ones((7, 5)), (4, 4), ((1, 1), (0, 1)), mode)
