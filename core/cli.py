"""``convscope-run``: run a pipeline on an image headlessly and write every feature map.

    convscope-run IMAGE [--pipeline FILE.json] [--out DIR] [--bits 8|16] [--sheet OUT.png|.pdf]

With ``--out``, writes, for every level (the input channels and each stage), each map as
PNG (the map's own min..max mapped linearly to 0..255 or 0..65535) and as .npy (float32,
the exact values), plus ``maps.json`` describing names, shapes and PNG value ranges.
With ``--sheet``, writes all maps in one picture (PNG or PDF) at their data resolution,
with headers and colour bars (ranges per stage, 1-99 % percentiles; gray for the input
and non-negative stages, blue-white-red for signed ones): see ``core.sheet``.
At least one of the two is needed.
Prints each stage's shape and output-size formula; on large images a progress line.
Exit status: 0 on success, 2 for bad input (image, pipeline, geometry, a sheet name
that is not .png or .pdf) or an output folder or sheet that cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .export import export_maps
from .image import ImageLoadError, load_image
from .memory import reuse_large_allocations
from .pipeline import PipelineFileError, default_pipeline, load_pipeline, run
from .sheet import default_style, render_sheet, save_sheet, sheet_format

PROGRESS_MIN_PIXELS = 4_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="convscope-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("image", help="image file (any format Pillow reads)")
    ap.add_argument("--pipeline", help="pipeline JSON (default: edge-detect 3x3, ReLU, "
                                       "2x2 max pool)")
    ap.add_argument("--out", help="output folder for every map as PNG + .npy (created if "
                                   "missing)")
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8, help="PNG bit depth")
    ap.add_argument("--gray", action="store_true", help="convert the image to grayscale first")
    ap.add_argument("--sheet", metavar="OUT.png|OUT.pdf",
                    help="also write all maps in one picture with headers and colour bars")
    args = ap.parse_args(argv)
    if args.out is None and args.sheet is None:
        ap.error("give --out DIR, --sheet OUT.png|OUT.pdf or both")
    if args.sheet is not None:
        try:
            sheet_format(args.sheet)
        except ValueError as exc:
            print(f"convscope-run: {exc}", file=sys.stderr)
            return 2
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
    sheet = None
    if args.sheet is not None:  # drawn before anything is written: it can still fail
        title = (f"{os.path.basename(args.image)} · "
                 f"{os.path.basename(args.pipeline) if args.pipeline else 'default pipeline'}")
        try:
            sheet, layout = render_sheet(res, *default_style(res), title=title,
                                         return_layout=True)
        except (ValueError, MemoryError) as exc:
            print(f"convscope-run: cannot draw the sheet: {str(exc) or 'not enough memory'}",
                  file=sys.stderr)
            return 2
    if args.out is not None and _write_maps(res, args, pipe, show_progress) != 0:
        return 2
    if sheet is not None:
        try:
            save_sheet(sheet, args.sheet)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            kept = f"; the maps in '{args.out}' were written" if args.out is not None else ""
            print(f"convscope-run: cannot write the sheet to '{args.sheet}': {reason}{kept}",
                  file=sys.stderr)
            return 2
        scale = "one map cell = one pixel" if layout.factor == 1 else \
            f"maps shown at 1/{layout.factor}"
        print(f"wrote the sheet {args.sheet} ({sheet.width}x{sheet.height} px, {scale})")
    return 0


def _write_maps(res, args, pipe, show_progress: bool) -> int:
    """Every map as PNG + .npy into ``args.out``; 0, or 2 after a message."""
    def write_progress(done, total):
        if show_progress:
            print(f"\r  writing maps {done}/{total}", end="", file=sys.stderr, flush=True)
        return True

    try:
        index = export_maps(res, args.out, bits=args.bits, pipeline=pipe,
                            source=os.path.abspath(args.image), progress=write_progress)
    except OSError as exc:
        if show_progress:
            print(file=sys.stderr)
        reason = exc.strerror or str(exc)
        print(f"convscope-run: cannot write the maps to '{args.out}': {reason} "
              f"(nothing written there)", file=sys.stderr)
        return 2
    if show_progress:
        print(file=sys.stderr)
    print(f"wrote {len(index)} maps (PNG + .npy) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
