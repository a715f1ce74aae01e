"""Process-wide tuning: memory reuse for large images, BLAS threads, thread priority.

glibc returns allocations above its mmap threshold (at most 32 MiB, adaptively less)
as fresh pages that fault on first touch, on every call: a 3x3 convolution of a
512x512 RGB image spent a third of its time in page faults. Raising the thresholds
lets freed feature maps be reused. Applications (the GUI, the command-line tools,
the benchmarks) call :func:`reuse_large_allocations` once at start-up; the library
itself never changes process state on import (except one environment default for
numpy's OpenBLAS, set before numpy loads: see ``convscope/__init__.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

__all__ = ["reuse_large_allocations", "blas_threads", "set_blas_threads",
           "lower_thread_priority"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def reuse_large_allocations(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``threshold`` bytes for reuse, in one arena.

    Call it at start-up, before other threads allocate.

    Returns True if the setting was applied (Linux with glibc), False elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # one arena: a worker thread (training, the pipeline runner) otherwise gets its own
    # arena, where large blocks were not reused (measured: keras_mnist training 12 %
    # slower in a thread than on the main thread; equal with one arena)
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold))
                and mallopt(_M_TRIM_THRESHOLD, int(threshold))
                and mallopt(_M_ARENA_MAX, 1))


# --------------------------------------------------------------------------- BLAS threads
# Interactive updates of tiny matrices lose more to idle OpenBLAS threads spinning (and
# competing with the UI thread) than they gain; training wants both cores. numpy's
# bundled OpenBLAS exports its thread setter; this finds it the way threadpoolctl does.

_blas = None


def _find_blas():
    global _blas
    if _blas is not None:
        return _blas or None
    _blas = False
    try:
        import numpy  # noqa: F401  (loads the BLAS library)
        with open("/proc/self/maps", encoding="utf-8") as fh:
            files = {line.split()[-1] for line in fh if len(line.split()) >= 6}
        paths = sorted(p for p in files if "openblas" in p.lower() and ".so" in p)
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    put.argtypes = [ctypes.c_int]
                    _blas = (get, put)
                    return _blas
    return None


def blas_threads() -> int | None:
    """OpenBLAS's current thread count (None if it cannot be found)."""
    blas = _find_blas()
    return int(blas[0]()) if blas else None


def set_blas_threads(n: int) -> int | None:
    """Set OpenBLAS's thread count; returns the previous count (None if not found)."""
    blas = _find_blas()
    if not blas:
        return None
    old = int(blas[0]())
    blas[1](int(n))
    return old


# ------------------------------------------------------------------------ thread priority


def lower_thread_priority(niceness: int) -> bool:
    """Lower the calling thread's scheduling priority by ``niceness`` (Unix nice).

    On two cores, two compute threads at full speed (the compiled convolution loop
    never blocks) left a Qt UI thread waiting for a core for 60-75 ms during a burst of
    edits. Niced compute threads yield to it at once and lose nothing when the UI is
    idle. Linux applies nice per thread. Returns True if it was applied (False on
    platforms without per-thread nice, or if the call is refused).
    """
    if niceness <= 0 or not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                 + int(niceness)))
    except OSError:
        return False
    return True
