"""The ResNet generator of Johnson et al., as CycleGAN uses it."""

from __future__ import annotations

import keras

from mr2ct.models._util import build_stages, call_stages, check_input_shape, check_positive_int
from mr2ct.models.convolution import ConvGradient, ValidConv2D, _conv_gradient
from mr2ct.models.initializers import WeightInit, kernel_initializer
from mr2ct.models.normalization import Norm, make_norm
from mr2ct.models.padding import Crop2D, ReflectionPadding2D


@keras.saving.register_keras_serializable(package="mr2ct")
class ResidualBlock(keras.layers.Layer):
    """Reflect-pad 1, 3x3 conv, norm, ReLU, reflect-pad 1, 3x3 conv, norm, plus the input.

    Args:
        filters: channels in and out.
        norm: normalization after each convolution. Defaults to `"instance"`.
        init: initial kernels, a `WeightInit` or its name. Defaults to `"glorot_uniform"`.
        conv_gradient: how the two convolutions compute their gradients, a `ConvGradient` or its
            name (see `ValidConv2D`). Defaults to `"auto"`.
    """

    def __init__(self, filters, norm=Norm.INSTANCE, init=WeightInit.GLOROT, conv_gradient=ConvGradient.AUTO,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.norm = Norm(norm)
        self.init = WeightInit(init)
        self.conv_gradient = _conv_gradient(conv_gradient)
        self.stages = [
            ReflectionPadding2D(1, name="pad1"),
            ValidConv2D(self.filters, 3, gradient=self.conv_gradient, kernel_initializer=kernel_initializer(self.init),
                        name="conv1"),
            make_norm(self.norm, name="norm1"),
            keras.layers.ReLU(name="relu1"),
            ReflectionPadding2D(1, name="pad2"),
            ValidConv2D(self.filters, 3, gradient=self.conv_gradient, kernel_initializer=kernel_initializer(self.init),
                        name="conv2"),
            make_norm(self.norm, name="norm2"),
        ]
        self.stages = [layer for layer in self.stages if layer is not None]

    def build(self, input_shape):
        build_stages(self.stages, input_shape)

    def call(self, inputs, training=None):
        return inputs + call_stages(self.stages, inputs, training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "norm": str(self.norm), "init": str(self.init),
                       "conv_gradient": str(self.conv_gradient)})
        return config


