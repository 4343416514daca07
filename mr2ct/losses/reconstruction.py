"""Pixel losses: the L1 cycle-consistency and identity losses."""

from __future__ import annotations

from keras import ops


def l1_per_image(a, b):
    """Mean absolute difference of ``a`` and ``b`` per image, shape ``(batch,)``, float32."""
    diff = ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32"))
    return ops.mean(ops.reshape(diff, (ops.shape(diff)[0], -1)), axis=1)


def cycle_loss(real, reconstructed):
    """Cycle-consistency loss ``|G_back(G(x)) - x|`` (paper Eq. 3), per image.

    Args:
        real: the input images ``x``.
        reconstructed: the images after the full cycle.

    Returns:
        float32 tensor of shape ``(batch,)``.

    Reference:
        Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
        Adversarial Networks", ICCV 2017.
    """
    return l1_per_image(real, reconstructed)


def identity_loss(real, same):
    """Identity loss ``|G(y) - y|`` for ``y`` already in G's output domain, per image.

    Args:
        real: images of the generator's output domain.
        same: the generator applied to them.

    Returns:
        float32 tensor of shape ``(batch,)``.
    """
    return l1_per_image(real, same)
