"""Process-wide memory tuning for large images.

glibc returns allocations above its mmap threshold (at most 32 MiB, adaptively less)
as fresh pages that fault on first touch, on every call: a 3x3 convolution of a
512x512 RGB image spent a third of its time in page faults. Raising the thresholds
lets freed feature maps be reused. Applications (the GUI, the command-line tools,
the benchmarks) call :func:`reuse_large_allocations` once at start-up; the library
itself never changes process state on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["reuse_large_allocations"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_large_allocations(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``threshold`` bytes for reuse.

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
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold))
                and mallopt(_M_TRIM_THRESHOLD, int(threshold)))
