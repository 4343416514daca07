"""Least-squares GAN losses (Mao et al.), as CycleGAN uses them.

Every function returns one value per image of the batch (shape ``(batch,)``),
averaged over the discriminator's patch map; the caller reduces over the
batch. Under a distribution strategy the caller divides the per-replica sum by
the *global* batch size (``tf.nn.compute_average_loss``), which is what
:class:`mr2ct.models.CycleGAN` does.
"""

from __future__ import annotations

from keras import ops


def _per_image_mean(x):
    x = ops.cast(x, "float32")
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def lsgan_generator_loss(fake_logits):
    """Generator's least-squares loss: ``mean((D(G(x)) - 1)^2)`` per image.

    Args:
        fake_logits: discriminator outputs on generated images.

    Returns:
        float32 tensor of shape ``(batch,)``.

    Reference:
        Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017.
    """
    return _per_image_mean(ops.square(ops.cast(fake_logits, "float32") - 1.0))


def lsgan_discriminator_loss(real_logits, fake_logits):
    """Discriminator's least-squares loss per image.

    ``0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))``: the factor one half
    slows the discriminator relative to the generator, as in the reference
    CycleGAN.

    Args:
        real_logits: discriminator outputs on real images.
        fake_logits: discriminator outputs on generated images (from the pool).

    Returns:
        float32 tensor of shape ``(batch,)``.
    """
    real = _per_image_mean(ops.square(ops.cast(real_logits, "float32") - 1.0))
    fake = _per_image_mean(ops.square(ops.cast(fake_logits, "float32")))
    return 0.5 * (real + fake)
