"""Padding layers that Keras does not provide."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mr2ct")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads the two spatial axes of a channels-last image by reflection.

    Reflection does not repeat the edge pixel (NumPy ``mode="reflect"``,
    PyTorch ``ReflectionPad2d``).

    Args:
        padding: pixels added on every side. Defaults to `1`.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if int(padding) != padding or padding < 0:
            raise ValueError(
                f"padding must be a non-negative integer. Received: padding={padding}"
            )
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda n: None if n is None else n + 2 * self.padding  # noqa: E731
        return (b, grow(h), grow(w), c)

    def get_config(self):
        config = super().get_config()
        config["padding"] = self.padding
        return config
