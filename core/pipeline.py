"""The pipeline model: an ordered list of stages that turns an image into feature maps.

Stages
------
:class:`ConvStage`
    One or more kernels with stride, padding (and its mode), dilation. In
    ``mode="per_channel"`` every kernel filters every incoming map on its own
    (depthwise, as an image editor does to R, G and B); in ``mode="sum"`` each kernel
    spans all incoming maps and sums them plus one bias, as a CNN layer does. A
    kernel is one 2-D array shared by all maps, or a 3-D ``(maps, kh, kw)`` array with
    a kernel per incoming map. Each kernel has a bias (GIMP's offset), a divisor
    (GIMP's), and ``flip`` for a true convolution.
:class:`ActivationStage`
    none, relu, leaky_relu (with ``alpha``), sigmoid, tanh, abs.
:class:`PoolStage`
    max / avg / min / l2 pooling per map, with PyTorch's options.

Running a pipeline (:func:`run`) returns every intermediate map, named and with its
shape. A stage that fails (e.g. a geometry with an empty output) stops the run there:
the stages before it keep their results, and the error names the stage and field.

Files are versioned JSON (``{"format": "convscope-pipeline", "version": 1, ...}``);
:func:`load_pipeline` refuses malformed files with a :class:`PipelineFileError` that
names the file and the problem, and never executes anything from the file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .conv import conv2d
from .fileio import atomic_write_bytes
from .geometry import (EmptyOutputError, conv_geometry, explain_output_size, pair,
                       pool_geometry, resolve_padding)
from .padding import PADDING_MODES, check_extent
from .pool import POOL_MODES, pool2d

__all__ = [
    "ACTIVATIONS", "Kernel", "ConvStage", "ActivationStage", "PoolStage", "Pipeline",
    "PipelineError", "PipelineFileError", "StageResult", "PipelineResult", "run",
    "default_pipeline", "activate", "load_pipeline", "save_pipeline", "check_pipeline",
    "FORMAT", "VERSION",
]

FORMAT = "convscope-pipeline"
VERSION = 1
ACTIVATIONS = ("none", "relu", "leaky_relu", "sigmoid", "tanh", "abs")
CONV_MODES = ("per_channel", "sum")
MAX_KERNEL_SIDE = 15
#: largest |alpha| of a leaky ReLU (larger slopes overflow float32 maps)
MAX_ALPHA = 1000.0
#: largest stride, padding or dilation a pipeline may hold
MAX_GEOMETRY = 4096
#: largest map a stage may read (padded) or produce, in float32 elements (8 GiB)
MAX_STAGE_ELEMENTS = 1 << 31
MAX_KERNELS = 128


def memory_budget() -> int:
    """Bytes all the maps of one run may take together: half of this machine's memory
    (at least 1 GiB). A pipeline of 10,000 stages on a photo filled 16.9 GB before;
    now it stops with a message at the stage that would pass the budget."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume 8 GiB
        total = 8 << 30
    return max(1 << 30, int(total) // 2)
_F32_MAX = float(np.finfo(np.float32).max)


class PipelineError(ValueError):
    """A stage's settings are invalid. ``stage`` is its index, ``field`` the setting."""

    def __init__(self, stage: int | None, field_name: str | None, message: str):
        self.stage = stage
        self.field = field_name
        self.reason = message
        where = []
        if stage is not None:
            where.append(f"stage {stage + 1}")
        if field_name:
            where.append(field_name)
        super().__init__((" / ".join(where) + ": " if where else "") + message)


class PipelineFileError(ValueError):
    """A pipeline file cannot be read; the message names the file and the reason."""


# ---------------------------------------------------------------------------- stages


@dataclass(eq=False)
class Kernel:
    """One kernel of a convolution stage.

    ``weights`` is (kh, kw), shared by every incoming map, or (maps, kh, kw), one
    per incoming map. The applied weights are ``weights / divisor`` (flipped in both
    axes if ``flip``); ``bias`` is added after the sum (GIMP's offset).
    """

    weights: np.ndarray
    bias: float = 0.0
    divisor: float = 1.0
    flip: bool = False
    name: str = "kernel"

    def __post_init__(self):
        self.weights = np.array(self.weights, dtype=np.float64)
        self.bias = float(self.bias)
        self.divisor = float(self.divisor)
        self.flip = bool(self.flip)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape[-2:])

    @property
    def per_channel(self) -> bool:
        return self.weights.ndim == 3

    def effective(self) -> np.ndarray:
        """The weights the convolution applies: divided, and flipped if asked."""
        w = self.weights / self.divisor
        return w[..., ::-1, ::-1] if self.flip else w

    def to_dict(self) -> dict:
        return {"name": self.name, "weights": self.weights.tolist(), "bias": self.bias,
                "divisor": self.divisor, "flip": self.flip}


