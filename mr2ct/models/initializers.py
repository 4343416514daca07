"""Initial weights of the CycleGAN's convolutions, and the enum that selects them."""

from __future__ import annotations

import enum

import keras

# The standard deviation of the reference CycleGAN's ``init_type="normal"`` (its ``init_gain``).
REFERENCE_INIT_STD = 0.02


class WeightInit(enum.StrEnum):
    """How convolution kernels start (biases always start at zero)."""

    GLOROT = "glorot_uniform"  # Keras' default
    NORMAL = "normal"  # N(0, 0.02): the reference PyTorch CycleGAN's default


def kernel_initializer(init: WeightInit | str) -> keras.initializers.Initializer:
    """A new initializer for one convolution's kernel (one per layer, so no two layers start alike)."""
    init = WeightInit(init)
    if init == WeightInit.NORMAL:
        return keras.initializers.RandomNormal(mean=0.0, stddev=REFERENCE_INIT_STD)
    return keras.initializers.GlorotUniform()
