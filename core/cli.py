"""``convscope-run``: run a pipeline on an image or a matrix headlessly and write what it
computed: every feature map, a sheet of them all, or an animation of one stage.

    convscope-run INPUT [--pipeline FILE.json] [--out DIR] [--bits 8|16] [--sheet OUT.png|.pdf]
    convscope-run INPUT [--pipeline FILE.json] --animate STAGE [--map K] [--cells N]
                  [--step cell|product] [--size WxH] [--fps F] --out ANIM.gif|ANIM.png

INPUT is a photo (any format Pillow reads, scaled to 0..1) or a matrix of numbers
(``.csv``, ``.txt``, ``.npy``: kept as they are; see ``core.matrix``).

With ``--out DIR``, writes, for every level (the input channels and each stage), each
map as PNG (the map's own min..max mapped linearly to 0..255 or 0..65535) and as .npy
(float32, the exact values), plus ``maps.json`` describing names, shapes and PNG value
ranges. With ``--sheet``, writes all maps in one picture (PNG or PDF) at their data
resolution, with headers and colour bars (see ``core.sheet``).

With ``--animate STAGE`` (counted from 1, as the window counts stages), ``--out`` names
an animated GIF (``.gif``) or APNG (``.png``): one frame per output cell of map K of
that stage in row-major order (or one per product with ``--step product``), each
showing the window on the input, the kernel, the products, the sum so far and the
output filling in (``core.animate``).

Prints each stage's shape and output-size formula; on large inputs a progress line.
Output paths are checked before anything is computed. Files appear only once complete
(written atomically; the maps through a staging folder): Ctrl-C, SIGTERM or SIGHUP
stop the run, remove what was staged and leave earlier outputs as they were. When
stdout is closed early (``| head -1``) the run still writes its files.

Exit status: 0 on success; 2 for bad input (image, matrix, pipeline, geometry, stage or
map number, an output name of the wrong kind) or an output that cannot be written;
130 after Ctrl-C, 128 + the signal number after SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from .export import export_maps
from .image import ImageLoadError, load_image, luma
from .matrix import MatrixError, is_matrix_path, load_matrix
from .memory import reuse_large_allocations
from .pipeline import PipelineFileError, default_pipeline, load_pipeline, run
from .sheet import default_style, render_sheet, save_sheet, sheet_format

PROGRESS_MIN_PIXELS = 4_000_000
#: frames held in memory before an animation is encoded are bounded by this many bytes
ANIMATION_MAX_BYTES = 1 << 30
DEFAULT_ANIMATION_CELLS = 100
DEFAULT_ANIMATION_SIZE = (960, 540)
DEFAULT_FPS = 2.5

DESCRIPTION = """\
Run a ConvScope pipeline on a photo or a matrix of numbers, without a window, and
write every feature map (PNG + .npy), a sheet of them all (PNG or PDF), or an
animation of one stage computing (GIF or APNG)."""
EPILOG = """examples:
  convscope-run photo.jpg --out maps/
  convscope-run photo.jpg --pipeline mine.json --sheet sheet.pdf
  convscope-run grid.csv --pipeline mine.json --animate 1 --cells 9 --out conv.gif
  convscope-run --example sharpen --animate 1 --step product --out sharpen.gif
  convscope-run --example list

