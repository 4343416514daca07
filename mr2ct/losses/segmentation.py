"""Segmentation losses, per image: softmax cross-entropy and soft Dice.

Both take integer labels ``(batch, height, width)`` and float logits
``(batch, height, width, classes)`` and return one float32 value per image,
shape ``(batch,)``; the caller sums them and divides by the global batch size
(``tf.nn.compute_average_loss``), so they work unchanged under a distribution
strategy.
"""

from __future__ import annotations

from keras import ops


def _check(labels, logits):
    if len(logits.shape) != 4 or len(labels.shape) != 3:
        raise ValueError(
            "expected labels (batch, height, width) and logits (batch, height, width, classes). "
            f"Received: labels.shape={labels.shape}, logits.shape={logits.shape}"
        )


def cross_entropy_per_image(labels, logits):
    """Softmax cross-entropy averaged over the pixels of each image.

    Args:
        labels: integer class of each pixel, ``(batch, height, width)``.
        logits: unnormalised class scores, ``(batch, height, width, classes)``.

    Returns:
        float32 tensor of shape ``(batch,)``.
    """
    _check(labels, logits)
    per_pixel = ops.sparse_categorical_crossentropy(
        ops.cast(labels, "int32"), ops.cast(logits, "float32"), from_logits=True
    )
    return ops.mean(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=1)


def soft_dice_loss_per_image(labels, logits, smooth=1.0):
    """One minus the soft Dice of each image, averaged over the foreground classes.

    For each class ``c`` of ``1 .. classes - 1`` (class 0, the background, is
    left out), with ``p`` the softmax probability of ``c`` and ``y`` the
    one-hot label: ``dice_c = (2 sum(p y) + smooth) / (sum(p) + sum(y) +
    smooth)`` over the image's pixels; the loss is ``1 - mean_c dice_c``.
    A class absent from the labels and not predicted scores about 1.

    Args:
        labels: integer class of each pixel, ``(batch, height, width)``.
        logits: unnormalised class scores, ``(batch, height, width, classes)``.
        smooth: added to numerator and denominator. Defaults to `1.0`.

    Returns:
        float32 tensor of shape ``(batch,)``.

    Reference:
        Milletari et al., "V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation", 3DV 2016.
    """
    _check(labels, logits)
    classes = logits.shape[-1]
    if classes is None or classes < 2:
        raise ValueError(f"soft Dice needs at least 2 classes. Received: logits.shape={logits.shape}")
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)[..., 1:]
    truth = ops.one_hot(ops.cast(labels, "int32"), classes, dtype="float32")[..., 1:]
    intersection = ops.sum(probabilities * truth, axis=(1, 2))
    total = ops.sum(probabilities, axis=(1, 2)) + ops.sum(truth, axis=(1, 2))
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.mean(dice, axis=1)
