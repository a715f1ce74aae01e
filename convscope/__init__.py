"""ConvScope: see and understand convolution and pooling.

The installed package's parts (the repository keeps them as top-level folders, mapped
here by setuptools' ``package-dir``):

- :mod:`convscope.core`: the engine and everything computed (numpy and Pillow only,
  never Qt): convolution, pooling, pipelines, explanations, the numpy CNN.
- :mod:`convscope.app`: the PyQt6 window that shows what ``core`` computes.
- ``convscope/assets``: sample photos, an MNIST subset, a trained model and example
  pipelines (package data; :data:`ASSETS` is their folder).
"""

from pathlib import Path

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
