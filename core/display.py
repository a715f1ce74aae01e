"""What the viewer needs besides the maps themselves: statistics, value ranges, previews.

Kept in core (numpy only) so that the numbers the GUI prints (min/max/mean, colour-bar
ranges) are computed and tested without a display.

Value scales
------------
``"map"``    each map uses its own range
``"stage"``  all maps of a level share one range (the default: maps of one stage are
             comparable)
``"global"`` every level after the input shares one range (the input keeps [0, 1])

A range is symmetric around 0 (``-m..m``) when its maps have negative values, so a
diverging colormap puts 0 at its neutral centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MapStats", "map_stats", "preview", "value_ranges", "SCALES", "is_signed",
           "colour_groups", "compose_rgb", "cell_label", "range_labels", "RGB_MAPPING"]

SCALES = ("stage", "map", "global")
#: longest side of a preview; larger maps are block-averaged by an integer factor
PREVIEW_MAX_SIDE = 1024


@dataclass(frozen=True)
class MapStats:
    min: float
    max: float
    mean: float
    p_low: float = float("nan")   # 1st percentile (robust contrast)
    p_high: float = float("nan")  # 99th percentile

    def text(self) -> str:
        return f"min {_fmt(self.min)} · max {_fmt(self.max)} · mean {_fmt(self.mean)}"

    def short_text(self) -> str:
        """The range alone, for narrow maps: ``-1.79 … 3.15``."""
        return f"{_fmt(self.min)} … {_fmt(self.max)}"


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e4:
        return f"{v:.3g}" if a < 100 else f"{v:.1f}"
    return f"{v:.2e}"


ROBUST_PERCENTILES = (1.0, 99.0)
_SAMPLE = 16_384  # percentiles are estimated on an evenly strided sample of this size
# (16k samples put the 1st percentile within about 0.1 % of rank; 65k cost 1.3 ms a map)


def map_stats(m: np.ndarray) -> MapStats:
    """Finite min, max, mean and 1st/99th percentiles of a map (NaN if nothing is finite)."""
    m = np.asarray(m)
    lo, hi = float(np.min(m)), float(np.max(m))
    if np.isfinite(lo) and np.isfinite(hi):
        fin, mean = m, float(np.mean(m, dtype=np.float64))
    else:
        fin = m[np.isfinite(m)]
        if fin.size == 0:
            nan = float("nan")
            return MapStats(nan, nan, nan, nan, nan)
        lo, hi, mean = float(fin.min()), float(fin.max()), float(fin.mean(dtype=np.float64))
    if fin.ndim == 2:  # strided rows and columns: no copy of the whole map
        step = max(1, int(np.sqrt(fin.size / _SAMPLE)))
        sample = fin[::step, ::step]
    else:
        sample = fin[::max(1, fin.size // _SAMPLE)]
    p_lo, p_hi = (float(v) for v in np.percentile(sample, ROBUST_PERCENTILES))
    return MapStats(lo, hi, mean, p_lo, p_hi)


def preview_factor(shape, max_side: int = PREVIEW_MAX_SIDE) -> int:
    """Integer block size that brings the longest side of ``shape`` to at most ``max_side``."""
    return max(1, -(-max(shape[-2:]) // max_side))


def preview(m: np.ndarray, factor: int) -> np.ndarray:
    """Block-average a (H, W) map by ``factor`` (edge blocks averaged over what exists).

    Averaging (not subsampling) keeps one-pixel edges visible at reduced size. The
    sum runs over ``factor**2`` strided slices (no padded copy of the map); from a
    factor of 4, rows first, then columns (2 x factor slices: 1080p by 4 1.25 ->
    0.88 ms).
    """
    if factor == 1:
        return m
    h, w = m.shape
    if factor >= 4:
        return _preview_separable(m, factor)
    out_h, out_w = -(-h // factor), -(-w // factor)
    total = np.zeros((out_h, out_w), np.float32)
    count_r = np.zeros(out_h, np.float32)
    count_c = np.zeros(out_w, np.float32)
    for i in range(factor):
        rows = m[i::factor]
        count_r[:rows.shape[0]] += 1
        for j in range(factor):
            block = rows[:, j::factor]
            total[:block.shape[0], :block.shape[1]] += block
    for j in range(factor):
        count_c[:len(range(j, w, factor))] += 1
    total /= count_r[:, None] * count_c[None, :]
    return total


def _preview_separable(m: np.ndarray, factor: int) -> np.ndarray:
    h, w = m.shape
    out_h, out_w = -(-h // factor), -(-w // factor)
    rows = np.zeros((out_h, w), np.float32)
    count_r = np.zeros(out_h, np.float32)
    for i in range(factor):
        part = m[i::factor]
        rows[:part.shape[0]] += part
        count_r[:part.shape[0]] += 1
    total = np.zeros((out_h, out_w), np.float32)
    count_c = np.zeros(out_w, np.float32)
    for j in range(factor):
        part = rows[:, j::factor]
        total[:, :part.shape[1]] += part
        count_c[:part.shape[1]] += 1
    total /= count_r[:, None] * count_c[None, :]
    return total


def is_signed(stats) -> bool:
    return any(s.min < 0 for s in stats if np.isfinite(s.min))


def _range(stats, robust: bool = False) -> tuple[float, float]:
    fin = [s for s in stats if np.isfinite(s.min)]
    if not fin:
        return (0.0, 1.0)
    signed = min(s.min for s in fin) < 0  # decided on the full range, not the clipped one
    if robust and all(np.isfinite(s.p_low) for s in fin):
        lo = min(s.p_low for s in fin)
        hi = max(s.p_high for s in fin)
        if hi <= lo:  # mostly constant map: fall back to the full range
            lo, hi = min(s.min for s in fin), max(s.max for s in fin)
    else:
        lo = min(s.min for s in fin)
        hi = max(s.max for s in fin)
    if signed:
        # a diverging colormap must put 0 at its centre, also when clipping trimmed the
        # few negatives (levels 0..0.8 put white at 0.4)
        m = max(abs(lo), abs(hi)) or max(abs(s.min) for s in fin) or 1.0
        return (-m, m)
    if hi == lo:
        return (lo, lo + 1.0) if hi == 0 else (0.0, hi)
    return (lo, hi)


def value_ranges(levels_stats: list[list[MapStats]], scale: str = "stage", robust: bool = False):
    """Display range of every map: ``ranges[level][map] = (lo, hi)``.

    ``levels_stats[0]`` is the input level (always shown as [0, 1] when it lies
    within it). With ``robust`` the ranges span the 1st..99th percentiles, so a few
    extreme values (edge maps) do not make everything else dark; values beyond are
    clipped to the ends of the colormap.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    out = []
    glob = _range([s for lv in levels_stats[1:] for s in lv], robust) \
        if len(levels_stats) > 1 else None
    for li, stats in enumerate(levels_stats):
        if li == 0:
            r = _range(stats)
            if r[0] >= 0 and r[1] <= 1:
                out.append([(0.0, 1.0)] * len(stats))  # an image: always its full range
            else:
                out.append([_range([s]) if scale == "map" else r for s in stats])
        elif scale == "map":
            out.append([_range([s], robust) for s in stats])
        elif scale == "stage":
            r = _range(stats, robust)
            out.append([r] * len(stats))
        else:
            out.append([glob] * len(stats))
    return out


