"""``convscope-run``: in-process through ``core.cli.main`` and once as ``python -m core.cli``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.core.cli import main
from convscope.core.image import load_image
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PoolStage,
                           default_pipeline, run, save_pipeline)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rgb_png(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(arr).save(path)
    return path


def _index(out):
    doc = json.loads((out / "maps.json").read_text())
    return doc, doc["maps"]


def _levels(res):
    return [res.input, *res.stages]


def test_default_pipeline_writes_every_map(rgb_png, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(rgb_png), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    doc, maps = _index(out)
    assert len(maps) == 12  # input 3 + 3 stages x 3 maps
    assert [m["level"] for m in maps] == [-1] * 3 + [0] * 3 + [1] * 3 + [2] * 3
    files = sorted(os.listdir(out))
    assert len(files) == 12 * 2 + 1
    assert set(files) == {m["png"] for m in maps} | {m["npy"] for m in maps} | {"maps.json"}
    assert not [f for f in files if f.endswith(".tmp")]
    assert doc["pipeline"] == default_pipeline().to_dict()
    assert doc["image"] == str(rgb_png.resolve())

    # the .npy files hold exactly what core.pipeline.run computes
    res = run(load_image(rgb_png), default_pipeline())
    expected = [(lvl, m) for lvl in _levels(res) for m in range(lvl.maps.shape[0])]
    for entry, (lvl, m) in zip(maps, expected):
        arr = np.load(out / entry["npy"], allow_pickle=False)
        assert arr.dtype == np.float32
        np.testing.assert_array_equal(arr, lvl.maps[m])
        assert entry["label"] == lvl.labels[m]
        assert entry["shape"] == list(lvl.maps[m].shape)
        assert entry["min"] == float(arr.min()) and entry["max"] == float(arr.max())
    assert maps[0]["shape"] == [16, 12] and maps[-1]["shape"] == [8, 6]

    # printed: every stage with its shape and its formula
    lines = captured.out
    assert "3 channel(s), 16x12" in lines
    assert lines.count("-> 3 map(s) of 16x12") == 2
    assert "-> 3 map(s) of 8x6" in lines
    assert "stage 1: conv 1 kernel 3x3 per channel" in lines
    assert "stage 3: max pool 2x2, stride 2" in lines
    assert "wrote 12 maps" in lines
    assert captured.err == ""


@pytest.mark.parametrize("bits", [8, 16])
def test_png_is_the_documented_linear_mapping(rgb_png, tmp_path, bits):
    out = tmp_path / "out"
    args = [str(rgb_png), "--out", str(out)] + (["--bits", "16"] if bits == 16 else [])
    assert main(args) == 0
    _, maps = _index(out)
    top = 2 ** bits - 1
    for entry in maps:
        arr = np.load(out / entry["npy"]).astype(np.float64)
        lo, hi = entry["png_range"]
        assert (lo, hi) == (float(arr.min()), float(arr.max()))
        with Image.open(out / entry["png"]) as im:
            assert im.mode == ("L" if bits == 8 else "I;16")
            assert im.size == (arr.shape[1], arr.shape[0])
            levels = np.asarray(im).astype(np.int64)
        if hi == lo:
            expected = np.zeros(arr.shape)
        else:
            expected = np.rint((arr - lo) / (hi - lo) * top)
        np.testing.assert_array_equal(levels, expected, err_msg=entry["png"])
        assert levels.min() == 0 and (hi == lo or levels.max() == top)
        # and the documented inverse gets the values back to within half a level
        back = lo + levels / top * (hi - lo)
        assert np.abs(back - arr).max() <= (hi - lo) / top / 2 + 1e-9


def test_pipeline_file_and_gray(rgb_png, tmp_path, capsys):
    pipe = Pipeline([ConvStage([Kernel(np.ones((3, 3)) / 9, name="box"),
                                Kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], name="sharp")],
                               mode="sum", padding="valid"),
                     ActivationStage("tanh"),
                     PoolStage("avg", 3, stride=2, ceil_mode=True)])
    pfile = tmp_path / "p.json"
    save_pipeline(pfile, pipe)
    out = tmp_path / "out"
    assert main([str(rgb_png), "--pipeline", str(pfile), "--out", str(out), "--gray"]) == 0
    printed = capsys.readouterr().out
    assert "1 channel(s), 16x12" in printed
    assert "-> 2 map(s) of 14x10" in printed
    assert "-> 2 map(s) of 7x5" in printed
    doc, maps = _index(out)
    assert len(maps) == 1 + 2 + 2 + 2
    assert doc["pipeline"] == pipe.to_dict()
    res = run(load_image(rgb_png, mode="gray"), pipe)
    for entry, (lvl, m) in zip(maps, [(lvl, m) for lvl in _levels(res)
                                      for m in range(lvl.maps.shape[0])]):
        np.testing.assert_array_equal(np.load(out / entry["npy"]), lvl.maps[m])
    assert [m["label"] for m in maps][1:3] == ["sum * box", "sum * sharp"]


def test_bad_image_exits_2_and_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    out = tmp_path / "out"
    assert main([str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and err.startswith("convscope-run: ")
    assert not out.exists()
    missing = tmp_path / "missing.png"
    assert main([str(missing), "--out", str(out)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_malformed_pipeline_exits_2(rgb_png, tmp_path, capsys):
    pfile = tmp_path / "p.json"
    pfile.write_text('{"format": "convscope-pipeline", "version": 1, "stages": [{"type": "x"}]}')
    out = tmp_path / "out"
    assert main([str(rgb_png), "--pipeline", str(pfile), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(pfile) in err and "'x'" in err
    assert not out.exists()


def test_empty_geometry_exits_2_with_the_formula(rgb_png, tmp_path, capsys):
    pipe = Pipeline([ActivationStage("relu"),
                     ConvStage([Kernel(np.ones((3, 3)))], stride=4, padding="valid"),
                     PoolStage("max", 5)])  # 16x12 -> 4x3 -> pool 5: empty
    pfile = tmp_path / "p.json"
    save_pipeline(pfile, pipe)
    out = tmp_path / "out"
    assert main([str(rgb_png), "--pipeline", str(pfile), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "-> 3 map(s) of 4x3" in captured.out  # the stages that ran are still reported
    assert "stage 3" in captured.err
    assert "4x3 input gives an empty output" in captured.err
    assert "out = 1 + floor((4 - 5) / 5) = 0" in captured.err
    assert not out.exists()


def test_bits_must_be_8_or_16(rgb_png, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(rgb_png), "--out", str(tmp_path / "o"), "--bits", "12"])
    assert info.value.code == 2


def test_module_entry_point(rgb_png, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "convscope.core.cli", str(rgb_png), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 12 maps" in proc.stdout
    assert len(json.loads((out / "maps.json").read_text())["maps"]) == 12
    proc = subprocess.run([sys.executable, "-m", "convscope.core.cli", str(tmp_path / "nope.png"),
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "nope.png" in proc.stderr


@pytest.mark.parametrize("kind", ["under a file", "an existing file", "empty"])
def test_unwritable_out_exits_2_with_a_message(rgb_png, tmp_path, capsys, kind):
    """Review regression: a bad --out gave an OSError traceback and exit 1."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = {"under a file": str(blocker / "out"), "an existing file": str(blocker),
           "empty": ""}[kind]
    assert main([str(rgb_png), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "cannot write the maps to" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


def test_deeply_nested_pipeline_exits_2(rgb_png, tmp_path, capsys):
    pfile = tmp_path / "deep.json"
    pfile.write_text('{"format":"convscope-pipeline","version":1,"stages":[{"type":"conv",'
                     '"kernels":[{"weights":' + "[" * 100000 + "]" * 100000 + '}]}]}')
    assert main([str(rgb_png), "--pipeline", str(pfile), "--out", str(tmp_path / "o")]) == 2
    assert "nested too deeply" in capsys.readouterr().err


# ------------------------------------------------------------------------------ --sheet


@pytest.mark.parametrize("ext", [".png", ".pdf"])
def test_sheet_is_written_with_the_maps(rgb_png, tmp_path, capsys, ext):
    from convscope.core.sheet import default_style, render_sheet

    out, sheet = tmp_path / "out", tmp_path / f"sheet{ext}"
    assert main([str(rgb_png), "--out", str(out), "--sheet", str(sheet)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 12 maps" in printed
    res = run(load_image(rgb_png), default_pipeline())
    want, layout = render_sheet(res, *default_style(res), title="in.png · default pipeline",
                                return_layout=True)
    assert f"wrote the sheet {sheet} ({want.width}x{want.height} px, one map cell = one " \
           f"pixel)" in printed
    data = sheet.read_bytes()
    if ext == ".png":
        with Image.open(sheet) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(want))
        # every map is there at its data size: 16x12 input and stages 1-2, 8x6 after the pool
        sizes = {(w, h) for x, y, w, h in layout.boxes.values()}
        assert sizes == {(12, 16), (6, 8)} and len(layout.boxes) == 12
    else:
        assert data.startswith(b"%PDF-")
        assert data.count(b"/Width %d /Height %d" % want.size) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.png", "out", sheet.name])


def test_sheet_alone_needs_no_out_folder(rgb_png, tmp_path, capsys):
    sheet = tmp_path / "s.png"
    assert main([str(rgb_png), "--sheet", str(sheet), "--gray"]) == 0
    printed = capsys.readouterr().out
    assert "wrote the sheet" in printed and "maps (PNG + .npy)" not in printed
    with Image.open(sheet) as im:
        assert im.mode == "RGB" and im.width > 3 * 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "s.png"]


def test_neither_out_nor_sheet_is_a_usage_error(rgb_png, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(rgb_png)])
    assert info.value.code == 2
    assert "--out DIR, --sheet OUT.png|OUT.pdf or both" in capsys.readouterr().err


def test_sheet_with_another_extension_exits_2_before_running(rgb_png, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(rgb_png), "--out", str(out), "--sheet", str(tmp_path / "s.jpg")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("convscope-run: ") and "'.jpg'" in captured.err
    assert ".png or .pdf" in captured.err
    assert captured.out == ""        # refused before the image was read or run
    assert not out.exists() and not (tmp_path / "s.jpg").exists()


def test_unwritable_sheet_exits_2_and_keeps_the_old_one(rgb_png, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    assert main([str(rgb_png), "--sheet", str(blocker / "s.png")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the sheet to '{blocker / 's.png'}'" in err and "Traceback" not in err
    # an earlier sheet survives a failed run (here: a pipeline whose stage 2 has an empty output)
    sheet = tmp_path / "s.png"
    sheet.write_bytes(b"earlier sheet")
    pipe = Pipeline([ActivationStage("relu"), PoolStage("max", 20)])
    pfile = tmp_path / "p.json"
    save_pipeline(pfile, pipe)
    assert main([str(rgb_png), "--pipeline", str(pfile), "--sheet", str(sheet)]) == 2
    assert sheet.read_bytes() == b"earlier sheet"


# ------------------------------------------------------------------ numbers, examples

REFERENCE_5X5 = [[105, 102, 100, 97, 96], [103, 99, 103, 101, 102], [101, 98, 104, 102, 100],
                 [99, 101, 106, 104, 99], [104, 104, 104, 100, 98]]


@pytest.fixture
def sharpen_json(tmp_path):
    pipe = Pipeline([ConvStage([Kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], name="sharpen")],
                               padding=1)])
    path = tmp_path / "sharpen.json"
    save_pipeline(path, pipe)
    return path


@pytest.mark.parametrize("ext", [".csv", ".txt", ".npy"])
def test_a_matrix_input_keeps_its_numbers(tmp_path, sharpen_json, capsys, ext):
    """REFERENCE.md: the 5x5 image, sharpen, zero padding 1 -> top-left output 320."""
    src = tmp_path / f"grid{ext}"
    if ext == ".npy":
        np.save(src, np.array(REFERENCE_5X5, np.float64))
    else:
        sep = "," if ext == ".csv" else " "
        src.write_text("\n".join(sep.join(str(v) for v in row) for row in REFERENCE_5X5))
    out = tmp_path / "out"
    assert main([str(src), "--pipeline", str(sharpen_json), "--out", str(out)]) == 0
    assert "matrix, 1 channel(s), 5x5" in capsys.readouterr().out
    doc, maps = _index(out)
    np.testing.assert_array_equal(np.load(out / maps[0]["npy"]), REFERENCE_5X5)
    stage = np.load(out / maps[1]["npy"])
    assert stage.shape == (5, 5) and stage[0, 0] == 320


def test_a_malformed_matrix_exits_2_naming_file_row_and_column(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("1,2,3\n4,x,6\n")
    assert main([str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 2" in err and "column 2" in err and "'x'" in err
    assert not (tmp_path / "out").exists()  # the folder made for it is gone again


def test_example_list_and_unknown_example(capsys):
    assert main(["--example", "list"]) == 0
    listed = capsys.readouterr().out
    assert "sharpen" in listed and "max-pool-8x8" in listed and "dilation" in listed
    assert main(["--example", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no example 'nope'" in err and "sharpen" in err


def test_an_example_runs_with_its_own_pipeline(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--example", "output-size", "--out", str(out)]) == 0
    doc, maps = _index(out)
    assert maps[-1]["shape"] == [86, 86] and doc["image"] == "example:output-size"
    assert main(["--example", "max-pool-8x8", "--out", str(out)]) == 0
    doc, maps = _index(out)
    assert maps[-1]["shape"] == [4, 4]


def test_input_and_example_are_exclusive(rgb_png, tmp_path, capsys):
    for argv in ([str(rgb_png), "--example", "sharpen", "--out", str(tmp_path / "o")],
                 ["--out", str(tmp_path / "o")]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "give INPUT (a photo or a matrix file) or --example NAME" in \
            capsys.readouterr().err


def test_a_pipeline_file_whose_name_starts_with_a_brace(rgb_png, tmp_path, sharpen_json):
    """Review: a --pipeline path starting with '{' was parsed as JSON text."""
    odd = tmp_path / "{edges}.json"
    odd.write_bytes(sharpen_json.read_bytes())
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([str(rgb_png), "--pipeline", "{edges}.json", "--out", "o"]) == 0
    finally:
        os.chdir(old)
    doc, maps = _index(tmp_path / "o")
    assert doc["pipeline"]["stages"][0]["kernels"][0]["name"] == "sharpen"


# ------------------------------------------------------------------------ --animate


def test_animate_writes_one_frame_per_output_cell(tmp_path, capsys):
    from convscope.core.animate import render_step, steps
    from convscope.core.examples import example, load_input

    gif, apng = tmp_path / "s.gif", tmp_path / "s.png"
    assert main(["--example", "sharpen", "--animate", "1", "--out", str(gif)]) == 0
    assert "output cells 1..25, 25 frame(s) of 960x540" in capsys.readouterr().out
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 25 and im.size == (960, 540)
    assert main(["--example", "sharpen", "--animate", "1", "--cells", "2", "--step",
                 "product", "--size", "640x360", "--fps", "4", "--out", str(apng)]) == 0
    ex = example("sharpen")
    res = run(load_input(ex), ex.pipeline)
    want = [render_step(res, s, (640, 360)) for s in steps(res, 0, 0, granularity="tap",
                                                          cells=2)]
    assert len(want) == 2 * 10      # 9 products and the bias, per cell
    with Image.open(apng) as im:
        assert im.format == "PNG" and im.n_frames == 20 and im.info.get("duration") == 250
        for k in (0, 9, 19):
            im.seek(k)
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.asarray(want[k]))


def test_animate_a_photo_stops_at_the_default_cell_count(rgb_png, tmp_path, capsys):
    from convscope.core.cli import DEFAULT_ANIMATION_CELLS
    out = tmp_path / "p.gif"
    assert main([str(rgb_png), "--animate", "3", "--map", "2", "--size", "320x180",
                 "--out", str(out)]) == 0       # stage 3: the 2x2 max pool, 8x6 cells
    assert "output cells 1..48, 48 frame(s)" in capsys.readouterr().out
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(big)
    assert main([str(big), "--animate", "1", "--size", "320x180", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"output cells 1..{DEFAULT_ANIMATION_CELLS} (of 1,200; --cells N for more)" \
        in printed
    with Image.open(out) as im:
        assert im.n_frames == DEFAULT_ANIMATION_CELLS


@pytest.mark.parametrize("argv, message", [
    (["--animate", "2"], "stage 2 is an activation"),
    (["--animate", "9"], "--animate 9: the pipeline has 3 stage(s)"),
    (["--animate", "1", "--map", "4"], "stage 1 has 3 map(s); map 4 does not exist"),
    (["--animate", "1", "--cells", "100", "--size", "3840x2160"],
     "would need 2.3 GiB of memory"),
])
def test_animate_refuses_what_it_cannot_animate(rgb_png, tmp_path, capsys, argv, message):
    out = tmp_path / "a.gif"
    assert main([str(rgb_png), *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("name, message", [
    ("a.jpg", "saved as .gif or .png (APNG), not .jpg"),
    ("missing/a.gif", "does not exist"),
    ("folder.gif", "a folder of that name is in the way"),
])
def test_animate_checks_its_file_before_computing(rgb_png, tmp_path, capsys, name, message):
    (tmp_path / "folder.gif").mkdir()
    assert main([str(rgb_png), "--animate", "1", "--out", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""   # refused before running


def test_animate_needs_out(rgb_png, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(rgb_png), "--animate", "1"])
    assert info.value.code == 2 and "--animate needs --out" in capsys.readouterr().err


# ------------------------------------------------------------- stops, pipes, early checks


def test_unwritable_out_is_refused_before_computing(rgb_png, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert main([str(rgb_png), "--out", str(blocker / "out")]) == 2
    captured = capsys.readouterr()
    assert "cannot write the maps to" in captured.err and captured.out == ""
    assert main([str(rgb_png), "--sheet", str(blocker / "s.png")]) == 2
    captured = capsys.readouterr()
    assert "cannot write the sheet to" in captured.err and captured.out == ""


def _earlier_export(rgb_png, out):
    assert main([str(rgb_png), "--out", str(out)]) == 0
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sighup"])
def test_a_stop_while_writing_leaves_the_earlier_export(rgb_png, tmp_path, capsys,
                                                        monkeypatch, how):
    """Review: SIGTERM or SIGHUP left ~0.5 GB staging folders in --out; Ctrl-C printed a
    traceback. Now every stop removes what was staged and exits 130 / 128 + signal."""
    import signal

    from convscope.core import export as export_module
    out = tmp_path / "out"
    before = _earlier_export(rgb_png, out)
    capsys.readouterr()
    real = export_module.save_npy
    written = []

    def stop_after_three(path, arr):
        real(path, arr)
        written.append(path)
        if len(written) == 3:
            if how == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM if how == "sigterm" else signal.SIGHUP)

    monkeypatch.setattr(export_module, "save_npy", stop_after_three)
    pipe = Pipeline([ConvStage([Kernel(np.ones((3, 3)))], padding=1)])
    pfile = tmp_path / "p.json"
    save_pipeline(pfile, pipe)
    status = main([str(rgb_png), "--pipeline", str(pfile), "--out", str(out)])
    want = {"ctrl-c": 130, "sigterm": 128 + signal.SIGTERM, "sighup": 128 + signal.SIGHUP}
    assert status == want[how] and len(written) >= 3   # two maps are written at a time
    err = capsys.readouterr().err
    assert "stopped" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging left
    # the handlers are put back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_stop_while_moving_files_into_place_puts_the_old_ones_back(rgb_png, tmp_path,
                                                                     monkeypatch):
    from convscope.core import export as export_module
    out = tmp_path / "out"
    before = _earlier_export(rgb_png, out)
    real = os.replace
    moves = []

    def interrupted(src, dst):
        if os.path.dirname(os.fspath(dst)) == str(out):   # moving into place (or aside)
            moves.append(dst)
            if len(moves) == 9:    # the input maps (6 files) are the same in both
                raise KeyboardInterrupt
        real(src, dst)

    pipe = Pipeline([ConvStage([Kernel(np.ones((3, 3)))], padding=1), ActivationStage("relu"),
                     PoolStage("max", 2)])     # the same file names, other contents
    pfile = tmp_path / "p.json"
    save_pipeline(pfile, pipe)
    monkeypatch.setattr(export_module.os, "replace", interrupted)
    assert main([str(rgb_png), "--pipeline", str(pfile), "--out", str(out)]) == 130
    monkeypatch.setattr(export_module.os, "replace", real)
    assert len(moves) > 9      # 8 placed, then put back
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_closed_stdout_does_not_stop_the_export(rgb_png, tmp_path):
    """Review: `convscope-run ... | head -1` gave a BrokenPipeError and exported nothing."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "convscope.core.cli", str(rgb_png),
                             "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()                       # as `head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"input: ") and "Traceback" not in err and "Broken" not in err
    doc, maps = _index(out)
    assert len(maps) == 12


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("convscope-run ")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "INPUT" in text and "--animate STAGE" in text and "(default: 960x540)" in text
    assert "``" not in text and "docs/pipeline-format.md" in text