@dataclass(eq=False)
class ConvStage:
    kernels: list[Kernel]
    mode: str = "per_channel"
    stride: Any = 1
    padding: Any = "same"
    padding_mode: str = "zeros"
    cval: float = 0.0
    dilation: Any = 1
    kind = "conv"

    def to_dict(self, kernels: bool = True) -> dict:
        d = {"type": "conv", "mode": self.mode, "stride": _jsonable(self.stride),
             "padding": _jsonable(self.padding), "padding_mode": self.padding_mode,
             "cval": self.cval, "dilation": _jsonable(self.dilation)}
        if kernels:
            d["kernels"] = [k.to_dict() for k in self.kernels]
        return d

    def describe(self) -> str:
        k = self.kernels[0].shape if self.kernels else (0, 0)
        n = len(self.kernels)
        what = "per channel" if self.mode == "per_channel" else "summed over channels"
        pad = self.padding if isinstance(self.padding, str) else f"pad {_short(self.padding)}"
        extra = [f"stride {_short(self.stride)}", pad]
        if self.padding_mode != "zeros":
            extra.append(self.padding_mode)
        if _short(self.dilation) != "1":
            extra.append(f"dilation {_short(self.dilation)}")
        return (f"conv {n} kernel{'s' if n != 1 else ''} {k[0]}x{k[1]} {what}, "
                + ", ".join(extra))


@dataclass(eq=False)
class ActivationStage:
    function: str = "relu"
    alpha: float = 0.01
    kind = "activation"

    def to_dict(self) -> dict:
        return {"type": "activation", "function": self.function, "alpha": self.alpha}

    def describe(self) -> str:
        if self.function == "leaky_relu":
            return f"leaky ReLU (alpha {self.alpha:g})"
        return {"none": "no activation", "relu": "ReLU", "sigmoid": "sigmoid", "tanh": "tanh",
                "abs": "absolute value"}.get(self.function, self.function)


@dataclass(eq=False)
class PoolStage:
    mode: str = "max"
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    kind = "pool"

    def to_dict(self) -> dict:
        return {"type": "pool", "mode": self.mode, "kernel_size": _jsonable(self.kernel_size),
                "stride": _jsonable(self.stride), "padding": _jsonable(self.padding),
                "dilation": _jsonable(self.dilation), "ceil_mode": self.ceil_mode,
                "count_include_pad": self.count_include_pad}

    def describe(self) -> str:
        k = _short(self.kernel_size)
        window = f"{k}x{k}" if "x" not in k else k
        s = k if self.stride is None else _short(self.stride)
        text = f"{self.mode} pool {window}, stride {s}"
        if _short(self.padding) not in ("0", "0x0"):
            text += f", pad {_short(self.padding)}"
        if _short(self.dilation) != "1":
            text += f", dilation {_short(self.dilation)}"
        if self.ceil_mode:
            text += ", ceil"
        if self.mode == "avg" and not self.count_include_pad:
            text += ", pad excluded"
        return text


Stage = ConvStage | ActivationStage | PoolStage


def _short(v) -> str:
    if isinstance(v, (tuple, list)):
        if len(v) == 2 and all(isinstance(p, (tuple, list)) for p in v):
            return f"{v[0][0]},{v[0][1]},{v[1][0]},{v[1][1]}"
        if len(v) == 2 and v[0] == v[1]:
            return str(v[0])
        return "x".join(str(p) for p in v)
    return str(v)


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(p) for p in v]
    if isinstance(v, list):
        return [_jsonable(p) for p in v]
    if isinstance(v, np.integer):
        return int(v)
    return v


def _tuplify(v):
    if isinstance(v, list):
        return tuple(_tuplify(p) for p in v)
    return v


