"""Border handling: the padding modes of PyTorch (and their scipy.ndimage names).

=========== ================================= ====================
mode        example (pad 3 around ``a b c d``) scipy.ndimage name
=========== ================================= ====================
zeros       ``0 0 0 | a b c d | 0 0 0``        constant, cval=0
constant    ``v v v | a b c d | v v v``        constant, cval=v
reflect     ``d c b | a b c d | c b a``        mirror
replicate   ``a a a | a b c d | d d d``        nearest
circular    ``b c d | a b c d | a b c``        wrap
=========== ================================= ====================

Note scipy's own ``'reflect'`` repeats the edge (``c b a | a b c d | d c b``): it is
*not* PyTorch's reflect.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PADDING_MODES", "pad2d", "pad2d_adjoint", "padding_index", "source_index"]

PADDING_MODES = ("zeros", "constant", "reflect", "replicate", "circular")

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def check_mode(mode: str) -> str:
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")
    return mode


def check_extent(mode, pads, hw):
    """Raise ValueError for negative pads or pads the mode cannot produce (PyTorch's limits)."""
    for (before, after), n, ax in zip(pads, hw, ("rows", "cols")):
        if before < 0 or after < 0:
            raise ValueError(f"padding ({ax}) must be >= 0, got ({before}, {after})")
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"reflect padding ({ax}) must be smaller than the input: "
                             f"padding {max(before, after)} >= size {n}")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"circular padding ({ax}) must be at most the input size: "
                             f"padding {max(before, after)} > size {n}")


def _empty_like_layout(x: np.ndarray, shape) -> np.ndarray:
    """An empty array of ``shape`` whose memory order follows ``x``'s (e.g. channels-last)."""
    order = sorted(range(x.ndim), key=lambda a: -abs(x.strides[a]) if x.shape[a] > 1 else 0)
    base = np.empty([shape[a] for a in order], x.dtype)
    return base.transpose(np.argsort(order))


def pad2d(x: np.ndarray, pads, mode: str = "zeros", cval: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x``.

    Parameters
    ----------
    x : ndarray of shape (..., H, W)
    pads : ((top, bottom), (left, right))
    mode : one of :data:`PADDING_MODES`
    cval : value for ``mode="constant"``

    Returns
    -------
    ndarray of shape (..., H + top + bottom, W + left + right), a new array (or
    ``x`` itself when all pads are zero).
    """
    check_mode(mode)
    check_extent(mode, pads, x.shape[-2:])
    (t, b), (left, r) = pads
    if t == b == left == r == 0:
        return x
    if mode in ("zeros", "constant"):
        value = 0.0 if mode == "zeros" else cval
        out = _empty_like_layout(x, x.shape[:-2] + (x.shape[-2] + t + b, x.shape[-1] + left + r))
        # Fill only the border strips, then copy the body once.
        out[..., :t, :] = value
        out[..., out.shape[-2] - b:, :] = value
        out[..., t:out.shape[-2] - b, :left] = value
        out[..., t:out.shape[-2] - b, out.shape[-1] - r:] = value
        out[..., t:out.shape[-2] - b, left:out.shape[-1] - r] = x
        return out
    width = [(0, 0)] * (x.ndim - 2) + [(t, b), (left, r)]
    return np.pad(x, width, mode=_NUMPY_MODE[mode])


def source_index(i, n: int, mode: str) -> np.ndarray:
    """Input index shown at (possibly out-of-range) positions ``i`` of an axis of size ``n``.

    -1 marks a constant (zeros/constant mode) cell. No extent check: reflect folds
    repeatedly, circular wraps repeatedly.
    """
    check_mode(mode)
    i = np.asarray(i)
    if mode in ("zeros", "constant"):
        return np.where((i >= 0) & (i < n), i, -1)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)  # reflect without repeating the edge
    j = np.abs(i) % period
    return np.where(j >= n, period - j, j)


def padding_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each padded cell along one axis (-1 for a constant cell)."""
    check_extent(mode, ((before, after), (0, 0)), (n, 1))
    return source_index(np.arange(-before, n + after), n, mode)


def _fold_matrix(n: int, before: int, after: int, mode: str, dtype) -> np.ndarray:
    idx = padding_index(n, before, after, mode)
    m = np.zeros((idx.size, n), dtype)
    valid = idx >= 0
    m[np.nonzero(valid)[0], idx[valid]] = 1
    return m


def pad2d_adjoint(g: np.ndarray, in_hw, pads, mode: str = "zeros") -> np.ndarray:
    """Gradient of :func:`pad2d`: fold a padded-shape gradient back onto the input.

    For zeros/constant padding this crops; for reflect, replicate and circular the
    border cells' gradients are added to the cells they were copied from. Implemented
    as ``R.T @ g @ C`` with the 0/1 selection matrices of each axis.
    """
    check_mode(mode)
    check_extent(mode, pads, in_hw)
    (t, b), (left, r) = pads
    h, w = in_hw
    if g.shape[-2:] != (h + t + b, w + left + r):
        raise ValueError(f"gradient must have the padded shape (..., {h + t + b}, {w + left + r})"
                         f", got {g.shape}")
    if mode in ("zeros", "constant"):
        return g[..., t:t + h, left:left + w]
    rm = _fold_matrix(h, t, b, mode, g.dtype)
    cm = _fold_matrix(w, left, r, mode, g.dtype)
    return np.matmul(np.matmul(rm.T, g), cm)
