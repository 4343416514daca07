"""Losses of the GC-CycleGAN: least-squares GAN, L1 cycle/identity, gradient consistency."""

from mr2ct.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from mr2ct.losses.gradient_consistency import (
    GradientConsistencyLoss,
    GradientOperator,
    gradient_consistency_loss,
    gradient_consistency_per_image,
    gradient_correlation,
    image_gradients,
)
from mr2ct.losses.reconstruction import cycle_loss, identity_loss, l1_per_image

__all__ = [
    "GradientConsistencyLoss",
    "GradientOperator",
    "cycle_loss",
    "gradient_consistency_loss",
    "gradient_consistency_per_image",
    "gradient_correlation",
    "identity_loss",
    "image_gradients",
    "l1_per_image",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
]
