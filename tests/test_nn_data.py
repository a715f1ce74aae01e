"""Tests of core.nn.data: IDX files, IDX folders, the bundled MNIST subset, image
folders, the sha256-verified download (with a fake opener: never the network), and,
when ``../shared/data/mnist`` exists, the real MNIST files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope.core.nn.data as D
from convscope.core.nn.data import (MNIST_MEAN, MNIST_STD, DatasetError, download_mnist,
                          load_bundled_mnist, load_dataset, load_idx_folder, load_image_folder,
                          read_idx)

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}

# --------------------------------------------------------------------------- helpers


def idx_bytes(a: np.ndarray, code: int | None = None) -> bytes:
    """An IDX file's bytes: magic 0 0 type ndim, big-endian sizes, big-endian data."""
    a = np.asarray(a)
    code = TYPE_CODES[a.dtype] if code is None else code
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, *, gz: bool = False) -> Path:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def random_array(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def refused(fn, path, *needles):
    """fn() raises DatasetError naming ``path`` (and each needle)."""
    with pytest.raises(DatasetError) as info:
        fn()
    msg = str(info.value)
    assert str(path) in msg, f"the message does not name the file: {msg}"
    for n in needles:
        assert n in msg, f"the message does not say {n!r}: {msg}"
    return msg


def write_mnist_folder(folder: Path, rng, n_train=12, n_test=5, gz=False, hw=(4, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train,) + hw).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test,) + hw).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), a, gz=gz)
    return arrays


# ------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (0,), (4, 0)])
def test_read_idx_round_trip(tmp_path, gz, dtype, shape):
    rng = np.random.default_rng(len(shape) * 31 + np.dtype(dtype).itemsize)
    a = random_array(rng, dtype, shape)
    path = write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), a, gz=gz)
    got = read_idx(path)
    assert got.shape == a.shape
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, a)
    assert got.flags.writeable and got.flags.c_contiguous


def test_read_idx_known_bytes(tmp_path):
    # 2x2 int16, big-endian: 1, -2, 258, 32767
    data = bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 2]) + bytes(
        [0, 1, 0xFF, 0xFE, 1, 2, 0x7F, 0xFF])
    p = tmp_path / "k.idx"
    p.write_bytes(data)
    np.testing.assert_array_equal(read_idx(p), [[1, -2], [258, 32767]])
    p.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + np.array([1.5], ">f4").tobytes())
    assert read_idx(p).tolist() == [1.5]


def _good(tmp_path) -> bytes:
    return idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


