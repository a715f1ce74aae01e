"""Sequential models, architecture presets and JSON specs, and safe model files.

A model file is one ``.npz`` (read with ``allow_pickle=False``) holding the weights
under PyTorch ``nn.Sequential`` state-dict names (``"0.weight"``, ``"0.bias"``,
``"3.running_mean"``: layer index, then the parameter) and the architecture as UTF-8
JSON in the array ``"__architecture__"``. A PyTorch model built from the same layers
in the same order (``nn.Conv2d``, ``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten``,
``nn.Dropout``, ``nn.Linear``, ``nn.BatchNorm2d``) loads the weights with::

    sd = {k: torch.from_numpy(v) for k, v in np.load(path).items() if not k.startswith("__")}
    torch_model.load_state_dict(sd, strict=False)  # strict=False: BatchNorm's num_batches

Conv weights are (out, in, kh, kw) and Dense weights (out, in), as in PyTorch, and
Flatten uses PyTorch's (C, H, W) order, so no transposition is needed.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from ..fileio import atomic_write_bytes
from .layers import (Activation, AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, Layer,
                     MaxPool2D)

__all__ = ["Sequential", "ARCHITECTURES", "build", "save_model", "load_model", "ModelFileError",
           "layer_from_config"]

_LAYERS = {cls.kind: cls for cls in (Conv2D, Dense, Flatten, Dropout, Activation, MaxPool2D,
                                     AvgPool2D, BatchNorm2D)}
ARCH_KEY = "__architecture__"


class ModelFileError(ValueError):
    """A model file cannot be loaded; the message names the file and the reason."""


def _tuplify(v):
    return tuple(_tuplify(p) for p in v) if isinstance(v, list) else v


def layer_from_config(cfg: dict) -> Layer:
    if not isinstance(cfg, dict) or cfg.get("type") not in _LAYERS:
        known = ", ".join(_LAYERS)
        raise ValueError(f"unknown layer {cfg!r} (known types: {known})")
    args = {k: _tuplify(v) for k, v in cfg.items() if k != "type"}
    try:
        return _LAYERS[cfg["type"]](**args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad arguments for layer {cfg['type']!r}: {exc}") from None


class Sequential:
    """Layers applied in order to inputs of shape (N, *input_shape)."""

    def __init__(self, layers: list[Layer], input_shape=(1, 28, 28), seed: int = 0,
                 name: str = "model"):
        self.layers = list(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.name = name
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        self.shapes = []
        for i, layer in enumerate(self.layers):
            try:
                layer.init(shape, rng)
                shape = layer.output_shape(shape)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layer {i} ({layer.kind}) cannot take input {shape}: {exc}") \
                    from None
            self.shapes.append(shape)
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng(rng.integers(1 << 62))
        self._plan = self._fuse_plan()

    # ReLU and max pooling commute: pooling first does the ReLU on 1/4 of the values,
    # and MaxPool2D.forward_relu does both in one step (the ReLU in place, its mask
    # inside the pooling's backward). Gradients are identical (a window whose max is
    # <= 0 gets no gradient either way), so the plan only changes how layers run:
    # each step is (layer index,) or (pool index, ReLU index) for a fused pair.
    def _fuse_plan(self):
        plan = []
        i = 0
        n = len(self.layers)
        while i < n:
            a = self.layers[i]
            b = self.layers[i + 1] if i + 1 < n else None
            pair = None
            if _is_relu(a) and isinstance(b, MaxPool2D):
                pair = (i + 1, i)
            elif isinstance(a, MaxPool2D) and _is_relu(b):
                pair = (i, i + 1)
            if pair is not None and self.layers[pair[0]].padding in (0, (0, 0)):
                plan.append(pair)
                i += 2
            else:
                plan.append((i,))
                i += 1
        return plan

    def _run(self, step, x, train):
        if len(step) == 2:
            return self.layers[step[0]].forward_relu(x, train)
        return self.layers[step[0]].forward(x, train)

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def output_shape(self):
        return self.shapes[-1] if self.shapes else self.input_shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"input must have shape (N, {', '.join(map(str, self.input_shape))})"
                             f", got {x.shape}")
        for step in self._plan:
            x = self._run(step, x, train)
        return x

    def backward(self, grad: np.ndarray) -> None:
        order = self._plan[::-1]
        for pos, step in enumerate(order):
            last = pos == len(order) - 1
            grad = self.layers[step[0]].backward(grad, need_input_grad=not last)

    def features(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for input ``x`` (evaluation mode), in layer order."""
        outs = []
        x = np.asarray(x, np.float32)
        for layer in self.layers:
            x = layer.forward(x, False)
            outs.append(x)
        return outs

    def predict_proba(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        from .losses import softmax
        return np.concatenate([softmax(self.forward(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])

    def summary(self) -> list[dict]:
        """Per layer: name, output shape, parameter count."""
        rows = []
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes)):
            rows.append({"index": i, "layer": repr(layer), "type": layer.kind,
                         "output_shape": tuple(shape), "params": layer.n_params})
        return rows

    def summary_text(self) -> str:
        lines = [f"{'#':>2}  {'layer':<48} {'output shape':<16} {'params':>8}"]
        for r in self.summary():
            lines.append(f"{r['index']:>2}  {r['layer']:<48} {str(r['output_shape']):<16} "
                         f"{r['params']:>8,}")
        lines.append(f"total parameters: {self.n_params:,}")
        return "\n".join(lines)

    def architecture(self) -> dict:
        return {"format": "convscope-model", "version": 1, "name": self.name,
                "input_shape": list(self.input_shape),
                "layers": [layer.config() for layer in self.layers]}

    def state_dict(self) -> dict[str, np.ndarray]:
        d = {}
        for i, layer in enumerate(self.layers):
            for k, v in {**layer.params, **layer.buffers}.items():
                d[f"{i}.{k}"] = v
        return d

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        """Copy weights in; raises ValueError naming the first missing or mis-shaped one."""
        expected = self.state_dict()
        for k, v in expected.items():
            if k not in d:
                raise ValueError(f"weight '{k}' is missing")
            if d[k].shape != v.shape:
                raise ValueError(f"weight '{k}' has shape {d[k].shape}, the architecture "
                                 f"needs {v.shape}")
            if not np.all(np.isfinite(d[k])):
                raise ValueError(f"weight '{k}' contains non-finite values")
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                layer.params[k] = np.array(d[f"{i}.{k}"], np.float32)
            for k in layer.buffers:
                layer.buffers[k] = np.array(d[f"{i}.{k}"], np.float32)


def build(spec: dict, seed: int = 0) -> Sequential:
    """A model from its JSON description (``{"input_shape": [...], "layers": [...]}``)."""
    if not isinstance(spec, dict):
        raise ValueError("an architecture must be a JSON object")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError("an architecture needs a non-empty 'layers' list")
    shape = spec.get("input_shape", [1, 28, 28])
    if not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(v, int) and v > 0 for v in shape)):
        raise ValueError(f"input_shape must be [C, H, W] of positive ints, got {shape!r}")
    return Sequential([layer_from_config(c) for c in layers], shape, seed,
                      str(spec.get("name", "model")))