@keras.saving.register_keras_serializable(package="mr2ct")
class ResnetGenerator(keras.Model):
    """Image-to-image generator: ResNet blocks between two downsamplings and two upsamplings.

    Architecture (the reference CycleGAN ``resnet_9blocks``): reflect-pad 3,
    7x7 conv (``filters``), norm, ReLU; ``num_downsampling`` stride-2 3x3 convs
    doubling the channels each time (zero-padded by 1 on both sides, as PyTorch
    does); ``num_blocks`` residual blocks; as many stride-2 3x3 transposed
    convs halving the channels (cropped to match PyTorch's ``padding=1,
    output_padding=1``), each with norm and ReLU; reflect-pad 3, 7x7 conv to
    ``output_channels``, tanh. Convolutions carry biases; instance
    normalization has no learned scale or offset.

    Inputs are ``(batch, height, width, input_channels)`` in [-1, 1], with
    height and width divisible by ``2 ** num_downsampling``; outputs have the
    same spatial size, ``output_channels`` channels, values in [-1, 1] and are
    always float32 (also under a mixed-precision policy).

    Args:
        input_channels: channels of the input image. Defaults to `1`.
        output_channels: channels of the output image. Defaults to `1`.
        filters: channels after the first convolution. Defaults to `64`.
        num_blocks: residual blocks. Defaults to `9`.
        num_downsampling: stride-2 stages down (and up). Defaults to `2`.
        norm: normalization, a `Norm` or its name. Defaults to `"instance"`.
        init: initial kernels of every convolution, a `WeightInit` or its name:
            Keras' Glorot uniform, or ``"normal"``, N(0, 0.02) as the reference
            CycleGAN. Defaults to `"glorot_uniform"`.
        conv_gradient: how the stride-1 convolutions compute their gradients,
            a `ConvGradient` or its name: ``"auto"`` times TensorFlow's form and
            ``ValidConv2D``'s own per shape at first use and keeps the faster;
            ``"tensorflow"`` or ``"forward"`` fix one form, so the arithmetic
            does not depend on timing (e.g. to compare runs made in different
            processes). Defaults to `"auto"`.

    Reference:
        Johnson et al., "Perceptual Losses for Real-Time Style Transfer and
        Super-Resolution", ECCV 2016; Zhu et al., "Unpaired Image-to-Image
        Translation using Cycle-Consistent Adversarial Networks", ICCV 2017.
    """

    def __init__(
        self,
        input_channels=1,
        output_channels=1,
        filters=64,
        num_blocks=9,
        num_downsampling=2,
        norm=Norm.INSTANCE,
        init=WeightInit.GLOROT,
        conv_gradient=ConvGradient.AUTO,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_channels = check_positive_int("input_channels", input_channels)
        self.output_channels = check_positive_int("output_channels", output_channels)
        self.filters = check_positive_int("filters", filters)
        if int(num_blocks) != num_blocks or num_blocks < 0:
            raise ValueError(
                f"num_blocks must be a non-negative integer. Received: num_blocks={num_blocks}"
            )
        self.num_blocks = int(num_blocks)
        self.num_downsampling = check_positive_int("num_downsampling", num_downsampling)
        self.norm = Norm(norm)
        self.init = WeightInit(init)
        self.conv_gradient = _conv_gradient(conv_gradient)

        def conv(cls, *args, **kw):
            return cls(*args, kernel_initializer=kernel_initializer(self.init), **kw)

        layers = [
            ReflectionPadding2D(3, name="stem_pad"),
            conv(ValidConv2D, self.filters, 7, gradient=self.conv_gradient, name="stem_conv"),
            make_norm(self.norm, name="stem_norm"),
            keras.layers.ReLU(name="stem_relu"),
        ]
        channels = self.filters
        for i in range(self.num_downsampling):
            channels *= 2
            layers += [
                keras.layers.ZeroPadding2D(1, name=f"down{i}_pad"),
                conv(keras.layers.Conv2D, channels, 3, strides=2, name=f"down{i}_conv"),
                make_norm(self.norm, name=f"down{i}_norm"),
                keras.layers.ReLU(name=f"down{i}_relu"),
            ]
        layers += [
            ResidualBlock(channels, norm=self.norm, init=self.init, conv_gradient=self.conv_gradient, name=f"block{i}")
            for i in range(self.num_blocks)
        ]
        for i in range(self.num_downsampling):
            channels //= 2
            layers += [
                conv(keras.layers.Conv2DTranspose, channels, 3, strides=2, name=f"up{i}_conv"),
                Crop2D(((1, 0), (1, 0)), name=f"up{i}_crop"),
                make_norm(self.norm, name=f"up{i}_norm"),
                keras.layers.ReLU(name=f"up{i}_relu"),
            ]
        layers += [
            ReflectionPadding2D(3, name="head_pad"),
            conv(ValidConv2D, self.output_channels, 7, gradient=self.conv_gradient, name="head_conv"),
            keras.layers.Activation("tanh", dtype="float32", name="head_tanh"),
        ]
        self.stages = [layer for layer in layers if layer is not None]
        # The channel count is known, so the weights exist from construction on.
        self.build((None, None, None, self.input_channels))

    def build(self, input_shape):
        check_input_shape(self, input_shape, self.input_channels, 2**self.num_downsampling)
        build_stages(self.stages, input_shape)
        self.built = True

    def call(self, inputs, training=None):
        check_input_shape(self, inputs.shape, self.input_channels, 2**self.num_downsampling)
        return call_stages(self.stages, inputs, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "filters": self.filters,
            "num_blocks": self.num_blocks,
            "num_downsampling": self.num_downsampling,
            "norm": str(self.norm),
            "init": str(self.init),
            "conv_gradient": str(self.conv_gradient),
        }

