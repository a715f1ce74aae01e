"""Tests for core.image: loading every kind of image, and saving feature maps."""

import io
import os
import pickle
import struct
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from convscope.core.image import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    load_image,
    luma,
    save_image,
    to_uint8,
)

RNG = np.random.default_rng(1234)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG built by hand, for layouts Pillow cannot write (such as 16-bit RGB)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def u8(*levels) -> np.ndarray:
    """Expected loaded values of 8-bit levels."""
    return np.array(levels, dtype=np.float32) / 255


def stored(path) -> tuple[str, np.ndarray]:
    """The Pillow mode and the raw levels of an image file."""
    with Image.open(path) as image:
        return image.mode, np.asarray(image)


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# --- load_image: pixel modes -------------------------------------------------


def test_rgb_8bit_exact(tmp_path):
    levels = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(levels).save(path)
    pixels = load_image(str(path))
    assert pixels.dtype == np.float32
    assert pixels.flags.c_contiguous
    assert pixels.shape == (5, 7, 3)
    np.testing.assert_array_equal(pixels, levels.astype(np.float32) / 255)


def test_gray_8bit_has_one_channel():
    levels = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    pixels = load_image(encode(Image.fromarray(levels)))
    assert pixels.shape == (4, 6, 1)
    np.testing.assert_array_equal(pixels[..., 0], levels.astype(np.float32) / 255)


def test_1bit_image():
    image = Image.new("1", (3, 1))
    image.putpixel((1, 0), 1)
    np.testing.assert_array_equal(load_image(encode(image))[..., 0], [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("pillow_mode", "dtype", "fmt"),
    [("I;16", "<u2", "PNG"), ("I;16B", ">u2", "TIFF")],
)
def test_16bit_gray_divided_by_65535(pillow_mode, dtype, fmt):
    values = np.array([[0, 1000, 65535]], dtype=dtype)
    data = encode(Image.frombytes(pillow_mode, (3, 1), values.tobytes()), fmt)
    assert Image.open(io.BytesIO(data)).mode == pillow_mode
    pixels = load_image(data)
    assert pixels.shape == (1, 3, 1)
    np.testing.assert_array_equal(pixels[..., 0], values.astype(np.float32) / 65535)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1000, 65535], [0, 1000 / 65535, 1]),  # 16-bit data: / 65535
        ([0, 35000, 70000], [0, 0.5, 1]),  # beyond 16 bits: / max
        ([100, 200, 400], [100 / 65535, 200 / 65535, 400 / 65535]),
        ([-5, 0, 5], [0, 0.5, 1]),  # negative: min-max
        ([-(2**31), 0, 2**31 - 1], [0, 0.5, 1]),  # full int32 range, no overflow
    ],
)
def test_32bit_int_scaling(values, expected):
    data = encode(Image.fromarray(np.array([values], dtype=np.int32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    np.testing.assert_allclose(load_image(data)[..., 0], [expected], rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.25, 1.0], [0.0, 0.25, 1.0]),  # within [0, 1]: kept
        ([-1.0, 0.0, 3.0], [0.0, 0.25, 1.0]),  # outside: min-max
        ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0]),  # constant outside: zeros
        ([np.nan, 0.5, np.inf], [0.0, 0.5, 1.0]),
        ([-np.inf, 2.0, 4.0], [0.0, 0.0, 1.0]),
    ],
)
def test_float_image_scaling(values, expected):
    data = encode(Image.fromarray(np.array([values], dtype=np.float32)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    np.testing.assert_allclose(load_image(data)[..., 0], [expected], rtol=0, atol=1e-7)


def test_16bit_rgb_png_loads_to_within_8bit_precision():
    samples = [65535, 1000, 0, 257, 0, 32768]
    data = raw_png(2, 1, 16, 2, b"\x00" + struct.pack(">6H", *samples))
    pixels = load_image(data)
    assert pixels.shape == (1, 2, 3)
    expected = np.array(samples, dtype=np.float32).reshape(1, 2, 3) / 65535
    np.testing.assert_allclose(pixels, expected, rtol=0, atol=1 / 255)


def palette_image() -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 128, 255, 10, 20, 30])
    image.putdata([0, 1, 2])
    return image


