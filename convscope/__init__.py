"""ConvScope: see and understand convolution and pooling.

The installed package's parts (the repository keeps them as top-level folders, mapped
here by setuptools' ``package-dir``):

- :mod:`convscope.core`: the engine and everything computed (numpy and Pillow only,
  never Qt): convolution, pooling, pipelines, explanations, the numpy CNN.
- :mod:`convscope.app`: the PyQt6 window that shows what ``core`` computes.
- ``convscope/assets``: sample photos, an MNIST subset, a trained model and example
  pipelines (package data; :data:`ASSETS` is their folder).
"""

import os as _os
import sys as _sys
from pathlib import Path

# numpy's OpenBLAS keeps its worker threads spinning for 2**28 cycles (~0.1 s) after
# each matrix product. In ConvScope a product is mostly followed by compiled loops on
# both cores (pooling, col2im), which the spinning thread slowed down: the Keras
# convnet's training step went 33 -> 26-30 ms with the threads sleeping at once
# (ours/PyTorch 0.88-0.90 -> 0.98, bench/bench_train.py, same runs). OpenBLAS reads
# the setting when it loads, so it applies when convscope is imported before numpy
# (the applications, command-line tools and benchmarks are); a value already in the
# environment wins, and nothing changes once numpy is loaded.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "core" / "pipeline.py").is_file() \
        and (_checkout / "app" / "window.py").is_file():
    # running from a checkout (also an editable install): the parts are the
    # repository's top-level folders core/, app/ and assets/
    __path__.append(str(_checkout))  # noqa: F821 (the package's own __path__)

#: the folder of the bundled data (sample photos, MNIST subset, model, examples)
ASSETS = Path(__file__).resolve().parent.parent / "assets" \
    if (Path(__file__).resolve().parent.parent / "assets" / "chelsea.png").exists() \
    else Path(__file__).resolve().parent / "assets"

try:
    from importlib.metadata import version as _version
    __version__ = _version("convscope")
except Exception:  # noqa: BLE001 - not installed (a bare checkout)
    __version__ = "0+unknown"
