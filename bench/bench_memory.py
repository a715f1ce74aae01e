"""Peak memory of ``convscope-run`` and of the window on a large photo (issue 15).

Run from the project root (the package installed, as the README says)::

    python bench/bench_memory.py                 # a 48-megapixel photo (8000 x 6000)
    python bench/bench_memory.py --megapixels 12

A photo of that size is made first (a smooth pattern with noise, JPEG), then each
program runs in a fresh process on it with the default pipeline (edge-detect 3x3,
ReLU, 2x2 max pool) and its peak resident memory is read from the kernel
(``ru_maxrss`` of the finished child, via ``os.wait4``):

- ``convscope-run PHOTO --out DIR``: every map written as PNG + .npy;
- the window (``python -m convscope.app --fresh PHOTO``, offscreen), which quits
  once its first maps are on screen (``CONVSCOPE_STARTUP_PROBE``).

Each figure is compared with the size of the float32 input plus every stage's float32
output (the data the run must hold). Target (issue 15): both peaks under 2.5 times
that size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET_RATIO = 2.5


def make_photo(path: str, megapixels: float) -> tuple[int, int]:
    """A ``megapixels`` RGB JPEG (4:3) at ``path``; returns (width, height)."""
    from PIL import Image
    h = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    w = int(round(megapixels * 1e6 / h))
    rng = np.random.default_rng(0)
    yy = np.linspace(0, 6 * np.pi, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 8 * np.pi, w, dtype=np.float32)[None, :]
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):  # a band at a time: the pattern itself stays small
        for r0 in range(0, h, 512):
            band = 127 + 90 * np.sin(xx + yy[r0:r0 + 512] * (c + 1) / 2)
            band += rng.normal(0, 12, band.shape).astype(np.float32)
            img[r0:r0 + 512, :, c] = np.clip(band, 0, 255)
    Image.fromarray(img).save(path, quality=90)
    return w, h


def data_bytes(w: int, h: int) -> int:
    """float32 input + every stage's float32 output under the default pipeline."""
    from convscope.core.pipeline import default_pipeline
    shapes = default_pipeline().validate((3, h, w))
    return 4 * (3 * h * w + sum(m * hh * ww for m, hh, ww in shapes))


def peak_rss(cmd: list[str], env: dict) -> tuple[float, float, int, str]:
    """Run ``cmd``; returns (peak RSS in bytes, seconds, exit code, output tail)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        tail = out.read()[-1500:]
    return usage.ru_maxrss * 1024.0, seconds, proc.returncode, tail   # ru_maxrss: KiB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=48.0)
    args = ap.parse_args(argv)
    if not hasattr(os, "wait4"):
        print("bench_memory needs os.wait4 (Linux, macOS)")
        return 2
    print(f"ConvScope peak memory: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="convscope-mem-") as tmp:
        photo = os.path.join(tmp, "big.jpg")
        w, h = make_photo(photo, args.megapixels)
        ref = data_bytes(w, h)
        print(f"photo {w} x {h} ({w * h / 1e6:.1f} MP, JPEG {os.path.getsize(photo) / 1e6:.1f} MB);"
              f" float32 input + outputs of the default pipeline: {ref / 2**30:.2f} GiB\n")
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=tmp)
        runs = [
            ("convscope-run --out", [sys.executable, "-m", "convscope.core.cli", photo,
                                     "--out", os.path.join(tmp, "maps")], env),
            ("window, first maps", [sys.executable, "-m", "convscope.app", "--fresh", photo],
             dict(env, CONVSCOPE_STARTUP_PROBE=repr(time.time()))),
        ]
        print(f"{'program':<22} {'peak GiB':>9} {'x data':>7} {'target':>7} {'seconds':>8} "
              f"{'met':>4}")
        for name, cmd, e in runs:
            if "CONVSCOPE_STARTUP_PROBE" in e:
                e = dict(e, CONVSCOPE_STARTUP_PROBE=repr(time.time()))
            rss, secs, code, tail = peak_rss(cmd, e)
            if code != 0:
                print(f"{name}: exit {code}\n{tail}")
                failures += 1
                continue
            ratio = rss / ref
            met = "yes" if ratio <= TARGET_RATIO else "NO"
            failures += met == "NO"
            print(f"{name:<22} {rss / 2**30:>9.2f} {ratio:>7.2f} {'<= ' + str(TARGET_RATIO):>7} "
                  f"{secs:>8.1f} {met:>4}")
    print("\nall targets met" if not failures else f"\n{failures} target(s) not met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