Pipelines are saved by the app (Pipeline > Save) or written by hand: see
docs/pipeline-format.md. Exit status 0 on success, 2 for bad input or an output that
cannot be written, 130 after Ctrl-C."""


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so staging folders are removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _version() -> str:
    try:
        from convscope import __version__
        return __version__
    except ImportError:  # pragma: no cover - core used without the package
        return "development"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 960x540, got {text!r}") from None
    if not (320 <= w <= 3840 and 180 <= h <= 2160):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is outside 320x180..3840x2160")
    return w, h


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
        return v
    return parse


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="convscope-run", description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    ap.add_argument("input", metavar="INPUT", nargs="?",
                    help="a photo (any format Pillow reads) or a matrix of numbers "
                         "(.csv, .txt, .npy; values kept as they are)")
    ap.add_argument("--example", metavar="NAME",
                    help="use a bundled worked example's input and pipeline instead "
                         "('--example list' lists them)")
    ap.add_argument("--pipeline", metavar="FILE.json",
                    help="pipeline JSON (default: edge-detect 3x3, ReLU, 2x2 max pool)")
    ap.add_argument("--out", metavar="DIR|ANIM",
                    help="folder for every map as PNG + .npy (created if missing); with "
                         "--animate, the animation file (.gif, or .png for APNG)")
    ap.add_argument("--bits", type=int, choices=(8, 16), default=8,
                    help="PNG bit depth of the maps (default: 8)")
    ap.add_argument("--gray", action="store_true",
                    help="reduce the input to one channel (luma) first")
    ap.add_argument("--sheet", metavar="OUT.png|OUT.pdf",
                    help="write all maps in one picture with headers and colour bars")
    anim = ap.add_argument_group("animation")
    anim.add_argument("--animate", metavar="STAGE", type=_positive(int),
                      help="animate convolution or pooling stage STAGE (counted from 1)")
    anim.add_argument("--map", metavar="K", type=_positive(int), default=1,
                      help="which output map of the stage (counted from 1; default: 1)")
    anim.add_argument("--cells", metavar="N", type=_positive(int),
                      help=f"animate the first N output cells (default: all, at most "
                           f"{DEFAULT_ANIMATION_CELLS})")
    anim.add_argument("--step", choices=("cell", "product"), default="cell",
                      help="one frame per output cell, or one per product as the sum "
                           "builds up (default: cell)")
    anim.add_argument("--size", type=_size, default=DEFAULT_ANIMATION_SIZE, metavar="WxH",
                      help="frame size in pixels (default: 960x540)")
    anim.add_argument("--fps", type=_positive(float), default=DEFAULT_FPS,
                      help=f"frames per second (default: {DEFAULT_FPS})")
    return ap


class _Console:
    """Prints to stdout; once stdout is closed (``| head -1``) the rest is dropped, and
    the run goes on writing its files."""

    def __init__(self):
        self.closed = False

    def __call__(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True
            try:  # later flushes (also at exit) go nowhere instead of raising again
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass


def _fail(message: str) -> int:
    print(f"convscope-run: {message}", file=sys.stderr)
    return 2


def _check_folder(path: str) -> str | None:
    """None if ``path`` is (or can be made) a writable folder, else the reason. A folder
    created here stays (empty) only if the run goes on."""
    if path == "":
        return "no folder name given"
    if os.path.exists(path) and not os.path.isdir(path):
        return "it is a file, not a folder"
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".convscope-probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _check_file(path: str) -> str | None:
    """None if a file can be written at ``path`` (its folder exists and is writable)."""
    if path == "" or path.endswith(os.sep):
        return "no file name given"
    if os.path.isdir(path):
        return "a folder of that name is in the way"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the folder '{folder}' does not exist" if not os.path.exists(folder) \
            else f"'{folder}' is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".convscope-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.example is not None and args.example not in _example_keys():
        if args.example != "list":
            print(f"convscope-run: there is no example {args.example!r}", file=sys.stderr)
        _list_examples(sys.stdout if args.example == "list" else sys.stderr)
        return 0 if args.example == "list" else 2
    if (args.input is None) == (args.example is None):
        ap.error("give INPUT (a photo or a matrix file) or --example NAME, not both"
                 if args.input is not None else "give INPUT (a photo or a matrix file) "
                 "or --example NAME")
    if args.animate is None and args.out is None and args.sheet is None:
        ap.error("give --out DIR, --sheet OUT.png|OUT.pdf or both (or --animate STAGE "
                 "--out ANIM.gif)")
    if args.animate is not None and args.out is None:
        ap.error("--animate needs --out ANIM.gif (or ANIM.png for an APNG)")
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            try:
                previous[signum] = signal.signal(signum, _raise_stopped)
            except ValueError:  # not the main thread: leave signals alone
                pass
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("\nconvscope-run: stopped (Ctrl-C); no partial output was left behind",
              file=sys.stderr)
        return 130
    except _Stopped as exc:
        print(f"\nconvscope-run: stopped by signal {exc.signum}; no partial output was left "
              f"behind", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _example_keys() -> list[str]:
    from .examples import examples
    return [ex.key for ex in examples()]


def _list_examples(stream) -> None:
    from .examples import examples
    print("bundled worked examples (convscope-run --example NAME ...):", file=stream)
    for ex in examples():
        anim = f"  [--animate {ex.stage + 1}]"
        print(f"  {ex.key:<18} {ex.title}{anim}", file=stream)


def _raise_stopped(signum, frame):  # noqa: ARG001 (signal handler signature)
    raise _Stopped(signum)


def _main(args) -> int:
    say = _Console()
    animating = args.animate is not None
    # everything that can be checked before the (possibly long) computation is
    if args.sheet is not None:
        try:
            sheet_format(args.sheet)
        except ValueError as exc:
            return _fail(str(exc))
        reason = _check_file(args.sheet)
        if reason:
            return _fail(f"cannot write the sheet to '{args.sheet}': {reason}")
    if animating:
        suffix = os.path.splitext(args.out)[1].lower()
        if suffix not in (".gif", ".png", ".apng"):
            return _fail(f"'{args.out}': an animation is saved as .gif or .png (APNG), not "
                         f"{suffix or 'a name without extension'}")
        reason = _check_file(args.out)
        if reason:
            return _fail(f"cannot write the animation to '{args.out}': {reason}")
    created = None
    if args.out is not None and not animating:
        existed = os.path.isdir(args.out)
        reason = _check_folder(args.out)
        if reason:
            return _fail(f"cannot write the maps to '{args.out}': {reason} (nothing written "
                         f"there)")
        created = None if existed else args.out
    try:
        status = _compute_and_write(args, say)
    except BaseException:
        _remove_if_empty(created)
        raise
    if status != 0:
        _remove_if_empty(created)
    return status


def _remove_if_empty(folder: str | None) -> None:
    if folder is not None:
        try:
            os.rmdir(folder)
        except OSError:
            pass


def _load_input(args):
    """(H, W, C) float32 and a description, or raises ImageLoadError / MatrixError."""
    if args.example is not None:
        from .examples import example, load_input
        ex = example(args.example)
        data = load_input(ex)
        kind = "matrix" if ex.is_matrix else "image"
        if args.gray and data.shape[2] == 3:
            data = luma(data)[..., None]
        return data, kind
    if is_matrix_path(args.input):
        data = load_matrix(args.input)
        kind = "matrix"
        if args.gray and data.shape[2] == 3:
            data = luma(data)[..., None]
    else:
        data = load_image(args.input, mode="gray" if args.gray else "auto")
        kind = "image"
    return data, kind


def _compute_and_write(args, say) -> int:
    reuse_large_allocations()
    try:
        img, kind = _load_input(args)
        if args.pipeline:
            pipe = load_pipeline(Path(args.pipeline))
        elif args.example is not None:
            from .examples import example
            pipe = example(args.example).pipeline
        else:
            pipe = default_pipeline()
    except (ImageLoadError, MatrixError, PipelineFileError) as exc:
        return _fail(str(exc))
    h, w, c = img.shape
    name = args.input if args.input is not None else f"example '{args.example}'"
    say(f"input: {name}  {kind}, {c} channel(s), {h}x{w}")
    animating = args.animate is not None
    if animating and args.animate > len(pipe.stages):
        return _fail(f"--animate {args.animate}: the pipeline has {len(pipe.stages)} "
                     f"stage(s)")
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
        say(f"{lvl.name}\n  -> {lvl.shape[0]} map(s) of {lvl.shape[1]}x{lvl.shape[2]}"
            f"   [{lvl.formula}]   {lvl.seconds * 1e3:.1f} ms")
    if res.error is not None:
        failed = res.error.stage
        if not animating or failed is None or failed < args.animate:
            return _fail(str(res.error))
        print(f"convscope-run: note: {res.error} (stage {args.animate} was computed and is "
              f"animated)", file=sys.stderr)
    if animating:
        return _animate(res, args, say)
    sheet = None
    if args.sheet is not None:  # drawn before anything is written: it can still fail
        pipe_name = os.path.basename(args.pipeline) if args.pipeline else \
            "example pipeline" if args.example is not None else "default pipeline"
        title = f"{os.path.basename(args.input or args.example)} · {pipe_name}"
        try:
            sheet, layout = render_sheet(res, *default_style(res), title=title,
                                         return_layout=True)
        except (ValueError, MemoryError) as exc:
            return _fail(f"cannot draw the sheet: {str(exc) or 'not enough memory'}")
    if args.out is not None and _write_maps(res, args, pipe, show_progress, say) != 0:
        return 2
    if sheet is not None:
        try:
            save_sheet(sheet, args.sheet)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            kept = f"; the maps in '{args.out}' were written" if args.out is not None else ""
            return _fail(f"cannot write the sheet to '{args.sheet}': {reason}{kept}")
        scale = "one map cell = one pixel" if layout.factor == 1 else \
            f"maps shown at 1/{layout.factor}"
        say(f"wrote the sheet {args.sheet} ({sheet.width}x{sheet.height} px, {scale})")
    return 0


def _animate(res, args, say) -> int:
    """Frames of ``--animate STAGE --map K`` into ``--out``; 0, or 2 after a message."""
    from .animate import AnimationError, count_steps, render_step, save_animation, steps

    level, m = args.animate - 1, args.map - 1
    gran = "tap" if args.step == "product" else "cell"
    try:
        total_cells = count_steps(res, level, m)
    except AnimationError as exc:
        return _fail(f"--animate {args.animate} --map {args.map}: {exc}")
    cells = min(total_cells, args.cells if args.cells is not None else DEFAULT_ANIMATION_CELLS)
    n = count_steps(res, level, m, granularity=gran, cells=cells)
    fw, fh = args.size
    need = n * fw * fh * 3
    if need > ANIMATION_MAX_BYTES:
        per_cell = max(1, n // cells)
        fit = max(1, ANIMATION_MAX_BYTES // (fw * fh * 3 * per_cell))
        return _fail(f"{n} frames of {fw}x{fh} would need {need / 2**30:.1f} GiB of memory "
                     f"(the limit is {ANIMATION_MAX_BYTES / 2**30:.0f} GiB): use --cells "
                     f"{fit} or fewer, or a smaller --size")
    more = "" if cells == total_cells else \
        f" (of {total_cells:,}; --cells N for more)"
    say(f"animating stage {args.animate}, map {args.map}: output cells 1..{cells}{more}, "
        f"{n} frame(s) of {fw}x{fh} at {args.fps:g} fps")
    frames = []
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    for i, step in enumerate(steps(res, level, m, granularity=gran, cells=cells)):
        frames.append(render_step(res, step, (fw, fh)))
        if tty and (i % 10 == 9 or i + 1 == n):
            print(f"\r  frame {i + 1}/{n} ({time.perf_counter() - t0:.1f} s)", end="",
                  file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    try:
        count = save_animation(frames, args.out, ms_per_frame=max(20, round(1000 / args.fps)))
    except AnimationError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the animation to '{args.out}': {exc.strerror or exc}")
    say(f"wrote the animation {args.out} ({count} frames, {os.path.getsize(args.out):,} "
        f"bytes)")
    return 0


def _write_maps(res, args, pipe, show_progress: bool, say) -> int:
    """Every map as PNG + .npy into ``args.out``; 0, or 2 after a message."""
    def write_progress(done, total):
        if show_progress:
            print(f"\r  writing maps {done}/{total}", end="", file=sys.stderr, flush=True)
        return True

    try:
        index = export_maps(res, args.out, bits=args.bits, pipeline=pipe,
                            source=os.path.abspath(args.input) if args.input is not None
                            else f"example:{args.example}", progress=write_progress)
    except OSError as exc:
        if show_progress:
            print(file=sys.stderr)
        reason = exc.strerror or str(exc)
        return _fail(f"cannot write the maps to '{args.out}': {reason} (nothing written "
                     f"there)")
    if show_progress:
        print(file=sys.stderr)
    say(f"wrote {len(index)} maps (PNG + .npy) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