def _is_relu(layer) -> bool:
    return isinstance(layer, Activation) and layer.function == "relu"


def _arch(name, layers, shape=(1, 28, 28)):
    return {"name": name, "input_shape": list(shape), "layers": layers}


ARCHITECTURES = {
    # Keras' "simple MNIST convnet" (34,826 parameters)
    "keras_mnist": _arch("keras_mnist", [
        {"type": "conv2d", "filters": 32, "kernel_size": 3},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "filters": 64, "kernel_size": 3},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.5},
        {"type": "dense", "units": 10},
    ]),
    # LeNet-style: conv 8 5x5 -> pool -> conv 16 5x5 -> pool -> dense 64 -> dense 10
    "lenet": _arch("lenet", [
        {"type": "conv2d", "filters": 8, "kernel_size": 5, "padding": 2},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "filters": 16, "kernel_size": 5},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 64, "init": "he"},
        {"type": "activation", "function": "relu"},
        {"type": "dense", "units": 10},
    ]),
    # trains in seconds: conv 8 3x3 -> pool 2 -> conv 16 3x3 -> pool 2 -> dense 10
    "tiny": _arch("tiny", [
        {"type": "conv2d", "filters": 8, "kernel_size": 3},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "filters": 16, "kernel_size": 3},
        {"type": "activation", "function": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]),
}


