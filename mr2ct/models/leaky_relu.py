"""LeakyReLU as ``max(x, alpha * x)``: the discriminators' activation, kept out of a failing graph rewrite."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mr2ct")
class LeakyReLU(keras.layers.Layer):
    """``x`` where ``x > 0``, else ``negative_slope * x``; values and gradient equal Keras' ``LeakyReLU``.

    Why not Keras' layer: it runs TensorFlow's ``LeakyRelu`` op, and in a
    training graph where a bias-added convolution feeds it (the PatchGAN's
    first layer), grappler's remapper fuses Conv2D + BiasAdd + LeakyRelu into
    one op and then fails ("remapper failed: ... Mutation::Apply error:
    fanout '.../LeakyReluGrad' exist for missing node '.../BiasAdd'",
    TensorFlow 2.21 with oneDNN). A failed remapper leaves the *whole* step
    unrewritten, every other fusion of the CycleGAN step included. Written as
    ``maximum(x, negative_slope * x)`` with its gradient spelled out from the
    output (``upstream`` where ``y > 0``, i.e. where ``x > 0``, else
    ``negative_slope * upstream``, as ``LeakyReluGrad``), the layer offers the
    remapper the same fusion with nothing reading the fused-away BiasAdd.

    Args:
        negative_slope: slope for ``x <= 0``, in ``[0, 1]``. Defaults to `0.3`
            (Keras' default; the PatchGAN uses 0.2).
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= negative_slope <= 1.0:
            raise ValueError(f"negative_slope must be in [0, 1]. Received: negative_slope={negative_slope}")
        self.negative_slope = float(negative_slope)
        self.supports_masking = True

    def call(self, inputs):
        slope = self.negative_slope

        @tf.custom_gradient
        def leaky_relu(x):
            y = tf.maximum(x, x * tf.cast(slope, x.dtype))

            def grad(upstream):
                # From the output, not the input: y > 0 exactly where x > 0 (slope >= 0), and the remapper, which
                # fuses the maximum into the convolution before it, must find no other reader of that input.
                return tf.where(y > 0, upstream, upstream * tf.cast(slope, upstream.dtype))

            return y, grad

        return leaky_relu(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config
