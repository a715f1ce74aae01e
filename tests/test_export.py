"""core.export: every map to disk, all or nothing."""

import json
import os

import numpy as np
import pytest

import convscope.core.export as export_module
from convscope.core.export import export_maps
from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, run


def _result(scale: float, stages: int = 2):
    img = (np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3) / 90.0) * scale
    st = [ConvStage([Kernel(np.ones((3, 3)) / 9, name="box")]), ActivationStage("relu")]
    return run(img, Pipeline(st[:stages]))


def _files(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def test_export_writes_every_map_and_an_index(tmp_path):
    index = export_maps(_result(1.0), tmp_path)
    doc = json.loads((tmp_path / "maps.json").read_text())
    assert [e["png"] for e in doc["maps"]] == [e["png"] for e in index]
    assert len(index) == 9  # 3 input channels, 3 conv maps, 3 activations
    for e in index:
        arr = np.load(tmp_path / e["npy"], allow_pickle=False)
        assert arr.shape == tuple(e["shape"]) and arr.max() == pytest.approx(e["max"])
    assert _files(tmp_path) == sorted(["maps.json"] + [e[k] for e in index
                                                        for k in ("png", "npy")])


def test_failed_reexport_leaves_the_earlier_export_consistent(tmp_path, monkeypatch):
    """Review regression: a failure half-way through a second export left the old
    maps.json describing files that now held the new run's data."""
    first = export_maps(_result(1.0), tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    real = export_module.save_image
    calls = []

    def failing(path, arr, **kw):
        calls.append(path)
        if len(calls) == 6:
            raise OSError(28, "No space left on device", path)
        return real(path, arr, **kw)

    monkeypatch.setattr(export_module, "save_image", failing)
    with pytest.raises(OSError, match="No space"):
        export_maps(_result(100.0), tmp_path)
    after = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    assert after == before  # nothing changed, no staging folder left behind
    assert sorted(os.listdir(tmp_path)) == _files(tmp_path)
    assert len(first) == 9


def test_stopped_export_changes_nothing_and_a_smaller_export_removes_stale_maps(tmp_path):
    export_maps(_result(1.0), tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    assert export_maps(_result(2.0), tmp_path, progress=lambda d, t: d < 4) == []
    assert {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)} == before
    # one stage fewer: the old stage-2 files go, the folder matches its index
    index = export_maps(_result(3.0, stages=1), tmp_path)
    assert len(index) == 6
    (tmp_path / "notes.txt").write_text("the user's own file")
    export_maps(_result(3.0, stages=1), tmp_path)
    listed = sorted(["maps.json", "notes.txt"] + [e[k] for e in index for k in ("png", "npy")])
    assert _files(tmp_path) == listed


def test_a_folder_in_the_way_fails_before_anything_moves(tmp_path):
    """Review regression: a rename failing half-way left the folder half updated."""
    export_maps(_result(1.0), tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    (tmp_path / "01_stage1_00_R_box.png").unlink()
    (tmp_path / "01_stage1_00_R_box.png").mkdir()
    before.pop("01_stage1_00_R_box.png")
    with pytest.raises(IsADirectoryError) as info:
        export_maps(_result(5.0), tmp_path)
    assert info.value.filename == str(tmp_path / "01_stage1_00_R_box.png")
    assert {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)
            if (tmp_path / n).is_file()} == before


def test_a_failed_rename_puts_everything_back(tmp_path, monkeypatch):
    export_maps(_result(1.0), tmp_path)
    before = {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)}
    real = os.replace
    calls = []

    def flaky(src, dst):
        if os.path.dirname(os.fspath(dst)) == str(tmp_path):
            calls.append(dst)
            if len(calls) == 7:
                raise PermissionError(13, "Permission denied", dst)
        return real(src, dst)

    monkeypatch.setattr(export_module.os, "replace", flaky)
    with pytest.raises(PermissionError) as info:
        export_maps(_result(7.0), tmp_path)
    monkeypatch.setattr(export_module.os, "replace", real)
    assert os.path.dirname(info.value.filename) == str(tmp_path)
    assert {n: (tmp_path / n).read_bytes() for n in _files(tmp_path)} == before
    assert sorted(os.listdir(tmp_path)) == _files(tmp_path)


def test_stale_staging_folders_are_removed(tmp_path):
    stale = tmp_path / ".convscope-export-dead"
    stale.mkdir()
    (stale / "00_input_00_R.npy").write_bytes(b"x" * 100)
    old = os.stat(stale).st_mtime - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".convscope-export-running"
    fresh.mkdir()
    export_maps(_result(1.0), tmp_path)
    assert not stale.exists() and fresh.exists()


def test_levels_past_99_are_cleaned_up_too(tmp_path):
    img = np.ones((3, 3, 1), np.float32)
    many = run(img, Pipeline([ActivationStage("relu") for _ in range(101)]))
    export_maps(many, tmp_path)
    names = os.listdir(tmp_path)
    assert any(n.startswith("101_stage101_") for n in names)
    assert max(len(n) for n in names) <= 100  # long labels are shortened
    export_maps(run(img, Pipeline([ActivationStage("relu")])), tmp_path)
    assert not any(n.startswith("101_") or n.startswith("50_") for n in os.listdir(tmp_path))
    assert len(_files(tmp_path)) == 5  # 2 levels x (png + npy) + maps.json


def test_export_is_refused_before_it_starts_when_the_disk_is_too_small(tmp_path, monkeypatch):
    """Issue 13: 10,000 stages wrote 17 GB; the export now checks the free space."""
    import shutil
    from collections import namedtuple

    from convscope.core import export as export_module
    from convscope.core.pipeline import default_pipeline, run
    img = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    res = run(img, default_pipeline())
    need = export_module.export_size(res)
    assert need >= sum(l.maps.size * 4 for l in [res.input, *res.stages])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 0, need - 1))
    with pytest.raises(OSError) as err:
        export_module.export_maps(res, tmp_path / "out")
    assert "only" in str(err.value) and "out" in str(err.value)
    assert not any((tmp_path / "out").iterdir())           # nothing was written
