"""A small CNN in pure numpy on ConvScope's own convolution and pooling engine.

Layers call :func:`core.conv2d` / :func:`core.pool2d` forward and
:func:`core.conv2d_backward` / :func:`core.pool2d_backward` backward: one engine for
the visualiser and the network.
"""

from .layers import (Activation, AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten,
                     Layer, MaxPool2D, ReLU)
from .losses import softmax_cross_entropy
from .model import ARCHITECTURES, Sequential, build, load_model, save_model
from .optim import SGD, Adam

__all__ = [
    "Layer", "Conv2D", "Dense", "Flatten", "Dropout", "BatchNorm2D", "MaxPool2D", "AvgPool2D",
    "Activation", "ReLU", "softmax_cross_entropy", "SGD", "Adam", "Sequential", "build",
    "ARCHITECTURES", "save_model", "load_model",
]
