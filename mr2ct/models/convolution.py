"""A stride-1 unpadded convolution whose gradients are forward convolutions."""

from __future__ import annotations

import keras
import tensorflow as tf


@tf.custom_gradient
def valid_conv2d(inputs, kernel):
    """``tf.nn.conv2d(inputs, kernel, 1, "VALID")`` with both gradients computed by forward convolutions.

    The values are TensorFlow's. The gradients are the same quantities as
    TensorFlow's own ``Conv2DBackpropInput`` / ``Conv2DBackpropFilter`` give,
    written as forward convolutions, which the CPU kernels run far faster for
    some shapes: for the ResNet generator's last 7x7 convolution (64 -> 1
    channel at 262x262) TensorFlow 2.21's backward pass takes about 1 s on two
    CPU cores, this one about 80 ms (``python benchmarks/convolution.py``).

    * input gradient: the output gradient, zero-padded by ``kernel - 1`` on
      each side, convolved with the kernel flipped in space and with its in and
      out channels swapped (a "full" correlation);
    * kernel gradient: a convolution of the input, with batch and channel axes
      swapped, by the output gradient taken as the kernel (the sum over the
      batch becomes the sum over that kernel's input channels).

    Args:
        inputs: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``.

    Returns:
        ``(batch, height - kh + 1, width - kw + 1, out_channels)``.
    """
    outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID")

    def grad(upstream):
        kh, kw = kernel.shape[0], kernel.shape[1]
        full = tf.pad(upstream, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
        flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
        d_inputs = tf.nn.conv2d(full, flipped, strides=1, padding="VALID")
        d_kernel = tf.nn.conv2d(
            tf.transpose(inputs, [3, 1, 2, 0]), tf.transpose(upstream, [1, 2, 0, 3]), strides=1, padding="VALID"
        )
        return d_inputs, tf.transpose(d_kernel, [1, 2, 0, 3])

    return outputs, grad


@keras.saving.register_keras_serializable(package="mr2ct")
class ValidConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with stride 1 and no padding, trained through :func:`valid_conv2d`.

    Same weights, same outputs and the same gradients (to float round-off) as
    ``keras.layers.Conv2D(filters, kernel_size, padding="valid")``; only the
    way TensorFlow computes the gradients differs. The ResNet generator's
    convolutions that follow a reflection padding are of this kind.

    Args:
        filters: output channels.
        kernel_size: an integer or a pair.
        **kwargs: any other ``keras.layers.Conv2D`` argument except strides,
            padding, dilation and groups (which must keep their defaults).
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        required = {"strides": (1, 1), "padding": "valid", "dilation_rate": (1, 1), "groups": 1,
                    "data_format": "channels_last"}
        for name, value in required.items():
            if getattr(self, name) != value:
                raise ValueError(f"ValidConv2D needs {name}={value!r}. Received: {name}={getattr(self, name)!r}")

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow":  # pragma: no cover - mr2ct runs on TensorFlow
            return super().convolution_op(inputs, kernel)
        return valid_conv2d(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))
