"""The classic worked examples, as inputs and pipelines ConvScope opens.

Each :class:`Example` has a title, one or two sentences on what to look at, an input
(a small matrix of numbers, or a bundled photo), a pipeline, and the stage whose
sliding window is worth stepping through. The files in ``assets/examples/`` are
written from these definitions by :func:`write_files` (a test checks they match), so
the menu, the files and the tests cannot drift apart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .pipeline import ConvStage, Kernel, Pipeline, PoolStage

__all__ = ["Example", "examples", "example", "write_files", "load_input", "file_contents"]

FOLDER = Path(__file__).resolve().parent.parent / "assets" / "examples"
SHARPEN = [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
REFERENCE_5X5 = [[105, 102, 100, 97, 96], [103, 99, 103, 101, 102],
                 [101, 98, 104, 102, 100], [99, 101, 106, 104, 99],
                 [104, 104, 104, 100, 98]]


class Example:
    """One worked example. ``pipeline`` and ``matrix`` may be given as functions that
    make them: they are called on first use (the Keras example reads the shipped model
    and a digit of the bundled MNIST subset, 0.5 s that every start-up paid to build
    the Examples menu)."""

    def __init__(self, key: str, title: str, description: str, pipeline,
                 matrix=None, photo: str = "", stage: int = 0, predict: bool = False,
                 facts: dict | None = None):
        self.key, self.title, self.description = key, title, description
        self._pipeline, self._matrix = pipeline, matrix
        self.photo = photo                 # a bundled photo's file name (no matrix)
        self.stage = stage                 # the stage to step through (0-based)
        self.predict = predict             # "predict, then reveal" on by default
        self.facts = dict(facts or {})     # what the example shows, for the tests

    @property
    def pipeline(self) -> Pipeline:
        if callable(self._pipeline):
            self._pipeline = self._pipeline()
        return self._pipeline

    @property
    def matrix(self) -> np.ndarray | None:
        """(H, W) or (H, W, C) numbers, or None: the input is :attr:`photo`."""
        if callable(self._matrix):
            self._matrix = self._matrix()
        return self._matrix

    @property
    def is_matrix(self) -> bool:
        """Whether the input is a matrix of numbers (without making it)."""
        return self._matrix is not None

    @property
    def input_file(self) -> str:
        return f"{self.key}.csv" if self.is_matrix else self.photo

    def __repr__(self):
        return f"Example({self.key!r}, {self.title!r})"


def _ramp(h: int, w: int) -> np.ndarray:
    return np.arange(h * w, dtype=np.float64).reshape(h, w) % 10


def _ones(k: int, name: str = "ones") -> Kernel:
    return Kernel(np.ones((k, k)), name=name)


def _checker(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    return ((x * 7 + y * 13) % 17).astype(np.float64)


def _digit() -> np.ndarray:
    """A 7 from the bundled MNIST test subset, normalised as the network reads it."""
    from .nn.data import load_bundled_mnist
    data = load_bundled_mnist()
    return np.round(data.x_test[0, 0].astype(np.float64), 4)


def _keras_first_layer() -> Pipeline:
    from .nn.model import load_model, to_pipeline
    model, _ = load_model(FOLDER.parent / "mnist-keras.npz")
    pipe, _ = to_pipeline(model)
    return Pipeline(pipe.stages[:2])   # the first convolution and its ReLU


def _examples() -> list[Example]:
    conv_arith = "From Dumoulin & Visin's guide to convolution arithmetic (conv_arithmetic): "
    return [
        Example("sharpen", "Sharpen a 5x5 image (zero padding 1)",
                "The textbook example: the sharpen kernel over a 5x5 image padded with "
                "zeros. Step through the first cell: 105*5 - 102 - 103 = 320. Predict "
                "the next cells before revealing them.",
                Pipeline([ConvStage([Kernel(np.array(SHARPEN, float), name="sharpen")],
                                    padding=1)]),
                matrix=np.array(REFERENCE_5X5, float), predict=True,
                facts={"value": ((0, 0, 0, 0), 320.0), "shape": (0, (5, 5))}),
        Example("output-size", "Output size: W=256, K=3, P=1, S=3 gives 86",
                "1 + (256 + 2*1 - 3) / 3 = 1 + 85 = 86 (the division rounds down). A "
                "well-known article gives 85: it forgot the first window position, the "
                "'1 +'. The header of stage 1 writes the formula with these numbers.",
                Pipeline([ConvStage([_ones(3, "box")], stride=3, padding=1)]),
                matrix=_checker(256), facts={"shape": (0, (86, 86))}),
        Example("max-pool-8x8", "2x2 max pooling, stride 2: 8x8 becomes 4x4",
                "Each 2x2 block keeps its largest value; click an output cell to see the "
                "winner marked in its window.",
                Pipeline([PoolStage("max", 2, 2)]),
                matrix=_checker(8), predict=True, facts={"shape": (0, (4, 4))}),
        Example("rgb-max-pool", "Max pooling an RGB photo, channel by channel",
                "Pooling works on each channel alone: click a cell of the pooled R, G "
                "and B maps at the same place and compare the winners; they often come "
                "from different pixels, so the pooled colour is a colour no pixel had.",
                Pipeline([PoolStage("max", 4, 4)]), photo="chelsea.png",
                facts={"shape": (0, (75, 112))}),
        Example("keras-first-layer", "The first layer of the Keras MNIST convnet",
                "The 32 learned 3x3 filters of the shipped model (99.2 % on MNIST) on a "
                "handwritten 7, normalised as the network reads it ((x - 0.1307) / "
                "0.3081); each map, after the ReLU, lights up where its pattern is.",
                _keras_first_layer, matrix=_digit,
                facts={"shape": (0, (26, 26)), "maps": (0, 32)}),
        Example("no-padding", "No padding, unit strides (4x4, kernel 3)",
                conv_arith + "the window fits 2 times along each side: a 2x2 output.",
                Pipeline([ConvStage([_ones(3)], padding=0)]), matrix=_ramp(4, 4),
                predict=True, facts={"shape": (0, (2, 2))}),
        Example("arbitrary-padding", "Arbitrary padding (5x5, kernel 4, padding 2)",
                conv_arith + "1 + (5 + 2*2 - 4) / 1 = 6: padding can make the output "
                "larger than the input.",
                Pipeline([ConvStage([_ones(4)], padding=2)]), matrix=_ramp(5, 5),
                facts={"shape": (0, (6, 6))}),
        Example("half-padding", "Half ('same') padding (5x5, kernel 3, padding 1)",
                conv_arith + "padding floor(3/2) = 1 keeps the size: 5x5 in, 5x5 out.",
                Pipeline([ConvStage([_ones(3)], padding="same")]), matrix=_ramp(5, 5),
                facts={"shape": (0, (5, 5))}),
        Example("full-padding", "Full padding (5x5, kernel 3, padding 2)",
                conv_arith + "padding k - 1 = 2 lets every window that touches the input "
                "count: 5 + 3 - 1 = 7.",
                Pipeline([ConvStage([_ones(3)], padding="full")]), matrix=_ramp(5, 5),
                facts={"shape": (0, (7, 7))}),
        Example("strides", "Non-unit strides (5x5, kernel 3, stride 2)",
                conv_arith + "the window jumps 2 cells: 1 + (5 - 3) / 2 = 2.",
                Pipeline([ConvStage([_ones(3)], stride=2, padding=0)]), matrix=_ramp(5, 5),
                predict=True, facts={"shape": (0, (2, 2))}),
        Example("dilation", "Dilation (7x7, kernel 3, dilation 2)",
                conv_arith + "the taps are 2 apart, so the kernel spans 5 cells: "
                "1 + (7 - 5) = 3.",
                Pipeline([ConvStage([_ones(3)], dilation=2, padding=0)]), matrix=_ramp(7, 7),
                facts={"shape": (0, (3, 3))}),
    ]


_cache: list[Example] | None = None


def examples() -> list[Example]:
    global _cache
    if _cache is None:
        _cache = _examples()
    return _cache


def example(key: str) -> Example:
    for ex in examples():
        if ex.key == key:
            return ex
    raise KeyError(f"no example {key!r}; there are {[e.key for e in examples()]}")


def load_input(ex: Example, folder: Path | None = None) -> np.ndarray:
    """The example's input as (H, W, C) float32 (numbers kept; a photo in 0..1)."""
    if ex.matrix is not None:
        m = np.asarray(ex.matrix, np.float32)
        return m[:, :, None] if m.ndim == 2 else m
    from .image import load_image
    return load_image((folder or FOLDER.parent) / ex.photo)


def _csv(m: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in np.asarray(m)) + "\n"


def file_contents(ex: Example) -> dict[str, bytes]:
    """The files of one example: its pipeline (with title and description) and its
    input matrix."""
    d = ex.pipeline.to_dict()
    d["example"] = {"title": ex.title, "description": ex.description,
                    "input": ex.input_file, "stage": ex.stage + 1, "predict": ex.predict}
    files = {f"{ex.key}.json": (json.dumps(d, indent=1) + "\n").encode()}
    if ex.matrix is not None:
        files[f"{ex.key}.csv"] = _csv(ex.matrix).encode()
    return files


def write_files(folder=FOLDER) -> list[str]:
    """Write every example's files into ``folder`` (atomically); returns the names."""
    from .fileio import atomic_write_bytes
    os.makedirs(folder, exist_ok=True)
    names = []
    for ex in examples():
        for name, data in file_contents(ex).items():
            atomic_write_bytes(os.path.join(folder, name), data)
            names.append(name)
    return names


if __name__ == "__main__":  # python -m convscope.core.examples: regenerate the files
    print("\n".join(write_files()))
