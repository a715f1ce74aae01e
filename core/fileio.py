"""Atomic file writes: a temporary sibling, flushed to disk, then renamed over the target.

Readers never see a partial file, and a failed write leaves any existing file as it
was. A target that is a symbolic link is written through (the link stays a link).
Errors name the target, not the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Callable

__all__ = ["atomic_write", "atomic_write_bytes"]


def atomic_write(path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it to ``path``.

    The new file gets the permissions any new file gets (0o666 less the umask).
    Raises OSError (of the original kind) naming ``path`` when it cannot be written.
    """
    target = os.path.realpath(os.fspath(path))  # through a symlink, not over it
    directory, base = os.path.split(target)
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(temporary, flags, 0o666)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(descriptor, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data))


def _naming(exc: OSError, path) -> OSError:
    """The same error, about ``path`` (not the temporary file)."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(path))