# ------------------------------------------------------------------ the filtered photo

#: how :func:`compose_rgb` maps values to colours (stated under the picture)
RGB_MAPPING = "values clipped to 0..1, as an image editor shows a filtered photo"


def colour_groups(result) -> list[list[tuple[int, int, int]]]:
    """For every level of ``result`` (input first), the triples of map indices that are
    the R, G and B versions of one map, or ``[]`` where there are none.

    A map descends from one colour channel while every stage before it works per
    channel (one parent each); a stage that sums over channels ends that. The k-th map
    descending from R, G and B form triple k, so a per-channel stage with two kernels
    gives two triples: (R*k1, G*k1, B*k1) and (R*k2, G*k2, B*k2).
    """
    inp = result.input
    if list(inp.labels) != ["R", "G", "B"]:
        return [[] for _ in range(1 + len(result.stages))]
    roots = list(range(3))
    out = [[(0, 1, 2)]]
    for lvl in result.stages:
        roots = [roots[p[0]] if len(p) == 1 and roots[p[0]] is not None else None
                 for p in lvl.parents]
        per = [[m for m, r in enumerate(roots) if r == c] for c in range(3)]
        if any(r is None for r in roots) or len({len(p) for p in per}) != 1:
            out.append([])
            roots = [None] * len(roots)
            continue
        out.append(list(zip(*per)))
    return out


def compose_rgb(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Three maps as one (H, W, 3) float32 colour picture, clipped to 0..1 (NaN as 0)."""
    rgb = np.stack([r, g, b], axis=-1).astype(np.float32, copy=False)
    return np.nan_to_num(np.clip(rgb, 0.0, 1.0), nan=0.0)


def cell_label(v: float, chars: int = 5) -> str:
    """A map value written into its cell at high zoom: at most ``chars`` characters
    where possible (``0.125``, ``-3.2``, ``1e+04``), ``nan``/``inf`` as such."""
    v = float(v)
    if not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) < 10 ** chars:
        text = str(int(v))
        if len(text) <= chars:
            return text
    for digits in range(chars, 0, -1):
        text = f"{v:.{digits}g}"
        if "e" not in text and len(text) <= chars:
            return text
        if "e" in text:
            break
    mantissa, exponent = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def range_labels(lo: float, hi: float, chars: int = 6) -> tuple[str, str]:
    """The labels of a range's two ends (a colour bar's), each :func:`cell_label` at
    most ``chars`` long, written to the same number of decimals when both have some:
    the most that both fit ("-0.50" and "2.25"; a symmetric range read "-3.015" and
    "3.0153", the minus having taken a digit, now "-3.015" and "3.015")."""
    a, b = cell_label(lo, chars), cell_label(hi, chars)
    if "." not in a or "." not in b or "e" in a + b:
        return a, b
    da, db = len(a) - a.index(".") - 1, len(b) - b.index(".") - 1
    for d in range(max(da, db), min(da, db) - 1, -1):
        ta, tb = f"{float(lo):.{d}f}", f"{float(hi):.{d}f}"
        if len(ta) <= chars and len(tb) <= chars:
            return ta, tb
    return a, b
