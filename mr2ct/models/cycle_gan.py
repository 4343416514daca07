"""CycleGAN with the gradient-consistency loss: two generators, two discriminators, one train_step."""

from __future__ import annotations

import keras
import tensorflow as tf

from mr2ct.losses import (
    GradientOperator,
    body_outline_loss,
    cycle_loss,
    gradient_consistency_per_image,
    identity_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from mr2ct.losses.body_outline import check_softness
from mr2ct.models.image_pool import ImagePool


def _average(per_example):
    """Sum over this replica's examples divided by the *global* batch size."""
    return tf.nn.compute_average_loss(per_example)


@keras.saving.register_keras_serializable(package="mr2ct")
class CycleGAN(keras.Model):
    """Unpaired MR <-> CT translation, trained by a custom ``train_step``.

    Networks (named by modality): ``generator_mr_to_ct`` (G_CT in the paper),
    ``generator_ct_to_mr`` (G_MR), ``discriminator_ct`` (D_CT) and
    ``discriminator_mr`` (D_MR).

    With ``x`` a real CT and ``y`` a real MR slice of the batch, every term,
    per image (least squares replaces the log loss of Eqs. 1-2, as in the
    paper):

    * ``adv_ct = mean((D_CT(G_CT(y)) - 1)^2)``, ``adv_mr = mean((D_MR(G_MR(x)) - 1)^2)``
    * ``cycle = |G_CT(G_MR(x)) - x|_1 + |G_MR(G_CT(y)) - y|_1`` (Eq. 3)
    * ``gc = 1/2 [(1 - GC(x, G_MR(x))) + (1 - GC(y, G_CT(y)))]`` (Eq. 5),
      computed only when ``lambda_gc > 0``; GC in the authors' form (absolute
      gradients) unless ``gc_absolute=False`` (signed Eq. 4), see
      :func:`mr2ct.losses.gradient_correlation`
    * ``identity = |G_CT(x) - x|_1 + |G_MR(y) - y|_1``, only when
      ``lambda_identity > 0``
    * ``outline = BO(x, G_MR(x)) + BO(y, G_CT(y))``, only when
      ``lambda_outline > 0`` (not in the paper): the part of the image where
      the filled body masks of an image and its translation differ, see
      :func:`mr2ct.losses.body_outline_loss`
    * generator loss ``adv_ct + adv_mr + lambda_cycle * cycle + lambda_gc * gc
      + lambda_identity * identity + lambda_outline * outline`` (Eq. 6 and the
      two optional terms), minimised over both generators
    * ``d_ct = 1/2 [mean((D_CT(x) - 1)^2) + mean(D_CT(pool_ct(G_CT(y)))^2)]``
      and likewise ``d_mr``, minimised over the discriminators, which see
      generated images through a history pool of ``pool_size`` images.

    Per-image losses are summed over the replica's examples and divided by
    the global batch size, so a step under ``tf.distribute.MirroredStrategy``
    equals a single-device step on the whole batch. The generators take one
    Adam step, then the discriminators. Every term is reported as a metric.

    Calling the model translates MR to CT.

    Args:
        generator_mr_to_ct: MR -> CT generator.
        generator_ct_to_mr: CT -> MR generator.
        discriminator_ct: discriminator of CT images.
        discriminator_mr: discriminator of MR images.
        image_shape: ``(height, width, channels)`` of training slices (sizes
            the image pools). Defaults to `(256, 256, 1)`.
        lambda_cycle: weight of the cycle loss. Defaults to `3.0`.
        lambda_gc: weight of the gradient-consistency loss; 0 turns it off.
            Defaults to `0.3`.
        lambda_identity: weight of the identity loss. Defaults to `0.0`.
        gc_operator: gradient operator of the GC loss. Defaults to `"central"`.
        gc_absolute: GC of absolute gradients (the authors' code); `False`
            for the signed Eq. 4. Defaults to `True`.
        lambda_outline: weight of the body-outline loss (not in the paper).
            Defaults to `0.0` (off).
        outline_threshold: intensity above which a pixel is body, in both
            domains (-500 HU in the prepared CT window). Defaults to `-0.66`.
        outline_softness: width of the soft body mask's sigmoid. Defaults to `0.02`.
        pool_size: images in each discriminator's history pool. Defaults to `50`.

    Reference:
        Zhu et al., ICCV 2017; Hiasa et al., SASHIMI 2018.
    """

    def __init__(
        self,
        generator_mr_to_ct,
        generator_ct_to_mr,
        discriminator_ct,
        discriminator_mr,
        image_shape=(256, 256, 1),
        lambda_cycle=3.0,
        lambda_gc=0.3,
        lambda_identity=0.0,
        gc_operator=GradientOperator.CENTRAL,
        gc_absolute=True,
        lambda_outline=0.0,
        outline_threshold=-0.66,
        outline_softness=0.02,
        pool_size=50,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [
            ("lambda_cycle", lambda_cycle),
            ("lambda_gc", lambda_gc),
            ("lambda_identity", lambda_identity),
            ("lambda_outline", lambda_outline),
        ]:
            if value < 0:
                raise ValueError(f"{name} must be non-negative. Received: {name}={value}")
        self.generator_mr_to_ct = generator_mr_to_ct
        self.generator_ct_to_mr = generator_ct_to_mr
        self.discriminator_ct = discriminator_ct
        self.discriminator_mr = discriminator_mr
        self.image_shape = tuple(int(s) for s in image_shape)
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_gc = float(lambda_gc)
        self.lambda_identity = float(lambda_identity)
        self.gc_operator = GradientOperator(gc_operator)
        self.gc_absolute = bool(gc_absolute)
        self.lambda_outline = float(lambda_outline)
        self.outline_threshold = float(outline_threshold)
        self.outline_softness = check_softness(outline_softness, "outline_softness")
        self.pool_size = int(pool_size)
        self.pool_ct = ImagePool(self.pool_size, self.image_shape, name="pool_ct")
        self.pool_mr = ImagePool(self.pool_size, self.image_shape, name="pool_mr")

        names = ["generator_loss", "adv_ct", "adv_mr", "cycle"]
        if self.lambda_gc > 0:
            names.append("gc")
        if self.lambda_identity > 0:
            names.append("identity")
        if self.lambda_outline > 0:
            names.append("outline")
        names += ["discriminator_loss", "d_ct", "d_mr"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_optimizer = None
        self.discriminator_optimizer = None

    @property
    def generator_variables(self):
        return self.generator_mr_to_ct.trainable_variables + self.generator_ct_to_mr.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator_ct.trainable_variables + self.discriminator_mr.trainable_variables

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        """Set the two optimizers; other keyword arguments go to ``keras.Model.compile``."""
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        # Create the slots now, outside any replica context.
        self.generator_optimizer.build(self.generator_variables)
        self.discriminator_optimizer.build(self.discriminator_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        return self.generator_mr_to_ct(inputs, training=training)

    def train_step(self, data):
        if self.generator_optimizer is None:
            raise RuntimeError("CycleGAN.compile(generator_optimizer, discriminator_optimizer) first")
        real_mr, real_ct = _unpack(data)
        terms = {}
        with tf.GradientTape() as tape:
            fake_ct = self.generator_mr_to_ct(real_mr, training=True)
            fake_mr = self.generator_ct_to_mr(real_ct, training=True)
            rec_mr = self.generator_ct_to_mr(fake_ct, training=True)
            rec_ct = self.generator_mr_to_ct(fake_mr, training=True)
            terms["adv_ct"] = lsgan_generator_loss(self.discriminator_ct(fake_ct, training=True))
            terms["adv_mr"] = lsgan_generator_loss(self.discriminator_mr(fake_mr, training=True))
            terms["cycle"] = cycle_loss(real_ct, rec_ct) + cycle_loss(real_mr, rec_mr)
            per_example = terms["adv_ct"] + terms["adv_mr"] + self.lambda_cycle * terms["cycle"]
            if self.lambda_gc > 0:
                terms["gc"] = 0.5 * (
                    gradient_consistency_per_image(real_ct, fake_mr, self.gc_operator, self.gc_absolute)
                    + gradient_consistency_per_image(real_mr, fake_ct, self.gc_operator, self.gc_absolute)
                )
                per_example += self.lambda_gc * terms["gc"]
            if self.lambda_identity > 0:
                terms["identity"] = identity_loss(
                    real_ct, self.generator_mr_to_ct(real_ct, training=True)
                ) + identity_loss(real_mr, self.generator_ct_to_mr(real_mr, training=True))
                per_example += self.lambda_identity * terms["identity"]
            if self.lambda_outline > 0:
                terms["outline"] = body_outline_loss(
                    real_ct, fake_mr, self.outline_threshold, self.outline_softness
                ) + body_outline_loss(real_mr, fake_ct, self.outline_threshold, self.outline_softness)
                per_example += self.lambda_outline * terms["outline"]
            generator_loss = _average(per_example)
            scaled = self.generator_optimizer.scale_loss(generator_loss)
        terms["generator_loss"] = per_example
        variables = self.generator_variables
        self.generator_optimizer.apply(tape.gradient(scaled, variables), variables)

        if tuple(fake_ct.shape[1:]) == self.image_shape:
            pooled_ct = self.pool_ct.query(fake_ct)
            pooled_mr = self.pool_mr.query(fake_mr)
        else:  # smaller images (coarse steps of coarse-to-fine training): the pools hold full-size ones
            pooled_ct, pooled_mr = fake_ct, fake_mr
        with tf.GradientTape() as tape:
            terms["d_ct"] = lsgan_discriminator_loss(
                self.discriminator_ct(real_ct, training=True),
                self.discriminator_ct(pooled_ct, training=True),
            )
            terms["d_mr"] = lsgan_discriminator_loss(
                self.discriminator_mr(real_mr, training=True),
                self.discriminator_mr(pooled_mr, training=True),
            )
            terms["discriminator_loss"] = terms["d_ct"] + terms["d_mr"]
            scaled = self.discriminator_optimizer.scale_loss(_average(terms["discriminator_loss"]))
        variables = self.discriminator_variables
        self.discriminator_optimizer.apply(tape.gradient(scaled, variables), variables)

        # Per-image values: across replicas a Mean then gives the global batch mean.
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator_mr_to_ct": serialize(self.generator_mr_to_ct),
            "generator_ct_to_mr": serialize(self.generator_ct_to_mr),
            "discriminator_ct": serialize(self.discriminator_ct),
            "discriminator_mr": serialize(self.discriminator_mr),
            "image_shape": list(self.image_shape),
            "lambda_cycle": self.lambda_cycle,
            "lambda_gc": self.lambda_gc,
            "lambda_identity": self.lambda_identity,
            "gc_operator": str(self.gc_operator),
            "gc_absolute": self.gc_absolute,
            "lambda_outline": self.lambda_outline,
            "outline_threshold": self.outline_threshold,
            "outline_softness": self.outline_softness,
            "pool_size": self.pool_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator_mr_to_ct", "generator_ct_to_mr", "discriminator_ct", "discriminator_mr"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _unpack(data):
    """``(mr, ct)`` from a ``{"mr": ..., "ct": ...}`` dict or an ``(mr, ct)`` pair."""
    if isinstance(data, dict):
        return data["mr"], data["ct"]
    mr, ct = data[:2]
    return mr, ct
