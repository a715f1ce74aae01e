"""A kernel being edited: the kernel editor's model, without Qt.

The kernel editor (:mod:`app.kernel_editor`) is a view of one :class:`KernelDraft`:
the draft holds the weights (one shared 2-D kernel, or one slice per incoming map),
divisor, bias, flip and name, plus what the user typed that is not (yet) a value:
cells that do not parse, a divisor of 0, a failed paste. Every operation of the
editor (typing a cell, a preset, paste, normalise, randomise, a resize that keeps the
kernel centred, the per-channel toggle) is a method here, so it can be tested and
reasoned about without a window; the view only writes the draft into its widgets and
tells the pipeline when :meth:`KernelDraft.take_change` says a valid edit happened.

While anything is invalid the draft keeps the last valid value of that cell or field:
:meth:`KernelDraft.kernel` is always a usable kernel, and no change is reported until
the text is fixed.
"""

from __future__ import annotations

import re

import numpy as np

from .kernels import (PRESETS, KernelParseError, format_kernel, gimp_normalise,
                      parse_kernel, random_kernel)
from .pipeline import CHANNEL_NAMES, MAX_KERNEL_SIDE, Kernel

__all__ = ["KernelDraft", "parse_number", "number_text", "resize_centred", "anchor"]

#: the fields typed as text besides the cells
NUMBER_FIELDS = ("divisor", "bias")


def number_text(v: float) -> str:
    """A number as core.kernels.format_kernel writes a cell (exact: 16, 0.25, 1/9)."""
    return format_kernel(np.array([[float(v)]]))


def parse_number(text: str, where: str) -> float:
    """One finite number or fraction (``-0.5``, ``1/16``); ValueError naming ``where``."""
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"{where}: the cell is empty" if where.startswith("row")
                         else f"{where}: enter a number")
    try:
        w = parse_kernel(stripped, max_size=None)
    except KernelParseError as exc:
        # a single cell is always "row 1, column 1" to the parser: name ours instead
        reason = re.sub(r"^row \d+, column \d+: ", "", str(exc))
        raise ValueError(f"{where}: {reason}") from None
    if w.shape != (1, 1):
        raise ValueError(f"{where}: {stripped!r} is not a single number")
    return float(w[0, 0]) + 0.0    # -0.0 -> 0.0


def anchor(k: int) -> int:
    """The tap (0-based) of a kernel side ``k`` that sits over the output pixel with
    'same' padding: the middle for odd ``k``, the cell just above / left of the middle
    for even ``k`` (PyTorch's 'same' pads (k - 1) // 2 before)."""
    return (k - 1) // 2


