"""The 70x70 PatchGAN discriminator."""

from __future__ import annotations

import keras

from mr2ct.models._util import build_stages, call_stages, check_input_shape, check_positive_int
from mr2ct.models.initializers import WeightInit, kernel_initializer
from mr2ct.models.leaky_relu import LeakyReLU
from mr2ct.models.normalization import Norm, make_norm


@keras.saving.register_keras_serializable(package="mr2ct")
class PatchDiscriminator(keras.Model):
    """PatchGAN: a fully convolutional classifier of overlapping image patches.

    Architecture (the reference ``n_layers=3`` discriminator): 4x4 convs with
    strides 2, 2, 2, 1 and ``filters`` x 1, 2, 4, 8 channels (capped at 8x),
    LeakyReLU(0.2) after each, normalization on all but the first; then a 4x4
    stride-1 conv to one channel with no sigmoid (for the least-squares GAN
    loss). Every conv is zero-padded by 1 on each side, as in PyTorch, so a
    256x256 input gives a 30x30 map and each output sees a 70x70 patch.

    Outputs are float32 logits of shape ``(batch, h', w', 1)``.

    Args:
        input_channels: channels of the input image. Defaults to `1`.
        filters: channels of the first convolution. Defaults to `64`.
        num_layers: stride-2 convolutions; 3 gives the 70x70 receptive field.
            Defaults to `3`.
        norm: normalization, a `Norm` or its name. Defaults to `"instance"`.
        init: initial kernels, a `WeightInit` or its name. Defaults to `"glorot_uniform"`.

    Reference:
        Isola et al., "Image-to-Image Translation with Conditional Adversarial
        Networks", CVPR 2017.
    """

    def __init__(self, input_channels=1, filters=64, num_layers=3, norm=Norm.INSTANCE, init=WeightInit.GLOROT,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_channels = check_positive_int("input_channels", input_channels)
        self.filters = check_positive_int("filters", filters)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.norm = Norm(norm)
        self.init = WeightInit(init)

        def conv(*args, **kw):
            return keras.layers.Conv2D(*args, kernel_initializer=kernel_initializer(self.init), **kw)

        layers = [
            keras.layers.ZeroPadding2D(1, name="conv0_pad"),
            conv(self.filters, 4, strides=2, name="conv0"),
            LeakyReLU(0.2, name="conv0_lrelu"),
        ]
        for i in range(1, self.num_layers + 1):
            stride = 2 if i < self.num_layers else 1
            layers += [
                keras.layers.ZeroPadding2D(1, name=f"conv{i}_pad"),
                conv(self.filters * min(2**i, 8), 4, strides=stride, name=f"conv{i}"),
                make_norm(self.norm, name=f"conv{i}_norm"),
                LeakyReLU(0.2, name=f"conv{i}_lrelu"),
            ]
        layers += [
            keras.layers.ZeroPadding2D(1, name="head_pad"),
            conv(1, 4, name="head_conv"),
            keras.layers.Activation("linear", dtype="float32", name="head_float32"),
        ]
        self.stages = [layer for layer in layers if layer is not None]
        # The channel count is known, so the weights exist from construction on.
        self.build((None, None, None, self.input_channels))

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input patch that one output value sees."""
        size = 4  # the head conv
        size = size + 3  # last stride-1 conv
        for _ in range(self.num_layers):
            size = 2 * size + 2  # a 4x4 stride-2 conv below it
        return size

    def output_size(self, size: int) -> int:
        """Side of the output map for an input of side ``size``."""
        for _ in range(self.num_layers):
            size = (size + 2 - 4) // 2 + 1
        for _ in range(2):  # the stride-1 conv and the head
            size = size + 2 - 4 + 1
        return size

    @property
    def min_input_size(self) -> int:
        """The smallest input side that gives a non-empty output map."""
        size = 1
        while self.output_size(size) < 1:
            size += 1
        return size

    def build(self, input_shape):
        check_input_shape(self, input_shape, self.input_channels, 1)
        build_stages(self.stages, input_shape)
        self.built = True

    def call(self, inputs, training=None):
        check_input_shape(self, inputs.shape, self.input_channels, 1)
        for size in inputs.shape[1:3]:
            if size is not None and size < self.min_input_size:
                raise ValueError(
                    f"PatchDiscriminator needs inputs of at least {self.min_input_size} pixels "
                    f"per side. Received: input_shape={tuple(inputs.shape)}"
                )
        return call_stages(self.stages, inputs, training)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.stages:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "input_channels": self.input_channels,
            "filters": self.filters,
            "num_layers": self.num_layers,
            "norm": str(self.norm),
            "init": str(self.init),
        }
