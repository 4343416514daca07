"""Losses: least-squares GAN, L1 cycle/identity, gradient consistency, body outline; segmentation losses."""

from mr2ct.losses.adversarial import lsgan_discriminator_loss, lsgan_generator_loss
from mr2ct.losses.body_outline import BodyOutlineLoss, body_envelope, body_outline_loss
from mr2ct.losses.gradient_consistency import (
    BorderPadding,
    GradientConsistencyLoss,
    GradientOperator,
    gradient_consistency_loss,
    gradient_consistency_per_image,
    gradient_correlation,
    image_gradients,
)
from mr2ct.losses.reconstruction import cycle_loss, identity_loss, l1_per_image
from mr2ct.losses.segmentation import cross_entropy_per_image, soft_dice_loss_per_image

__all__ = [
    "BodyOutlineLoss",
    "BorderPadding",
    "GradientConsistencyLoss",
    "GradientOperator",
    "body_envelope",
    "body_outline_loss",
    "cross_entropy_per_image",
    "cycle_loss",
    "gradient_consistency_loss",
    "gradient_consistency_per_image",
    "gradient_correlation",
    "identity_loss",
    "image_gradients",
    "l1_per_image",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "soft_dice_loss_per_image",
]
