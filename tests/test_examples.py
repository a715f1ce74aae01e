"""The worked examples (issue 14): each opens, gives its number, and its files in
assets/examples/ are the ones core.examples writes."""

import numpy as np
import pytest

from convscope.core.examples import FOLDER, examples, file_contents, load_input
from convscope.core.matrix import load_matrix
from convscope.core.pipeline import load_pipeline, run

KEYS = [e.key for e in examples()]


@pytest.mark.parametrize("key", KEYS)
def test_example_files_are_current_and_give_their_numbers(key):
    ex = next(e for e in examples() if e.key == key)
    for name, data in file_contents(ex).items():
        assert (FOLDER / name).read_bytes() == data, f"{name} is stale: run " \
            f"python -m convscope.core.examples"
    pipe = load_pipeline(FOLDER / f"{key}.json")
    image = load_matrix(FOLDER / ex.input_file) if ex.matrix is not None else load_input(ex)
    np.testing.assert_array_equal(image, load_input(ex))
    res = run(image, pipe)
    assert res.error is None
    for fact, (where, want) in ex.facts.items():
        if fact == "value":
            s, m, r, c = where
            assert res.stages[s].maps[m, r, c] == want
        elif fact == "shape":
            assert res.stages[where].maps.shape[1:] == tuple(want)
        elif fact == "maps":
            assert res.stages[where].maps.shape[0] == want


def test_the_classic_numbers():
    facts = {e.key: e.facts for e in examples()}
    assert facts["sharpen"]["value"][1] == 320
    assert facts["output-size"]["shape"][1] == (86, 86)
    assert facts["max-pool-8x8"]["shape"][1] == (4, 4)
    assert {"no-padding", "arbitrary-padding", "half-padding", "full-padding", "strides",
            "dilation"} <= set(facts)


def test_listing_the_examples_reads_no_data(monkeypatch):
    """The Examples menu is built at start-up: listing the examples must not read the
    bundled MNIST or the shipped model (0.5 s of every start), only opening one does."""
    import convscope.core.examples as exmod
    from convscope.core.nn import data

    def refuse(*a, **k):
        raise AssertionError("read at listing time")
    monkeypatch.setattr(data, "load_bundled_mnist", refuse)
    monkeypatch.setattr(exmod, "_cache", None)
    listed = exmod.examples()
    assert [e.title for e in listed] and all(e.description for e in listed)
    keras = exmod.example("keras-first-layer")
    assert keras.is_matrix and keras.input_file == "keras-first-layer.csv"
    with pytest.raises(AssertionError, match="listing time"):
        keras.matrix
    monkeypatch.setattr(exmod, "_cache", None)   # the next user gets real examples
