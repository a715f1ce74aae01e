"""Optimisers over the layers' parallel ``params``/``grads`` dicts (PyTorch's update rules)."""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adam", "make_optimizer"]


class _Optimizer:
    def __init__(self, layers, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.layers = list(layers)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.t = 0
        self.state: dict[str, np.ndarray] = {}

    def _items(self):
        for i, layer in enumerate(self.layers):
            for name, p in layer.params.items():
                yield f"{i}.{name}", p, layer.grads.get(name)

    def step(self):
        self.t += 1
        for key, p, g in self._items():
            if g is None:
                continue
            if self.weight_decay:
                g = g + self.weight_decay * p  # L2 penalty, as PyTorch's weight_decay
            self._update(key, p, g)

    def state_dict(self) -> dict[str, np.ndarray]:
        d = {f"opt.{k}": v for k, v in self.state.items()}
        d["opt.__t"] = np.array(self.t)
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]):
        self.t = int(d.get("opt.__t", 0))
        self.state = {k[4:]: np.array(v) for k, v in d.items()
                      if k.startswith("opt.") and k != "opt.__t"}


class SGD(_Optimizer):
    """SGD with (heavy-ball) momentum: ``v = mu*v + g; p -= lr*v`` (PyTorch's form)."""

    def __init__(self, layers, lr=0.01, momentum=0.9, weight_decay=0.0):
        super().__init__(layers, lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def _update(self, key, p, g):
        if self.momentum:
            v = self.state.get(key)
            if v is None:
                v = self.state[key] = g.astype(p.dtype, copy=True)
            else:
                v *= self.momentum
                v += g
            g = v
        p -= self.lr * g


class Adam(_Optimizer):
    """Adam with bias correction (PyTorch's defaults: betas 0.9/0.999, eps 1e-8)."""

    def __init__(self, layers, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(layers, lr, weight_decay)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps = float(eps)

    def _update(self, key, p, g):
        m = self.state.get("m." + key)
        if m is None:
            m = self.state["m." + key] = np.zeros_like(p)
            self.state["v." + key] = np.zeros_like(p)
        v = self.state["v." + key]
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * (g * g)
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        step = (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)
        p -= step.astype(p.dtype, copy=False)


def make_optimizer(name: str, layers, lr: float, weight_decay: float = 0.0, momentum=0.9):
    if name == "adam":
        return Adam(layers, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(layers, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")
