"""Layers with forward and backward passes side by side.

Every layer keeps its parameters and their gradients in parallel dicts keyed by
PyTorch's names (``weight``, ``bias``; BatchNorm's ``running_mean``/``running_var``
are buffers), so one optimiser loop serves every layer and the weights map one to
one onto a PyTorch model with the same layers (see :mod:`core.nn.model`).

Activations are ``(N, C, H, W)`` arrays; the convolution returns them as
channels-last views (``(N, H, W, C)`` memory), which the following layers keep: it is
the layout in which im2col gathers are contiguous.
"""

from __future__ import annotations

import numpy as np

from ..conv import FLAT_MAX_CHANNELS, conv2d, conv2d_backward
from ..geometry import pair
from ..pipeline import ACTIVATIONS, activate
from ..pool import pool2d, pool2d_backward

__all__ = ["Layer", "Conv2D", "Dense", "Flatten", "Dropout", "BatchNorm2D", "MaxPool2D",
           "AvgPool2D", "Activation", "ReLU"]


class Layer:
    """Base class: ``forward(x, train)`` saves what ``backward(grad)`` needs."""

    kind = "layer"

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Gradient w.r.t. the input (stores parameter gradients in ``grads``)."""
        raise NotImplementedError

    def output_shape(self, in_shape: tuple) -> tuple:
        """Shape (without the batch axis) this layer produces from ``in_shape``."""
        return in_shape

    def config(self) -> dict:
        """The JSON description that :func:`core.nn.model.layer_from_config` rebuilds."""
        return {"type": self.kind}

    def init(self, in_shape: tuple, rng: np.random.Generator) -> None:
        """Create parameters for an input of shape ``in_shape`` (no batch axis)."""

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


def _fan_init(rng, shape, fan_in, fan_out, scheme):
    if scheme == "he":
        bound = np.sqrt(6.0 / fan_in)            # He uniform (for ReLU)
    elif scheme == "glorot":
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot/Xavier uniform
    else:
        raise ValueError(f"init must be 'he' or 'glorot', got {scheme!r}")
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Conv2D(Layer):
    kind = "conv2d"

    def __init__(self, filters: int, kernel_size=3, stride=1, padding=0, dilation=1,
                 init: str = "glorot"):
        super().__init__()
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        pair(kernel_size, "kernel_size")
        pair(stride, "stride")
        pair(dilation, "dilation")
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.init_scheme = init
        self._x = None
        self._workspace: dict = {}
        self._method = "gemm"  # the forward's conv2d method, which the backward repeats

    def config(self):
        return {"type": self.kind, "filters": self.filters, "kernel_size": self.kernel_size,
                "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "init": self.init_scheme}

    def _kw(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def init(self, in_shape, rng):
        c = in_shape[0]
        kh, kw = pair(self.kernel_size, "kernel_size")
        fan_in, fan_out = c * kh * kw, self.filters * kh * kw
        self.params["weight"] = _fan_init(rng, (self.filters, c, kh, kw), fan_in, fan_out,
                                          self.init_scheme)
        self.params["bias"] = np.zeros(self.filters, np.float32)

    def output_shape(self, in_shape):
        from ..geometry import output_size
        h, w = output_size(in_shape[1:], self.params["weight"].shape[2:], self.stride,
                           self.padding, self.dilation)
        return (self.filters, h, w)

    def forward(self, x, train=False):
        self._x = x
        # in training the im2col matrix is kept for the backward pass; a first layer
        # (few channels) takes the flat loops, which need none (see core.conv).
        # Inference stays gemm: the Inspect tab's maps equal core.pipeline's bitwise.
        ws = self._workspace if train else None
        if ws is None:
            self._workspace.clear()
        self._method = "flat" if train and np.shape(x)[-3] <= FLAT_MAX_CHANNELS else "gemm"
        return conv2d(x, self.params["weight"], self.params["bias"], method=self._method,
                      workspace=ws, **self._kw())

    def backward(self, grad, need_input_grad: bool = True):
        gx, gw, gb = conv2d_backward(grad, self._x, self.params["weight"], need_x=need_input_grad,
                                     workspace=self._workspace,
                                     method=self._method, **self._kw())
        self.grads["weight"] = gw
        self.grads["bias"] = gb
        return gx


class Dense(Layer):
    kind = "dense"

    def __init__(self, units: int, init: str = "glorot"):
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.init_scheme = init
        self._x = None

    def config(self):
        return {"type": self.kind, "units": self.units, "init": self.init_scheme}

    def init(self, in_shape, rng):
        d = int(np.prod(in_shape))
        self.params["weight"] = _fan_init(rng, (self.units, d), d, self.units, self.init_scheme)
        self.params["bias"] = np.zeros(self.units, np.float32)

    def output_shape(self, in_shape):
        return (self.units,)

    def forward(self, x, train=False):
        self._x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, grad, need_input_grad: bool = True):
        self.grads["weight"] = grad.T @ self._x
        self.grads["bias"] = grad.sum(axis=0)
        return grad @ self.params["weight"] if need_input_grad else None


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in PyTorch's (C, H, W) order."""

    kind = "flatten"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, train=False):
        self._shape = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, grad, need_input_grad: bool = True):
        return grad.reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout (PyTorch's): zero with probability p, scale the rest by 1/(1-p)."""

    kind = "dropout"

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self._mask = None

    def config(self):
        return {"type": self.kind, "p": self.p}

    def forward(self, x, train=False):
        if not train or self.p == 0:
            self._mask = None
            return x
        # keep where 32 random bits >= p * 2**32 (probability 1 - p within 2**-32): the
        # generator's raw 64-bit words split in two, 0.99 -> 0.41 ms for the Keras
        # convnet's 128 x 1600 activations (uniform floats cost a conversion each)
        words = self.rng.bit_generator.random_raw((x.size + 1) // 2)
        bits = words.view(np.uint32)[:x.size].reshape(x.shape)
        keep = bits >= np.uint32(min(int(self.p * 2.0 ** 32), 2 ** 32 - 1))
        self._mask = np.multiply(keep, np.asarray(1.0 / (1.0 - self.p), x.dtype),
                                 dtype=x.dtype)
        return x * self._mask

    def backward(self, grad, need_input_grad: bool = True):
        return grad if self._mask is None else grad * self._mask


class Activation(Layer):
    """Elementwise activation; the same functions as the pipeline's activation stage."""

    kind = "activation"

    def __init__(self, function: str = "relu", alpha: float = 0.01):
        super().__init__()
        if function not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {function!r}")
        self.function = function
        self.alpha = float(alpha)

    def config(self):
        d = {"type": self.kind, "function": self.function}
        if self.function == "leaky_relu":
            d["alpha"] = self.alpha
        return d

    def forward(self, x, train=False):
        self._x = x
        y = activate(x, self.function, self.alpha)
        self._y = y
        return y

    def backward(self, grad, need_input_grad: bool = True):
        f, x, y = self.function, self._x, self._y
        if f == "none":
            return grad
        if f in ("relu", "leaky_relu"):
            # products with the 0/1 mask: np.where branches on every cell, and with
            # random signs took 3.0 ms for the Keras convnet's first activation (0.3)
            mask = x > 0
            with np.errstate(invalid="ignore", over="ignore"):
                out = np.multiply(grad, mask, dtype=grad.dtype)
                if f == "leaky_relu":
                    below = np.multiply(grad, np.asarray(self.alpha, grad.dtype),
                                        dtype=grad.dtype)
                    below *= ~mask
                    out += below
            if not np.isfinite(out).all():  # inf * 0 made NaN: PyTorch's values there
                bad = ~np.isfinite(out)
                gb = grad[bad]
                below = np.zeros_like(gb) if f == "relu" else gb * np.asarray(self.alpha,
                                                                              grad.dtype)
                out[bad] = np.where(mask[bad], gb, below)
            return out
        if f == "sigmoid":
            return grad * y * (1 - y)
        if f == "tanh":
            return grad * (1 - y * y)
        return grad * np.sign(x)  # abs


def ReLU() -> Activation:
    return Activation("relu")


class _Pool(Layer):
    mode = "max"

    def __init__(self, kernel_size=2, stride=None, padding=0, dilation=1, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        pair(kernel_size, "kernel_size")
        if stride is not None:
            pair(stride, "stride")
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def config(self):
        d = {"type": self.kind, "kernel_size": self.kernel_size, "stride": self.stride,
             "padding": self.padding, "dilation": self.dilation, "ceil_mode": self.ceil_mode}
        if self.mode == "avg":
            d["count_include_pad"] = self.count_include_pad
        return d

    def _kw(self):
        return dict(padding=self.padding, dilation=self.dilation, mode=self.mode,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def output_shape(self, in_shape):
        from ..geometry import output_size
        h, w = output_size(in_shape[1:], self.kernel_size, self.stride, self.padding,
                           self.dilation, kind="pool", ceil_mode=self.ceil_mode)
        return (in_shape[0], h, w)

    def forward(self, x, train=False):
        self._x = x
        self._relu = False
        self._y = pool2d(x, self.kernel_size, self.stride, **self._kw())
        return self._y

    def backward(self, grad, need_input_grad: bool = True):
        return pool2d_backward(grad, self._x, self.kernel_size, self.stride, output=self._y,
                               relu=self._relu, **self._kw())


class MaxPool2D(_Pool):
    kind = "maxpool2d"
    mode = "max"

    def forward_relu(self, x, train=False):
        """``relu(maxpool(x))``, which equals ``maxpool(relu(x))`` (values and gradients):
        a model's ReLU + max pool pair in one layer step. The ReLU is applied to each
        pooled row inside the pooling loop (``pool2d(relu=True)``), and
        :meth:`backward` then masks the gradient inside the pooling's own pass (the
        ReLU's backward was a pass of its own: 0.8 ms for the Keras convnet's first
        pair)."""
        self._x = x
        self._relu = True
        self._y = pool2d(x, self.kernel_size, self.stride, relu=True, **self._kw())
        return self._y


class AvgPool2D(_Pool):
    kind = "avgpool2d"
    mode = "avg"


class BatchNorm2D(Layer):
    """Batch normalisation over (N, H, W) per channel, PyTorch's defaults.

    Training uses the batch statistics (biased variance) and updates the running
    estimates with ``momentum`` (unbiased variance, as PyTorch); evaluation uses the
    running estimates.
    """

    kind = "batchnorm2d"

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps = float(eps)
        self.momentum = float(momentum)

    def config(self):
        return {"type": self.kind, "eps": self.eps, "momentum": self.momentum}

    def init(self, in_shape, rng):
        c = in_shape[0]
        self.params["weight"] = np.ones(c, np.float32)
        self.params["bias"] = np.zeros(c, np.float32)
        self.buffers["running_mean"] = np.zeros(c, np.float32)
        self.buffers["running_var"] = np.ones(c, np.float32)

    def forward(self, x, train=False):
        w = self.params["weight"][None, :, None, None]
        b = self.params["bias"][None, :, None, None]
        if train:
            axes = (0, 2, 3)
            mean = x.mean(axis=axes, dtype=np.float64).astype(x.dtype)
            var = x.var(axis=axes, dtype=np.float64).astype(x.dtype)
            n = x.size // x.shape[1]
            m = self.momentum
            self.buffers["running_mean"] = ((1 - m) * self.buffers["running_mean"]
                                            + m * mean).astype(np.float32)
            unbiased = var * (n / max(n - 1, 1))
            self.buffers["running_var"] = ((1 - m) * self.buffers["running_var"]
                                           + m * unbiased).astype(np.float32)
        else:
            mean = self.buffers["running_mean"].astype(x.dtype)
            var = self.buffers["running_var"].astype(x.dtype)
        inv = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        xhat = (x - mean[None, :, None, None]) * inv[None, :, None, None]
        self._cache = (xhat, inv, train)
        return xhat * w + b

    def backward(self, grad, need_input_grad: bool = True):
        xhat, inv, train = self._cache
        axes = (0, 2, 3)
        self.grads["weight"] = (grad * xhat).sum(axis=axes)
        self.grads["bias"] = grad.sum(axis=axes)
        w = self.params["weight"][None, :, None, None]
        gxhat = grad * w
        if not train:
            return gxhat * inv[None, :, None, None]
        n = grad.size // grad.shape[1]
        mean_g = gxhat.sum(axis=axes, keepdims=True) / n
        mean_gx = (gxhat * xhat).sum(axis=axes, keepdims=True) / n
        return (gxhat - mean_g - xhat * mean_gx) * inv[None, :, None, None]
