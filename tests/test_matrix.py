"""Numeric inputs (issue 14): matrices from .csv/.txt/.npy and typed text, values kept."""

import numpy as np
import pytest

from convscope.core.matrix import MatrixError, load_matrix, parse_matrix

REFERENCE_5X5 = [[105, 102, 100, 97, 96], [103, 99, 103, 101, 102],
                 [101, 98, 104, 102, 100], [99, 101, 106, 104, 99],
                 [104, 104, 104, 100, 98]]


def test_csv_and_txt_keep_their_values(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("\n".join(",".join(str(v) for v in row) for row in REFERENCE_5X5) + "\n")
    txt = tmp_path / "a.txt"
    txt.write_text("# the 5x5 image\n" + "\n".join("  ".join(str(v) for v in row)
                                                    for row in REFERENCE_5X5))
    for path in (csv, txt):
        m = load_matrix(path)
        assert m.shape == (5, 5, 1) and m.dtype == np.float32
        np.testing.assert_array_equal(m[:, :, 0], REFERENCE_5X5)


def test_three_blocks_are_rgb_and_npy_layouts(tmp_path):
    m = parse_matrix("1 2\n3 4\n\n5 6\n7 8\n\n9 10\n11 12\n")
    assert m.shape == (2, 2, 3)
    np.testing.assert_array_equal(m[:, :, 1], [[5, 6], [7, 8]])
    chw = np.arange(24, dtype=np.float64).reshape(3, 2, 4) - 5.5
    np.save(tmp_path / "chw.npy", chw)
    np.testing.assert_array_equal(load_matrix(tmp_path / "chw.npy"), chw.transpose(1, 2, 0))
    np.save(tmp_path / "hw.npy", chw[0].astype(np.int16))
    assert load_matrix(tmp_path / "hw.npy").shape == (2, 4, 1)


@pytest.mark.parametrize("text, words", [
    ("1 2 3\n4 5\n", ["row 2", "2 value(s)", "have 3"]),
    ("1 2\n3 x\n", ["row 2, column 2", "'x' is not a number"]),
    ("1 nan\n", ["row 1, column 2", "not a finite number"]),
    ("1 inf\n", ["row 1, column 2"]),
    ("# nothing\n\n", ["no numbers"]),
    ("1 2\n\n3 4\n", ["2 channels"]),
    ("1 2\n3 4\n\n5 6\n\n7 8\n", ["rows"]),
    ("1e39\n", ["float32"]),
])
def test_malformed_text_is_refused_with_the_place(text, words):
    with pytest.raises(MatrixError) as err:
        parse_matrix(text, name="m.txt")
    msg = str(err.value)
    assert msg.startswith("m.txt") and all(w in msg for w in words), msg


def test_malformed_files_are_refused(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("1,2,3\n" * 10)
    with pytest.raises(MatrixError, match="limit of 12 cells"):
        load_matrix(big, max_pixels=12)
    nan = tmp_path / "nan.npy"
    a = np.zeros((3, 4))
    a[2, 1] = np.nan
    np.save(nan, a)
    with pytest.raises(MatrixError, match="row 3, column 2"):
        load_matrix(nan)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MatrixError, match="obj.npy"):
        load_matrix(obj)           # never unpickled
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(MatrixError, match="not text"):
        load_matrix(binary)
    with pytest.raises(MatrixError, match="cannot read"):
        load_matrix(tmp_path / "missing.csv")
    with pytest.raises(MatrixError, match="shape"):
        np.save(tmp_path / "4d.npy", np.zeros((2, 2, 2, 2)))
        load_matrix(tmp_path / "4d.npy")
