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


DICE_CLASSES = ("present", "all")


def soft_dice_loss_per_image(labels, logits, smooth=1.0, classes="present"):
    """One minus the soft Dice of each image, averaged over foreground classes.

    For each class ``c`` of ``1 .. classes - 1`` (class 0, the background, is
    left out), with ``p`` the softmax probability of ``c`` and ``y`` the
    one-hot label: ``dice_c = (2 sum(p y) + smooth) / (sum(p) + sum(y) +
    smooth)`` over the image's pixels; the loss is ``1 - mean_c dice_c``.

    Which classes the mean takes:

    * ``"present"``: those present in the image's labels. An image without
      foreground scores 0. A structure absent from an image is left to the
      cross-entropy beside this loss.
    * ``"all"``: every foreground class. An absent class scores
      ``smooth / (sum(p) + smooth)``, which falls from 1 to 0.5 once the
      class has one pixel's worth of probability anywhere in the image, so
      every image without a structure pushes the structure's probability
      towards zero everywhere. With 22 structures, most of them absent
      from most slices, that penalty outweighed the reward on the few
      slices that hold a small structure: on the demo five thigh muscles
      were never predicted (``mr2ct.config.SegmentationConfig``).

    Args:
        labels: integer class of each pixel, ``(batch, height, width)``.
        logits: unnormalised class scores, ``(batch, height, width, classes)``.
        smooth: added to numerator and denominator. Defaults to `1.0`.
        classes: ``"present"`` or ``"all"``, as above. Defaults to
            `"present"`.

    Returns:
        float32 tensor of shape ``(batch,)``.

    Reference:
        Milletari et al., "V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation", 3DV 2016.
    """
    _check(labels, logits)
    if classes not in DICE_CLASSES:
        raise ValueError(f"classes must be one of {list(DICE_CLASSES)}. Received: classes={classes!r}")
    num_classes = logits.shape[-1]
    if num_classes is None or num_classes < 2:
        raise ValueError(f"soft Dice needs at least 2 classes. Received: logits.shape={logits.shape}")
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)[..., 1:]
    truth = ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype="float32")[..., 1:]
    intersection = ops.sum(probabilities * truth, axis=(1, 2))
    truth_sum = ops.sum(truth, axis=(1, 2))
    dice = (2.0 * intersection + smooth) / (ops.sum(probabilities, axis=(1, 2)) + truth_sum + smooth)
    if classes == "all":
        return 1.0 - ops.mean(dice, axis=1)
    present = ops.cast(truth_sum > 0, "float32")
    count = ops.sum(present, axis=1)
    mean_present = ops.sum(dice * present, axis=1) / ops.maximum(count, 1.0)
    return ops.where(count > 0, 1.0 - mean_present, ops.zeros_like(count))
