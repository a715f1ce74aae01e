"""The trained model that ships in assets/ (issue 12): it loads and is as accurate as
assets/README.md says."""

from pathlib import Path

import pytest

from convscope.core.nn.data import load_bundled_mnist, load_dataset
from convscope.core.nn.model import load_model
from convscope.core.nn.train import evaluate

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "assets" / "mnist-keras.npz"
FULL_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def test_bundled_model_on_the_bundled_test_subset():
    model, _ = load_model(MODEL)
    data = load_bundled_mnist()
    _, acc, _, _ = evaluate(model, data.x_test, data.y_test)
    assert len(data.y_test) == 2000
    assert acc == pytest.approx(0.9875, abs=1e-4)   # the figure in assets/README.md


@pytest.mark.skipif(not FULL_MNIST.is_dir(), reason="full MNIST (../shared) not present")
def test_bundled_model_reaches_99_percent_on_full_mnist():
    model, _ = load_model(MODEL)
    data = load_dataset(str(FULL_MNIST))
    _, acc, _, _ = evaluate(model, data.x_test, data.y_test)
    assert len(data.y_test) == 10_000
    assert acc >= 0.990
    assert acc == pytest.approx(0.9921, abs=1e-4)
