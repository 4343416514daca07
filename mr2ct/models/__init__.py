"""Networks of mr2ct: generator, discriminator, U-Net, segmentation through synthesis, building blocks."""

from mr2ct.models.convolution import ConvGradient, ValidConv2D, valid_conv2d
from mr2ct.models.cycle_gan import CycleGAN
from mr2ct.models.image_pool import ImagePool
from mr2ct.models.image_segmenter import ImageSegmenter
from mr2ct.models.initializers import REFERENCE_INIT_STD, WeightInit
from mr2ct.models.label_head import LabelHead
from mr2ct.models.leaky_relu import LeakyReLU
from mr2ct.models.normalization import InstanceNormalization, Norm
from mr2ct.models.padding import Crop2D, ReflectionPadding2D
from mr2ct.models.patch_discriminator import PatchDiscriminator
from mr2ct.models.resnet_generator import ResidualBlock, ResnetGenerator
from mr2ct.models.synthesis_segmenter import SynthesisSegmenter
from mr2ct.models.unet import UNet

__all__ = [
    "ConvGradient",
    "Crop2D",
    "CycleGAN",
    "ImagePool",
    "ImageSegmenter",
    "REFERENCE_INIT_STD",
    "InstanceNormalization",
    "LabelHead",
    "LeakyReLU",
    "Norm",
    "PatchDiscriminator",
    "ReflectionPadding2D",
    "ResidualBlock",
    "ResnetGenerator",
    "SynthesisSegmenter",
    "UNet",
    "ValidConv2D",
    "WeightInit",
    "valid_conv2d",
]