def resize_centred(w: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``w`` (slices, kh, kw) resized to (slices, rows, cols) keeping its anchor cell
    (:func:`anchor`) on the new anchor, as GIMP keeps a kernel centred: from odd to odd
    sizes rings of zeros are added or removed around it; one step at a time (3 -> 4 ->
    5, the spin box's arrows) the row/column goes to the bottom/right, then to the
    top/left, so 3 -> 4 -> 5 is centred too (it ended up in the top-left corner, and a
    'same' output shifted by a pixel per step). An identity kernel stays an identity
    through any sequence of sizes."""
    s, kh, kw = w.shape
    new = np.zeros((s, rows, cols))
    dr, dc = anchor(rows) - anchor(kh), anchor(cols) - anchor(kw)
    r_new, r_old = max(0, dr), max(0, -dr)
    c_new, c_old = max(0, dc), max(0, -dc)
    nr, nc = min(rows - r_new, kh - r_old), min(cols - c_new, kw - c_old)
    new[:, r_new:r_new + nr, c_new:c_new + nc] = w[:, r_old:r_old + nr, c_old:c_old + nc]
    return new


class KernelDraft:
    """One convolution kernel as the user is editing it.

    Attributes the view reads: ``w`` (slices, kh, kw) float64, ``per_channel``,
    ``slice`` (the slice shown), ``bias``, ``divisor``, ``flip``, ``name``,
    ``n_maps`` and ``map_names`` (the incoming maps), ``bad`` (cell -> reason, for
    cells whose text is not a number), ``field_errors`` ("divisor"/"bias" -> reason),
    ``notice`` (e.g. a failed paste) and ``external`` ((field, reason) of an error
    the pipeline found, or None). ``random_seed`` seeds the next :meth:`randomise`
    (it increments on each use, so runs are reproducible).
    """

    def __init__(self) -> None:
        self.w = np.zeros((1, 3, 3))
        self.w[0, 1, 1] = 1.0
        self.per_channel = False
        self.slice = 0
        self.bias = 0.0
        self.divisor = 1.0
        self.flip = False
        self.name = "kernel"
        self.n_maps = 3
        self.map_names = list(CHANNEL_NAMES[3])
        self.bad: dict[tuple[int, int], str] = {}
        self.field_errors: dict[str, str] = {}
        self.notice = ""
        self.external: tuple[str | None, str] | None = None
        self.dirty = False
        self.random_seed = 0

    # ------------------------------------------------------------------ reading
    def kernel(self) -> Kernel:
        """A new Kernel with the current valid values (the last good ones while invalid)."""
        w = self.w.copy() if self.per_channel else self.w[0].copy()
        return Kernel(w, bias=self.bias, divisor=self.divisor, flip=self.flip, name=self.name)

    @property
    def shape(self) -> tuple[int, int]:
        return self.w.shape[1], self.w.shape[2]

    def current(self) -> np.ndarray:
        """The slice shown (kh, kw)."""
        return self.w[self.slice]

    def has_error(self) -> bool:
        """True while a cell or field holds text that is not a valid value."""
        return bool(self.bad or self.field_errors)

    def map_name(self, i: int) -> str:
        return self.map_names[i] if i < len(self.map_names) else f"map {i + 1}"

    def matching_preset(self) -> str | None:
        """The preset the shown slice equals (with divisor 1), or None."""
        if self.divisor != 1.0:
            return None
        w = self.current()
        for name, p in PRESETS.items():
            if p.weights.shape == w.shape and np.array_equal(p.weights, w):
                return name
        return None

    def field_error(self, which: str) -> str | None:
        """What is wrong with the divisor or bias field: typed text, or the pipeline's."""
        ext_field, ext_reason = self.external or (None, None)
        return self.field_errors.get(which) or (ext_reason if ext_field == which else None)

    def messages(self) -> list[str]:
        """The error line's lines: bad cells in reading order, bad fields, a notice, or
        else the pipeline's error about the kernel as a whole."""
        out = [self.bad[k] for k in sorted(self.bad)]
        out += [self.field_errors[k] for k in NUMBER_FIELDS if k in self.field_errors]
        if self.bad:
            out.append("The kernel keeps its last valid weights until this is fixed.")
        if self.notice:
            out.insert(0, self.notice)
        ext_field, ext_reason = self.external or (None, None)
        if not out and ext_reason and ext_field not in NUMBER_FIELDS:
            out.append(ext_reason)
        return out

    def take_change(self) -> bool:
        """True once per valid edit: an edit happened and nothing is invalid now."""
        if self.dirty and not self.has_error():
            self.dirty = False
            return True
        return False

    # ------------------------------------------------------------------ loading
    def load(self, kernel: Kernel, n_maps: int = 3, map_names: list[str] | None = None) -> None:
        """Start editing ``kernel`` (copied): no change is pending afterwards."""
        w = np.array(kernel.weights, dtype=np.float64)
        self.per_channel = w.ndim == 3
        self.w = w.copy() if w.ndim == 3 else w[None].copy()
        self.slice = 0
        self.bias = float(kernel.bias)
        self.divisor = float(kernel.divisor)
        self.flip = bool(kernel.flip)
        self.name = kernel.name
        self.set_maps(n_maps, map_names)
        self.bad.clear()
        self.field_errors.clear()
        self.notice = ""
        self.external = None
        self.dirty = False

    def set_maps(self, n_maps: int, map_names: list[str] | None = None) -> None:
        """How many maps come in (used by the per-channel toggle), and their names."""
        self.n_maps = max(1, int(n_maps))
        self.map_names = list(map_names) if map_names else \
            list(CHANNEL_NAMES.get(self.n_maps, []))

    def mark(self, field: str | None, reason: str | None) -> None:
        """An error found by the pipeline: ``field`` "weights", "bias", "divisor" or
        None (the whole kernel); ``reason`` None clears it."""
        self.external = (field, reason) if reason else None

    # ------------------------------------------------------------------ typed text
    def set_cell_text(self, row: int, col: int, text: str) -> str:
        """A cell of the shown slice typed: "invalid" (kept as typed, named in
        :attr:`bad`), "same" (a valid value equal to the old one) or "changed"."""
        self.notice = ""
        try:
            v = parse_number(text, f"row {row + 1}, column {col + 1}")
        except ValueError as exc:
            self.bad[(row, col)] = str(exc)
            return "invalid"
        self.bad.pop((row, col), None)
        old = self.w[self.slice, row, col]
        self.w[self.slice, row, col] = v
        if v != old:
            self.dirty = True
            return "changed"
        return "same"

    def set_number_text(self, which: str, text: str) -> bool:
        """The divisor or bias field typed; False (and named in :attr:`field_errors`)
        when it is not a number, or a divisor of 0."""
        self.notice = ""
        try:
            v = parse_number(text, which.capitalize())
            if which == "divisor" and v == 0:
                raise ValueError(f"Divisor: 0 is refused, dividing by zero is undefined "
                                 f"(still using {number_text(self.divisor)})")
        except ValueError as exc:
            self.field_errors[which] = str(exc)
            return False
        self.field_errors.pop(which, None)
        if v != getattr(self, which):
            setattr(self, which, v)
            self.dirty = True
        return True

    # ------------------------------------------------------------------ operations
    # Each rewrites the whole kernel ("structural"): text typed in a cell that was not
    # a number is dropped, and a field's invalid text is replaced by its value.

    def _structural(self) -> None:
        self.notice = ""
        self.field_errors.clear()
        self.dirty = True

    def load_preset(self, name: str) -> None:
        """A preset into the shown slice; divisor 1, bias 0 (presets are divided)."""
        p = PRESETS[name]
        self.bad.clear()
        self.w = resize_centred(self.w, *p.shape) if p.shape != self.shape else self.w
        self.w[self.slice] = p.weights
        self.divisor, self.bias = 1.0, 0.0
        if not self.per_channel:  # the kernel is now this preset: name it so (captions)
            self.name = p.label
        self._structural()

    def paste(self, text: str) -> bool:
        """Kernel text (core.kernels.parse_kernel) into the shown slice; on a parse
        error :attr:`notice` says why and nothing changes."""
        try:
            w = parse_kernel(text, max_size=MAX_KERNEL_SIDE)
        except KernelParseError as exc:
            self.notice = f"Paste: {exc}"
            return False
        self.bad.clear()
        if w.shape != self.shape:
            self.w = resize_centred(self.w, *w.shape)
        self.w[self.slice] = w
        self._structural()
        return True

    def normalise(self) -> None:
        """Divisor and bias from core.kernels.gimp_normalise (all slices together)."""
        kw = self.w.shape[2]
        divisor, offset = gimp_normalise(self.w.reshape(-1, kw))
        self.divisor, self.bias = float(divisor), float(offset)
        self._structural()

    def randomise(self) -> None:
        """He-normal weights (core.kernels.random_kernel) seeded by :attr:`random_seed`;
        divisor 1, bias 0."""
        rng = np.random.default_rng(self.random_seed)
        self.random_seed += 1
        s, kh, kw = self.w.shape
        self.bad.clear()
        for i in range(s):
            self.w[i] = random_kernel((kh, kw), rng=rng, fan_in=s * kh * kw)
        self.divisor, self.bias = 1.0, 0.0
        self._structural()

    def resize(self, rows: int, cols: int) -> bool:
        """Resize keeping the kernel centred (:func:`resize_centred`); new cells are 0.
        False when the size is already that."""
        if (rows, cols) == self.shape:
            return False
        self.bad.clear()
        self.w = resize_centred(self.w, rows, cols)
        self._structural()
        return True

    def set_flip(self, on: bool) -> None:
        self.flip = bool(on)
        self.notice = ""
        self.dirty = True

    def set_per_channel(self, on: bool) -> bool:
        """One kernel per incoming map (copies of the shared one), or back to one
        shared kernel (the slice shown). False when already so."""
        if on == self.per_channel:
            return False
        self.bad.clear()
        if on:
            self.w = np.repeat(self.w[:1], self.n_maps, axis=0)
        else:
            self.w = self.w[self.slice][None].copy()
        self.slice = 0
        self.per_channel = on
        self._structural()
        return True

    def select_slice(self, i: int) -> bool:
        """Show slice ``i`` (text typed in a cell of the old one is dropped)."""
        if i < 0 or i == self.slice:
            return False
        self.bad.clear()
        self.slice = i
        return True
