"""Softmax cross-entropy (mean over the batch), as PyTorch's ``cross_entropy``."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "softmax_cross_entropy"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``.

    Returns
    -------
    loss : float
    grad : ndarray like ``logits`` (d loss / d logits)
    probs : ndarray like ``logits``
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    n, k = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be in [0, {k}), got values {labels.min()}..{labels.max()}")
    z = logits - logits.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - logsum
    loss = float(-logp[np.arange(n), labels].mean(dtype=np.float64))
    probs = np.exp(logp)
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1
    grad /= n
    return loss, grad.astype(logits.dtype, copy=False), probs
