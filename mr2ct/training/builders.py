"""Factories that translate a :class:`~mr2ct.config.Config` into networks and optimizers.

This is the only place where the config meets the models: everything below
takes explicit arguments.
"""

from __future__ import annotations

import keras

from mr2ct.config import Config
from mr2ct.models import CycleGAN, PatchDiscriminator, ResnetGenerator, UNet
from mr2ct.training.schedules import ConstantThenLinearDecay
from mr2ct.training.strategy import wrap_optimizer


def build_generator(config: Config, name: str) -> ResnetGenerator:
    m = config.model
    return ResnetGenerator(
        input_channels=1,
        output_channels=1,
        filters=m.generator_filters,
        num_blocks=m.generator_blocks,
        norm=m.norm,
        init=m.init,
        conv_gradient=m.conv_gradient,
        name=name,
    )


def build_discriminator(config: Config, name: str) -> PatchDiscriminator:
    m = config.model
    return PatchDiscriminator(
        input_channels=1,
        filters=m.discriminator_filters,
        num_layers=m.discriminator_layers,
        norm=m.norm,
        init=m.init,
        name=name,
    )


def build_cyclegan(config: Config) -> CycleGAN:
    """The CycleGAN of ``config`` (call under the strategy's scope); its pools hold training crops."""
    size = config.data.train_size
    return CycleGAN(
        generator_mr_to_ct=build_generator(config, "generator_mr_to_ct"),
        generator_ct_to_mr=build_generator(config, "generator_ct_to_mr"),
        discriminator_ct=build_discriminator(config, "discriminator_ct"),
        discriminator_mr=build_discriminator(config, "discriminator_mr"),
        image_shape=(size, size, 1),
        lambda_cycle=config.loss.lambda_cycle,
        lambda_gc=config.loss.lambda_gc,
        lambda_identity=config.loss.lambda_identity,
        gc_operator=config.loss.gc_operator,
        gc_absolute=config.loss.gc_absolute,
        lambda_outline=config.loss.lambda_outline,
        pool_size=config.loss.pool_size,
        name="cycle_gan",
    )


def build_schedule(config: Config) -> ConstantThenLinearDecay:
    t = config.train
    return ConstantThenLinearDecay(t.learning_rate, t.constant_steps, t.decay_steps)


def build_adam(config: Config, policy: str, name: str):
    """Adam with the paper's schedule, loss-scaled under ``mixed_float16``."""
    optimizer = keras.optimizers.Adam(build_schedule(config), beta_1=config.train.beta_1, name=name)
    return wrap_optimizer(optimizer, policy)


def build_unet(config: Config, num_classes: int) -> UNet:
    s = config.segmentation
    return UNet(input_channels=2, num_classes=num_classes, depth=s.depth, filters=s.filters, name="unet")


def build_segmentation_adam(config: Config, policy: str):
    """Adam at the segmentation learning rate (constant, as in the paper), loss-scaled under ``mixed_float16``."""
    optimizer = keras.optimizers.Adam(config.segmentation.learning_rate, name="segmentation_adam")
    return wrap_optimizer(optimizer, policy)


def build_preprocess_config(config: Config):
    """The :class:`~mr2ct.data.preprocess.PreprocessConfig` of ``config``."""
    from mr2ct.data.preprocess import PreprocessConfig

    p = config.prepare
    return PreprocessConfig(
        image_size=config.data.image_size,
        n4=p.n4,
        n4_shrink_factor=p.n4_shrink_factor,
        n4_iterations=tuple(p.n4_iterations),
        crop_ct=p.crop_ct,
        frame_mr=p.frame_mr,
        fov_mm=p.fov_mm,
        slab_mm=p.slab_mm,
        slab_center=p.slab_center,
        ct_hu_min=p.ct_hu_min,
        ct_hu_max=p.ct_hu_max,
        mr_lower_percentile=p.mr_lower_percentile,
        mr_upper_percentile=p.mr_upper_percentile,
    )
