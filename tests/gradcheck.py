"""Centred finite differences, shared by the gradient checks of the engine and the layers."""

import numpy as np


def numeric_grad(f, a: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Centred differences of the scalar ``f()`` w.r.t. ``a`` (perturbed in place).

    With ``indices`` (flat indices) only those entries are computed; the others are NaN.
    """
    g = np.full(a.shape, np.nan) if indices is not None else np.zeros(a.shape)
    flat = a.reshape(-1)  # a view: a must be contiguous
    assert np.shares_memory(flat, a)
    for i in range(a.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        g.reshape(-1)[i] = (fp - fm) / (2 * eps)
    return g
