"""ConvScope's engine: numpy only (plus Pillow for image files), never Qt.

The public API (see README.md for a tour):

- images: :func:`load_image`, :func:`save_image`, :class:`ImageLoadError`
- operations: :func:`conv2d`, :func:`pool2d` (PyTorch semantics), their naive loop
  twins and backward passes
- geometry: :func:`output_size`, :func:`explain_output_size`
- :mod:`core.kernels`: presets, parsing, GIMP divisor/offset
- :mod:`core.pipeline`: stages, running, JSON files
- :mod:`core.explain`: what is behind any output pixel; receptive fields
"""

from . import kernels
from .conv import conv2d, conv2d_backward, conv2d_naive
from .explain import explain, project, receptive_field
from .geometry import conv_geometry, explain_output_size, output_size, pool_geometry
from .image import ImageLoadError, load_image, save_image
from .pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PipelineError,
                       PipelineFileError, PoolStage, default_pipeline, load_pipeline, run,
                       save_pipeline)
from .pool import pool2d, pool2d_backward, pool2d_naive

__all__ = [
    "kernels", "conv2d", "conv2d_backward", "conv2d_naive", "pool2d", "pool2d_backward",
    "pool2d_naive", "output_size", "explain_output_size", "conv_geometry", "pool_geometry",
    "load_image", "save_image", "ImageLoadError", "Pipeline", "ConvStage", "ActivationStage",
    "PoolStage", "Kernel", "PipelineError", "PipelineFileError", "run", "default_pipeline",
    "load_pipeline", "save_pipeline", "explain", "receptive_field", "project",
]
