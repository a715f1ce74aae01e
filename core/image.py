"""Load images as float arrays and save feature maps as PNG files.

Every image is returned as a float32 array of shape (H, W, C) with values in
[0, 1]: C = 3 for colour images and C = 1 for grayscale ones. The conversion
from Pillow's many pixel modes is:

* 8-bit gray (``L``) and 1-bit (``1``) images are divided by 255.
* 16-bit gray (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) is divided by 65535.
* 32-bit integer (``I``): if every value lies in [0, 65535] (16-bit data that
  Pillow widened) it is divided by 65535; larger non-negative values are divided
  by the image's maximum; images with negative values are min-max normalised.
* 32-bit float (``F``): kept as is when every finite value lies in [0, 1],
  otherwise min-max normalised over the finite values; NaN and -inf become 0,
  +inf becomes 1.
* Palette (``P``) images become RGB, or RGBA when they have transparency.
* CMYK, YCbCr, LAB, HSV and RGBX are converted to RGB by Pillow.
* Alpha is not a feature channel: it is flattened onto white, as an image viewer
  shows it (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``, and images
  with a ``transparency`` key such as a tRNS chunk).
* 16-bit-per-channel colour PNGs: Pillow has no 16-bit RGB mode and decodes
  them to 8 bits per channel (keeping the high byte), so they load with 8-bit
  precision. 16-bit grayscale keeps its full precision (its tRNS gray level is
  transparent, so white); 16-bit gray + alpha, which Pillow also decodes to 8-bit
  RGBA, still loads as one channel.
* The EXIF orientation tag is applied; of an animation (GIF, APNG, WebP) or a
  multi-page file (TIFF) only the first frame is read.

Loading refuses images with more pixels than a limit before any pixel data is
decoded, so a tiny file declaring a huge size (a decompression bomb) fails fast.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
from typing import IO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .fileio import atomic_write

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageLoadError",
    "load_image",
    "luma",
    "save_image",
    "to_uint8",
]

DEFAULT_MAX_PIXELS = 64_000_000
"""Default pixel-count limit of :func:`load_image` (about 8000 x 8000)."""

_LOAD_MODES = ("auto", "rgb", "gray")
_GRAY_MODES = ("1", "L", "LA", "La")
_ALPHA_MODES = ("RGBA", "RGBa", "PA")

# Pillow's decompression-bomb limit is the module global Image.MAX_IMAGE_PIXELS.
# load_image sets it to its own limit for the duration of one decode and restores
# it afterwards; the lock keeps concurrent loads from interleaving those changes
# (and the equally global warning filters).
_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """An image file could not be loaded.

    Parameters
    ----------
    name : str
        The file's path, or ``"<bytes>"`` / ``"<file object>"`` for in-memory
        input.
    reason : str
        Why loading failed.

    Attributes
    ----------
    name : str
        As passed.
    reason : str
        As passed.

    Examples
    --------
    >>> str(ImageLoadError("foo.png", "no such file"))
    "cannot load image 'foo.png': no such file"
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot load image '{self.name}': {self.reason}"