def test_palette_becomes_rgb():
    pixels = load_image(encode(palette_image()))
    np.testing.assert_array_equal(pixels[0], [u8(255, 0, 0), u8(0, 128, 255), u8(10, 20, 30)])


def test_palette_transparency_is_flattened_onto_white():
    pixels = load_image(encode(palette_image(), transparency=1))
    np.testing.assert_array_equal(pixels[0], [u8(255, 0, 0), [1, 1, 1], u8(10, 20, 30)])


def test_rgba_is_composited_onto_white():
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 128), (0, 0, 0, 0), (10, 20, 30, 255)])
    pixels = load_image(encode(image))
    assert pixels.shape == (1, 3, 3)
    alpha = np.float32(128) / np.float32(255)
    np.testing.assert_array_equal(pixels[0, 0], [1, 1 - alpha, 1 - alpha])
    assert abs(pixels[0, 0, 1] - 127 / 255) < 1e-6
    np.testing.assert_array_equal(pixels[0, 1], [1, 1, 1])
    np.testing.assert_array_equal(pixels[0, 2], u8(10, 20, 30))


def test_gray_alpha_is_composited_onto_white():
    image = Image.new("LA", (2, 1))
    image.putdata([(100, 128), (100, 255)])
    pixels = load_image(encode(image))
    assert pixels.shape == (1, 2, 1)
    alpha = np.float32(128) / np.float32(255)
    np.testing.assert_array_equal(pixels[0, :, 0], [u8(100)[0] * alpha + (1 - alpha), u8(100)[0]])


def test_gray_with_transparent_colour_is_composited_onto_white():
    levels = np.array([[0, 10, 20]], dtype=np.uint8)
    pixels = load_image(encode(Image.fromarray(levels), transparency=10))
    np.testing.assert_array_equal(pixels[..., 0], [[0, 1, u8(20)[0]]])


def test_cmyk_matches_pillow_conversion():
    image = Image.new("CMYK", (2, 2), (10, 200, 30, 40))
    image.putpixel((1, 1), (0, 0, 255, 0))
    pixels = load_image(encode(image, "TIFF"))
    expected = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_array_equal(pixels, expected)
    assert not np.array_equal(pixels[0, 0], pixels[1, 1])


def test_ycbcr_becomes_rgb():
    image = Image.new("RGB", (2, 1), (200, 50, 25)).convert("YCbCr")
    pixels = load_image(encode(image, "TIFF"))
    expected = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_array_equal(pixels, expected)


def test_exif_orientation_is_applied():
    levels = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8)  # 3 wide, 2 tall
    levels[0, 0] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    pixels = load_image(encode(Image.fromarray(levels), exif=exif))
    assert pixels.shape == (3, 2, 3)
    np.testing.assert_array_equal(pixels[0, 1], [1, 0, 0])  # top-left went top-right
    np.testing.assert_array_equal(pixels, np.rot90(levels, k=-1).astype(np.float32) / 255)


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (4, 3), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    pixels = load_image(data)
    assert pixels.shape == (3, 4, 3)
    np.testing.assert_array_equal(pixels, np.broadcast_to([1, 0, 0], (3, 4, 3)))


def test_animated_png_first_frame():
    frames = [Image.new("RGB", (2, 2), colour) for colour in [(0, 255, 0), (9, 9, 9)]]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    np.testing.assert_array_equal(load_image(data), np.broadcast_to([0, 1, 0], (2, 2, 3)))


