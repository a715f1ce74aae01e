"""core.fileio: atomic writes."""

import os
import stat

import pytest

from convscope.core.fileio import atomic_write, atomic_write_bytes


def test_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"old")

    def half(fh):
        fh.write(b"partial")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(path, half)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.json"]


def test_writes_through_a_symlink(tmp_path):
    """Review regression: saving over a symlink replaced the link with a file."""
    real = tmp_path / "real.json"
    real.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root ignores directory permissions")
def test_errors_name_the_target_not_the_temporary(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError) as info:
            atomic_write_bytes(folder / "x.png", b"data")
        assert info.value.filename == str(folder / "x.png")
    finally:
        folder.chmod(stat.S_IRWXU)


def test_errors_name_the_target_when_the_folder_is_missing(tmp_path):
    target = tmp_path / "missing" / "x.png"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write_bytes(target, b"data")
    assert info.value.filename == str(target)