@dataclass(eq=False)
class Pipeline:
    stages: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION,
                "stages": [s.to_dict() for s in self.stages]}

    def to_json(self) -> str:
        """Indented JSON with each row of numbers on one line (kernels stay readable)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        return re.sub(r"\[\s+([-+\d.eE,\s]+?)\s+\]",
                      lambda m: "[" + " ".join(m.group(1).split()) + "]", text)

    def copy(self) -> "Pipeline":
        """A deep copy (not validated: an editor may hold invalid settings)."""
        return copy.deepcopy(self)

    def validate(self, input_shape) -> list[tuple[int, int, int]]:
        """Check every stage against an input of shape (C, H, W).

        Returns the (maps, H, W) after each stage; raises :class:`PipelineError`
        naming the first bad stage and field.
        """
        shapes = []
        shape = tuple(int(v) for v in input_shape)
        for i, stage in enumerate(self.stages):
            shape = stage_output_shape(i, stage, shape)
            shapes.append(shape)
        return shapes


def default_pipeline() -> Pipeline:
    """Edge-detect 3x3 per channel (same padding), ReLU, 2x2 max pool."""
    edge = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], float)
    return Pipeline([
        ConvStage([Kernel(edge, name="outline")]),
        ActivationStage("relu"),
        PoolStage("max", 2),
    ])


# ------------------------------------------------------------------------ validation


def _check_geometry(i, name, fn):
    try:
        return fn()
    except (TypeError, ValueError) as exc:
        raise PipelineError(i, name, str(exc)) from None


def _validate_conv(i: int, st: ConvStage, maps: int):
    if st.mode not in CONV_MODES:
        raise PipelineError(i, "mode", f"must be one of {CONV_MODES}, got {st.mode!r}")
    if not st.kernels:
        raise PipelineError(i, "kernels", "a convolution stage needs at least one kernel")
    if len(st.kernels) > MAX_KERNELS:
        raise PipelineError(i, "kernels", f"at most {MAX_KERNELS} kernels, got {len(st.kernels)}")
    if st.padding_mode not in PADDING_MODES:
        raise PipelineError(i, "padding_mode",
                            f"must be one of {PADDING_MODES}, got {st.padding_mode!r}")
    if not np.isfinite(st.cval):
        raise PipelineError(i, "cval", f"must be a finite number, got {st.cval!r}")
    shape0 = st.kernels[0].shape
    for k, ker in enumerate(st.kernels):
        if not isinstance(ker.name, str):
            raise PipelineError(i, f"kernel {k + 1}", f"name must be text, got {ker.name!r}")
        label = f"kernel {k + 1} ({ker.name})"
        w = ker.weights
        if w.ndim not in (2, 3) or 0 in w.shape:
            raise PipelineError(i, label, f"weights must be (kh, kw) or (maps, kh, kw), got "
                                          f"shape {w.shape}")
        if max(w.shape[-2:]) > MAX_KERNEL_SIDE:
            raise PipelineError(i, label, f"kernel {w.shape[-2]}x{w.shape[-1]} is larger than "
                                          f"{MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE}")
        if ker.shape != shape0:
            raise PipelineError(i, label, f"all kernels of a stage must have one size: "
                                          f"{ker.shape[0]}x{ker.shape[1]} vs "
                                          f"{shape0[0]}x{shape0[1]}")
        if not np.all(np.isfinite(w)):
            bad = tuple(int(v) for v in np.argwhere(~np.isfinite(w))[0])
            cell = f"row {bad[-2] + 1}, column {bad[-1] + 1}"
            raise PipelineError(i, label, f"weight at {cell} is {w[bad]}, not a finite number")
        if w.ndim == 3 and w.shape[0] != maps:
            raise PipelineError(i, label, f"has {w.shape[0]} per-channel kernels but the stage "
                                          f"receives {maps} maps")
        if not np.isfinite(ker.bias):
            raise PipelineError(i, label + " bias", f"must be a finite number, got {ker.bias!r}")
        if not np.isfinite(ker.divisor) or ker.divisor == 0:
            raise PipelineError(i, label + " divisor",
                                f"must be a non-zero finite number, got {ker.divisor!r}")
        # the engine computes in float32: values beyond its range would become inf
        if np.abs(w).max() / abs(ker.divisor) > _F32_MAX:
            raise PipelineError(i, label, f"weights / divisor reach {np.abs(w).max():.3g} / "
                                          f"{ker.divisor:g}, beyond float32's range")
        if abs(ker.bias) > _F32_MAX:
            raise PipelineError(i, label + " bias", f"{ker.bias:.3g} is beyond float32's range")


def stage_output_shape(i: int, st, shape, *, limit: bool = True) -> tuple[int, int, int]:
    """(maps, H, W) after stage ``i`` given its input shape; raises PipelineError.

    With ``limit``, a stage whose padded input or output would exceed
    :data:`MAX_STAGE_ELEMENTS` float32 values is refused, naming the sizes (huge
    padding or many kernels on a large image would otherwise exhaust memory).
    """
    maps, h, w = shape
    if isinstance(st, ConvStage):
        _validate_conv(i, st, maps)
        for name in ("stride", "padding", "dilation"):
            _check_limit(i, name, getattr(st, name))
        stride = _check_geometry(i, "stride", lambda: pair(st.stride, "stride"))
        dil = _check_geometry(i, "dilation", lambda: pair(st.dilation, "dilation"))
        _check_geometry(i, "padding",
                        lambda: resolve_padding(st.padding, st.kernels[0].shape, stride, dil,
                                                (h, w)))
        try:
            g = conv_geometry((h, w), st.kernels[0].shape, stride, st.padding, dil)
        except EmptyOutputError as exc:  # the field that can fix it is marked
            raise PipelineError(i, "dilation" if exc.cause == "dilation" else "kernels",
                                str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise PipelineError(i, "kernels", str(exc)) from None
        pads = ((g[0].pad_before, g[0].pad_after), (g[1].pad_before, g[1].pad_after))
        _check_geometry(i, "padding", lambda: check_extent(st.padding_mode, pads, (h, w)))
        out_maps = maps * len(st.kernels) if st.mode == "per_channel" else len(st.kernels)
        if limit:
            hp, wp = h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1]
            _check_size(i, "padding", "padded input", maps, hp, wp)
            _check_size(i, "kernels", "output", out_maps, g[0].out, g[1].out)
        return (out_maps, g[0].out, g[1].out)
    if isinstance(st, ActivationStage):
        if st.function not in ACTIVATIONS:
            raise PipelineError(i, "function",
                                f"must be one of {ACTIVATIONS}, got {st.function!r}")
        if not np.isfinite(st.alpha) or abs(st.alpha) > MAX_ALPHA:
            raise PipelineError(i, "alpha", f"must be a number from -{MAX_ALPHA:g} to "
                                            f"{MAX_ALPHA:g}, got {st.alpha!r}")
        return shape
    if isinstance(st, PoolStage):
        if st.mode not in POOL_MODES:
            raise PipelineError(i, "mode", f"must be one of {POOL_MODES}, got {st.mode!r}")
        for name in ("ceil_mode", "count_include_pad"):
            if not isinstance(getattr(st, name), (bool, np.bool_)):
                raise PipelineError(i, name, f"must be true or false, got "
                                             f"{getattr(st, name)!r}")
        for name in ("kernel_size", "stride", "padding", "dilation"):
            _check_limit(i, name, getattr(st, name))
        _check_geometry(i, "kernel_size", lambda: pair(st.kernel_size, "kernel_size"))
        if st.stride is not None:
            _check_geometry(i, "stride", lambda: pair(st.stride, "stride"))
        ph, pw = _check_geometry(i, "padding", lambda: pair(st.padding, "padding", minimum=0))
        kh, kw = pair(st.kernel_size, "kernel_size")
        for p, k in ((ph, kh), (pw, kw)):
            if p > k // 2:
                raise PipelineError(i, "padding", f"pooling padding must be at most half the "
                                                  f"window: padding {p} > {k}//2 = {k // 2}")
        _check_geometry(i, "dilation", lambda: pair(st.dilation, "dilation"))
        try:
            g = pool_geometry((h, w), st.kernel_size, st.stride, st.padding, st.dilation,
                              st.ceil_mode)
        except EmptyOutputError as exc:
            raise PipelineError(i, "dilation" if exc.cause == "dilation" else "kernel_size",
                                str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise PipelineError(i, "kernel_size", str(exc)) from None
        return (maps, g[0].out, g[1].out)
    raise PipelineError(i, "type", f"unknown stage {st!r}")


def _check_limit(i, field_name, value):
    """Integers in a geometry field (int, pair or ((t, b), (l, r))) within
    :data:`MAX_GEOMETRY`; keywords such as "same" and None pass."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if isinstance(item, (tuple, list)):
            _check_limit(i, field_name, item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) \
                and abs(int(item)) > MAX_GEOMETRY:
            text = str(int(item))
            if len(text) > 20:
                text = f"an integer of {len(text.lstrip('-'))} digits"
            raise PipelineError(i, field_name, f"{text} is beyond the limit of "
                                               f"{MAX_GEOMETRY}")