def test_multipage_tiff_first_page():
    pages = [Image.new("L", (2, 3), level) for level in (40, 200)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    np.testing.assert_array_equal(load_image(data), np.full((3, 2, 1), u8(40)))


# --- load_image: sources and modes ---------------------------------------------


SMALL = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_like_sources(wrap):
    pixels = load_image(wrap(encode(Image.fromarray(SMALL))))
    np.testing.assert_array_equal(pixels, SMALL / np.float32(255))


def test_file_object_source_is_read_from_current_position():
    stream = io.BytesIO(b"junk" + encode(Image.fromarray(SMALL)))
    stream.seek(4)
    np.testing.assert_array_equal(load_image(stream), SMALL / np.float32(255))
    assert not stream.closed


def test_path_sources(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(SMALL).save(path)
    expected = SMALL / np.float32(255)
    np.testing.assert_array_equal(load_image(path), expected)
    np.testing.assert_array_equal(load_image(str(path)), expected)
    with open(path, "rb") as file:
        np.testing.assert_array_equal(load_image(file), expected)


def test_unsupported_source_type():
    with pytest.raises(TypeError, match="int"):
        load_image(42)


def test_mode_gray_uses_601_luma():
    pixels = load_image(encode(Image.fromarray(SMALL)), mode="gray")
    assert pixels.shape == (2, 2, 1)
    np.testing.assert_allclose(pixels[..., 0], [[0.299, 0.587], [0.114, 1.0]], atol=1e-7)
    assert pixels.max() <= 1


def test_mode_rgb_replicates_gray():
    levels = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    pixels = load_image(encode(Image.fromarray(levels)), mode="rgb")
    assert pixels.shape == (2, 2, 3)
    assert pixels.flags.c_contiguous
    for channel in range(3):
        np.testing.assert_array_equal(pixels[..., channel], levels / np.float32(255))


def test_modes_that_match_the_image_change_nothing():
    colour, gray = encode(Image.fromarray(SMALL)), encode(Image.fromarray(SMALL[..., 0]))
    np.testing.assert_array_equal(load_image(colour, mode="rgb"), load_image(colour))
    np.testing.assert_array_equal(load_image(gray, mode="gray"), load_image(gray))


def test_invalid_arguments():
    data = encode(Image.fromarray(SMALL))
    with pytest.raises(ValueError, match="'grey'"):
        load_image(data, mode="grey")
    with pytest.raises(ValueError, match="max_pixels.*0"):
        load_image(data, max_pixels=0)


# --- load_image: failures ------------------------------------------------------


def test_truncated_png_names_the_file(tmp_path):
    data = encode(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt") as info:
        load_image(path)
    assert str(info.value).startswith(f"cannot load image '{path}': file is truncated")
    assert info.value.name == str(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"cannot load image '{path}': file is empty"
    with pytest.raises(ImageLoadError, match="'<bytes>': file is empty"):
        load_image(b"")


def test_garbage_bytes():
    with pytest.raises(ImageLoadError) as info:
        load_image(io.BytesIO(RNG.bytes(500)))
    assert str(info.value) == "cannot load image '<file object>': not a recognised image format"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"cannot load image '{path}': no such file"


def test_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1x1 gray PNG whose header claims width x height pixels."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_header_is_refused_without_decoding():
    data = bomb_png(100_000, 100_000)
    assert struct.unpack(">II", data[16:24]) == (100_000, 100_000)
    limit = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match="limit of 64,000,000 pixels"):
        load_image(data)
    assert time.perf_counter() - start < 1
    assert Image.MAX_IMAGE_PIXELS == limit


def test_gif_frame_larger_than_its_canvas_is_refused_without_allocating():
    # Pillow enlarges the canvas to the first frame and fills it while opening:
    # its own size check has to be active during Image.open.
    data = (
        b"GIF89a"
        + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b"\x21\xf9\x04\x08\x00\x00\x00\x00"  # disposal: restore to background
        + b","
        + struct.pack("<HHHHB", 0, 0, 60_000, 60_000, 0)
        + b"\x02\x02\x44\x01\x00;"
    )
    start = time.perf_counter()
    with pytest.raises(ImageLoadError, match="limit of 64,000,000 pixels"):
        load_image(data)
    assert time.perf_counter() - start < 1


def test_max_pixels_boundary():
    data = encode(Image.new("L", (4, 4), 7))
    with pytest.raises(ImageLoadError, match="limit of 10 pixels"):
        load_image(data, max_pixels=10)
    with pytest.raises(ImageLoadError, match="limit of 15 pixels"):
        load_image(data, max_pixels=15)
    np.testing.assert_array_equal(load_image(data, max_pixels=16), np.full((4, 4, 1), u8(7)))


def test_max_pixels_overrides_pillow_limit_only_during_the_call(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4)
    assert load_image(encode(Image.new("L", (4, 4)))).shape == (4, 4, 1)
    assert Image.MAX_IMAGE_PIXELS == 4
    assert DEFAULT_MAX_PIXELS == 64_000_000


def test_concurrent_loads_keep_their_own_limits():
    data = encode(Image.new("L", (4, 4), 7))
    limit = Image.MAX_IMAGE_PIXELS

    def load(max_pixels):
        try:
            return load_image(data, max_pixels=max_pixels).shape
        except ImageLoadError:
            return None

    limits = [10, 16, 1000] * 20
    with ThreadPoolExecutor(max_workers=8) as pool:
        shapes = list(pool.map(load, limits))
    assert shapes == [None if n < 16 else (4, 4, 1) for n in limits]
    assert Image.MAX_IMAGE_PIXELS == limit


def test_image_load_error_is_value_error_and_pickles():
    error = ImageLoadError("a.png", "no such file")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.name, copy.reason, str(copy)) == ("a.png", "no such file", str(error))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_file_handle_left_open(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    data = encode(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    good.write_bytes(data)
    bad.write_bytes(data[: len(data) // 2])
    before = open_descriptors()
    load_image(good)
    with pytest.raises(ImageLoadError):
        load_image(bad)
    assert open_descriptors() == before


# --- luma, to_uint8 ------------------------------------------------------------


def test_luma_weights():
    rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]]])
    result = luma(rgb)
    assert result.dtype == np.float32 and result.shape == (1, 4)
    np.testing.assert_allclose(result, [[0.299, 0.587, 0.114, 0.5]], atol=1e-7)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        luma(np.zeros((2, 2)))


def test_to_uint8_levels():
    values = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(
        to_uint8(values, 0.0, 1.0), [0, 0, 64, 128, 255, 255, 0, 255, 0]
    )
    np.testing.assert_array_equal(to_uint8(np.array([[2.0, 4.0, 6.0]])), [[0, 128, 255]])


# --- save_image ----------------------------------------------------------------


def test_save_8bit_round_trip(tmp_path):
    fmap = np.linspace(-2.0, 6.0, 60).reshape(6, 10)
    path = tmp_path / "map.png"
    assert save_image(path, fmap) == (-2.0, 6.0)
    assert stored(path)[0] == "L"
    pixels = load_image(path)
    assert pixels.shape == (6, 10, 1)
    np.testing.assert_allclose(pixels[..., 0], (fmap + 2) / 8, rtol=0, atol=0.5 / 255 + 1e-7)
    assert pixels.min() == 0 and pixels.max() == 1


def test_save_16bit_round_trip(tmp_path):
    fmap = RNG.normal(size=(7, 9))
    path = tmp_path / "map16.png"
    vmin, vmax = save_image(path, fmap, bits=16)
    assert (vmin, vmax) == (fmap.min(), fmap.max())
    assert stored(path)[0] == "I;16"
    expected = (fmap - vmin) / (vmax - vmin)
    np.testing.assert_allclose(load_image(path)[..., 0], expected, rtol=0, atol=0.5 / 65535 + 1e-7)


def test_save_colour_and_single_channel_arrays(tmp_path):
    levels = RNG.integers(0, 256, (3, 4, 3)).astype(np.float64)
    assert save_image(tmp_path / "rgb.png", levels, vmin=0, vmax=255) == (0.0, 255.0)
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png"), levels.astype(np.float32) / 255)
    save_image(tmp_path / "one.png", levels[..., :1], vmin=0, vmax=255)
    expected = levels[..., :1].astype(np.float32) / 255
    np.testing.assert_array_equal(load_image(tmp_path / "one.png"), expected)


def test_save_explicit_range_clips(tmp_path):
    path = tmp_path / "clip.png"
    assert save_image(path, np.array([[-5.0, 0.0, 0.5, 1.0, 9.0]]), vmin=0, vmax=1) == (0.0, 1.0)
    np.testing.assert_array_equal(stored(path)[1], [[0, 0, 128, 255, 255]])


def test_save_one_sided_range(tmp_path):
    path = tmp_path / "one_sided.png"
    assert save_image(path, np.array([[1.0, 3.0]]), vmin=2.0) == (2.0, 3.0)
    np.testing.assert_array_equal(stored(path)[1], [[0, 255]])
    assert save_image(path, np.array([[1.0, 3.0]]), vmin=5.0) == (5.0, 5.0)
    np.testing.assert_array_equal(stored(path)[1], [[0, 0]])


def test_save_constant_map_is_zeros(tmp_path):
    path = tmp_path / "flat.png"
    assert save_image(path, np.full((3, 3), 4.5)) == (4.5, 4.5)
    np.testing.assert_array_equal(stored(path)[1], np.zeros((3, 3)))


def test_save_nan_and_inf(tmp_path):
    path = tmp_path / "nan.png"
    fmap = np.array([[np.nan, 0.0, 1.0, np.inf, -np.inf]])
    assert save_image(path, fmap) == (0.0, 1.0)
    np.testing.assert_array_equal(stored(path)[1], [[0, 0, 255, 255, 0]])
    assert save_image(path, np.full((2, 2), np.nan)) == (0.0, 0.0)
    np.testing.assert_array_equal(stored(path)[1], np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("kwargs", "fmap", "message"),
    [
        ({"bits": 12}, np.zeros((2, 2)), "bits must be 8 or 16, got 12"),
        ({}, np.zeros(4), r"got \(4,\)"),
        ({}, np.zeros((2, 2, 2)), r"got \(2, 2, 2\)"),
        ({}, np.zeros((0, 3)), r"empty \(shape \(0, 3\)\)"),
        ({"bits": 16}, np.zeros((2, 2, 3)), "16-bit RGB"),
        ({"vmin": 1.0, "vmax": 0.0}, np.zeros((2, 2)), "vmin=1.0, vmax=0.0"),
        ({"vmax": np.nan}, np.zeros((2, 2)), "must be finite"),
    ],
)
def test_save_rejects_bad_input_and_keeps_existing_file(tmp_path, kwargs, fmap, message):
    path = tmp_path / "existing.png"
    path.write_bytes(b"previous contents")
    with pytest.raises(ValueError, match=message):
        save_image(path, fmap, **kwargs)
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["existing.png"]


def test_failed_write_keeps_existing_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "existing.png"
    path.write_bytes(b"previous contents")

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(path, np.eye(3))
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["existing.png"]


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "map.png"
    path.write_bytes(b"old")
    save_image(path, np.eye(2))
    np.testing.assert_array_equal(stored(path)[1], [[255, 0], [0, 255]])
    assert os.listdir(tmp_path) == ["map.png"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        save_image(tmp_path / "map.png", np.eye(2))
    finally:
        os.umask(umask)
    assert (tmp_path / "map.png").stat().st_mode & 0o777 == 0o644


def _raw_png_with(width, height, bit_depth, colour_type, rows, extra: bytes) -> bytes:
    data = raw_png(width, height, bit_depth, colour_type, rows)
    return data[:33] + extra + data[33:]  # after the IHDR chunk


def test_16bit_gray_with_trns_is_flattened_onto_white():
    """Review regression: the tRNS gray level of a 16-bit PNG was ignored."""
    levels = np.array([[1000, 65535], [30000, 0]], ">u2")
    rows = b"".join(b"\x00" + levels[i].tobytes() for i in range(2))
    data = _raw_png_with(2, 2, 16, 0, rows, png_chunk(b"tRNS", struct.pack(">H", 30000)))
    got = load_image(data)
    assert got.shape == (2, 2, 1)
    np.testing.assert_allclose(got[..., 0], [[1000 / 65535, 1], [1, 0]], atol=1e-7)


def test_16bit_gray_alpha_png_stays_one_channel():
    """Review regression: Pillow decodes 16-bit gray+alpha as RGBA, which loaded as 3
    channels. The PNG header says gray: one channel, composited onto white."""
    gray = np.array([[1000, 65535], [30000, 0]])
    alpha = np.array([[65535, 0], [65535, 32768]])
    la = np.stack([gray, alpha], -1).astype(">u2")
    rows = b"".join(b"\x00" + la[i].tobytes() for i in range(2))
    got = load_image(raw_png(2, 2, 16, 4, rows))
    assert got.shape == (2, 2, 1)
    expected = [[1000 / 65535, 1], [30000 / 65535, 0.5]]
    np.testing.assert_allclose(got[..., 0], expected, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("values, expected", [
    ([[3, 3], [3, np.inf]], [[0, 0], [0, 1]]),      # one finite value: +inf still 1
    ([[-3e38, 0, 3e38]], [[0, 0.5, 1]]),             # float32 range: no overflow
])
def test_float_image_extremes(values, expected):
    """Review regression: both loaded as all zeros (with overflow warnings)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(values, np.float32), "F").save(buffer, "TIFF")
    np.testing.assert_allclose(load_image(buffer.getvalue())[..., 0], expected, atol=1e-6)


@pytest.mark.parametrize("values, levels", [
    ([[3.0, 3.0, np.inf]], [[0, 0, 255]]),
    ([[-1e308, 0.0, 1e308]], [[0, 128, 255]]),
    ([[np.nan, -np.inf, 2.0, np.inf]], [[0, 0, 0, 255]]),
])
def test_save_image_extremes(tmp_path, values, levels):
    path = tmp_path / "m.png"
    save_image(path, np.array(values))
    assert stored(path)[1].tolist() == levels


@pytest.mark.parametrize("bad", [None, 1.5, True, "100", 0])
def test_max_pixels_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(encode(Image.new("RGB", (2, 2))), max_pixels=bad)


def test_subnormal_ranges_keep_their_precision():
    assert to_uint8(np.array([0, 5e-324, 1e-323])).tolist() == [0, 128, 255]


# --------------------------------------------------------- issue 13: no silent surprises


def _png16_rgb(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    a = (np.arange(w * h * 3).reshape(h, w, 3) * 1000 % 65536).astype(">u2")
    raw = b"".join(b"\x00" + a[r].tobytes() for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_colour_png_is_read_with_a_note():
    notes = []
    img = load_image(_png16_rgb(6, 2), notes=notes)
    assert img.shape == (2, 6, 3)
    assert len(notes) == 1 and "16-bit colour PNG" in notes[0] and "8 bits" in notes[0]
    assert load_image(_png16_rgb(6, 2)).shape == (2, 6, 3)        # notes are optional


def test_float_tiff_with_nan_and_inf_says_so(tmp_path):
    from PIL import Image
    a = np.array([[0.25, np.nan], [np.inf, -np.inf]], np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(a, mode="F").save(path)
    notes = []
    img = load_image(str(path), notes=notes)
    assert img[0, 1, 0] == 0 and img[1, 0, 0] == 1
    assert notes == ["the image holds 1 NaN value(s) shown as 0, 1 +inf value(s) shown as 1, "
                     "1 -inf value(s) shown as 0"]


def test_zero_size_png_is_named_as_such():
    import struct
    import zlib
    head = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
            + struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
    head += struct.pack(">I", zlib.crc32(head[12:]))
    with pytest.raises(ImageLoadError, match="0x0 pixels"):
        load_image(head + b"\x00" * 12)


def test_save_image_in_bands_gives_the_one_pass_levels(tmp_path, monkeypatch):
    """save_image quantises in bands of rows (bounded memory for 48-megapixel maps);
    the levels and the range are those of to_uint8's single pass, NaN and inf too."""
    import convscope.core.image as image_module
    rng = np.random.default_rng(4)
    fmap = rng.normal(size=(37, 23)).astype(np.float32) * 1e3
    fmap[3, 4], fmap[20, 1], fmap[36, 22] = np.nan, np.inf, -np.inf
    want = image_module.to_uint8(fmap)
    monkeypatch.setattr(image_module, "_BAND_CELLS", 50)      # bands of 2 rows
    rng_used = image_module.save_image(tmp_path / "m.png", fmap)
    finite = fmap[np.isfinite(fmap)]
    assert rng_used == (float(finite.min()), float(finite.max()))
    with Image.open(tmp_path / "m.png") as im:
        np.testing.assert_array_equal(np.asarray(im), want)
