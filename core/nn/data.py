"""Datasets: IDX files (MNIST, Fashion-MNIST, EMNIST, KMNIST), image folders, the bundled subset.

IDX format: a 4-byte magic ``0x00 0x00 <type> <ndim>`` then ``ndim`` big-endian uint32
sizes, then the data (big-endian). Files may be gzip-compressed. The reader checks the
magic, the type code, the sizes against the file length, and refuses anything else
with :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image import ImageLoadError, load_image
from ..fileio import atomic_write_bytes

__all__ = ["DatasetError", "Dataset", "read_idx", "load_idx_folder", "load_image_folder",
           "load_bundled_mnist", "download_mnist", "MNIST_SHA256", "MNIST_MEAN", "MNIST_STD",
           "load_dataset"]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
BUNDLED = Path(__file__).resolve().parents[2] / "assets" / "mnist-subset"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: sha256 of the uncompressed files (from the data's README)
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}
MAX_IDX_BYTES = 2 << 30


class DatasetError(ValueError):
    """A data file or folder cannot be used; the message names it and the reason."""


@dataclass
class Dataset:
    """Images (N, C, H, W) float32 normalised, integer labels, and class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    name: str = "dataset"

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def _read_bytes(path) -> bytes:
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=fh) as gz:
                    data = gz.read(MAX_IDX_BYTES + 1)
            else:
                data = fh.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise DatasetError(f"cannot read '{path}': no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"cannot read '{path}': is a directory") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetError(f"cannot read '{path}': corrupt or truncated gzip ({exc})") from None
    if len(data) > MAX_IDX_BYTES:
        raise DatasetError(f"cannot read '{path}': larger than {MAX_IDX_BYTES >> 20} MiB")
    return data


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of its declared type and shape."""
    data = _read_bytes(path)
    name = os.fspath(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"cannot read '{name}': not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise DatasetError(f"cannot read '{name}': unknown IDX data type 0x{code:02x}")
    if not 1 <= ndim <= 4:
        raise DatasetError(f"cannot read '{name}': {ndim} dimensions is not a dataset")
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"cannot read '{name}': truncated header")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = 4 + 4 * ndim + math.prod(dims) * dtype.itemsize  # exact, no overflow
    if len(data) != expected:
        raise DatasetError(f"cannot read '{name}': the header declares {dims} "
                           f"({expected} bytes) but the file has {len(data)} bytes "
                           f"({'truncated' if len(data) < expected else 'trailing data'})")
    arr = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(arr.dtype.newbyteorder("="), copy=True)


def _find(folder: Path, base: str) -> Path:
    for cand in (base, base + ".gz", base.replace("-idx", ".idx"),
                 base.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).exists():
            return folder / cand
    raise DatasetError(f"'{folder}' has no '{base}' (or '{base}.gz')")


def normalise(images_u8: np.ndarray, mean=MNIST_MEAN, std=MNIST_STD) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) with MNIST's mean/std."""
    x = images_u8.astype(np.float32) / 255.0
    x -= mean
    x /= std
    return x[:, None] if x.ndim == 3 else x


def load_idx_folder(folder, *, limit_train: int | None = None,
                    limit_test: int | None = None) -> Dataset:
    """A folder with the four MNIST-named IDX files (raw or .gz)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"'{folder}' is not a folder")
    arrays = {k: read_idx(_find(folder, v)) for k, v in MNIST_FILES.items()}
    for split in ("train", "test"):
        xi, yi = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if xi.ndim != 3 or yi.ndim != 1 or len(xi) != len(yi):
            raise DatasetError(f"'{folder}': {split} images {xi.shape} and labels {yi.shape} "
                               f"do not match")
    yt = arrays["train_labels"].astype(np.int64)
    n_classes = int(max(yt.max(), arrays["test_labels"].max())) + 1
    return Dataset(normalise(arrays["train_images"][:limit_train]), yt[:limit_train],
                   normalise(arrays["test_images"][:limit_test]),
                   arrays["test_labels"][:limit_test].astype(np.int64),
                   [str(i) for i in range(n_classes)], folder.name)


def load_bundled_mnist() -> Dataset:
    """The MNIST subset shipped in ``assets/mnist-subset`` (works offline)."""
    ds = load_idx_folder(BUNDLED)
    ds.name = "MNIST subset (bundled)"
    return ds


IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_image_folder(folder, *, size=(28, 28), test_fraction: float = 0.2, seed: int = 0,
                      max_images: int = 200_000) -> Dataset:
    """One sub-folder per class of images; converted to grayscale ``size``, split by seed."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"'{folder}' is not a folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(f"'{folder}' needs at least two sub-folders (one per class), "
                           f"found {len(classes)}")
    xs, ys = [], []
    for ci, cname in enumerate(classes):
        for f in sorted((folder / cname).iterdir()):
            if f.suffix.lower() not in IMAGE_EXTS:
                continue
            if len(xs) >= max_images:
                raise DatasetError(f"'{folder}' has more than {max_images} images")
            try:
                img = load_image(f, mode="gray")[:, :, 0]
            except ImageLoadError as exc:
                raise DatasetError(str(exc)) from None
            if img.shape != tuple(size):
                pil = Image.fromarray(img, mode="F").resize(size[::-1], Image.BILINEAR)
                img = np.asarray(pil, np.float32)
            xs.append(img)
            ys.append(ci)
    if not xs:
        raise DatasetError(f"'{folder}' has no images in its class folders")
    x = np.stack(xs).astype(np.float32)
    x = ((x - MNIST_MEAN) / MNIST_STD)[:, None]
    y = np.array(ys, np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    te, tr = order[:n_test], order[n_test:]
    return Dataset(x[tr], y[tr], x[te], y[te], classes, folder.name)


def download_mnist(cache_dir, *, base_url: str = MNIST_MIRROR, opener=urllib.request.urlopen):
    """Download MNIST into ``cache_dir`` (for users who are online), verified by sha256.

    Each file is fetched, decompressed, checked against :data:`MNIST_SHA256`, and
    written atomically; a file already present with the right hash is not fetched
    again. Returns the folder. Raises DatasetError on a hash mismatch or network error.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for base, digest in MNIST_SHA256.items():
        target = cache / base
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
            continue
        url = base_url + base + ".gz"
        try:
            with opener(url) as resp:
                raw = gzip.decompress(resp.read())
        except Exception as exc:  # network, HTTP, gzip: all mean "not downloaded"
            raise DatasetError(f"cannot download '{url}': {exc}") from None
        got = hashlib.sha256(raw).hexdigest()
        if got != digest:
            raise DatasetError(f"'{url}' has sha256 {got}, expected {digest}: not saved")
        atomic_write_bytes(target, raw)
    return cache


def load_dataset(spec: str) -> Dataset:
    """``"bundled"``, a folder of IDX files, or a folder of class sub-folders of images."""
    if spec in ("bundled", "", None):
        return load_bundled_mnist()
    p = Path(spec)
    if not p.exists():
        raise DatasetError(f"'{spec}' does not exist")
    if not p.is_dir():
        raise DatasetError(f"'{spec}' is not a folder")
    names = {f.name for f in p.iterdir()}
    if any(n.startswith(("train-images", "train-labels")) for n in names):
        return load_idx_folder(p)
    return load_image_folder(p)
