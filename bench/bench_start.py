"""Start-up: from launching ``convscope`` to its first maps on the bundled photo.

Run from the project root (the package installed, as the README says)::

    python bench/bench_start.py            # 5 warm starts, 3 cold starts

Each start is a fresh process (``python -m convscope.app --fresh``, offscreen, its
settings in a temporary folder) with ``CONVSCOPE_STARTUP_PROBE`` set to the launch
time; the app prints the seconds until its first pipeline result is on screen and the
longest stall of its UI thread (a 5 ms heartbeat) in the event loop until then and
until the compiled loop is loaded (the first maps may come from the numpy paths), and
quits. Warm: numba's disk cache of the convolution loop is in place (the usual
start). Cold: that cache is deleted first (the first start after installing).

Targets (issue 15): at most 1.5 s warm and 2.5 s cold; no UI-thread stall over 100 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"warm": 1.5, "cold": 2.5}
STALL_TARGET_MS = 100.0


def numba_cache_files() -> list[Path]:
    from convscope.core import _jit
    here = Path(_jit.__file__).resolve().parent / "__pycache__"
    return sorted(p for p in here.glob("_jit.*") if p.suffix in (".nbi", ".nbc"))


def one_start(tmp: str) -> tuple[float, float]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=tmp,
               CONVSCOPE_STARTUP_PROBE=repr(time.time()))
    proc = subprocess.run([sys.executable, "-m", "convscope.app", "--fresh"], env=env,
                          capture_output=True, text=True, timeout=120)
    m = re.search(r"first maps after ([\d.]+) s; longest UI-thread stall in the event loop "
                  r"(-?\d+) ms", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"the app did not report its first maps (exit {proc.returncode}):"
                           f"\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return float(m.group(1)), float(m.group(2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--cold", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"ConvScope start-up: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if hasattr(os, "getloadavg"):
        print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="convscope-start-") as tmp:
        one_start(tmp)  # the cache exists and the OS has the files in its page cache
        rows = {}
        rows["warm"] = [one_start(tmp) for _ in range(args.warm)]
        cold = []
        for _ in range(args.cold):
            for p in numba_cache_files():
                p.unlink()
            cold.append(one_start(tmp))
        rows["cold"] = cold
    print(f"\n{'start':>6} {'n':>3} {'median s':>9} {'worst s':>8} {'target':>7} "
          f"{'stall ms':>9} {'met':>4}")
    for name, runs in rows.items():
        secs = [r[0] for r in runs]
        stall = max(r[1] for r in runs)
        med = statistics.median(secs)
        met = "yes" if med <= TARGETS[name] and stall <= STALL_TARGET_MS else "NO"
        failures += met == "NO"
        print(f"{name:>6} {len(runs):>3} {med:>9.2f} {max(secs):>8.2f} "
              f"{f'<= {TARGETS[name]:g}':>7} {stall:>9.0f} {met:>4}")
    print("  stall: the longest gap of a 5 ms heartbeat on the UI thread, event loop to "
          "first maps (worst run)")
    print(f"\n{'all targets met' if not failures else f'{failures} target(s) missed'}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
