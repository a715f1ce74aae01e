"""``convscope-run``: run a pipeline on an image headlessly and write every feature map.

    convscope-run IMAGE [--pipeline FILE.json] --out DIR [--bits 8|16]

Writes, for every level (the input channels and each stage), each map as PNG (the
map's own min..max mapped linearly to 0..255 or 0..65535) and as .npy (float32, the
exact values), plus ``maps.json`` describing names, shapes and PNG value ranges.
Prints each stage's shape and output-size formula; on large images a progress line.
Exit status: 0 on success, 2 for bad input (image, pipeline, geometry).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time

import numpy as np

from .image import ImageLoadError, load_image, save_image
from .memory import reuse_large_allocations
from .pipeline import (PipelineFileError, atomic_write_bytes, default_pipeline, load_pipeline,
                       run)

PROGRESS_MIN_PIXELS = 4_000_000


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "map"


def _save_npy(path: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="convscope-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("image", help="image file (any format Pillow reads)")
    ap.add_argument("--pipeline", help="pipeline JSON (default: edge-detect 3x3, ReLU, "
                                       "2x2 max pool)")
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8, help="PNG bit depth")
    ap.add_argument("--gray", action="store_true", help="convert the image to grayscale first")
    args = ap.parse_args(argv)
    reuse_large_allocations()
    try:
        img = load_image(args.image, mode="gray" if args.gray else "auto")
        pipe = load_pipeline(args.pipeline) if args.pipeline else default_pipeline()
    except (ImageLoadError, PipelineFileError) as exc:
        print(f"convscope-run: {exc}", file=sys.stderr)
        return 2
    h, w, c = img.shape
    print(f"input: {args.image}  {c} channel(s), {h}x{w}")
    show_progress = h * w >= PROGRESS_MIN_PIXELS
    t0 = time.perf_counter()

    def progress(done, total):
        if show_progress:
            print(f"\r  running stage {min(done + 1, total)}/{total} "
                  f"({time.perf_counter() - t0:.1f} s)", end="", file=sys.stderr, flush=True)
        return True

    res = run(img, pipe, progress=progress)
    if show_progress:
        print(file=sys.stderr)
    for lvl in res.stages:
        print(f"{lvl.name}\n  -> {lvl.shape[0]} map(s) of {lvl.shape[1]}x{lvl.shape[2]}"
              f"   [{lvl.formula}]   {lvl.seconds * 1e3:.1f} ms")
    if res.error is not None:
        print(f"convscope-run: {res.error}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    index = []
    levels = [res.input, *res.stages]
    n_total = sum(len(lvl.labels) for lvl in levels)
    done = 0
    for li, lvl in enumerate(levels):
        prefix = "input" if lvl.index < 0 else f"stage{lvl.index + 1}"
        for m, label in enumerate(lvl.labels):
            base = f"{li:02d}_{prefix}_{m:02d}_{_safe(label)}"
            arr = lvl.maps[m]
            vmin, vmax = save_image(os.path.join(args.out, base + ".png"), arr, bits=args.bits)
            _save_npy(os.path.join(args.out, base + ".npy"), arr)
            index.append({"level": lvl.index, "stage": lvl.name, "map": m, "label": label,
                          "shape": list(arr.shape), "png": base + ".png", "npy": base + ".npy",
                          "png_range": [vmin, vmax], "min": float(arr.min()),
                          "max": float(arr.max()), "mean": float(arr.mean())})
            done += 1
            if show_progress:
                print(f"\r  writing maps {done}/{n_total}", end="", file=sys.stderr, flush=True)
    if show_progress:
        print(file=sys.stderr)
    atomic_write_bytes(os.path.join(args.out, "maps.json"),
                       json.dumps({"image": os.path.abspath(args.image),
                                   "pipeline": pipe.to_dict(), "maps": index},
                                  indent=1).encode())
    print(f"wrote {len(index)} maps (PNG + .npy) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
