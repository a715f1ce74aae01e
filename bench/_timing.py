"""Small timing and table helpers shared by the scripts in ``bench/``.

Timing rules (see bench/README.md):

- every implementation gets one warm-up call first;
- the number of timed calls is ``repeat``, reduced so that one implementation spends
  at most ``budget_s`` seconds in timed calls (never fewer than one timed call);
- the timed calls of the implementations compared in one case are interleaved
  round-robin, so slow drifts of the machine (and the multi-millisecond stalls of
  two-threaded libraries seen on these machines) hit every implementation alike;
- with ``settle`` (the default), each timed call directly follows an untimed call of
  the same implementation. Without it, a call would pay for the previous
  implementation's leftovers: PyTorch's OpenMP threads keep spinning for a few
  milliseconds after each call, which took one of the two cores from whatever ran
  next (measured: our 1080p 3x3 conv 8.7 ms alone, 11.8-15 ms right after torch);
- the garbage collector is off while timing; the figure reported is the median.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Timing:
    """Timed calls of one implementation, in seconds."""

    samples: list[float] = field(default_factory=list)
    warmup: float = 0.0

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1e3

    @property
    def min_ms(self) -> float:
        return min(self.samples) * 1e3

    def as_dict(self) -> dict:
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "n": self.n,
                "warmup_ms": self.warmup * 1e3,
                "samples_ms": [s * 1e3 for s in self.samples]}


def time_interleaved(fns: dict[str, Callable[[], object]], repeat: int,
                     budget_s: float = 8.0,
                     warmed: dict[str, float] | None = None,
                     settle: bool = True) -> dict[str, Timing]:
    """Warm up each callable once, then time them round-robin; see the module docstring.

    ``warmed`` maps names of callables that were just called (e.g. to check their
    result) to the seconds that call took: it serves as their warm-up.
    """
    warmed = warmed or {}
    out: dict[str, Timing] = {}
    counts: dict[str, int] = {}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for name, fn in fns.items():
            if name in warmed:
                tw = warmed[name]
            else:
                t0 = time.perf_counter()
                fn()
                tw = time.perf_counter() - t0
            out[name] = Timing(warmup=tw)
            counts[name] = max(1, min(repeat, int(budget_s / max(tw, 1e-9))))
        for r in range(max(counts.values(), default=0)):
            for name, fn in fns.items():
                if r >= counts[name]:
                    continue
                if settle:
                    fn()
                t0 = time.perf_counter()
                fn()
                out[name].samples.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def geomean(values) -> float:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return float("nan")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def fmt_ms(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:.0f}"


def fmt_ratio(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


class StreamTable:
    """A plain-text table printed row by row with fixed column widths.

    ``columns`` is a list of ``(header, width, align)`` with align '<' or '>'.
    """

    def __init__(self, columns, indent: str = "", out=print):
        self.columns = columns
        self.indent = indent
        self.out = out

    def _line(self, cells) -> str:
        parts = []
        for (_, width, align), cell in zip(self.columns, cells):
            parts.append(f"{cell:{align}{width}}")
        return self.indent + "  ".join(parts).rstrip()

    def header(self) -> None:
        self.out(self._line([h for h, _, _ in self.columns]))
        self.out(self.indent + "  ".join("-" * w for _, w, _ in self.columns))

    def row(self, cells) -> None:
        self.out(self._line([str(c) for c in cells]))


def print_table(headers, rows, aligns=None, indent: str = "", out=print) -> None:
    """Print a whole table with widths fitted to its contents."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    aligns = aligns or ["<"] + [">"] * (len(headers) - 1)
    t = StreamTable(list(zip(headers, widths, aligns)), indent=indent, out=out)
    t.header()
    for r in rows:
        t.row(r)