BAD_IDX = {
    "bad_magic": (lambda g: b"\x01" + g[1:], "magic"),
    "bad_magic_2": (lambda g: b"PK\x03\x04" + g[4:], "magic"),
    "unknown_type": (lambda g: g[:2] + b"\x0a" + g[3:], "0x0a"),
    "zero_dims": (lambda g: g[:3] + b"\x00", "dimensions"),
    "too_many_dims": (lambda g: g[:3] + b"\x07" + g[4:], "dimensions"),
    "truncated_data": (lambda g: g[:-1], "truncated"),
    "trailing_data": (lambda g: g + b"\x00", "trailing"),
    "truncated_header": (lambda g: g[:10], "header"),
    "only_magic": (lambda g: g[:4], "header"),
    "zero_bytes": (lambda g: b"", "magic"),
    "three_bytes": (lambda g: g[:3], "magic"),
    "huge_dims": (lambda g: g[:4] + b"\xff\xff\xff\xff" * 3, "truncated"),
    # 2**28 * 2**28 * 2**8 = 2**64: a product in int64 wraps to 0 and matches the header
    "overflowing_dims": (lambda g: g[:4] + (1 << 28).to_bytes(4, "big") * 2
                         + (1 << 8).to_bytes(4, "big"), "truncated"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("kind", list(BAD_IDX))
def test_read_idx_refuses_bad_files(tmp_path, kind, gz):
    make, needle = BAD_IDX[kind]
    data = make(_good(tmp_path))
    path = tmp_path / (kind + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    refused(lambda: read_idx(path), path, needle)


def _corrupt_gzips(good: bytes) -> dict[str, bytes]:
    gz = gzip.compress(good * 40)
    flipped = bytearray(gz)
    for i in range(12, len(flipped) - 8):
        flipped[i] ^= 0x55  # the deflate stream is garbage, the gzip header is fine
    crc = bytearray(gz)
    crc[-8] ^= 0xFF  # the data decompresses but the CRC does not match
    return {"header_only": gz[:10], "truncated": gz[: len(gz) // 2], "bad_crc": bytes(crc),
            "garbage_after_magic": b"\x1f\x8b" + b"\x00" * 30,
            "corrupt_deflate": bytes(flipped)}


@pytest.mark.parametrize("kind", ["header_only", "truncated", "bad_crc", "garbage_after_magic",
                                  "corrupt_deflate"])
def test_read_idx_refuses_corrupt_gzip(tmp_path, kind):
    path = tmp_path / f"{kind}.gz"
    path.write_bytes(_corrupt_gzips(_good(tmp_path))[kind])
    try:
        read_idx(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
    except Exception as exc:  # noqa: BLE001 - the point is which exception escapes
        pytest.fail(f"{kind}: read_idx raised {type(exc).__name__} instead of DatasetError: "
                    f"{exc}")
    else:
        pytest.fail(f"{kind}: a corrupt gzip was accepted")


def test_read_idx_refuses_missing_file_and_directory(tmp_path):
    refused(lambda: read_idx(tmp_path / "nope.idx"), tmp_path / "nope.idx", "no such file")
    refused(lambda: read_idx(tmp_path), tmp_path, "directory")


def test_read_idx_size_limit(tmp_path, monkeypatch):
    path = write_idx(tmp_path / "big.idx", np.zeros(100, np.uint8))
    monkeypatch.setattr(D, "MAX_IDX_BYTES", 50)
    refused(lambda: read_idx(path), path, "larger than")


# ------------------------------------------------------------------ load_idx_folder


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_load_idx_folder(tmp_path, gz):
    rng = np.random.default_rng(1)
    arrays = write_mnist_folder(tmp_path / "m", rng, gz=gz)
    ds = load_idx_folder(tmp_path / "m")
    assert ds.name == "m" and ds.classes == [str(i) for i in range(10)]
    assert ds.x_train.shape == (12, 1, 4, 3) and ds.x_test.shape == (5, 1, 4, 3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (1, 4, 3)
    ref = (arrays["train-images-idx3-ubyte"] / 255.0 - MNIST_MEAN) / MNIST_STD
    np.testing.assert_allclose(ds.x_train[:, 0], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    limited = load_idx_folder(tmp_path / "m", limit_train=3, limit_test=2)
    assert len(limited.x_train) == len(limited.y_train) == 3
    assert len(limited.x_test) == len(limited.y_test) == 2


def test_load_idx_folder_dotted_names(tmp_path):
    """Some mirrors use 'train-images.idx3-ubyte'."""
    rng = np.random.default_rng(2)
    arrays = write_mnist_folder(tmp_path / "m", rng)
    for f in (tmp_path / "m").iterdir():
        f.rename(f.with_name(f.name.replace("-idx", ".idx")))
    ds = load_idx_folder(tmp_path / "m")
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])


@pytest.mark.parametrize("which", ["train", "test"])
def test_load_idx_folder_refuses_mismatched_counts(tmp_path, which):
    rng = np.random.default_rng(3)
    write_mnist_folder(tmp_path / "m", rng)
    name = "train-labels-idx1-ubyte" if which == "train" else "t10k-labels-idx1-ubyte"
    write_idx(tmp_path / "m" / name, np.zeros(4, np.uint8))
    msg = refused(lambda: load_idx_folder(tmp_path / "m"), tmp_path / "m", which)
    assert "do not match" in msg


def test_load_idx_folder_refuses_wrong_dims_missing_file_and_non_folder(tmp_path):
    rng = np.random.default_rng(4)
    write_mnist_folder(tmp_path / "m", rng)
    write_idx(tmp_path / "m" / "train-images-idx3-ubyte", np.zeros((12, 12), np.uint8))
    refused(lambda: load_idx_folder(tmp_path / "m"), tmp_path / "m", "do not match")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte").unlink()
    refused(lambda: load_idx_folder(tmp_path / "m"), tmp_path / "m", "t10k-labels-idx1-ubyte")
    refused(lambda: load_idx_folder(tmp_path / "nope"), tmp_path / "nope", "not a folder")


def test_load_idx_folder_corrupt_member_names_the_file(tmp_path):
    rng = np.random.default_rng(5)
    write_mnist_folder(tmp_path / "m", rng)
    bad = tmp_path / "m" / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-3])
    refused(lambda: load_idx_folder(tmp_path / "m"), bad, "truncated")


# ------------------------------------------------------------------ bundled subset


@pytest.fixture(scope="module")
def bundled():
    return load_bundled_mnist()


def test_bundled_subset_shapes_and_labels(bundled):
    ds = bundled
    assert ds.x_train.shape == (10000, 1, 28, 28) and ds.x_test.shape == (2000, 1, 28, 28)
    assert ds.y_train.shape == (10000,) and ds.y_test.shape == (2000,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.classes == [str(i) for i in range(10)]
    for y in (ds.y_train, ds.y_test):
        assert set(np.unique(y)) == set(range(10))
        assert np.bincount(y).min() > 0.07 * len(y)  # every digit is well represented
    assert ds.input_shape == (1, 28, 28)
    assert "bundled" in ds.name


def test_bundled_subset_normalisation(bundled):
    raw = read_idx(D.BUNDLED / "train-images-idx3-ubyte.gz")
    assert raw.dtype == np.uint8 and raw.shape == (10000, 28, 28)
    # the pixel values map exactly as (v / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(bundled.x_train[:, 0], (raw / 255.0 - 0.1307) / 0.3081,
                               rtol=1e-5, atol=1e-5)
    raw_mean = raw.mean(dtype=np.float64) / 255
    assert bundled.x_train.mean(dtype=np.float64) == pytest.approx((raw_mean - 0.1307) / 0.3081,
                                                                   abs=1e-5)
    # the subset's statistics are close to full MNIST's, so it is near zero mean, unit std
    assert raw_mean == pytest.approx(0.1307, abs=0.01)
    assert raw.std(dtype=np.float64) / 255 == pytest.approx(0.3081, abs=0.01)
    assert abs(bundled.x_train.mean()) < 0.05 and abs(bundled.x_train.std() - 1) < 0.05
    assert bundled.x_train.min() == pytest.approx(-0.1307 / 0.3081, rel=1e-6)
    assert bundled.x_train.max() == pytest.approx((1 - 0.1307) / 0.3081, rel=1e-6)


def test_bundled_subset_is_the_head_of_mnist(bundled):
    """The subset is MNIST's first 10,000 training and 2,000 test images (labels known)."""
    assert bundled.y_train[:12].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5]
    assert bundled.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_load_dataset_dispatch(tmp_path):
    rng = np.random.default_rng(6)
    write_mnist_folder(tmp_path / "idx", rng)
    assert load_dataset(str(tmp_path / "idx")).x_train.shape == (12, 1, 4, 3)
    assert load_dataset("bundled").x_train.shape == (10000, 1, 28, 28)
    _image_folder(tmp_path / "img", {"a": 2, "b": 2})
    assert load_dataset(str(tmp_path / "img")).classes == ["a", "b"]
    refused(lambda: load_dataset(str(tmp_path / "nope")), tmp_path / "nope", "does not exist")
    (tmp_path / "file.txt").write_text("x")
    refused(lambda: load_dataset(str(tmp_path / "file.txt")), tmp_path / "file.txt",
            "not a folder")


# --------------------------------------------------------------- load_image_folder


def _image_folder(root: Path, counts: dict[str, int], size=(28, 28), mode="L"):
    """Uniform images whose value encodes (class, index); returns {value: class index}."""
    root.mkdir(parents=True, exist_ok=True)
    values = {}
    names = sorted(counts)
    for ci, cname in enumerate(names):
        (root / cname).mkdir()
        for i in range(counts[cname]):
            v = 10 + 20 * ci + 2 * i
            color = v if mode == "L" else (v, v, v)
            Image.new(mode, size[::-1], color).save(root / cname / f"{i}.png")
            values[v] = ci
    return values


def test_load_image_folder(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    values = _image_folder(root, {"zebra": 4, "apple": 3, "mango": 3})
    (root / "apple" / "notes.txt").write_text("not an image")
    ds = load_image_folder(root, test_fraction=0.2, seed=0)
    assert ds.classes == ["apple", "mango", "zebra"]
    assert ds.name == "imgs"
    assert len(ds.x_test) == 2 and len(ds.x_train) == 8
    assert ds.x_train.shape[1:] == (1, 28, 28) and ds.x_train.dtype == np.float32
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    for img, label in zip(x, y):
        v = img[0, 0, 0] * MNIST_STD + MNIST_MEAN  # back to [0, 1]
        np.testing.assert_allclose(img, img[0, 0, 0], rtol=0, atol=1e-6)  # uniform
        key = int(round(v * 255))
        assert key in values and values[key] == label, (key, label)
    assert sorted(int(round((i[0, 0, 0] * MNIST_STD + MNIST_MEAN) * 255)) for i in x) == \
        sorted(values)


def test_load_image_folder_split_by_seed(tmp_path):
    _image_folder(tmp_path, {"a": 10, "b": 10})

    def test_set(seed):
        ds = load_image_folder(tmp_path, test_fraction=0.25, seed=seed)
        return sorted(np.round(ds.x_test[:, 0, 0, 0], 5).tolist())

    assert test_set(1) == test_set(1)
    assert test_set(1) != test_set(2)
    assert len(test_set(1)) == 5


def test_load_image_folder_resizes_and_converts(tmp_path):
    root = tmp_path / "r"
    for cname, size, mode in (("big", (56, 40), "RGB"), ("small", (7, 9), "L")):
        (root / cname).mkdir(parents=True)
        for i in range(2):
            v = 100 + 40 * i
            Image.new(mode, size, (v, v, v) if mode == "RGB" else v).save(
                root / cname / f"{i}.png")
    # a non-uniform colour image: grayscale uses luma
    Image.new("RGB", (30, 30), (255, 0, 0)).save(root / "big" / "red.png")
    ds = load_image_folder(root, test_fraction=0.4, seed=0)
    x = np.concatenate([ds.x_train, ds.x_test])
    assert x.shape == (5, 1, 28, 28)
    vals = sorted(float(np.median(i)) * MNIST_STD + MNIST_MEAN for i in x)
    # uniform greys stay uniform after resizing (bilinear), red becomes its luma
    for v in (100 / 255, 140 / 255):
        assert sum(abs(u - v) < 2e-3 for u in vals) == 2, vals
    assert any(abs(u - 0.2126) < 0.01 or abs(u - 0.299) < 0.01 for u in vals), vals
    np.testing.assert_allclose(x.std(axis=(1, 2, 3)), 0, atol=1e-4)
    ds32 = load_image_folder(root, size=(32, 20), test_fraction=0.4)
    assert ds32.x_train.shape[1:] == (1, 32, 20)


def test_load_image_folder_errors(tmp_path):
    one = tmp_path / "one"
    _image_folder(one, {"only": 2})
    refused(lambda: load_image_folder(one), one, "two sub-folders")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    (empty / "b" / "readme.txt").write_text("no images here")
    refused(lambda: load_image_folder(empty), empty, "no images")
    refused(lambda: load_image_folder(tmp_path / "nope"), tmp_path / "nope", "not a folder")
    bad = tmp_path / "bad"
    _image_folder(bad, {"a": 2, "b": 2})
    corrupt = bad / "b" / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    with pytest.raises(DatasetError) as info:
        load_image_folder(bad)
    assert "broken.png" in str(info.value)
    many = tmp_path / "many"
    _image_folder(many, {"a": 3, "b": 3})
    with pytest.raises(DatasetError, match="more than 4 images"):
        load_image_folder(many, max_images=4)


# -------------------------------------------------------------------- download_mnist


class FakeOpener:
    """Serves ``files[name]`` (gzip-compressed) for URL ``base + name + '.gz'``."""

    def __init__(self, files: dict[str, bytes], base: str, fail: Exception | None = None):
        self.files, self.base, self.fail = files, base, fail
        self.urls: list[str] = []

    def __call__(self, url):
        self.urls.append(url)
        if self.fail is not None:
            raise self.fail
        assert url.startswith(self.base) and url.endswith(".gz"), url
        return io.BytesIO(gzip.compress(self.files[url[len(self.base):-3]]))


@pytest.fixture()
def fake_mnist(monkeypatch):
    """Tiny fake MNIST files, with MNIST_SHA256 patched to their hashes."""
    rng = np.random.default_rng(7)
    files = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (6, 4, 4)).astype(np.uint8)),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(6, dtype=np.uint8) % 3),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (3, 4, 4)).astype(np.uint8)),
        "t10k-labels-idx1-ubyte": idx_bytes(np.array([0, 1, 2], np.uint8)),
    }
    monkeypatch.setattr(D, "MNIST_SHA256",
                        {k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    return files


BASE = "https://example.invalid/mnist/"


def test_download_mnist_writes_verified_files(tmp_path, fake_mnist):
    opener = FakeOpener(fake_mnist, BASE)
    cache = tmp_path / "cache" / "mnist"
    assert download_mnist(cache, base_url=BASE, opener=opener) == cache
    assert sorted(opener.urls) == sorted(BASE + k + ".gz" for k in fake_mnist)
    assert sorted(p.name for p in cache.iterdir()) == sorted(fake_mnist)
    for name, data in fake_mnist.items():
        assert (cache / name).read_bytes() == data
    ds = load_idx_folder(cache)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 0, 1, 2])
    # a second call finds the verified files and fetches nothing
    again = FakeOpener(fake_mnist, BASE, fail=AssertionError("must not be called"))
    download_mnist(cache, base_url=BASE, opener=again)
    assert again.urls == []
    # a file that was damaged on disk is fetched again
    (cache / "t10k-labels-idx1-ubyte").write_bytes(b"junk")
    third = FakeOpener(fake_mnist, BASE)
    download_mnist(cache, base_url=BASE, opener=third)
    assert third.urls == [BASE + "t10k-labels-idx1-ubyte.gz"]
    assert (cache / "t10k-labels-idx1-ubyte").read_bytes() == fake_mnist["t10k-labels-idx1-ubyte"]


