"""Helpers shared by the networks: argument checks and running a stack of layers."""

from __future__ import annotations

import keras


def check_positive_int(name, value):
    """``int(value)``, or a ValueError quoting ``name=value`` if it is not a positive integer."""
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    return int(value)


def check_input_shape(model, input_shape, channels, multiple):
    """Raise a clear ValueError for a wrong rank, channel count or spatial size."""
    name = type(model).__name__
    if len(input_shape) != 4:
        raise ValueError(
            f"{name} expects (batch, height, width, channels). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if input_shape[-1] is not None and input_shape[-1] != channels:
        raise ValueError(
            f"{name} was built for {channels} input channel(s). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    for size in input_shape[1:3]:
        if size is not None and size % multiple:
            raise ValueError(
                f"{name} needs height and width divisible by {multiple}. "
                f"Received: input_shape={tuple(input_shape)}"
            )


def build_stages(stages, input_shape):
    """Build each layer of ``stages`` in turn; returns the output shape."""
    shape = tuple(input_shape)
    for layer in stages:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def call_stages(stages, x, training=None):
    """Apply ``stages`` in order, passing ``training`` to the layers that use it."""
    for layer in stages:
        if isinstance(layer, keras.layers.BatchNormalization):
            x = layer(x, training=training)
        else:
            x = layer(x)
    return x
