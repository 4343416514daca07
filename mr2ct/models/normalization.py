"""Normalization layers and the enum that selects them."""

from __future__ import annotations

import enum

import keras
import tensorflow as tf
from keras import ops


class Norm(enum.StrEnum):
    """Normalization used inside a network."""

    INSTANCE = "instance"
    BATCH = "batch"
    NONE = "none"


@keras.saving.register_keras_serializable(package="mr2ct")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalization: each channel of each image to zero mean, unit variance.

    Statistics are taken over the spatial axes of a channels-last tensor and
    always computed in float32, so the layer is safe under ``mixed_float16`` and
    ``mixed_bfloat16`` policies. Without ``center``/``scale`` (the default) it has
    no weights, as in the reference CycleGAN (``InstanceNorm2d(affine=False)``).
    It equals ``keras.layers.GroupNormalization(groups=-1, center=False,
    scale=False, epsilon=1e-5)`` and is faster, having no reshape to groups
    and a closed-form gradient (`instance_normalize`).

    In training, a batch of one image (the CycleGAN's batch) is normalized by
    TensorFlow's fused batch-norm kernel instead (`fused_instance_normalize`):
    one op forward and one backward in place of a dozen element-wise ones.
    Inference always takes the two-pass form: on a constant image (an empty
    slice) the output is round-off times ``1/sqrt(epsilon)``, and the fused
    kernel's different round-off there changed exported predictions.

    Args:
        epsilon: added to the variance. Defaults to `1e-5`.
        center: learn a per-channel offset. Defaults to `False`.
        scale: learn a per-channel scale. Defaults to `False`.

    Reference:
        Ulyanov et al., "Instance Normalization: The Missing Ingredient for
        Fast Stylization", 2016.
    """

    def __init__(self, epsilon=1e-5, center=False, scale=False, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive. Received: epsilon={epsilon}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                "InstanceNormalization expects (batch, ..., channels) with at least "
                f"one spatial axis. Received: input_shape={input_shape}"
            )
        channels = input_shape[-1]
        self.gamma = (
            self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(shape=(channels,), initializer="zeros", name="beta")
            if self.center
            else None
        )

    def call(self, inputs, training=None):
        if training and len(inputs.shape) == 4 and inputs.shape[0] == 1:
            return fused_instance_normalize(inputs, self.epsilon, self.gamma, self.beta)
        x = ops.cast(inputs, "float32")
        axes = list(range(1, len(inputs.shape) - 1))
        x = instance_normalize(x, axes, self.epsilon)
        if self.gamma is not None:
            x = x * ops.cast(self.gamma, "float32")
        if self.beta is not None:
            x = x + ops.cast(self.beta, "float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "center": self.center, "scale": self.scale})
        return config


def instance_normalize(x, axes, epsilon):
    """``(x - mean) / sqrt(variance + epsilon)`` over ``axes``, with a closed-form gradient.

    The forward pass is the two-pass moments form (values equal to
    ``tf.nn.moments``; a constant image gives exactly what that form gives).
    The gradient is written out instead of differentiated through the
    moments: with ``n`` the normalized tensor and ``g`` the upstream gradient,
    ``dx = (g - mean(g) - n * mean(g * n)) / sqrt(variance + epsilon)``, two
    reductions and a few element-wise products in place of the dozen ops
    autodiff records (a normalization plus its gradient 13-23 per cent
    faster, ``benchmarks/instance_norm.py``).

    Args:
        x: float32 tensor.
        axes: the axes the statistics are taken over (the spatial axes).
        epsilon: added to the variance.

    Returns:
        The normalized tensor, of the shape of ``x``.
    """
    axes = list(axes)

    @tf.custom_gradient
    def normalize(x):
        centred = x - tf.reduce_mean(x, axes, keepdims=True)
        inv_std = tf.math.rsqrt(tf.reduce_mean(tf.square(centred), axes, keepdims=True) + epsilon)
        normalized = centred * inv_std

        def grad(upstream):
            mean_upstream = tf.reduce_mean(upstream, axes, keepdims=True)
            projection = tf.reduce_mean(upstream * normalized, axes, keepdims=True)
            return inv_std * (upstream - mean_upstream - normalized * projection)

        return normalized, grad

    return normalize(x)


# oneDNN's bfloat16 batch norm works on blocks of 16 channels; with another
# channel count it was 3x slower than the float32 kernel (24 channels at
# 160x160 on an AMX Xeon, ``benchmarks/instance_norm.py``).
_LOW_PRECISION_CHANNEL_BLOCK = 16


def fused_instance_normalize(x, epsilon, scale=None, offset=None):
    """Instance normalization of one image ``(1, height, width, channels)`` by the fused batch-norm kernel.

    Batch normalization in training mode normalizes each channel over batch and
    space; with a batch of one that is instance normalization (biased
    variance, as `instance_normalize`). ``FusedBatchNormV3`` takes the
    statistics in float32 whatever its input's precision and has a
    registered gradient (one ``FusedBatchNormGradV3``); ``epsilon`` is passed
    as given (``tf.nn.fused_batch_norm`` would raise it to 1.001e-5). The
    values equal `instance_normalize`'s to round-off, except on a constant
    channel, where either gives its own round-off residue times
    ``1/sqrt(epsilon)``: use it for training only.

    Args:
        x: tensor of shape ``(1, height, width, channels)``, float32, bfloat16 or float16.
        epsilon: added to the variance.
        scale: optional per-channel scale (``gamma``).
        offset: optional per-channel offset (``beta``).

    Returns:
        The normalized tensor, of ``x``'s shape and dtype.
    """
    if len(x.shape) != 4 or x.shape[0] != 1:
        raise ValueError(f"fused_instance_normalize expects a batch of one image. Received: shape={x.shape}")
    channels = x.shape[-1]
    dtype = x.dtype
    if dtype != tf.float32 and channels % _LOW_PRECISION_CHANNEL_BLOCK:
        x = tf.cast(x, tf.float32)
    scale = tf.ones((channels,), tf.float32) if scale is None else tf.cast(scale, tf.float32)
    offset = tf.zeros((channels,), tf.float32) if offset is None else tf.cast(offset, tf.float32)
    empty = tf.zeros((0,), tf.float32)
    y = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=float(epsilon),
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
    )[0]
    return tf.cast(y, dtype)


def make_norm(norm: Norm | str, name: str | None = None):
    """A fresh normalization layer of kind ``norm``, or ``None`` for ``Norm.NONE``."""
    norm = Norm(norm)
    if norm is Norm.INSTANCE:
        return InstanceNormalization(name=name)
    if norm is Norm.BATCH:
        # Statistics are per replica under a distribution strategy (Keras'
        # synchronized=True trips collective-ordering errors with
        # MirroredStrategy here), so the per-replica batch should not be tiny.
        return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)
    return None
