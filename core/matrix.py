"""Small matrices of numbers as inputs: the worked examples of every course.

``load_matrix`` reads a ``.csv`` or ``.txt`` file (numbers separated by commas or
spaces, one row per line; a blank line starts the next channel) or a ``.npy`` array
(no pickle), and ``parse_matrix`` reads the same text typed or pasted. Values are
kept as they are (not scaled to 0..1): the 5x5 example of REFERENCE.md stays
105, 102, ... Shapes: (H, W) is one channel; (H, W, 3), three blocks of rows, or a
(3, H, W) ``.npy`` is an RGB input. The result is (H, W, C) float32, as
:func:`core.image.load_image` returns for photos.

Refused, with the file, row and column named: ragged rows, text where a number
belongs, NaN or infinite values, nothing at all, channels of different sizes, and
more than ``max_pixels`` cells.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np

__all__ = ["MatrixError", "MATRIX_SUFFIXES", "load_matrix", "parse_matrix", "is_matrix_path"]

MATRIX_SUFFIXES = (".csv", ".txt", ".npy")
#: the most cells a typed or loaded matrix may have (an image has its own limit)
MAX_CELLS = 16_000_000
_MAX_TEXT = 64 * 1024 * 1024
_SPLIT = re.compile(r"[,\s;]+")


class MatrixError(ValueError):
    """A matrix file or text cannot be used; the message names the place."""


def is_matrix_path(path) -> bool:
    return os.fspath(path).lower().endswith(MATRIX_SUFFIXES)


def load_matrix(path, *, max_pixels: int = MAX_CELLS) -> np.ndarray:
    """Read a matrix file (see the module docstring) as (H, W, C) float32."""
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        if path.lower().endswith(".npy"):
            with open(path, "rb") as fh:
                return _from_array(np.load(fh, allow_pickle=False), name, max_pixels)
        if size > _MAX_TEXT:
            raise MatrixError(f"'{name}' is {size / 2**20:.0f} MB: too large for a matrix of "
                              f"numbers (the limit is {_MAX_TEXT // 2**20} MB)")
        with open(path, "rb") as fh:
            raw = fh.read()
    except MatrixError:
        raise
    except OSError as exc:
        raise MatrixError(f"cannot read '{name}': {exc.strerror or exc}") from None
    except ValueError as exc:  # np.load: not an .npy, or an object array (pickle refused)
        raise MatrixError(f"'{name}' is not a numeric .npy array: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MatrixError(f"'{name}' is not text (a matrix file holds numbers separated by "
                          f"commas or spaces)") from None
    return parse_matrix(text, name=name, max_pixels=max_pixels)


def parse_matrix(text: str, *, name: str = "the matrix", max_pixels: int = MAX_CELLS
                 ) -> np.ndarray:
    """Numbers typed or pasted: rows on lines, a blank line between channels; ``#``
    starts a comment. Returns (H, W, C) float32."""
    blocks: list[list[list[float]]] = [[]]
    width = None
    for lineno, line in enumerate(io.StringIO(text), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            if blocks[-1]:
                blocks.append([])
            continue
        cells = [c for c in _SPLIT.split(line) if c]
        row = []
        for col, cell in enumerate(cells, start=1):
            try:
                v = float(cell)
            except ValueError:
                raise MatrixError(f"{name}, row {lineno}, column {col}: {cell[:20]!r} is not "
                                  f"a number") from None
            if not np.isfinite(v):
                raise MatrixError(f"{name}, row {lineno}, column {col}: {cell!r} is not a "
                                  f"finite number")
            row.append(v)
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise MatrixError(f"{name}, row {lineno}: {len(row)} value(s), but the rows above "
                              f"have {width}")
        blocks[-1].append(row)
        if sum(len(b) for b in blocks) * width > max_pixels:
            raise MatrixError(f"{name}: more than the limit of {max_pixels:,} cells")
    blocks = [b for b in blocks if b]
    if not blocks:
        raise MatrixError(f"{name} holds no numbers")
    heights = {len(b) for b in blocks}
    if len(heights) != 1:
        raise MatrixError(f"{name}: its {len(blocks)} channels (blocks separated by blank "
                          f"lines) have {sorted(heights)} rows; they must be equal")
    if len(blocks) not in (1, 3):
        raise MatrixError(f"{name}: {len(blocks)} channels (blocks separated by blank lines); "
                          f"use 1 (a single matrix) or 3 (R, G and B)")
    arr = np.array(blocks, dtype=np.float64)          # (C, H, W)
    return _finish(arr.transpose(1, 2, 0), name)


def _from_array(a: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise MatrixError(f"'{name}' holds {a.dtype} values, not numbers")
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = a.transpose(1, 2, 0)   # (C, H, W), as PyTorch keeps it
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise MatrixError(f"'{name}' has shape {a.shape}; a matrix input is (H, W), "
                          f"(H, W, 3) or (3, H, W)")
    if 0 in a.shape:
        raise MatrixError(f"'{name}' holds no numbers (shape {a.shape})")
    if a.shape[0] * a.shape[1] > max_pixels:
        raise MatrixError(f"'{name}': {a.shape[0]}x{a.shape[1]} is more than the limit of "
                          f"{max_pixels:,} cells")
    a = a.astype(np.float64)
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        r, c, ch = (int(v) for v in bad[0])
        raise MatrixError(f"'{name}', row {r + 1}, column {c + 1}"
                          f"{f', channel {ch + 1}' if a.shape[2] > 1 else ''}: "
                          f"{a[r, c, ch]} is not a finite number ({len(bad)} such value(s))")
    return _finish(a, name)


def _finish(a: np.ndarray, name: str) -> np.ndarray:
    big = float(np.max(np.abs(a)))
    if big > float(np.finfo(np.float32).max):
        raise MatrixError(f"{name}: {big:g} is beyond float32's range")
    return np.ascontiguousarray(a, dtype=np.float32)
