"""The kernel library: presets, a forgiving text parser, normalisation and initialisation.

Every kernel is a 2-D ``float64`` array of weights that the convolution engine
*cross-correlates* with the image (no flip, as deep learning does it; see
REFERENCE.md). Presets whose traditional form is integer weights over a divisor
(Gaussian ``[1 2 1; 2 4 2; 1 2 1] / 16``) are stored already divided: the weights
of a :class:`Preset` are exactly what is applied, and its ``display`` text keeps the
traditional form (which :func:`parse_kernel` reads back to the same weights).

Text format read by :func:`parse_kernel` and written by :func:`format_kernel`::

    1 2 1            [1 2 1; 2 4 2; 1 2 1] / 16      [[1, 2], [3, 4]]
    2 4 2            1/16 * [1 2 1; 2 4 2; 1 2 1]     array([[1., 2.], [3., 4.]])
    1 2 1            [0.25 -1/8; 1e-3 .5]

This module never imports Qt.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "DEFAULT_MAX_SIZE",
    "KernelParseError",
    "PRESETS",
    "Preset",
    "UnknownPresetError",
    "apply_divisor_offset",
    "format_kernel",
    "gaussian",
    "gimp_normalise",
    "is_separable",
    "laplacian_of_gaussian",
    "normalise_l1",
    "normalise_sum",
    "parse_kernel",
    "preset",
    "random_kernel",
    "validate_kernel",
]

DEFAULT_MAX_SIZE = 15
"""Largest kernel side the app accepts by default."""

_ZERO_SUM_TOL = 1e-9
_MAX_DENOMINATOR = 4096  # largest q that format_kernel writes as "p/q"


# --------------------------------------------------------------------------- validation


def validate_kernel(weights, max_size: int | None = DEFAULT_MAX_SIZE) -> np.ndarray:
    """Check a kernel and return it as a new ``float64`` array.

    Parameters
    ----------
    weights : array_like
        Nested lists or an array of real numbers.
    max_size : int or None, optional
        Largest allowed side (default 15); ``None`` for no limit.

    Returns
    -------
    ndarray
        A writable ``float64`` copy of shape (kh, kw).

    Raises
    ------
    ValueError
        If the weights are not real numbers, not 2-D, have a side outside
        ``1..max_size``, or contain NaN or infinity (the message names the value,
        the shape or the 1-based row and column).
    """
    try:
        arr = np.asarray(weights)
        if np.iscomplexobj(arr):
            raise TypeError("complex")
        arr = np.array(arr, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"kernel weights must be real numbers ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"kernel must be 2-D, got {arr.ndim}-D with shape {arr.shape}")
    kh, kw = arr.shape
    limit = math.inf if max_size is None else max_size
    if not (1 <= kh <= limit and 1 <= kw <= limit):
        bound = "at least 1" if max_size is None else f"between 1 and {max_size}"
        raise ValueError(f"kernel is {kh}x{kw}; each side must be {bound}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        r, c = bad[0]
        raise ValueError(f"kernel has a non-finite value {arr[r, c]} at row {r + 1}, "
                         f"column {c + 1}")
    return arr


# --------------------------------------------------------------------------- parsing


class KernelParseError(ValueError):
    """Kernel text that :func:`parse_kernel` cannot read.

    Attributes
    ----------
    row, column : int or None
        1-based position of the offending cell when the error is about one cell.
    """

    def __init__(self, message: str, row: int | None = None, column: int | None = None):
        super().__init__(message)
        self.row = row
        self.column = column


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CELL_RE = re.compile(rf"({_NUM})(?:/({_NUM}))?")
_NONFINITE_RE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_ARRAY_PREFIX_RE = re.compile(r"(?:(?:np|numpy)\.)?array\(")
_DTYPE_SUFFIX_RE = re.compile(r",\s*dtype\s*=\s*[\w.]+\s*\Z")
#: longest kernel text accepted (a 15x15 kernel of long decimals is about 6,000)
MAX_TEXT_LENGTH = 20_000
_SCALED_RE = re.compile(
    # the lead ends in a non-space, so a run of spaces is not retried at every length
    r"(?:(?P<lead>[^\[\]*]*[^\[\]*\s])\s*\*\s*)?(?P<body>\[.*\])"
    r"(?:\s*(?P<op>[*/])\s*(?P<trail>[^\[\]]+?))?",
    re.DOTALL)


def _number(token: str, where: str, row: int | None = None, col: int | None = None) -> float:
    """Value of one cell: a decimal number or a fraction ``p/q``."""
    if _NONFINITE_RE.fullmatch(token):
        raise KernelParseError(f"{where}: {token!r} is not a finite number", row, col)
    m = _CELL_RE.fullmatch(token)
    if m is None:
        raise KernelParseError(f"{where}: {token!r} is not a number", row, col)
    value = float(m.group(1))
    if m.group(2) is not None:
        den = float(m.group(2))
        if den == 0.0:
            raise KernelParseError(f"{where}: {token!r} divides by zero", row, col)
        value = value / den
    if not math.isfinite(value):
        raise KernelParseError(f"{where}: {token!r} is not a finite number", row, col)
    return value


def _cells(raw: str) -> list[str]:
    """The cells of one row: split at spaces and commas, ``1 / 16`` kept as one cell.

    (Not ``re.sub(r"\\s*/\\s*", ...)``: that rescans a run of spaces from each of its
    positions, quadratic in the run's length.)"""
    cells: list[str] = []
    for group in raw.split(","):  # a comma always ends a cell: "1/, 2" is not 1/2
        merged: list[str] = []
        for tok in group.split():
            if merged and (tok.startswith("/") or merged[-1].endswith("/")):
                merged[-1] += tok
            else:
                merged.append(tok)
        cells.extend(merged)
    return cells


def _split_rows(body: str) -> list[str]:
    """Rows of a matrix body, with brackets removed."""
    depth = 0
    for ch in body:
        depth += (ch == "[") - (ch == "]")
        if depth < 0 or depth > 2:
            raise KernelParseError("unbalanced or too deeply nested brackets")
    if depth:
        raise KernelParseError("unbalanced brackets")
    if not body.startswith("["):
        if "[" in body:
            raise KernelParseError("unexpected '[' inside the kernel text")
        return re.split(r"[;\n]", body)
    if not body.endswith("]"):
        raise KernelParseError("unexpected text after the closing ']'")
    inner = body[1:-1]
    if "[" not in inner:                       # MATLAB style: [1 2; 3 4]
        return re.split(r"[;\n]", inner)
    row_re = re.compile(r"\[([^\[\]]*)\]")     # Python list / numpy print: [[1, 2], [3, 4]]
    leftover = row_re.sub("", inner).strip(" \t\r\n,;")
    if leftover:
        raise KernelParseError(f"unexpected text {leftover!r} between bracketed rows")
    return row_re.findall(inner)


def parse_kernel(text: str, max_size: int | None = DEFAULT_MAX_SIZE) -> np.ndarray:
    """Read a kernel typed or pasted as text.

    Rows are separated by newlines or ``;``, cells by whitespace and/or commas.
    Surrounding brackets are optional: MATLAB ``[1 2; 3 4]``, Python
    ``[[1, 2], [3, 4]]``, numpy's printout ``[[1. 2.]\\n [3. 4.]]`` or
    ``array([[1., 2.], [3., 4.]])`` and bare ``1 2 1\\n2 4 2\\n1 2 1`` all work.
    Cells are decimal numbers (``3``, ``-0.25``, ``.5``, ``1e-3``) or fractions
    (``1/16``). A bracketed matrix may carry an overall scale: a trailing ``/ N`` or
    ``* N`` or a leading ``N *`` (``N`` itself a number or fraction), as in
    ``[1 2 1; 2 4 2; 1 2 1] / 16`` or ``-1/256 * [...]``.

    Parameters
    ----------
    text : str
        The kernel text.
    max_size : int or None, optional
        Largest allowed side (default 15); ``None`` for no limit.

    Returns
    -------
    ndarray
        ``float64`` array of shape (rows, columns), scale applied.

    Raises
    ------
    KernelParseError
        With a message naming the problem, e.g. ``row 2, column 3: 'abc' is not a
        number``, ``row 1, column 1: 'nan' is not a finite number``, ``row 1,
        column 2: '1/0' divides by zero``, ``row 2 has 2 cells, row 1 has 3``,
        ``kernel is 16x16; at most 15x15 is allowed`` or ``kernel text is empty``.
    """
    if not isinstance(text, str):
        raise TypeError(f"kernel text must be a str, got {type(text).__name__}")
    text = text.replace("\u2212", "-").strip()   # typographic minus from web pages
    if not text:
        raise KernelParseError("kernel text is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise KernelParseError(f"kernel text is {len(text):,} characters long; at most "
                               f"{MAX_TEXT_LENGTH:,} are read")

    m = _ARRAY_PREFIX_RE.match(text)
    if m and text.endswith(")"):  # numpy's array(...) wrapper, optionally with a dtype
        text = _DTYPE_SUFFIX_RE.sub("", text[m.end():-1]).strip()
    lead = op = trail = None
    m = _SCALED_RE.fullmatch(text)
    if m:
        text, lead, op, trail = m.group("body", "lead", "op", "trail")
        if lead is not None and op is not None:
            raise KernelParseError("use either a leading 'N *' or a trailing '/ N' or '* N', "
                                   "not both")
    if op == "/" and "/" in trail:
        # "[..] / 2 / 2" reads as dividing twice, "/ 2/2" as dividing by a fraction
        raise KernelParseError(f"overall scale: '/ {trail.strip()}' is ambiguous; divide by "
                               f"one number (e.g. '/ 4') or multiply by a fraction "
                               f"(e.g. '* 1/4')")
    if lead is not None or op is not None:
        scale_text = (lead if lead is not None else trail).strip()
        scale = _number(" ".join(_cells(scale_text)), "overall scale")
        if op == "/" and scale == 0.0:
            raise KernelParseError(f"overall scale: cannot divide the kernel by {scale_text!r}")

    rows: list[list[float]] = []
    for raw in _split_rows(text):
        cells = _cells(raw)
        if not cells:
            continue
        r = len(rows) + 1
        if rows and len(cells) != len(rows[0]):
            raise KernelParseError(f"row {r} has {len(cells)} cells, row 1 has {len(rows[0])}",
                                   r)
        rows.append([_number(tok, f"row {r}, column {c}", r, c)
                     for c, tok in enumerate(cells, start=1)])
    if not rows:
        raise KernelParseError("kernel text contains no numbers")
    kh, kw = len(rows), len(rows[0])
    if max_size is not None and (kh > max_size or kw > max_size):
        raise KernelParseError(f"kernel is {kh}x{kw}; at most {max_size}x{max_size} is allowed")

    weights = np.array(rows, dtype=np.float64)
    if op == "/":
        weights = weights / scale
    elif lead is not None or op == "*":
        weights = scale * weights
    if not np.all(np.isfinite(weights)):
        raise KernelParseError("the overall scale makes some weights infinite")
    return weights


# --------------------------------------------------------------------------- formatting


def _format_cell(v: float, precision: int) -> str:
    if v == 0.0:
        return "0"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = repr(v)
    if "e" not in text and len(text.partition(".")[2]) <= precision:
        return text
    frac = Fraction(v).limit_denominator(_MAX_DENOMINATOR)
    p, q = frac.numerator, frac.denominator
    if q > 1 and abs(p) < 2**53 and p / q == v:   # same rounding as parse_kernel's p/q
        return f"{p}/{q}"
    return text


def format_kernel(weights, precision: int = 4, *, inline: bool = False) -> str:
    """Write a kernel as text that :func:`parse_kernel` reads back exactly.

    Each cell is written as an integer when it is one; else in decimal when its
    shortest representation has at most ``precision`` digits after the point
    (``0.25``, ``-0.0625``); else as a simple fraction ``p/q`` (``q <= 4096``) when
    one evaluates to exactly the same float (``1/9``, ``-1/256``); else as the
    shortest ``repr`` (``0.123456789``). Formatting is therefore lossless:
    ``parse_kernel(format_kernel(w))`` equals ``w`` exactly (``-0.0`` reads back as
    ``0.0``); ``precision`` only chooses between decimal and fraction notation.

    Parameters
    ----------
    weights : array_like
        2-D finite kernel (any size).
    precision : int, optional
        Most decimal places written in decimal notation before a fraction is
        preferred (default 4).
    inline : bool, optional
        ``False`` (default): one line per row, columns right-aligned.
        ``True``: one line in MATLAB form, ``[1 2 1; 2 4 2; 1 2 1]``.

    Returns
    -------
    str
    """
    w = validate_kernel(weights, max_size=None)
    cells = [[_format_cell(float(v), precision) for v in row] for row in w]
    if inline:
        return "[" + "; ".join(" ".join(row) for row in cells) + "]"
    width = max(len(c) for row in cells for c in row)
    return "\n".join(" ".join(c.rjust(width) for c in row) for row in cells)


# --------------------------------------------------------------------------- normalisation


def _is_zero_sum(total: float, w: np.ndarray, tol: float) -> bool:
    return abs(total) <= tol * max(float(np.abs(w).sum()), 1e-300)


def gimp_normalise(weights, *, tol: float = _ZERO_SUM_TOL) -> tuple[float, float]:
    """Divisor and offset of GIMP's "normalise" option for a kernel.

    Offsets are for images with values in [0, 1] (GIMP's 128 becomes 0.5).

    ============ ============ =======================
    sum of w     divisor      offset
    ============ ============ =======================
    ``s > 0``    ``s``        0.0
    ``s == 0``   1.0          0.5 (mid-grey; edges)
    ``s < 0``    ``|s|``      1.0
    ============ ============ =======================

    Parameters
    ----------
    weights : array_like
        2-D kernel.
    tol : float, optional
        The sum counts as zero when ``|s| <= tol * sum(|w|)`` (floating-point
        leftovers of zero-sum kernels).

    Returns
    -------
    divisor, offset : float
    """
    w = validate_kernel(weights, max_size=None)
    total = float(w.sum())
    if _is_zero_sum(total, w, tol):
        return 1.0, 0.5
    if total > 0:
        return total, 0.0
    return -total, 1.0


def apply_divisor_offset(weights, divisor: float, offset: float) -> tuple[np.ndarray, float]:
    """Fold a divisor into the weights: ``(weights / divisor, offset)``.

    Parameters
    ----------
    weights : array_like
        2-D kernel.
    divisor : float
        Finite and non-zero.
    offset : float
        Finite; returned unchanged (it is added to the output, not the weights).

    Returns
    -------
    weights : ndarray
        New ``float64`` array.
    offset : float

    Raises
    ------
    ValueError
        If ``divisor`` is zero or not finite, or ``offset`` is not finite.
    """
    w = validate_kernel(weights, max_size=None)
    divisor = float(divisor)
    if divisor == 0.0 or not math.isfinite(divisor):
        raise ValueError(f"divisor must be a finite non-zero number, got {divisor!r}")
    offset = float(offset)
    if not math.isfinite(offset):
        raise ValueError(f"offset must be a finite number, got {offset!r}")
    return w / divisor, offset


def normalise_sum(weights, *, tol: float = _ZERO_SUM_TOL) -> np.ndarray:
    """Divide a kernel by the sum of its weights, so the result sums to 1.

    A negative sum flips every sign. Zero-sum kernels (edge detectors) are
    refused; show them with an offset (:func:`gimp_normalise`) or use
    :func:`normalise_l1`.

    Parameters
    ----------
    weights : array_like
        2-D kernel.
    tol : float, optional
        Sums with ``|s| <= tol * sum(|w|)`` count as zero.

    Returns
    -------
    ndarray
        New ``float64`` array.

    Raises
    ------
    ValueError
        If the weights sum to zero.
    """
    w = validate_kernel(weights, max_size=None)
    total = float(w.sum())
    if _is_zero_sum(total, w, tol):
        raise ValueError(f"the weights sum to {total:g}: cannot normalise a zero-sum kernel "
                         "by its sum (use an offset of 0.5, or normalise_l1)")
    return w / total


def normalise_l1(weights) -> np.ndarray:
    """Divide a kernel by the sum of the absolute values of its weights.

    Works for zero-sum kernels too: the result's absolute values sum to 1, so an
    input in [0, 1] gives an output in [-1, 1].

    Parameters
    ----------
    weights : array_like
        2-D kernel, not all zeros.

    Returns
    -------
    ndarray
        New ``float64`` array.

    Raises
    ------
    ValueError
        If every weight is zero.
    """
    w = validate_kernel(weights, max_size=None)
    total = float(np.abs(w).sum())
    if total == 0.0:
        raise ValueError("cannot L1-normalise a kernel whose weights are all zero")
    return w / total


# --------------------------------------------------------------------------- generators


def _side(size, what: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{what} must be a positive integer, got {size!r}")
    return int(size)


def gaussian(size: int, sigma: float | None = None) -> np.ndarray:
    """Sampled 2-D Gaussian blur kernel, normalised to sum 1.

    Parameters
    ----------
    size : int
        Side of the square kernel (odd sizes keep the centre on a pixel).
    sigma : float, optional
        Standard deviation in pixels; default ``0.3 * ((size - 1) / 2 - 1) + 0.8``
        (OpenCV's rule of thumb).

    Returns
    -------
    ndarray
        ``float64`` (size, size), the outer product of a 1-D Gaussian with itself.
    """
    n = _side(size)
    if sigma is None:
        sigma = 0.3 * ((n - 1) * 0.5 - 1) + 0.8
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    x = np.arange(n) - (n - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def laplacian_of_gaussian(size: int, sigma: float) -> np.ndarray:
    """Laplacian-of-Gaussian kernel from the formula, corrected to sum exactly 0.

    Sign convention of the classic tables (positive centre, the "Mexican hat"):
    ``(1 / (pi sigma^4)) (1 - r^2 / (2 sigma^2)) exp(-r^2 / (2 sigma^2))``, i.e. the
    negated LoG, sampled at integer offsets from the centre; then its mean is
    subtracted so that flat regions give 0.

    Parameters
    ----------
    size : int
        Side of the square kernel (use about ``2 * ceil(3 * sigma) + 1``).
    sigma : float
        Standard deviation of the Gaussian, in pixels.

    Returns
    -------
    ndarray
        ``float64`` (size, size), zero-sum.
    """
    n = _side(size)
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    x = np.arange(n) - (n - 1) / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    q = r2 / (2 * sigma**2)
    k = (1 - q) * np.exp(-q) / (math.pi * sigma**4)
    return k - k.mean()


def random_kernel(shape, *, rng: np.random.Generator, scale="he",
                  fan_in: int | None = None) -> np.ndarray:
    """Random normal kernel, as a network's weights start before training.

    Parameters
    ----------
    shape : int or (int, int)
        ``kh, kw`` (an int gives a square kernel).
    rng : numpy.random.Generator
        Source of randomness (``np.random.default_rng(seed)`` for reproducibility).
    scale : {"he", "lecun"} or float, optional
        ``"he"`` (default): std ``sqrt(2 / fan_in)`` (He/Kaiming normal, for ReLU);
        ``"lecun"``: std ``sqrt(1 / fan_in)``; a positive number: that std.
    fan_in : int, optional
        Inputs per output; default ``kh * kw`` (one input channel).

    Returns
    -------
    ndarray
        ``float64`` (kh, kw), mean 0.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape, shape)
    try:
        kh, kw = shape
    except (TypeError, ValueError):
        raise ValueError(f"shape must be an int or (kh, kw), got {shape!r}") from None
    kh, kw = _side(kh, "kernel height"), _side(kw, "kernel width")
    fan_in = kh * kw if fan_in is None else _side(fan_in, "fan_in")
    if isinstance(scale, str):
        gains = {"he": 2.0, "lecun": 1.0}
        if scale not in gains:
            raise ValueError(f"scale must be 'he', 'lecun' or a positive number, got {scale!r}")
        std = math.sqrt(gains[scale] / fan_in)
    else:
        std = float(scale)
        if not (math.isfinite(std) and std > 0):
            raise ValueError(f"scale (std) must be a positive finite number, got {scale!r}")
    return rng.normal(0.0, std, size=(kh, kw))


def is_separable(weights, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray] | None:
    """Rank-1 decomposition ``weights == col @ row``, if there is one.

    A separable kernel can be applied as a vertical then a horizontal 1-D pass
    (kh + kw instead of kh * kw multiplications per pixel).

    Parameters
    ----------
    weights : array_like
        2-D kernel.
    tol : float, optional
        The kernel counts as rank 1 when its second singular value is at most
        ``tol`` times the first.

    Returns
    -------
    (col, row) or None
        ``col`` of shape (kh, 1) and ``row`` of shape (1, kw), scaled equally and
        signed so that the largest-magnitude entry of ``col`` is positive; ``None``
        if the kernel is not separable.
    """
    w = validate_kernel(weights, max_size=None)
    u, s, vt = np.linalg.svd(w)
    if s[0] == 0.0:
        return np.zeros((w.shape[0], 1)), np.zeros((1, w.shape[1]))
    if s.size > 1 and s[1] > tol * s[0]:
        return None
    root = math.sqrt(s[0])
    col, row = u[:, :1] * root, vt[:1, :] * root
    if col[np.argmax(np.abs(col)), 0] < 0:
        col, row = -col, -row
    return col + 0.0, row + 0.0        # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True, eq=False)
class Preset:
    """A named kernel of the preset menu.

    Parameters
    ----------
    name : str
        Stable snake_case key in :data:`PRESETS` (what :func:`preset` takes).
    description : str
        One line, for a menu tooltip.
    weights : ndarray
        The weights actually applied (any traditional divisor already folded in);
        stored as a read-only ``float64`` 2-D copy.
    category : str
        ``"identity"``, ``"blur"``, ``"sharpen"``, ``"edge"`` (first derivatives and
        outline), ``"laplacian"`` (Laplacian and LoG), ``"emboss"`` or
        ``"random-init"``.
    label : str, optional
        Menu text; defaults to ``name`` with spaces.
    display : str, optional
        Traditional form, e.g. ``"[1 2 1; 2 4 2; 1 2 1] / 16"``; when it contains a
        ``[`` it is parse_kernel text giving exactly ``weights``. Defaults to
        ``format_kernel(weights, inline=True)``.
    divisor : float, optional
        Traditional divisor, *already applied*: ``weights * divisor`` gives the
        integer form (for a GIMP-style divisor field). Never divide again.
    offset : float, optional
        Suggested output offset for images in [0, 1] so that signed responses
        are visible (0.5 for zero-sum kernels, as GIMP's normalise).
    """

    name: str
    description: str
    weights: np.ndarray
    category: str
    label: str = ""
    display: str = ""
    divisor: float = 1.0
    offset: float = 0.0

    def __post_init__(self):
        if not self.description.strip() or "\n" in self.description:
            raise ValueError(f"preset {self.name!r}: description must be one non-empty line")
        w = validate_kernel(self.weights)
        w.flags.writeable = False
        object.__setattr__(self, "weights", w)
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))
        if not self.display:
            object.__setattr__(self, "display", format_kernel(w, inline=True))

    @property
    def shape(self) -> tuple[int, int]:
        """``(kh, kw)`` of the weights."""
        return self.weights.shape


def _make(name, label, category, description, matrix, divisor=1, *, leading=False,
          display=None):
    """A preset from integer weights (text or array) over an optional divisor."""
    if isinstance(matrix, str):
        body = matrix
    else:
        body = format_kernel(matrix, inline=True)
    if display is None:
        if divisor == 1:
            display = body
        elif leading:
            display = f"{'-' if divisor < 0 else ''}1/{abs(divisor)} * {body}"
        else:
            display = f"{body} / {divisor}"
    weights = parse_kernel(display)
    return Preset(name=name, description=description, weights=weights, category=category,
                  label=label, display=display, divisor=float(divisor),
                  offset=gimp_normalise(weights)[1])


def _computed(name, label, category, description, weights, display=None):
    return Preset(name=name, description=description, weights=weights, category=category,
                  label=label, display=display or "", offset=gimp_normalise(weights)[1])


def _binomial(n: int) -> np.ndarray:
    row = np.array([math.comb(n - 1, i) for i in range(n)])
    return np.outer(row, row)


def _build_presets() -> dict[str, Preset]:
    sobel_left = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    prewitt_left = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]])
    scharr_left = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]])
    unsharp = _binomial(5)
    unsharp[2, 2] = -476
    log9 = laplacian_of_gaussian(9, 1.4)
    items = [
        # identity
        _make("identity", "Identity 3x3", "identity",
              "Leaves the image unchanged (only the centre weight is 1)",
              "[0 0 0; 0 1 0; 0 0 0]"),
        _make("identity_1x1", "Identity 1x1", "identity",
              "Single weight 1: the smallest kernel, output equals input", "[1]"),
        # blur
        _make("box_blur_3x3", "Box blur 3x3", "blur",
              "Mean of the 3x3 neighbourhood (all weights 1/9)", np.ones((3, 3), int), 9),
        _make("box_blur_5x5", "Box blur 5x5", "blur",
              "Mean of the 5x5 neighbourhood (all weights 1/25)", np.ones((5, 5), int), 25),
        _make("box_blur_7x7", "Box blur 7x7", "blur",
              "Mean of the 7x7 neighbourhood (all weights 1/49)", np.ones((7, 7), int), 49),
        _make("gaussian_3x3", "Gaussian blur 3x3", "blur",
              "Smooth blur weighting the centre most: [1 2 1] x [1 2 1] / 16",
              _binomial(3), 16),
        _make("gaussian_5x5", "Gaussian blur 5x5", "blur",
              "Binomial Gaussian, sigma 1: [1 4 6 4 1] x [1 4 6 4 1] / 256",
              _binomial(5), 256),
        _make("gaussian_7x7", "Gaussian blur 7x7", "blur",
              "Binomial Gaussian, sigma about 1.22: [1 6 15 20 15 6 1] x itself / 4096",
              _binomial(7), 4096),
        _make("motion_blur_5x5", "Motion blur 5x5 (diagonal)", "blur",
              "Averages 5 pixels along the main diagonal, like a camera moving diagonally",
              np.eye(5, dtype=int), 5),
        # sharpen
        _make("sharpen", "Sharpen", "sharpen",
              "Boosts the centre against its 4 neighbours: image plus its negative Laplacian",
              "[0 -1 0; -1 5 -1; 0 -1 0]"),
        _make("unsharp_mask_5x5", "Unsharp mask 5x5", "sharpen",
              "Image plus (image minus its 5x5 Gaussian blur): sharpens, sums to 1",
              unsharp, -256, leading=True),
        # edges (first differences and outline)
        _make("outline", "Outline", "edge",
              "Centre minus its 8 neighbours: bright outlines where the intensity changes",
              "[-1 -1 -1; -1 8 -1; -1 -1 -1]"),
        _make("sobel_left", "Sobel left", "edge",
              "Smoothed horizontal difference: positive where the left is brighter than the right",
              sobel_left),
        _make("sobel_right", "Sobel right", "edge",
              "Smoothed horizontal difference: positive where the right is brighter than the left",
              -sobel_left),
        _make("sobel_top", "Sobel top", "edge",
              "Smoothed vertical difference: positive where the top is brighter than the bottom",
              sobel_left.T),
        _make("sobel_bottom", "Sobel bottom", "edge",
              "Smoothed vertical difference: positive where the bottom is brighter than the top",
              -sobel_left.T),
        _make("prewitt_left", "Prewitt left", "edge",
              "Unweighted horizontal difference: positive where the left is brighter",
              prewitt_left),
        _make("prewitt_right", "Prewitt right", "edge",
              "Unweighted horizontal difference: positive where the right is brighter",
              -prewitt_left),
        _make("prewitt_top", "Prewitt top", "edge",
              "Unweighted vertical difference: positive where the top is brighter",
              prewitt_left.T),
        _make("prewitt_bottom", "Prewitt bottom", "edge",
              "Unweighted vertical difference: positive where the bottom is brighter",
              -prewitt_left.T),
        _make("scharr_left", "Scharr left", "edge",
              "Sobel-like horizontal difference with better rotational symmetry (3-10-3)",
              scharr_left),
        _make("scharr_top", "Scharr top", "edge",
              "Sobel-like vertical difference with better rotational symmetry (3-10-3)",
              scharr_left.T),
        _make("diff_horizontal_1x3", "Difference 1x3 (horizontal)", "edge",
              "Central difference right minus left (1x3, non-square): finds vertical edges",
              "[-1 0 1]"),
        _make("diff_vertical_3x1", "Difference 3x1 (vertical)", "edge",
              "Central difference below minus above (3x1, non-square): finds horizontal edges",
              "[-1; 0; 1]"),
        _make("roberts_cross_diagonal", "Roberts cross \\", "edge",
              "2x2 (even) diagonal difference: top-left minus bottom-right", "[1 0; 0 -1]"),
        _make("roberts_cross_antidiagonal", "Roberts cross /", "edge",
              "2x2 (even) anti-diagonal difference: top-right minus bottom-left", "[0 1; -1 0]"),
        # second derivatives
        _make("laplacian", "Laplacian (4-neighbour)", "laplacian",
              "Sum of the 4 neighbours minus 4 times the centre: second derivative, zero on ramps",
              "[0 1 0; 1 -4 1; 0 1 0]"),
        _make("laplacian_8", "Laplacian (8-neighbour)", "laplacian",
              "Sum of the 8 neighbours minus 8 times the centre: isotropic second derivative",
              "[1 1 1; 1 -8 1; 1 1 1]"),
        _make("log_5x5", "Laplacian of Gaussian 5x5", "laplacian",
              "Classic integer LoG (Mexican hat): blurs then finds blobs and edges",
              "[0 0 -1 0 0; 0 -1 -2 -1 0; -1 -2 16 -2 -1; 0 -1 -2 -1 0; 0 0 -1 0 0]"),
        _computed("log_9x9", "Laplacian of Gaussian 9x9", "laplacian",
                  "LoG (Mexican hat) from the formula, sigma 1.4, mean removed to sum 0",
                  log9, "laplacian_of_gaussian(9, sigma=1.4)"),
        # emboss
        _make("emboss", "Emboss", "emboss",
              "Relief effect along the top-left/bottom-right diagonal; flat areas keep their value",
              "[-2 -1 0; -1 1 1; 0 1 2]"),
        # random initial weights (REFERENCE.md test vector 4)
        _make("example_a", "Random weights A", "random-init",
              "Random initial weights, example A: no particular structure yet",
              "[-0.2 0 0.5; 1 0.3 -0.6; 0 0 0.8]"),
        _make("example_b", "Random weights B", "random-init",
              "Random initial weights, example B: no particular structure yet",
              "[0 0 0; 0.8 -0.5 0.8; 0 -0.2 0]"),
        _make("example_edge", "Random weights C (edges)", "random-init",
              "Random initial weights, example C: right minus left, so it highlights edges",
              "[0.4 0.2 -0.2; -0.8 0 0.8; 0 -0.5 0.2]"),
    ]
    return {p.name: p for p in items}


PRESETS: dict[str, Preset] = _build_presets()
"""Preset kernels by stable snake_case key, in menu order."""


class UnknownPresetError(ValueError, KeyError):
    """Unknown preset name (both a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:      # KeyError would repr-quote the message
        return str(self.args[0])


def preset(name: str) -> np.ndarray:
    """Writable ``float64`` copy of a preset's weights.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`, e.g. ``"gaussian_3x3"``.

    Returns
    -------
    ndarray

    Raises
    ------
    UnknownPresetError
        (a ``ValueError`` and ``KeyError``) listing the known names.
    """
    try:
        return PRESETS[name].weights.copy()
    except (KeyError, TypeError):
        raise UnknownPresetError(
            f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
