"""The 2D U-Net used for segmentation through synthesis."""

from __future__ import annotations

import keras
from keras import ops

from mr2ct.models._util import call_stages, check_input_shape, check_positive_int
from mr2ct.models.normalization import Norm, make_norm


def _double_conv(filters, norm, name):
    layers = []
    for i in (1, 2):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv{i}"),
            make_norm(norm, name=f"{name}_norm{i}"),
            keras.layers.ReLU(name=f"{name}_relu{i}"),
        ]
    return [layer for layer in layers if layer is not None]


@keras.saving.register_keras_serializable(package="mr2ct")
class UNet(keras.Model):
    """2D U-Net returning per-pixel class logits.

    A contracting path of ``depth`` stages (two 3x3 convs with ReLU, then 2x2
    max-pooling; filters doubling from ``filters``), a bottleneck, and an
    expanding path of 2x2 up-convolutions, concatenation with the skip
    connection and two 3x3 convs, then a 1x1 conv to ``num_classes`` logits
    (float32). Unlike the original, convolutions are "same"-padded, so the
    output has the input's height and width, and batch normalization follows
    each convolution by default (``norm="none"`` gives the original layout).

    In mr2ct the two input channels are (CT, synthesized MR) for training on
    labelled CT and (synthesized CT, MR) at test time; the class count is
    background plus the paper's 22 structures.

    Args:
        input_channels: channels of the input image. Defaults to `2`.
        num_classes: output classes including background. Defaults to `23`.
        depth: pooling stages. Height and width must be divisible by
            ``2 ** depth``. Defaults to `4`.
        filters: channels of the first stage. Defaults to `64`.
        norm: normalization after each conv, a `Norm` or its name.
            Defaults to `"batch"`.

    Reference:
        Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
        Image Segmentation", MICCAI 2015.
    """

    def __init__(
        self, input_channels=2, num_classes=23, depth=4, filters=64, norm=Norm.BATCH, **kwargs
    ):
        super().__init__(**kwargs)
        self.input_channels = check_positive_int("input_channels", input_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
        self.depth = check_positive_int("depth", depth)
        self.filters = check_positive_int("filters", filters)
        self.norm = Norm(norm)

        self.down = [
            _double_conv(self.filters * 2**i, self.norm, f"down{i}") for i in range(self.depth)
        ]
        self.pools = [keras.layers.MaxPooling2D(2, name=f"pool{i}") for i in range(self.depth)]
        self.bottleneck = _double_conv(self.filters * 2**self.depth, self.norm, "bottleneck")
        self.upconvs = [
            keras.layers.Conv2DTranspose(self.filters * 2**i, 2, strides=2, name=f"upconv{i}")
            for i in reversed(range(self.depth))
        ]
        self.concats = [keras.layers.Concatenate(name=f"concat{i}") for i in range(self.depth)]
        self.up = [
            _double_conv(self.filters * 2**i, self.norm, f"up{i}")
            for i in reversed(range(self.depth))
        ]
        self.head = keras.layers.Conv2D(self.num_classes, 1, dtype="float32", name="logits")
        # The channel count is known, so the weights exist from construction on.
        self.build((None, None, None, self.input_channels))

    def build(self, input_shape):
        check_input_shape(self, input_shape, self.input_channels, 2**self.depth)
        # Building by tracing keeps every sub-layer's shape bookkeeping in one place.
        self.call(keras.KerasTensor(tuple(input_shape)))
        self.built = True

    def call(self, inputs, training=None):
        check_input_shape(self, inputs.shape, self.input_channels, 2**self.depth)
        skips = []
        x = inputs
        for stage, pool in zip(self.down, self.pools):
            x = call_stages(stage, x, training)
            skips.append(x)
            x = pool(x)
        x = call_stages(self.bottleneck, x, training)
        for upconv, concat, stage, skip in zip(self.upconvs, self.concats, self.up, reversed(skips)):
            x = concat([upconv(x), skip])
            x = call_stages(stage, x, training)
        return ops.cast(self.head(x), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "input_channels": self.input_channels,
            "num_classes": self.num_classes,
            "depth": self.depth,
            "filters": self.filters,
            "norm": str(self.norm),
        }