def save_model(path, model: Sequential, extra: dict[str, np.ndarray] | None = None) -> None:
    """Write weights + architecture to ``path`` (.npz), atomically."""
    arrays = dict(model.state_dict())
    arrays[ARCH_KEY] = np.frombuffer(json.dumps(model.architecture()).encode(), np.uint8)
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an .npz without pickle; ModelFileError for anything else."""
    if not os.path.exists(path):
        raise ModelFileError(f"cannot load model '{path}': no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"cannot load model '{path}': is a directory")
    try:
        if not zipfile.is_zipfile(path):
            raise ModelFileError(f"cannot load model '{path}': not an .npz model file (not a "
                                 f"zip archive)")
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ModelFileError(f"cannot load model '{path}': a single array (.npy), not "
                                     f"an .npz model file")
            with z:
                arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ModelFileError(f"cannot load model '{path}': no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"cannot load model '{path}': is a directory") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelFileError(f"cannot load model '{path}': not a valid .npz model file "
                             f"({exc})") from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):
            raise ModelFileError(f"cannot load model '{path}': member '{k}' is not an array")
        if k != ARCH_KEY and not k.startswith("__") and v.dtype.kind not in "fiu":
            raise ModelFileError(f"cannot load model '{path}': array '{k}' has dtype {v.dtype}, "
                                 f"not real numbers")
    return arrays


def _normalised_layers(spec: dict) -> list:
    """Layer configs with defaults filled in and tuples as lists (comparable)."""
    return json.loads(json.dumps(build(spec).architecture()["layers"]))


def load_model(path, expect: dict | None = None) -> tuple[Sequential, dict[str, np.ndarray]]:
    """Load a model file; returns (model, the file's extra arrays).

    With ``expect`` (an architecture dict), a file with a different architecture is
    refused. Raises :class:`ModelFileError` naming the file and the reason.
    """
    arrays = read_npz(path)
    if ARCH_KEY not in arrays:
        raise ModelFileError(f"cannot load model '{path}': it has no architecture "
                             f"('{ARCH_KEY}'); is it a ConvScope model?")
    try:
        spec = json.loads(arrays.pop(ARCH_KEY).tobytes().decode("utf-8"))
        model = build(spec)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"cannot load model '{path}': bad architecture: {exc}") from None
    if expect is not None and _normalised_layers(expect) != _normalised_layers(spec):
        raise ModelFileError(f"cannot load model '{path}': its architecture differs from the "
                             f"current model's")
    try:
        model.load_state_dict(arrays)
    except ValueError as exc:
        raise ModelFileError(f"cannot load model '{path}': {exc}") from None
    extra = {k: v for k, v in arrays.items() if k not in model.state_dict()}
    return model, extra


def to_pipeline(model: Sequential, classes: int | None = None):
    """The model's convolutional part as a :class:`core.pipeline.Pipeline`.

    Conv2D becomes a "sum over channels" ConvStage (one kernel per filter, its
    (C, kh, kw) weights and bias), activations and pooling their stages; the
    conversion stops at the first Flatten/Dense. Running the pipeline on a
    normalised input (H, W, C) gives exactly the layers' feature maps, so the viewer
    and its explanations serve the CNN unchanged. Returns (pipeline, layer indices
    of the stages).
    """
    from ..pipeline import ActivationStage, ConvStage, Kernel, Pipeline, PoolStage

    stages, index = [], []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            w, b = layer.params["weight"], layer.params["bias"]
            kernels = [Kernel(w[f], float(b[f]), name=f"filter {f + 1}")
                       for f in range(w.shape[0])]
            stages.append(ConvStage(kernels, "sum", layer.stride, layer.padding, "zeros", 0.0,
                                    layer.dilation))
        elif isinstance(layer, Activation):
            stages.append(ActivationStage(layer.function, layer.alpha))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            stages.append(PoolStage(layer.mode, layer.kernel_size, layer.stride, layer.padding,
                                    layer.dilation, layer.ceil_mode, layer.count_include_pad))
        elif isinstance(layer, (Flatten, Dense)):
            break
        else:
            continue  # dropout / batchnorm: identity at inference (batchnorm: not shown)
        index.append(i)
    return Pipeline(stages), index
