"""Training as a generator: per-batch and per-epoch events, pause/stop, checkpoints, resume.

``for event in train(model, data, config, control): ...`` yields a :class:`BatchEvent`
after every batch and an :class:`EpochEvent` after every epoch (with the test-set
evaluation). Between batches the loop honours ``control.pause()``/``stop()`` (thread
safe: the GUI runs the generator in a worker thread). With ``config.out`` a checkpoint
(model + optimiser state + epoch + RNG state) is written atomically after every epoch,
and ``resume=True`` continues from it. Everything is reproducible from ``config.seed``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .data import Dataset
from .losses import softmax_cross_entropy
from .model import Sequential, load_model, save_model
from .optim import make_optimizer

__all__ = ["TrainConfig", "TrainControl", "BatchEvent", "EpochEvent", "train", "evaluate",
           "confusion_matrix", "CHECKPOINT", "FINAL"]

CHECKPOINT = "checkpoint.npz"
FINAL = "model.npz"


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    out: str | None = None
    resume: bool = False
    eval_batch_size: int = 1000

    def validate(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")


class TrainControl:
    """Thread-safe pause/resume/stop, checked between batches."""

    def __init__(self):
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()

    def pause(self):
        self._run.clear()

    def resume(self):
        self._run.set()

    def stop(self):
        self._stop.set()
        self._run.set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> bool:
        """Block while paused; returns False if stopped."""
        self._run.wait()
        return not self._stop.is_set()


@dataclass
class BatchEvent:
    epoch: int           # 0-based
    batch: int           # 0-based, within the epoch
    batches: int         # batches per epoch
    loss: float
    accuracy: float
    seconds: float       # this batch
    samples_per_s: float
    eta_s: float         # to the end of training


@dataclass
class EpochEvent:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    samples_per_s: float
    confusion: np.ndarray = field(repr=False, default=None)
    stopped: bool = False


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``m[t, p]`` = number of samples of class t predicted as p."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def evaluate(model: Sequential, x, y, batch_size: int = 1000):
    """(loss, accuracy, confusion matrix, probabilities) on a labelled set."""
    n_classes = model.output_shape[0]
    probs = []
    loss_sum = 0.0
    for i in range(0, len(x), batch_size):
        logits = model.forward(x[i:i + batch_size], train=False)
        loss, _, p = softmax_cross_entropy(logits, y[i:i + batch_size])
        loss_sum += loss * len(p)
        probs.append(p)
    probs = np.concatenate(probs) if probs else np.zeros((0, n_classes), np.float32)
    pred = probs.argmax(axis=1)
    acc = float((pred == y).mean()) if len(y) else float("nan")
    return loss_sum / max(len(x), 1), acc, confusion_matrix(y, pred, n_classes), probs


def _rng_state(rng: np.random.Generator) -> np.ndarray:
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), np.uint8)


def _save_checkpoint(path, model, opt, epoch, rng, config):
    extra = dict(opt.state_dict())
    extra["__epoch__"] = np.array(epoch)
    extra["__rng__"] = _rng_state(rng)
    for i, layer in enumerate(model.layers):  # dropout masks continue where they were
        if hasattr(layer, "rng"):
            extra[f"__rng_layer{i}__"] = _rng_state(layer.rng)
    extra["__config__"] = np.frombuffer(json.dumps(asdict(config)).encode(), np.uint8)
    save_model(path, model, extra)


def train(model: Sequential, data: Dataset, config: TrainConfig,
          control: TrainControl | None = None):
    """Train ``model`` on ``data``; a generator of BatchEvent / EpochEvent.

    Returns (as the generator's return value) the trained model, which differs from
    the argument when a checkpoint was resumed.
    """
    config.validate()
    control = control or TrainControl()
    # thousands of steps follow: load the compiled loops now (from numba's cache; in the
    # app they are being loaded in the background already, then this does nothing)
    from .. import _jit
    _jit.warm_up()
    if data.input_shape != model.input_shape:
        raise ValueError(f"the data's images are {data.input_shape} but the model expects "
                         f"{model.input_shape}")
    rng = np.random.default_rng(config.seed)
    opt = make_optimizer(config.optimizer, model.layers, config.lr, config.weight_decay,
                         config.momentum)
    start_epoch = 0
    if config.out:
        os.makedirs(config.out, exist_ok=True)
    ckpt = os.path.join(config.out, CHECKPOINT) if config.out else None
    if config.resume and ckpt and os.path.exists(ckpt):
        model, extra = load_model(ckpt, expect=model.architecture())
        opt = make_optimizer(config.optimizer, model.layers, config.lr, config.weight_decay,
                             config.momentum)
        opt.load_state_dict(extra)
        start_epoch = int(extra["__epoch__"]) + 1
        rng.bit_generator.state = json.loads(extra["__rng__"].tobytes().decode())
        for i, layer in enumerate(model.layers):
            key = f"__rng_layer{i}__"
            if key in extra and hasattr(layer, "rng"):
                layer.rng.bit_generator.state = json.loads(extra[key].tobytes().decode())
    n = len(data.x_train)
    bs = config.batch_size
    batches = -(-n // bs)
    t_start = time.perf_counter()
    done_batches = 0
    for epoch in range(start_epoch, config.epochs):
        order = rng.permutation(n)
        t_epoch = time.perf_counter()
        loss_sum = correct = seen = 0
        stopped = False
        for b in range(batches):
            if not control.wait():
                stopped = True
                break
            t0 = time.perf_counter()
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = data.x_train[idx], data.y_train[idx]
            logits = model.forward(xb, train=True)
            loss, grad, probs = softmax_cross_entropy(logits, yb)
            model.backward(grad)
            opt.step()
            if not np.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at epoch {epoch + 1}, batch "
                                         f"{b + 1}: lower the learning rate ({config.lr})")
            dt = time.perf_counter() - t0
            hits = int((probs.argmax(axis=1) == yb).sum())
            loss_sum += loss * len(idx)
            correct += hits
            seen += len(idx)
            done_batches += 1
            elapsed = time.perf_counter() - t_start
            rate = done_batches / elapsed
            remaining = (config.epochs - epoch) * batches - (b + 1)
            yield BatchEvent(epoch, b, batches, loss, hits / len(idx), dt, len(idx) / dt,
                             max(remaining, 0) / rate if rate > 0 else float("nan"))
        secs = time.perf_counter() - t_epoch
        test_loss, test_acc, conf, _ = evaluate(model, data.x_test, data.y_test,
                                                config.eval_batch_size)
        if ckpt and not stopped:
            _save_checkpoint(ckpt, model, opt, epoch, rng, config)
        nan = float("nan")  # no batch seen (stopped at once): no training figures
        yield EpochEvent(epoch, config.epochs, loss_sum / seen if seen else nan,
                         correct / seen if seen else nan,
                         test_loss, test_acc, secs, seen / secs if secs > 0 else 0.0, conf,
                         stopped)
        if stopped:
            break
    if config.out:
        save_model(os.path.join(config.out, FINAL), model)
    return model
