"""core.sheet: every map in one picture, drawn from the data (PNG and PDF)."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
import pytest
from PIL import Image, PdfParser

import convscope.core.fileio as fileio
from convscope.core.display import map_stats, value_ranges
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline,
                                     PipelineResult, PoolStage, StageResult, default_pipeline,
                                     run)
from convscope.core.sheet import (NAN_COLOUR, default_lut, default_style, render_sheet,
                                  save_sheet)

WHITE = (255, 255, 255)


def _random_lut(seed: int) -> np.ndarray:
    """A colour map whose 256 entries are all different (a wrong index shows)."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(2 ** 24 - 2, size=256, replace=False) + 1   # never pure white
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=1).astype(np.uint8)


def _expected(v, lo, hi, lut):
    """The documented mapping, written out independently of the module."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        idx = np.clip(np.round((v - lo) / (hi - lo) * 255), 0, 255)
    nan = np.isnan(idx)
    out = lut[np.where(nan, 0, idx).astype(int)].copy()
    out[nan] = NAN_COLOUR
    return out


def _levels(res):
    return [res.input, *res.stages]


def _pixels(img, box):
    x, y, w, h = box
    return np.asarray(img)[y:y + h, x:x + w]


def _mixed_result():
    """RGB 13x17 through conv (2 kernels per channel) -> ReLU -> ceil-mode pool -> sum conv:
    levels of 3, 6, 6, 6 and 2 maps, two sizes, and a column count that changes."""
    rng = np.random.default_rng(3)
    img = rng.random((13, 17, 3), dtype=np.float32)
    pipe = Pipeline([
        ConvStage([Kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], name="sobel"),
                   Kernel(np.ones((3, 3)) / 9, name="box")]),
        ActivationStage("relu"),
        PoolStage("max", 2, ceil_mode=True),
        ConvStage([Kernel(np.ones((2, 2)), name="a"), Kernel(-np.ones((2, 2)), name="b")],
                  mode="sum", padding="valid"),
    ])
    res = run(img, pipe)
    assert res.error is None
    return res


def test_every_map_is_drawn_at_its_data_size_in_its_lut_colours():
    res = _mixed_result()
    ranges, _ = default_style(res)
    luts = [_random_lut(i) for i in range(len(_levels(res)))]
    img, layout = render_sheet(res, ranges, luts, title="mixed", return_layout=True)
    assert img.mode == "RGB" and layout.size == img.size and layout.factor == 1
    arr = np.asarray(img)
    for li, lvl in enumerate(_levels(res)):
        for m in range(lvl.maps.shape[0]):
            x, y, w, h = box = layout.boxes[(li, m)]
            assert (h, w) == lvl.maps[m].shape, (li, m)
            lo, hi = ranges[li][m]
            np.testing.assert_array_equal(_pixels(img, box),
                                          _expected(lvl.maps[m], lo, hi, luts[li]),
                                          err_msg=f"level {li} map {m}")
            # the block is exactly the map: the pixel frame around it is background
            frame = np.concatenate([arr[y - 1, x - 1:x + w + 1], arr[y + h, x - 1:x + w + 1],
                                    arr[y:y + h, x - 1], arr[y:y + h, x + w]])
            assert (frame == WHITE).all(), (li, m)
    assert len(layout.boxes) == sum(lvl.maps.shape[0] for lvl in _levels(res))


def test_columns_align_across_levels_and_maps_of_one_column_stack_in_order():
    res = _mixed_result()
    img, layout = render_sheet(res, *default_style(res), return_layout=True)
    levels = _levels(res)
    x_of = {}
    for li, lvl in enumerate(levels):
        rank = {}
        for m, c in enumerate(lvl.columns):
            x, y, w, h = layout.boxes[(li, m)]
            assert x_of.setdefault(c, x) == x, f"column {c} of level {li} is not aligned"
            rank.setdefault(c, []).append(y)
        for ys in rank.values():
            assert ys == sorted(ys) and len(set(ys)) == len(ys)   # sub-rows, in order
        # maps of the same sub-row share a row
        first = [ys[0] for ys in rank.values()]
        assert len(set(first)) == 1
    # a column is at least as wide as its widest map: no overlap with the next column
    xs = sorted(x_of.items(), key=lambda kv: kv[1])
    for (c, x), (_, x_next) in zip(xs, xs[1:]):
        widest = max(lvl.maps.shape[2] for lvl in levels if c in lvl.columns)
        assert x + widest < x_next
    # levels go down the sheet, each colour bar right of the maps and within the sheet
    tops = [min(layout.boxes[(li, m)][1] for m in range(lvl.maps.shape[0]))
            for li, lvl in enumerate(levels)]
    assert tops == sorted(tops)
    right = max(x + w for x, y, w, h in layout.boxes.values())
    for li, (bx, by, bw, bh) in layout.bars.items():
        assert bx > right and bx + bw <= img.width and by + bh <= img.height
        assert bh >= 3 * 14   # room for three tick numbers


def _level(index, maps, stage=None, labels=None, columns=None):
    maps = np.asarray(maps, dtype=np.float32)
    n = maps.shape[0]
    return StageResult(index, stage, maps, labels or [f"m{i}" for i in range(n)],
                       [[i] for i in range(n)], columns or list(range(n)),
                       "" if index < 0 else "D = 2x8 (unchanged)", 0.0)


def test_colours_clip_at_the_range_ends_and_nan_is_magenta_and_in_the_legend():
    values = np.array([[-5.0, -1.0, -0.5, 0.0, 0.25, 1.0, 7.0, np.nan],
                       [np.inf, -np.inf, 0.5, 0.999, -0.999, 0.1, np.nan, 0.0]], np.float32)
    inp = _level(-1, np.zeros((1, 2, 8)) + 0.5)
    res = PipelineResult(inp, [_level(0, values[None], ActivationStage("none"))])
    lut = _random_lut(7)
    ranges = [[(0.0, 1.0)], [(-1.0, 1.0)]]
    img, layout = render_sheet(res, ranges, [default_lut(False), lut], return_layout=True)
    got = _pixels(img, layout.boxes[(1, 0)])
    np.testing.assert_array_equal(got, _expected(values, -1.0, 1.0, lut))
    assert tuple(got[0, 0]) == tuple(lut[0]) and tuple(got[0, 6]) == tuple(lut[255])
    assert tuple(got[1, 0]) == tuple(lut[255]) and tuple(got[1, 1]) == tuple(lut[0])
    assert tuple(got[0, 3]) == tuple(lut[128])        # 127.5 rounds to even
    assert tuple(got[0, 7]) == NAN_COLOUR == tuple(got[1, 6])
    # the legend: a magenta swatch under the level's bar, none under the input's
    arr = np.asarray(img)

    def magenta_below(li):
        bx, by, bw, bh = layout.bars[li]
        area = arr[by + bh:by + bh + 40, bx:bx + 40]
        return int((area == NAN_COLOUR).all(axis=-1).sum())

    assert magenta_below(1) >= 16 and magenta_below(0) == 0


def test_bars_show_the_lut_from_lo_at_the_bottom_to_hi_at_the_top():
    res = _mixed_result()
    luts = [_random_lut(10 + i) for i in range(len(_levels(res)))]
    img, layout = render_sheet(res, default_style(res)[0], luts, return_layout=True)
    for li, (x, y, w, h) in layout.bars.items():
        column = np.asarray(img)[y:y + h, x + w // 2]
        np.testing.assert_array_equal(column[0], luts[li][255])
        np.testing.assert_array_equal(column[-1], luts[li][0])
        assert len({tuple(c) for c in column}) >= min(h, 256) * 0.9   # every step drawn


def test_per_map_ranges_colour_each_map_by_its_own_range():
    res = run(np.random.default_rng(1).random((9, 11, 3), dtype=np.float32), default_pipeline())
    stats = [[map_stats(m) for m in lvl.maps] for lvl in _levels(res)]
    ranges = value_ranges(stats, "map")
    assert len(set(ranges[1])) > 1   # the point of the test: ranges differ in a level
    luts = [default_lut(False)] + [_random_lut(i) for i in range(3)]
    img, layout = render_sheet(res, ranges, luts, return_layout=True)
    one, per_stage = render_sheet(res, value_ranges(stats, "stage"), luts, return_layout=True)
    for li, lvl in enumerate(_levels(res)):
        for m in range(lvl.maps.shape[0]):
            lo, hi = ranges[li][m]
            np.testing.assert_array_equal(_pixels(img, layout.boxes[(li, m)]),
                                          _expected(lvl.maps[m], lo, hi, luts[li]))
    # each map's range is written under it (text there), not so with one range per level

    def ink_under(image, lay, key):
        x, y, w, h = lay.boxes[key]
        band = np.asarray(image)[y + h + 1:y + h + 16, x:x + max(w, 40)]
        return int((band.max(axis=-1) < 128).sum())

    for li, m in layout.boxes:
        if len(set(ranges[li])) > 1:   # not the input: an image keeps 0..1 throughout
            assert ink_under(img, layout, (li, m)) > 10, (li, m)
            assert ink_under(one, per_stage, (li, m)) == 0, (li, m)


def test_alpha_luts_are_composited_on_white():
    res = run(np.full((4, 5, 1), 0.5, np.float32), Pipeline([ActivationStage("none")]))
    rgba = np.zeros((256, 4), np.uint8)
    rgba[:, 0] = 200
    rgba[:, 3] = 128
    img, layout = render_sheet(res, [[(0.0, 1.0)], [(0.0, 1.0)]], [rgba, rgba],
                               return_layout=True)
    want = np.round(np.array([200, 0, 0]) * 128 / 255 + 255 * (1 - 128 / 255))
    assert (_pixels(img, layout.boxes[(0, 0)]) == want).all()


def _block_means(m: np.ndarray, n: int) -> np.ndarray:
    h, w = m.shape
    bh, bw = -(-h // n), -(-w // n)
    padded = np.full((bh * n, bw * n), np.nan)
    padded[:h, :w] = m
    return np.nanmean(padded.reshape(bh, n, bw, n), axis=(1, 3))


def test_downscaled_by_the_smallest_factor_that_fits_and_said_in_the_title():
    rng = np.random.default_rng(5)
    res = run(rng.random((601, 459, 1), dtype=np.float32),
              Pipeline([ConvStage([Kernel([[0, -1, 0], [-1, 4, -1], [0, -1, 0]])])]))
    ranges, luts = default_style(res)
    full, full_layout = render_sheet(res, ranges, luts, return_layout=True)
    assert full_layout.factor == 1 and "1/" not in full_layout.title
    assert "one map cell = one pixel" in full_layout.title
    limit = full.width * full.height - 1
    img, layout = render_sheet(res, ranges, luts, max_pixels=limit, return_layout=True)
    assert layout.factor == 2 and img.width * img.height <= limit
    assert "maps shown at 1/2" in layout.title
    # a tighter budget: the smallest factor that fits, maps are the block means
    limit = full.width * full.height // 4
    img, layout = render_sheet(res, ranges, luts, max_pixels=limit, return_layout=True)
    n = layout.factor
    assert img.width * img.height <= limit and f"maps shown at 1/{n}" in layout.title
    assert n > 2
    for li, lvl in enumerate(_levels(res)):
        m = lvl.maps[0].astype(np.float64)
        h, w = m.shape
        x, y, bw, bh = layout.boxes[(li, 0)]
        assert (bh, bw) == (-(-h // n), -(-w // n))
        lo, hi = ranges[li][0]
        got = _pixels(img, layout.boxes[(li, 0)]).astype(int)
        want = _expected(_block_means(m, n), lo, hi, luts[li]).astype(int)
        # float32 block means may land on the other side of a rounding tie: one step
        assert np.abs(got - want).max() <= 1, f"level {li}"


def test_a_budget_too_small_for_the_text_is_refused():
    res = run(np.zeros((6, 6, 3), np.float32), default_pipeline())
    with pytest.raises(ValueError, match="max_pixels = 1,000"):
        render_sheet(res, *default_style(res), max_pixels=1000)


def test_mismatched_ranges_or_luts_are_refused_naming_the_level():
    res = run(np.zeros((6, 6, 3), np.float32), default_pipeline())
    ranges, luts = default_style(res)
    with pytest.raises(ValueError, match="4 levels"):
        render_sheet(res, ranges[:2], luts)
    with pytest.raises(ValueError, match="level 2 has 3 maps but 2 ranges"):
        render_sheet(res, ranges[:2] + [ranges[2][:2]] + ranges[3:], luts)
    with pytest.raises(ValueError, match=r"luts\[1\] must have shape"):
        render_sheet(res, ranges, [luts[0], luts[1][:100]] + luts[2:])
    with pytest.raises(ValueError, match="level 3 map 0"):
        render_sheet(res, ranges[:3] + [[(0.0, float("nan"))] * 3], luts)


def test_default_luts():
    gray = default_lut(False)
    assert gray.shape == (256, 3) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, np.repeat(np.arange(256)[:, None], 3, 1))
    div = default_lut(True)
    assert tuple(div[0]) == (33, 102, 172) and tuple(div[255]) == (178, 24, 43)
    assert div[127:129].min() >= 250   # white around 0
    assert (np.diff(div[:128, 0].astype(int)) >= 0).all()    # blue fades to white
    assert (np.diff(div[128:, 2].astype(int)) <= 0).all()    # white deepens to red


def test_default_style_gray_for_input_and_non_negative_levels_diverging_for_signed():
    res = run(np.random.default_rng(2).random((8, 8, 3), dtype=np.float32),
              default_pipeline())   # edge conv (signed), ReLU, max pool
    ranges, luts = default_style(res)
    gray, div = default_lut(False), default_lut(True)
    assert [np.array_equal(lut, div) for lut in luts] == [False, True, False, False]
    assert np.array_equal(luts[0], gray) and np.array_equal(luts[2], gray)
    assert ranges[0] == [(0.0, 1.0)] * 3
    lo, hi = ranges[1][0]
    assert lo == -hi < 0


def test_1080p_rgb_three_stages_renders_fast():
    rng = np.random.default_rng(0)
    res = run(rng.random((1080, 1920, 3), dtype=np.float32), default_pipeline())
    ranges, luts = default_style(res)
    t0 = time.perf_counter()
    img = render_sheet(res, ranges, luts)
    seconds = time.perf_counter() - t0
    assert img.width > 3 * 1920 and img.height > 2 * 1080 + 2 * 540
    assert seconds < 5.0, f"{seconds:.2f} s (about 0.2 s expected)"   # a shared machine


# ------------------------------------------------------------------------------- saving


@pytest.fixture
def sheet():
    res = _mixed_result()
    return render_sheet(res, *default_style(res), title="saved")


def test_png_round_trip_is_exact(tmp_path, sheet):
    path = tmp_path / "sheet.png"
    save_sheet(sheet, path)
    with Image.open(path) as back:
        assert back.format == "PNG" and back.size == sheet.size
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), np.asarray(sheet))
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_pdf_holds_the_picture_losslessly(tmp_path, sheet):
    path = tmp_path / "Sheet.PDF"
    save_sheet(sheet, path)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    pdf = PdfParser.PdfParser(buf=data)
    assert len(pdf.pages) == 1
    page = pdf.read_indirect(pdf.pages[0])
    assert [float(v) for v in page[b"MediaBox"]] == [0, 0, sheet.width, sheet.height]
    xobject = pdf.read_indirect(page[b"Resources"][b"XObject"][b"Im0"])
    info = xobject.dictionary
    assert (info[b"Width"], info[b"Height"]) == sheet.size
    assert info[b"Filter"] == PdfParser.PdfName(b"FlateDecode")
    pixels = np.frombuffer(zlib.decompress(bytes(xobject.buf)), np.uint8)
    np.testing.assert_array_equal(pixels.reshape(sheet.height, sheet.width, 3),
                                  np.asarray(sheet))
    # and Pillow itself can append to it (it parses the file we wrote)
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(data)
    Image.new("RGB", (4, 4)).save(copy, format="PDF", append=True)
    assert len(PdfParser.PdfParser(buf=copy.read_bytes()).pages) == 2


def test_a_very_long_sheet_gets_a_pdf_page_within_200_inches():
    from convscope.core.sheet import _pdf_bytes
    pdf = PdfParser.PdfParser(buf=_pdf_bytes(Image.new("RGB", (30, 20_000), WHITE)))
    box = [float(v) for v in pdf.read_indirect(pdf.pages[0])[b"MediaBox"]]
    assert box[3] == pytest.approx(14_400) and box[2] == pytest.approx(30 * 14_400 / 20_000)


@pytest.mark.parametrize("name", ["sheet.jpg", "sheet.tiff", "sheet"])
def test_other_extensions_are_refused_naming_them(tmp_path, sheet, name):
    with pytest.raises(ValueError) as info:
        save_sheet(sheet, tmp_path / name)
    ext = os.path.splitext(name)[1] or "no extension"
    assert f"'{ext}'" in str(info.value) and ".png or .pdf" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["old.png", "old.pdf"])
def test_a_failed_write_keeps_the_old_file(tmp_path, sheet, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(b"the earlier sheet")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(OSError) as info:
        save_sheet(sheet, path)
    assert info.value.filename == str(path)
    assert path.read_bytes() == b"the earlier sheet"
    assert [p.name for p in tmp_path.iterdir()] == [name]   # no temporary file left
