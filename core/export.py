"""Writing a pipeline result to disk: every map as PNG and .npy, plus an index."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from .image import save_image
from .fileio import atomic_write_bytes
from .pipeline import PipelineResult

__all__ = ["export_maps", "save_npy"]


def _safe(name: str) -> str:
    """A file-name-safe form of a map label, at most 80 characters (labels grow with
    every stage; a long one keeps its start and gets a digest of the whole)."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "map"
    if len(safe) > 80:
        digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        safe = safe[:71].rstrip("_") + "_" + digest
    return safe


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
    shapes, statistics and the PNG value range. Returns the index entries.

    All files are first written to a hidden staging folder inside ``folder`` and only
    moved into place (``maps.json`` last) once every one was written: a failure or a
    stop (``progress(done, total)`` returning False) leaves ``folder`` as it was, and
    an earlier export there stays consistent (if moving a file fails, the files already
    moved are put back). Map files of an earlier export into the same folder that this
    one does not rewrite are removed, so that the folder holds exactly what its
    ``maps.json`` lists. A staging folder left by an export that died (over an hour
    old) is removed by the next export into the same folder.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_staging(folder)
    check_free_space(folder, export_size(result, bits))
    staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=folder)
    try:
        index = _write_all(result, staging, bits, pipeline, source, progress)
        if index is None:
            return []
        previous = _listed_files(os.path.join(folder, "maps.json"))
        names = sorted({name for e in index for name in (e["png"], e["npy"])})
        _move_into_place(staging, folder, names + ["maps.json"])
        for name in previous - set(names):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(len(index), len(index))
    return index


def export_size(result: PipelineResult, bits: int = 8) -> int:
    """Bytes an export of ``result`` needs at most: every map as float32 .npy and as an
    uncompressed PNG (compressed ones are smaller), the staging copy included once."""
    cells = sum(lvl.maps.size for lvl in [result.input, *result.stages])
    return int(cells * (4 + bits // 8)) + (1 << 20)


def check_free_space(folder: str, needed: int) -> None:
    """OSError (ENOSPC) naming the folder when it has less than ``needed`` bytes free:
    10,000 stages wrote 17 GB before; now the export is refused before it starts."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise OSError(errno.ENOSPC, f"the export needs up to {needed / 2**30:.2f} GiB but "
                                    f"only {free / 2**30:.2f} GiB is free", folder)


_STAGING_PREFIX = ".convscope-export-"
#: staging folders older than this are left from an export that died (a crash, a kill)
_STALE_STAGING_SECONDS = 3600


def _remove_stale_staging(folder: str) -> None:
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if (entry.name.startswith(_STAGING_PREFIX) and entry.is_dir(follow_symlinks=False)
                    and now - entry.stat(follow_symlinks=False).st_mtime
                    > _STALE_STAGING_SECONDS):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def _move_into_place(staging: str, folder: str, names: list[str]) -> None:
    """Rename ``staging/name`` over ``folder/name`` for every name, all or none.

    Files they replace are first moved aside into ``staging``; if any rename fails (or
    the process is stopped halfway: KeyboardInterrupt, or a signal turned into an
    exception), what was placed is removed and what was moved aside is put back. Raises OSError
    naming the file in ``folder``.
    """
    for name in names:  # before touching anything: a folder in the way cannot be replaced
        dst = os.path.join(folder, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            raise IsADirectoryError(21, "a folder of that name is in the way", dst)
    aside = os.path.join(staging, ".replaced")
    os.mkdir(aside)
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in names:
            dst = os.path.join(folder, name)
            if os.path.lexists(dst):
                os.replace(dst, os.path.join(aside, name))
                moved.append(name)
            os.replace(os.path.join(staging, name), dst)
            placed.append(name)
    except BaseException as exc:  # an OSError, or a stop (Ctrl-C, SIGTERM) halfway
        for name in placed:
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
        for name in moved:
            try:
                os.replace(os.path.join(aside, name), os.path.join(folder, name))
            except OSError:
                pass
        if not isinstance(exc, OSError):
            raise
        target = os.path.join(folder, names[len(placed)]) if len(placed) < len(names) else folder
        raise type(exc)(exc.errno, exc.strerror, target) from None


def _write_all(result, folder, bits, pipeline, source, progress) -> list[dict] | None:
    """Every map and ``maps.json`` into ``folder``; None if ``progress`` stopped it."""
    levels = [result.input, *result.stages]
    total = sum(len(lvl.labels) for lvl in levels)
    index: list[dict] = []
    jobs = []
    for li, lvl in enumerate(levels):
        prefix = "input" if lvl.index < 0 else f"stage{lvl.index + 1}"
        for m, label in enumerate(lvl.labels):
            jobs.append((lvl, m, label, f"{li:02d}_{prefix}_{m:02d}_{_safe(label)}"))

    def write(job):
        lvl, m, label, base = job
        arr = lvl.maps[m]
        vmin, vmax = save_image(os.path.join(folder, base + ".png"), arr, bits=bits)
        save_npy(os.path.join(folder, base + ".npy"), arr)
        return {"level": lvl.index, "stage": lvl.name, "map": m, "label": label,
                "shape": list(arr.shape), "png": base + ".png", "npy": base + ".npy",
                "png_range": [vmin, vmax], "min": float(arr.min()),
                "max": float(arr.max()), "mean": float(arr.mean(dtype=np.float64))}

    # two maps at a time: zlib and the file writes release the GIL (a 48-megapixel
    # export took 95 s, most of it compressing PNGs one after the other)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        for job in jobs:
            if progress is not None and progress(len(index), total) is False:
                for fut in pending:
                    fut.cancel()
                return None
            pending.append(pool.submit(write, job))
            if len(pending) == 2:
                index.append(pending.pop(0).result())
        for fut in pending:
            index.append(fut.result())
    doc = {"maps": index}
    if source is not None:
        doc["image"] = source
    if pipeline is not None:
        doc["pipeline"] = pipeline.to_dict()
    atomic_write_bytes(os.path.join(folder, "maps.json"), json.dumps(doc, indent=1).encode())
    return index


_MAP_FILE = re.compile(r"^\d\d+_(input|stage\d+)_\d\d+_[A-Za-z0-9_.+-]*\.(png|npy)$")


def _listed_files(index_path: str) -> set[str]:
    """Map files named by an earlier ``maps.json`` (only names this module writes)."""
    try:
        with open(index_path, "rb") as fh:
            doc = json.loads(fh.read(64 << 20))
        names = {e[k] for e in doc.get("maps", []) for k in ("png", "npy")}
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError):
        return set()
    return {n for n in names if isinstance(n, str) and _MAP_FILE.match(n)}
