"""Output-size arithmetic for convolution and pooling, with human-readable formulas.

Everything here is pure integer arithmetic: it is what the GUI shows in its row
headers and what the engine uses to size its outputs.

The formula along one axis (PyTorch's, with dilation ``d``)::

    out = floor((in + pad_before + pad_after - d*(k-1) - 1) / stride) + 1

and its teaching form with symmetric padding ``P`` and no dilation::

    D = 1 + (W - K + 2P) / S

Pooling with ``ceil_mode=True`` rounds up instead, but a window may never *start*
in the right/bottom padding (PyTorch's rule), so the last one is dropped if it would.
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass
from numbers import Integral

__all__ = [
    "AxisGeometry",
    "conv_geometry",
    "pool_geometry",
    "output_size",
    "explain_output_size",
    "resolve_padding",
    "pair",
]

PADDING_PRESETS = ("valid", "same", "full")


def _int(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def pair(value, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or a (rows, cols) pair to a tuple of two checked ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a (rows, cols) pair, got {value!r}")
        return (_int(value[0], f"{name}[0]", minimum=minimum),
                _int(value[1], f"{name}[1]", minimum=minimum))
    v = _int(value, name, minimum=minimum)
    return (v, v)


@dataclass(frozen=True)
class AxisGeometry:
    """The geometry of a sliding window along one axis.

    Attributes
    ----------
    in_size, kernel, stride, dilation : int
    pad_before, pad_after : int
        Padding actually applied before (top/left) and after (bottom/right).
    ceil_mode : bool
    out : int
        Number of output positions (may be <= 0 for an impossible geometry; the
        public constructors raise instead of returning such a geometry).
    """

    in_size: int
    kernel: int
    stride: int
    pad_before: int
    pad_after: int
    dilation: int = 1
    ceil_mode: bool = False
    out: int = 0

    @property
    def span(self) -> int:
        """Extent of the dilated window: d*(k-1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def numerator(self) -> int:
        return self.in_size + self.pad_before + self.pad_after - self.span

    @property
    def unvisited(self) -> int:
        """Input cells at the far end that no window reaches (floor division leftovers)."""
        if self.out <= 0:
            return 0
        last = (self.out - 1) * self.stride + self.span  # end of last window, padded coords
        return max(0, self.in_size + self.pad_before - last)

    def formula(self, letter: str = "D") -> str:
        """The output-size formula with this geometry's numbers.

        >>> AxisGeometry(256, 3, 3, 1, 1, out=86).formula()
        'D = 1 + (256 - 3 + 2*1) / 3 = 86'
        """
        if self.dilation == 1:
            k_term = f" - {self.kernel}"
        else:
            k_term = f" - ({self.dilation}*({self.kernel} - 1) + 1)"
        if self.pad_before == self.pad_after:
            p_term = f" + 2*{self.pad_before}" if self.pad_before else ""
        else:
            p_term = f" + {self.pad_before} + {self.pad_after}"
        inner = f"({self.in_size}{k_term}{p_term})"
        div = f" / {self.stride}" if self.stride != 1 else ""
        if self.ceil_mode and self.stride != 1:
            expr = f"1 + ceil({inner}{div})"
        elif self.stride != 1 and self.numerator % self.stride:
            expr = f"1 + floor({inner}{div})"
        else:
            expr = f"1 + {inner}{div}"
        return f"{letter} = {expr} = {self.out}"

    def note(self) -> str:
        """Extra words for the user: rounding, unvisited cells, ceil-mode drops."""
        notes = []
        if self.ceil_mode and self.numerator >= 0:
            raw = -(-self.numerator // self.stride) + 1
            if raw != self.out:
                notes.append(f"the last of {raw} windows would start in the padding, so it is "
                             f"dropped (PyTorch's ceil_mode rule)")
        if self.stride > 1 and self.numerator % self.stride and not self.ceil_mode:
            left = self.unvisited
            notes.append(
                f"{self.numerator}/{self.stride} is not whole: it rounds down and the last "
                f"{left} input cell(s) are never visited" if left else
                f"{self.numerator}/{self.stride} is not whole: it rounds down (the cells "
                f"left over are padding, every input cell is visited)")
        return "; ".join(notes)


def _axis(in_size, kernel, stride, pad_before, pad_after, dilation, ceil_mode) -> AxisGeometry:
    span = dilation * (kernel - 1) + 1
    num = in_size + pad_before + pad_after - span
    if ceil_mode:
        out = -(-num // stride) + 1
        # PyTorch: the last window must start inside the input or the left padding.
        if (out - 1) * stride >= in_size + pad_before:
            out -= 1
    else:
        out = num // stride + 1
    return AxisGeometry(in_size, kernel, stride, pad_before, pad_after, dilation, ceil_mode, out)


def resolve_padding(padding, kernel_size, stride=1, dilation=1, in_size=None):
    """Resolve any accepted padding spec to ``((top, bottom), (left, right))``.

    Parameters
    ----------
    padding : int, (rows, cols), ((top, bottom), (left, right)), or str
        ``"valid"``: none. ``"same"``: total padding chosen so that
        ``out = ceil(in / stride)`` (TensorFlow's rule; at stride 1 that is
        ``d*(k-1)`` and the output has the input's size, as in PyTorch); the odd
        extra cell goes at the end (bottom/right). ``"full"``: ``d*(k-1)`` on
        each side, so every window that overlaps the input at all is computed.
    kernel_size, stride, dilation : int or pair
    in_size : (H, W), needed only for ``"same"`` with stride > 1.
    """
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "full":
            return ((dh * (kh - 1),) * 2, (dw * (kw - 1),) * 2)
        if mode == "same":
            res = []
            for k, s, d, ax in ((kh, sh, dh, 0), (kw, sw, dw, 1)):
                span = d * (k - 1) + 1
                if s == 1:
                    total = span - 1
                else:
                    if in_size is None:
                        raise ValueError("padding='same' with stride > 1 needs the input size")
                    n = int(in_size[ax])
                    out = -(-n // s)
                    total = max((out - 1) * s + span - n, 0)
                res.append((total // 2, total - total // 2))
            return (res[0], res[1])
        raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)) or one "
                         f"of {PADDING_PRESETS}, got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        (t, b), (left, r) = (pair(padding[0], "padding[0]", minimum=0),
                             pair(padding[1], "padding[1]", minimum=0))
        if len(padding[0]) != 2 or len(padding[1]) != 2:
            raise ValueError(f"padding must be ((top, bottom), (left, right)), got {padding!r}")
        return ((t, b), (left, r))
    ph, pw = pair(padding, "padding", minimum=0)
    return ((ph, ph), (pw, pw))


class EmptyOutputError(ValueError):
    """A geometry whose window does not fit the padded input. ``cause`` names what
    to change: "dilation" when the kernel would fit without it, else "kernel"."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


def _empty_error(kind: str, axes, in_hw) -> ValueError:
    lines, causes = [], set()
    for name, g in zip(("height", "width"), axes):
        if g.out <= 0:
            padded = g.in_size + g.pad_before + g.pad_after
            lines.append(f"{name}: {g.formula('out')}; the window spans {g.span} cells, the "
                         f"padded input has {padded}")
            causes.add("dilation" if g.dilation > 1 and g.kernel <= padded else "kernel")
    cause = "dilation" if causes == {"dilation"} else "kernel"
    advice = ("use a smaller dilation or more padding" if cause == "dilation"
              else "use a smaller kernel or more padding")
    # a stride cannot help: it only spaces the windows that fit
    return EmptyOutputError(
        f"{kind} of a {in_hw[0]}x{in_hw[1]} input gives an empty output: " + "; ".join(lines)
        + f" ({advice})", cause)


def conv_geometry(in_hw, kernel_size, stride=1, padding=0, dilation=1):
    """Geometry of a convolution: a pair of :class:`AxisGeometry` (rows, cols).

    Raises
    ------
    ValueError
        If the output would be empty; the message shows the formula with the numbers.
    """
    in_hw = pair(in_hw, "input size", minimum=1)
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), (sh, sw), (dh, dw), in_hw)
    axes = (_axis(in_hw[0], kh, sh, pt, pb, dh, False), _axis(in_hw[1], kw, sw, pl, pr, dw, False))
    if axes[0].out <= 0 or axes[1].out <= 0:
        raise _empty_error("convolution", axes, in_hw)
    return axes


def pool_geometry(in_hw, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Geometry of a pooling window (PyTorch's rules). ``stride`` defaults to the window.

    Padding is symmetric (int or pair) and at most half the window, as in PyTorch.
    """
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    in_hw = pair(in_hw, "input size", minimum=1)
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    ph, pw = pair(padding, "padding", minimum=0)
    for p, k, ax in ((ph, kh, "rows"), (pw, kw, "cols")):
        if p > k // 2:
            raise ValueError(f"pooling padding ({ax}) must be at most half the window: "
                             f"padding {p} > {k}//2 = {k // 2}")
    axes = (_axis(in_hw[0], kh, sh, ph, ph, dh, bool(ceil_mode)),
            _axis(in_hw[1], kw, sw, pw, pw, dw, bool(ceil_mode)))
    if axes[0].out <= 0 or axes[1].out <= 0:
        raise _empty_error("pooling", axes, in_hw)
    return axes


def _geometry(kind, in_hw, kernel_size, stride, padding, dilation, ceil_mode):
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    if kind == "conv":
        if ceil_mode:
            raise ValueError("ceil_mode applies to pooling only (kind='pool'); a "
                             "convolution's output size always rounds down")
        return conv_geometry(in_hw, kernel_size, 1 if stride is None else stride, padding,
                             dilation)
    if kind == "pool":
        return pool_geometry(in_hw, kernel_size, stride, padding, dilation, ceil_mode)
    raise ValueError(f"kind must be 'conv' or 'pool', got {kind!r}")


def output_size(in_hw, kernel_size, stride=None, padding=0, dilation=1, *, kind="conv",
                ceil_mode=False) -> tuple[int, int]:
    """Output (H, W) of a convolution (``kind="conv"``) or pooling (``kind="pool"``).

    For convolution ``stride`` defaults to 1, for pooling to the window size.
    """
    axes = _geometry(kind, in_hw, kernel_size, stride, padding, dilation, ceil_mode)
    return (axes[0].out, axes[1].out)


def explain_output_size(in_hw, kernel_size, stride=None, padding=0, dilation=1, *, kind="conv",
                        ceil_mode=False) -> str:
    """The output-size arithmetic with the numbers.

    One formula (``'D = 1 + (256 - 3 + 2*1) / 3 = 86'``) when both axes agree, else
    ``'H = ...; W = ...'``; notes on rounding follow in brackets.
    """
    axes = _geometry(kind, in_hw, kernel_size, stride, padding, dilation, ceil_mode)
    parts = []
    for letter, g in zip(("H", "W"), axes):
        s = g.formula(letter)
        if g.note():
            s += f" ({g.note()})"
        parts.append(s)
    if axes[0] == axes[1] or (axes[0].formula("X") == axes[1].formula("X")):
        return axes[0].formula("D") + (f" ({axes[0].note()})" if axes[0].note() else "")
    return "; ".join(parts)