def _check_size(i, field_name, what, maps, h, w):
    n = int(maps) * int(h) * int(w)
    if n > MAX_STAGE_ELEMENTS:
        raise PipelineError(i, field_name, f"the {what} would be {maps} map(s) of {h}x{w} "
                                           f"({n * 4 / 2**30:.1f} GiB of float32), more than "
                                           f"the {MAX_STAGE_ELEMENTS * 4 / 2**30:.0f} GiB a "
                                           f"stage may use")


def stage_formula(st, in_hw) -> str:
    """Output-size arithmetic of a conv or pool stage with the actual numbers."""
    if isinstance(st, ConvStage):
        return explain_output_size(in_hw, st.kernels[0].shape, st.stride, st.padding,
                                   st.dilation, kind="conv")
    if isinstance(st, PoolStage):
        return explain_output_size(in_hw, st.kernel_size, st.stride, st.padding, st.dilation,
                                   kind="pool", ceil_mode=st.ceil_mode)
    return f"D = {in_hw[0]}x{in_hw[1]} (unchanged)"


# --------------------------------------------------------------------------- running


def activate(x: np.ndarray, function: str, alpha: float = 0.01) -> np.ndarray:
    """Apply an activation elementwise; returns a new array of ``x``'s dtype."""
    if function == "none":
        return x.copy()
    if function == "relu":
        return np.maximum(x, 0)
    if function == "leaky_relu":
        return np.where(x > 0, x, x * np.asarray(alpha, x.dtype))
    if function == "sigmoid":
        # stable both ways: 1/(1+exp(-x)) for x >= 0, exp(x)/(1+exp(x)) otherwise
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    if function == "tanh":
        return np.tanh(x)
    if function == "abs":
        return np.abs(x)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {function!r}")


