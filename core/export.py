"""Writing a pipeline result to disk: every map as PNG and .npy, plus an index."""

from __future__ import annotations

import io
import json
import os
import re
from typing import Callable

import numpy as np

from .image import save_image
from .pipeline import PipelineResult, atomic_write_bytes

__all__ = ["export_maps", "save_npy"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "map"


def save_npy(path, arr: np.ndarray) -> None:
    """Save a float32 array as .npy, atomically, without pickle."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def export_maps(result: PipelineResult, folder, *, bits: int = 8, pipeline=None,
                source: str | None = None,
                progress: Callable[[int, int], bool | None] | None = None) -> list[dict]:
    """Write every map of ``result`` (input channels and every stage) to ``folder``.

    Each map becomes ``NN_<level>_MM_<label>.png`` (its own min..max mapped linearly to
    0..2**bits-1) and ``.npy`` (exact float32 values); ``maps.json`` lists them with
    shapes, statistics and the PNG value range. ``progress(done, total)`` returning
    False stops early (files already written stay valid). Returns the index entries.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    os.makedirs(folder, exist_ok=True)
    levels = [result.input, *result.stages]
    total = sum(len(lvl.labels) for lvl in levels)
    index: list[dict] = []
    for li, lvl in enumerate(levels):
        prefix = "input" if lvl.index < 0 else f"stage{lvl.index + 1}"
        for m, label in enumerate(lvl.labels):
            if progress is not None and progress(len(index), total) is False:
                return index
            base = f"{li:02d}_{prefix}_{m:02d}_{_safe(label)}"
            arr = lvl.maps[m]
            vmin, vmax = save_image(os.path.join(folder, base + ".png"), arr, bits=bits)
            save_npy(os.path.join(folder, base + ".npy"), arr)
            index.append({"level": lvl.index, "stage": lvl.name, "map": m, "label": label,
                          "shape": list(arr.shape), "png": base + ".png", "npy": base + ".npy",
                          "png_range": [vmin, vmax], "min": float(arr.min()),
                          "max": float(arr.max()), "mean": float(arr.mean(dtype=np.float64))})
    doc = {"maps": index}
    if source is not None:
        doc["image"] = source
    if pipeline is not None:
        doc["pipeline"] = pipeline.to_dict()
    atomic_write_bytes(os.path.join(folder, "maps.json"), json.dumps(doc, indent=1).encode())
    if progress is not None:
        progress(total, total)
    return index