def test_download_mnist_refuses_wrong_bytes(tmp_path, fake_mnist):
    wrong = {k: v[:-1] + bytes([v[-1] ^ 1]) for k, v in fake_mnist.items()}
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as info:
        download_mnist(cache, base_url=BASE, opener=FakeOpener(wrong, BASE))
    msg = str(info.value)
    assert "sha256" in msg and BASE in msg
    assert D.MNIST_SHA256["train-images-idx3-ubyte"] in msg
    assert list(cache.iterdir()) == [], "nothing (not even a temporary file) is written"


def test_download_mnist_real_hashes_refuse_fake_data(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.undo()  # the real MNIST hashes: fake files never match them
    assert D.MNIST_SHA256["train-labels-idx1-ubyte"].startswith("65a50cbb")
    with pytest.raises(DatasetError, match="sha256"):
        download_mnist(tmp_path, base_url=BASE, opener=FakeOpener(fake_mnist, BASE))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [urllib.error.URLError("no route to host"),
                                 OSError("connection reset"), TimeoutError("timed out"),
                                 urllib.error.HTTPError(BASE, 404, "Not Found", None, None)],
                         ids=["urlerror", "oserror", "timeout", "http404"])
def test_download_mnist_network_errors(tmp_path, fake_mnist, exc):
    with pytest.raises(DatasetError, match="cannot download") as info:
        download_mnist(tmp_path, base_url=BASE, opener=FakeOpener(fake_mnist, BASE, fail=exc))
    assert BASE in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_mnist_not_gzip(tmp_path, fake_mnist):
    def opener(url):
        return io.BytesIO(b"<html>captive portal</html>")

    with pytest.raises(DatasetError, match="cannot download"):
        download_mnist(tmp_path, base_url=BASE, opener=opener)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- real MNIST

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(),
                                 reason=f"{SHARED_MNIST} not present")
README_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@needs_mnist
def test_real_mnist_label_counts_and_sha256():
    assert D.MNIST_SHA256 == README_SHA256
    for name, digest in README_SHA256.items():
        raw = gzip.decompress((SHARED_MNIST / (name + ".gz")).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest, name
    labels = read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                            5851, 5949]
    assert read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").shape == (10000,)


@needs_mnist
def test_real_mnist_pixel_statistics_and_subset():
    images = read_idx(SHARED_MNIST / "train-images-idx3-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert images.mean(dtype=np.float64) / 255 == pytest.approx(0.1307, abs=5e-5)
    assert images.std(dtype=np.float64) / 255 == pytest.approx(0.3081, abs=5e-5)
    # the bundled subset is the head of the real files
    sub = read_idx(D.BUNDLED / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(sub, images[:10000])
    sub_test = read_idx(D.BUNDLED / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(sub_test, read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz")
                                  [:2000])