@dataclass
class StageResult:
    """The maps a stage produced.

    ``maps`` has shape (M, H, W); ``labels[m]`` names map ``m``; ``parents[m]`` lists
    the indices of the input maps it was computed from; ``columns[m]`` is the display
    column (the original channel it descends from, or the kernel index after a
    summing stage).
    """

    index: int
    stage: Any
    maps: np.ndarray
    labels: list[str]
    parents: list[list[int]]
    columns: list[int]
    formula: str
    seconds: float
    key: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.maps.shape)

    @property
    def name(self) -> str:
        if self.index < 0:
            return "input"
        return f"stage {self.index + 1}: {self.stage.describe()}"


@dataclass
class PipelineResult:
    input: StageResult
    stages: list[StageResult]
    error: PipelineError | None = None
    image: Any = None  # the array run on: results are reused only for this very object

    def level(self, index: int) -> StageResult:
        """Stage ``index`` (-1 is the input)."""
        return self.input if index < 0 else self.stages[index]

    @property
    def output(self) -> StageResult:
        return self.stages[-1] if self.stages else self.input

    def all_maps(self):
        """(level name, map label, map array) for every map, input first."""
        for lvl in [self.input, *self.stages]:
            for m, label in enumerate(lvl.labels):
                yield lvl, label, lvl.maps[m]


CHANNEL_NAMES = {1: ["gray"], 3: ["R", "G", "B"]}