def load_image(
    source: str | os.PathLike | bytes | bytearray | memoryview | IO[bytes],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    mode: Literal["auto", "rgb", "gray"] = "auto",
    notes: list | None = None,
) -> np.ndarray:
    """Load an image in any format Pillow reads as a float array in [0, 1].

    See the module documentation for how each pixel mode is converted. In short:
    alpha is flattened onto white, EXIF orientation is applied and only the
    first frame of an animation or multi-page file is read.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview or binary file object
        A path, the encoded file contents, or a file object opened in binary
        mode (read from its current position to the end; not closed).
    max_pixels : int, optional
        Refuse images with more than this many pixels (width x height). The
        check is made on the size declared in the file's header, before any
        pixel data is decoded. Default :data:`DEFAULT_MAX_PIXELS`.
    mode : {"auto", "rgb", "gray"}, optional
        ``"auto"`` keeps colour images as 3 channels and grayscale ones as 1;
        ``"rgb"`` always returns 3 channels (gray replicated); ``"gray"`` always
        returns 1 channel, colour being reduced with :func:`luma`.
    notes : list, optional
        Receives one sentence for each thing the user should know about this
        load: a 16-bit colour PNG read at 8 bits per channel (Pillow decodes no
        more), NaN or infinite values of a float image set to 0 or 1.

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 array of shape (H, W, C), values in [0, 1], where
        C is 1 or 3 as described for `mode`.

    Raises
    ------
    ImageLoadError
        The file is missing, a directory, unreadable, empty, not an image,
        truncated or corrupt, or larger than `max_pixels`.
    ValueError
        `mode` or `max_pixels` is invalid.
    TypeError
        `source` is none of the accepted types.

    Notes
    -----
    Pillow's own decompression-bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) is
    set to `max_pixels` for the duration of the call and then restored; it also
    guards sizes that some formats only discover while reading (a GIF frame
    larger than its canvas, for example). Because that setting is global to
    Pillow, loads are serialised by a lock, and other code using Pillow in
    another thread at the same moment sees this limit.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (4, 2), (255, 0, 0)).save(buffer, "PNG")
    >>> load_image(buffer.getvalue()).shape
    (2, 4, 3)
    >>> round(float(load_image(buffer.getvalue(), mode="gray")[0, 0, 0]), 6)
    0.299
    """
    if mode not in _LOAD_MODES:
        raise ValueError(f"mode must be one of {_LOAD_MODES}, got {mode!r}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) \
            or max_pixels < 1:
        raise ValueError(f"max_pixels must be an integer of at least 1, got {max_pixels!r}")
    name, stream = _open_source(source)
    notes = [] if notes is None else notes
    with stream:
        gray_png = _png_is_gray(stream)
        header = _png_header(stream)
        if header is not None and 0 in header[:2]:
            raise ImageLoadError(name, f"the PNG is {header[0]}x{header[1]} pixels: it holds "
                                       f"no pixels")
        frame = _decode(stream, name, max_pixels)
    if header is not None and header[2] == 16 and header[3] in (2, 6):
        notes.append(f"{os.path.basename(name)} is a 16-bit colour PNG: it was read at 8 "
                     f"bits per channel (Pillow decodes no more)")
    pixels = _to_float(frame, notes)
    if gray_png and pixels.shape[2] == 3:
        # Pillow decodes 16-bit gray + alpha PNGs as RGBA: still one channel
        pixels = pixels[..., :1]
    if mode == "rgb" and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif mode == "gray" and pixels.shape[2] == 3:
        pixels = luma(pixels)[..., np.newaxis]
    return np.ascontiguousarray(pixels, dtype=np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Reduce an RGB image to gray with the ITU-R 601-2 luma weights.

    ``Y = 0.299 R + 0.587 G + 0.114 B``, computed in float32 from the values as
    given (for [0, 1] input the result is in [0, 1]).

    Parameters
    ----------
    rgb : array_like, shape (H, W, 3)
        The colour image.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (H, W).

    Raises
    ------
    ValueError
        `rgb` is not of shape (H, W, 3).

    Examples
    --------
    >>> luma(np.ones((1, 1, 3)))
    array([[1.]], dtype=float32)
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"luma expects an (H, W, 3) array, got shape {rgb.shape}")
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def to_uint8(
    fmap: np.ndarray, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """Map values linearly to 8-bit levels, as :func:`save_image` does.

    ``[vmin, vmax]`` maps linearly onto ``[0, 255]``; the result is clipped and
    rounded to the nearest level (halves to even). NaN and -inf map to 0, +inf
    to 255. A zero-width range (a constant map) maps everything to 0.

    Parameters
    ----------
    fmap : array_like
        Values of any shape.
    vmin, vmax : float, optional
        The values mapped to 0 and 255. Each defaults to the finite minimum
        (maximum) of `fmap`, moved if necessary so that ``vmin <= vmax`` holds
        when only the other bound is given.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape as `fmap`.

    Raises
    ------
    ValueError
        `vmin` or `vmax` is not finite, or ``vmin > vmax``.

    Examples
    --------
    >>> to_uint8(np.array([0.0, 0.5, 1.0, np.nan]))
    array([  0, 128, 255,   0], dtype=uint8)
    """
    values = np.asarray(fmap, dtype=np.float64)
    vmin, vmax = _value_range(values, vmin, vmax)
    return _quantise(values, vmin, vmax, 255).astype(np.uint8)


def save_image(
    path: str | os.PathLike,
    fmap: np.ndarray,
    *,
    bits: Literal[8, 16] = 8,
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[float, float]:
    """Write a feature map or image to a PNG file, atomically.

    Values are mapped linearly from ``[vmin, vmax]`` to ``[0, 2**bits - 1]``,
    clipped and rounded to the nearest level (halves to even). `vmin` and `vmax`
    default to the finite minimum and maximum of `fmap` (see :func:`to_uint8`),
    so a constant map is written as all zeros. NaN and -inf are written as 0,
    +inf as the top level.

    The PNG is written to a temporary file in the destination directory, which
    then replaces `path` in one step: readers never see a partial file, and a
    failed save leaves any existing file untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. The file is PNG whatever its extension.
    fmap : array_like, shape (H, W), (H, W, 1) or (H, W, 3)
        One channel (written as gray) or three (written as RGB).
    bits : {8, 16}, optional
        Bits per sample. 16 is only available for one channel (mode ``I;16``):
        Pillow cannot write 16-bit RGB.
    vmin, vmax : float, optional
        The values mapped to 0 and to ``2**bits - 1``.

    Returns
    -------
    tuple of float
        The ``(vmin, vmax)`` actually used, so that callers can record how the
        levels map back to values: ``value = vmin + level / (2**bits - 1) *
        (vmax - vmin)``.

    Raises
    ------
    ValueError
        `bits` is not 8 or 16; `fmap` is empty or of the wrong shape; 16 bits
        are asked for with 3 channels; `vmin` or `vmax` is not finite, or
        ``vmin > vmax``.
    OSError
        The file cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_image(os.path.join(folder, "map.png"), np.array([[-1.0, 3.0]]))
    (-1.0, 3.0)
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    values = np.asarray(fmap)
    if not np.issubdtype(values.dtype, np.floating) or values.dtype.itemsize > 8:
        values = values.astype(np.float64)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[2] == 3)):
        raise ValueError(f"fmap must have shape (H, W), (H, W, 1) or (H, W, 3), got {values.shape}")
    if values.size == 0:
        raise ValueError(f"fmap is empty (shape {values.shape})")
    if bits == 16 and values.ndim == 3:
        raise ValueError("bits=16 needs a single-channel map: Pillow cannot write 16-bit RGB PNGs")
    # in bands of rows, each converted to float64 on its own: the same levels as one
    # pass over the whole map, without its float64 copies (a 48-megapixel map made
    # about 1.5 GB of temporaries, two maps being written at a time)
    band = max(1, _BAND_CELLS // max(1, values[0].size))
    low = high = None
    for r0 in range(0, values.shape[0], band):
        chunk = np.asarray(values[r0:r0 + band], dtype=np.float64)
        finite = chunk[np.isfinite(chunk)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            low = lo if low is None else min(low, lo)
            high = hi if high is None else max(high, hi)
    vmin, vmax = _resolve_range(low, high, vmin, vmax)
    levels = np.empty(values.shape, "<u2" if bits == 16 else np.uint8)
    for r0 in range(0, values.shape[0], band):
        chunk = np.asarray(values[r0:r0 + band], dtype=np.float64)
        levels[r0:r0 + band] = _quantise(chunk, vmin, vmax, 2**bits - 1)
    _write_atomically(os.fspath(path), Image.fromarray(levels))
    return vmin, vmax


#: cells per band of :func:`save_image` (float64 temporaries of a few MB each)
_BAND_CELLS = 1 << 20


def _open_source(source) -> tuple[str, IO[bytes]]:
    """Return a display name and a seekable binary stream for `source`."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>", io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        if os.path.isdir(source):
            raise ImageLoadError(name, "is a directory")
        try:
            return name, open(source, "rb")
        except FileNotFoundError:
            raise ImageLoadError(name, "no such file") from None
        except OSError as exc:
            raise ImageLoadError(name, exc.strerror or str(exc)) from exc
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return name if isinstance(name, str) else "<file object>", io.BytesIO(source.read())
    raise TypeError(
        "source must be a path, bytes-like object or binary file object, "
        f"not {type(source).__name__}"
    )


def _png_is_gray(stream: IO[bytes]) -> bool:
    """Whether `stream` is a PNG whose header declares gray (colour type 0 or 4)."""
    head = stream.read(26)
    stream.seek(0)
    return (len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
            and head[25] in (0, 4))


def _png_header(stream: IO[bytes]):
    """(width, height, bit depth, colour type) of a PNG, or None for other formats."""
    pos = stream.tell()
    head = stream.read(26)
    stream.seek(pos)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return w, h, head[24], head[25]
    return None


def _decode(stream: IO[bytes], name: str, max_pixels: int) -> Image.Image:
    """Decode the first frame of `stream`, upright, as an in-memory image."""
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            # Image.open only reads the header and checks the declared size
            # against MAX_IMAGE_PIXELS before returning.
            with Image.open(stream) as image:
                image.load()
                return ImageOps.exif_transpose(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's message cannot be reused: past twice its limit it quotes that double.
            reason = f"image has more than the limit of {max_pixels:,} pixels"
            raise ImageLoadError(name, reason) from exc
        except UnidentifiedImageError as exc:
            empty = stream.seek(0, os.SEEK_END) == 0
            reason = "file is empty" if empty else "not a recognised image format"
            raise ImageLoadError(name, reason) from exc
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise ImageLoadError(name, f"file is truncated or corrupt ({exc})") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit


def _to_float(image: Image.Image, notes: list | None = None) -> np.ndarray:
    """Convert a decoded image to an (H, W, 1 or 3) float array in [0, 1]."""
    transparent = "transparency" in image.info
    if image.mode in _GRAY_MODES:
        if image.mode in ("LA", "La") or transparent:
            return _flatten_alpha(np.asarray(image.convert("LA")))
        return _scale_uint8(np.asarray(image.convert("L")))[..., np.newaxis]
    if image.mode.startswith("I;16"):
        raw = np.asarray(image)
        values = raw.astype(np.float32) / 65535
        key = image.info.get("transparency")
        if isinstance(key, int):  # a tRNS gray level: those pixels are transparent
            values[raw == key] = 1.0  # flattened onto white, as alpha is
        return values[..., np.newaxis]
    if image.mode == "I":
        return _scale_int32(np.asarray(image))[..., np.newaxis]
    if image.mode == "F":
        values = np.asarray(image)
        bad = ~np.isfinite(values)
        if notes is not None and bad.any():
            nan, pos = int(np.isnan(values).sum()), int(np.isposinf(values).sum())
            neg = int(bad.sum()) - nan - pos
            parts = [f"{n:,} {what}" for n, what in ((nan, "NaN value(s) shown as 0"),
                                                     (pos, "+inf value(s) shown as 1"),
                                                     (neg, "-inf value(s) shown as 0")) if n]
            notes.append("the image holds " + ", ".join(parts))
        return _scale_float(values)[..., np.newaxis]
    if image.mode in _ALPHA_MODES or transparent:
        return _flatten_alpha(np.asarray(image.convert("RGBA")))
    return _scale_uint8(np.asarray(image.convert("RGB")))


def _scale_uint8(levels: np.ndarray) -> np.ndarray:
    return levels.astype(np.float32) / 255


def _flatten_alpha(levels: np.ndarray) -> np.ndarray:
    """Composite 8-bit colour + alpha (last channel) onto white."""
    values = _scale_uint8(levels)
    colour, alpha = values[..., :-1], values[..., -1:]
    return colour * alpha + (1 - alpha)


def _scale_int32(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)  # int32 differences can overflow
    low, high = values.min(), values.max()
    if low < 0:
        return _min_max(values, low, high)
    return values / max(high, 65535)


def _scale_float(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        values = _min_max(values, finite.min(), finite.max())
    return np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)


def _min_max(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto [0, 1] in float64 (+inf to 1 and beyond, -inf
    below 0); a zero-width range gives zeros, and 1 where the value is +inf."""
    values = np.asarray(values, dtype=np.float64)
    if high == low:
        return np.where(np.isposinf(values), 1.0, 0.0)
    return _unit_scale(values, low, high)


def _unit_scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(values - low) / (high - low)`` without overflow for any finite float64 range
    (both sides halved: ``1e308 - -1e308`` would be inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(high - low):  # the usual case, exact for subnormals too
            return (values - low) / (high - low)
        return (values / 2 - low / 2) / (high / 2 - low / 2)


def _value_range(
    values: np.ndarray, vmin: float | None, vmax: float | None
) -> tuple[float, float]:
    """Resolve the value range of :func:`to_uint8` and :func:`save_image`."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
    return _resolve_range(low, high, vmin, vmax)


def _resolve_range(low, high, vmin, vmax) -> tuple[float, float]:
    """The range from the finite minimum and maximum (None: no finite value) and the
    caller's ``vmin``/``vmax``."""
    if low is None:
        low = high = 0.0
    if vmin is None:
        vmin = low if vmax is None else min(low, float(vmax))
    if vmax is None:
        vmax = max(high, float(vmin))
    vmin, vmax = float(vmin), float(vmax)
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise ValueError(f"vmin and vmax must be finite, got vmin={vmin!r}, vmax={vmax!r}")
    if vmin > vmax:
        raise ValueError(f"vmin must not exceed vmax, got vmin={vmin!r}, vmax={vmax!r}")
    return vmin, vmax


def _quantise(values: np.ndarray, vmin: float, vmax: float, top: int) -> np.ndarray:
    """Map [vmin, vmax] onto the integer levels [0, top] (as floats); NaN and -inf to 0,
    +inf to ``top`` (also when the range has zero width)."""
    if vmax == vmin:
        return np.where(np.isposinf(values), float(top), 0.0)
    scaled = np.clip(_unit_scale(values, vmin, vmax) * top, 0, top)
    return np.rint(np.nan_to_num(scaled, nan=0.0))


def _write_atomically(path: str, image: Image.Image) -> None:
    """Save `image` as PNG to a temporary sibling of `path`, then rename it."""
    # zlib level 1: half the time of the default 6 for 10 % larger files (the exact
    # values are in the .npy beside it); a 48-megapixel export spent 80 % in zlib
    atomic_write(path, lambda fh: image.save(fh, format="PNG", compress_level=1))