def input_level(image: np.ndarray) -> StageResult:
    """The image (H, W, C) as the pipeline's level -1: maps (C, H, W)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or 0 in img.shape:
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {np.shape(image)}")
    c = img.shape[2]
    names = CHANNEL_NAMES.get(c, [f"ch {i}" for i in range(c)])
    maps = img.transpose(2, 0, 1)  # a channels-last view: the conv's fastest layout
    return StageResult(-1, None, maps, names, [[] for _ in range(c)], list(range(c)),
                       "", 0.0, key=_image_key(image))


def _run_stage(i: int, st, prev: StageResult) -> StageResult:
    x = prev.maps
    m_in = x.shape[0]
    t0 = time.perf_counter()
    if isinstance(st, ConvStage):
        kernels = st.kernels
        nk = len(kernels)
        if st.mode == "per_channel":
            w = np.empty((m_in * nk, 1) + kernels[0].shape, np.float32)
            for k, ker in enumerate(kernels):
                eff = ker.effective()
                w[k::nk, 0] = eff if eff.ndim == 3 else eff[None]
            bias = np.tile([ker.bias for ker in kernels], m_in).astype(np.float32)
            y = conv2d(x, w, bias, stride=st.stride, padding=st.padding, dilation=st.dilation,
                       groups=m_in, padding_mode=st.padding_mode, cval=st.cval)
            labels = [f"{prev.labels[m]} * {kernels[k].name}" for m in range(m_in)
                      for k in range(nk)]
            parents = [[m] for m in range(m_in) for _ in range(nk)]
            columns = [prev.columns[m] for m in range(m_in) for _ in range(nk)]
        else:
            w = np.empty((nk, m_in) + kernels[0].shape, np.float32)
            for k, ker in enumerate(kernels):
                w[k] = ker.effective()  # broadcasts a shared 2-D kernel over the maps
            bias = np.array([ker.bias for ker in kernels], np.float32)
            y = conv2d(x, w, bias, stride=st.stride, padding=st.padding, dilation=st.dilation,
                       padding_mode=st.padding_mode, cval=st.cval)
            labels = [f"sum * {ker.name}" for ker in kernels]
            parents = [list(range(m_in)) for _ in range(nk)]
            columns = list(range(nk))
    elif isinstance(st, ActivationStage):
        y = activate(x, st.function, st.alpha)
        labels = [f"{st.function}({lab})" for lab in prev.labels]
        parents = [[m] for m in range(m_in)]
        columns = list(prev.columns)
    else:
        y = pool2d(x, st.kernel_size, st.stride, padding=st.padding, dilation=st.dilation,
                   mode=st.mode, ceil_mode=st.ceil_mode, count_include_pad=st.count_include_pad)
        labels = [f"{st.mode}pool({lab})" for lab in prev.labels]
        parents = [[m] for m in range(m_in)]
        columns = list(prev.columns)
    y = y.astype(np.float32, copy=False)
    return StageResult(i, st, y, labels, parents, columns, stage_formula(st, x.shape[1:]),
                       time.perf_counter() - t0)


def run(image, pipeline: Pipeline, *, previous: PipelineResult | None = None,
        progress: Callable[[int, int], bool | None] | None = None,
        on_stage: Callable[[StageResult], None] | None = None,
        max_bytes: int | None = None) -> PipelineResult:
    """Run ``pipeline`` on ``image`` (H, W, C) and return every intermediate map.

    Parameters
    ----------
    previous : PipelineResult, optional
        A result of an earlier run on the same image: stages whose settings and
        upstream are unchanged are reused instead of recomputed (live editing).
    progress : callable(done, total) -> bool, optional
        Called before each stage; returning False cancels the run (the result then
        holds the stages finished so far and ``error`` is None).
    on_stage : callable(StageResult), optional
        Called with each stage's result as soon as it is there (computed or reused),
        so that a caller can work on it while the next stage computes.
    max_bytes : int, optional
        Memory all maps may take together (default :func:`memory_budget`, half of
        the machine's memory); the stage that would pass it fails with a
        :class:`PipelineError` saying so, before it allocates.

    A stage that fails validation ends the run; the result keeps the stages before
    it and ``error`` holds the :class:`PipelineError`.
    """
    key = _image_key(image)
    same_image = previous is not None and previous.image is image and previous.input.key == key
    inp = previous.input if same_image else input_level(image)
    levels: list[StageResult] = []
    prev = inp
    reuse = same_image
    upstream = key
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    used = inp.maps.size * 4
    for i, st in enumerate(pipeline.stages):
        if progress is not None and progress(i, len(pipeline.stages)) is False:
            return PipelineResult(inp, levels, None, image)
        key = _chain_key(upstream, st)
        if reuse and i < len(previous.stages) and previous.stages[i].key == key:
            res = previous.stages[i]
        else:
            reuse = False
            try:
                m, h, w = stage_output_shape(i, st, prev.shape)
                if used + m * h * w * 4 > budget:
                    raise PipelineError(i, None, f"the maps up to this stage would take "
                                                 f"{(used + m * h * w * 4) / 2**30:.1f} GiB, "
                                                 f"more than the {budget / 2**30:.1f} GiB "
                                                 f"memory budget (half of this machine's "
                                                 f"memory): remove stages or use a smaller "
                                                 f"input")
                res = _run_stage(i, st, prev)
            except PipelineError as exc:
                return PipelineResult(inp, levels, exc, image)
            except MemoryError:
                exc = PipelineError(i, None, f"not enough memory to compute this stage "
                                             f"({prev.shape[0]} map(s) of {prev.shape[1]}x"
                                             f"{prev.shape[2]} in)")
                return PipelineResult(inp, levels, exc, image)
            res.key = key
        levels.append(res)
        used += res.maps.size * 4
        if on_stage is not None:
            on_stage(res)
        prev = res
        upstream = key
    if progress is not None:
        progress(len(pipeline.stages), len(pipeline.stages))
    return PipelineResult(inp, levels, None, image)


def _chain_key(upstream: str, st) -> str:
    """Identity of a stage's result: its settings and everything upstream, hashed.

    Kernel weights enter as a digest of their bytes (not as JSON text), so keys stay
    cheap for CNN layers with thousands of weights.
    """
    h = hashlib.blake2b(upstream.encode(), digest_size=16)
    d = st.to_dict() if not isinstance(st, ConvStage) else {
        **st.to_dict(kernels=False),
        "kernels": [(k.name, k.bias, k.divisor, k.flip, k.weights.shape) for k in st.kernels]}
    h.update(json.dumps(d, sort_keys=True, default=str).encode())
    if isinstance(st, ConvStage):
        for k in st.kernels:
            h.update(np.ascontiguousarray(k.weights).tobytes())
    return h.hexdigest()


def _image_key(image) -> str:
    """Identity of an image array (the app never mutates an image it has shown)."""
    a = np.asarray(image)
    return f"image:{id(image)}:{a.shape}:{a.__array_interface__['data'][0]}"


# ------------------------------------------------------------------------------ JSON


def _expect(cond, where, message):
    if not cond:
        raise ValueError(f"{where}: {message}")


def _check_numbers(v, depth: int = 0) -> None:
    """Nested lists (at most 3 deep) of real numbers only (no strings or booleans to be
    coerced, no integer beyond float range)."""
    if isinstance(v, list):
        if depth >= 3:
            raise TypeError("nested more than 3 deep")
        for item in v:
            _check_numbers(item, depth + 1)
    else:
        _number(v)


def _number(v, what: str = "") -> float:
    """``v`` as a float if it is a JSON number (not a boolean, not beyond float range)."""
    label = f"{what} " if what else ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{label}must be a number, got {_brief(v)}" if label else
                        f"{_brief(v)} is not a number")
    try:
        return float(v)
    except OverflowError:
        raise TypeError(f"{label}must be a number within float range, got an integer of "
                        f"{len(str(abs(v)))} digits") from None


def _brief(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(d: dict, key: str, default, where: str) -> float:
    try:
        return _number(d.get(key, default), key)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _stage_from_dict(i: int, d) -> Any:
    where = f"stage {i + 1}"
    _expect(isinstance(d, dict), where, f"must be an object, got {type(d).__name__}")
    kind = d.get("type")
    allowed = {"conv": {"type", "mode", "stride", "padding", "padding_mode", "cval", "dilation",
                        "kernels"},
               "activation": {"type", "function", "alpha"},
               "pool": {"type", "mode", "kernel_size", "stride", "padding", "dilation",
                        "ceil_mode", "count_include_pad"}}
    _expect(isinstance(kind, str) and kind in allowed, where,
            f"unknown stage type {_brief(kind)} (expected conv, activation or pool)")
    extra = set(d) - allowed[kind]
    _expect(not extra, where, f"unknown field(s) {sorted(extra)}")
    if kind == "conv":
        kernels = d.get("kernels")
        _expect(isinstance(kernels, list) and kernels, where, "'kernels' must be a non-empty "
                                                              "list")
        ks = []
        for k, kd in enumerate(kernels):
            kw = f"{where} kernel {k + 1}"
            _expect(isinstance(kd, dict) and "weights" in kd, kw, "must be an object with "
                                                                  "'weights'")
            extra = set(kd) - {"name", "weights", "bias", "divisor", "flip"}
            _expect(not extra, kw, f"unknown field(s) {sorted(extra)}")
            try:
                _check_numbers(kd["weights"])
                arr = np.array(kd["weights"], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{kw}: weights must be a rectangular array of numbers "
                                 f"({exc})") from None
            _expect(arr.ndim in (2, 3), kw, f"weights must be 2-D or 3-D, got shape "
                                            f"{arr.shape}")
            bias = _field(kd, "bias", 0.0, kw)
            divisor = _field(kd, "divisor", 1.0, kw)
            _expect(isinstance(kd.get("flip", False), bool), kw, "flip must be true or false")
            _expect(isinstance(kd.get("name", "kernel"), str), kw, "name must be a string")
            ks.append(Kernel(arr, bias, divisor, kd.get("flip", False),
                             kd.get("name", f"kernel {k + 1}")))
        for key in ("mode", "padding_mode"):
            _expect(isinstance(d.get(key, ""), str), where, f"{key} must be a string, got "
                                                            f"{_brief(d.get(key))}")
        st = ConvStage(ks, d.get("mode", "per_channel"), _geometry_value(d, "stride", 1, where),
                       _geometry_value(d, "padding", "same", where),
                       d.get("padding_mode", "zeros"), _field(d, "cval", 0.0, where),
                       _geometry_value(d, "dilation", 1, where))
    elif kind == "activation":
        _expect(isinstance(d.get("function", ""), str), where, f"function must be a string, "
                                                               f"got {_brief(d.get('function'))}")
        st = ActivationStage(d.get("function", "relu"), _field(d, "alpha", 0.01, where))
    else:
        for flag in ("ceil_mode", "count_include_pad"):
            _expect(isinstance(d.get(flag, False), bool), where, f"{flag} must be true or false, "
                                                                f"got {d.get(flag)!r}")
        _expect(isinstance(d.get("mode", ""), str), where, f"mode must be a string, got "
                                                           f"{_brief(d.get('mode'))}")
        st = PoolStage(d.get("mode", "max"), _geometry_value(d, "kernel_size", 2, where),
                       _geometry_value(d, "stride", None, where),
                       _geometry_value(d, "padding", 0, where),
                       _geometry_value(d, "dilation", 1, where), bool(d.get("ceil_mode", False)),
                       bool(d.get("count_include_pad", True)))
    return st


def _geometry_value(d: dict, key: str, default, where: str):
    """A stride/padding/dilation/kernel_size field: an integer, a padding keyword, or
    lists of at most two levels of integers. (Their range, :data:`MAX_GEOMETRY`, is
    checked with the stage, by :func:`stage_output_shape`.)"""
    v = d.get(key, default)

    def ok(item, depth):
        if isinstance(item, list):
            return depth < 2 and len(item) <= 2 and all(ok(p, depth + 1) for p in item)
        return isinstance(item, int) and not isinstance(item, bool)

    if v is None or isinstance(v, str) or ok(v, 0):
        return _tuplify(v)
    raise ValueError(f"{where}: {key} must be an integer or a pair of them, got {_brief(v)}")


def pipeline_from_dict(d) -> Pipeline:
    """Build a pipeline from its JSON dict; raises ValueError naming the bad part."""
    _expect(isinstance(d, dict), "file", "top level must be a JSON object")
    _expect(d.get("format") == FORMAT, "file", f"not a ConvScope pipeline (format is "
                                               f"{d.get('format')!r})")
    ver = d.get("version")
    _expect(isinstance(ver, int) and not isinstance(ver, bool) and ver >= 1, "file",
            f"version must be a positive integer, got {ver!r}")
    _expect(ver <= VERSION, "file", f"version {ver} is newer than this ConvScope reads "
                                    f"({VERSION})")
    stages = d.get("stages")
    _expect(isinstance(stages, list), "file", "'stages' must be a list")
    pipe = Pipeline([_stage_from_dict(i, s) for i, s in enumerate(stages)])
    check_pipeline(pipe)
    return pipe


def check_pipeline(pipe: Pipeline) -> None:
    """The checks that need no image (kernels, modes, numbers, geometry on a large
    nominal input); raises :class:`PipelineError` naming the first bad stage and field.
    What passes is what :func:`load_pipeline` accepts."""
    for i, st in enumerate(pipe.stages):
        stage_output_shape(i, st, (_per_channel_maps(st), 1 << 14, 1 << 14), limit=False)


def _per_channel_maps(st) -> int:
    if isinstance(st, ConvStage):
        for k in st.kernels:
            if k.weights.ndim == 3:
                return k.weights.shape[0]
    return 3


def load_pipeline(source) -> Pipeline:
    """Read a pipeline from a path or a JSON string/bytes.

    A ``str`` is JSON text when it starts with ``{`` and no file of that name exists;
    an ``os.PathLike`` is always a path (a file named ``{edges}.json`` is read).

    Raises :class:`PipelineFileError` naming the file and what is wrong (bad JSON
    with its line and column, wrong format or version, a bad stage or field).
    """
    name = "<text>"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and (
            not source.lstrip().startswith("{") or os.path.isfile(source))):
        name = os.fspath(source)
        try:
            with open(name, "rb") as fh:
                data = fh.read((16 << 20) + 1)
        except OSError as exc:
            raise PipelineFileError(f"cannot read pipeline '{name}': {exc.strerror or exc}") \
                from None
        if len(data) > 16 << 20:
            raise PipelineFileError(f"cannot read pipeline '{name}': larger than 16 MiB")
    else:
        data = source.encode() if isinstance(source, str) else bytes(source)
    try:
        d = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PipelineFileError(f"cannot read pipeline '{name}': not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PipelineFileError(f"cannot read pipeline '{name}': invalid JSON at line "
                                f"{exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PipelineFileError(f"cannot read pipeline '{name}': nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise PipelineFileError(f"cannot read pipeline '{name}': {exc}") from None
    try:
        return pipeline_from_dict(d)
    except (ValueError, TypeError, OverflowError) as exc:
        raise PipelineFileError(f"cannot read pipeline '{name}': {exc}") from None
    except RecursionError:
        raise PipelineFileError(f"cannot read pipeline '{name}': nested too deeply") from None


def save_pipeline(path, pipeline: Pipeline) -> None:
    """Write ``pipeline`` as versioned JSON, atomically.

    A pipeline :func:`load_pipeline` would refuse (a NaN weight, a stride of 0, ...)
    raises :class:`PipelineError` naming the stage and field, and nothing is written:
    a good file is never replaced by one that cannot be read back.
    """
    check_pipeline(pipeline)
    atomic_write_bytes(path, pipeline.to_json().encode("utf-8"))
