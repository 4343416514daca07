"""A U-Net trained on one modality's own labelled images: the paper's MR-supervised reference."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from mr2ct.losses.segmentation import DICE_CLASSES, cross_entropy_per_image, soft_dice_loss_per_image


class ImageSegmenter(keras.Model):
    """A U-Net segmenting images of one modality, trained on labelled images of that modality.

    The paper's discussion compares segmentation through synthesis with a
    U-Net trained on labelled MR and tested on MR (its 5-fold MR-supervised
    U-Net). This model is that reference: no generator, a one-channel U-Net,
    the loss of :class:`~mr2ct.models.SynthesisSegmenter` (per image
    ``ce + dice_weight * soft_dice``, summed over the replica's examples and
    divided by the global batch size) and its metrics (``loss``,
    ``cross_entropy``, ``soft_dice`` when ``dice_weight > 0``, ``dice``).

    Args:
        unet: the segmentation network, 1 input channel, returning logits.
        dice_weight: weight of the soft Dice loss. Defaults to `0.0`.
        dice_classes: the classes the soft Dice averages over, ``"present"``
            or ``"all"``. Defaults to `"present"`.
    """

    def __init__(self, unet, dice_weight=0.0, dice_classes="present", **kwargs):
        super().__init__(**kwargs)
        channels = getattr(unet, "input_channels", None)
        if channels != 1:
            raise ValueError(f"the U-Net must take 1 input channel. Received: input_channels={channels}")
        self.unet = unet
        self.dice_weight, self.dice_classes = check_loss_settings(dice_weight, dice_classes)
        self.trackers = segmentation_trackers(self.dice_weight)

    def compile(self, optimizer, **kwargs):
        """Set the U-Net's optimizer; other keyword arguments go to ``keras.Model.compile``."""
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.unet.trainable_variables)  # the slots, outside any replica context

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        """Class logits ``(batch, S, S, classes)`` for slices ``(batch, S, S, 1)``."""
        return self.unet(ops.cast(inputs, "float32"), training=training)

    def train_step(self, data):
        if self.optimizer is None:
            raise RuntimeError("ImageSegmenter.compile(optimizer) first")
        return segmentation_train_step(self, ops.cast(data["image"], "float32"), data["label"])


def check_loss_settings(dice_weight, dice_classes) -> tuple[float, str]:
    """``(dice_weight, dice_classes)`` checked: a non-negative weight and a known class set."""
    if dice_weight < 0:
        raise ValueError(f"dice_weight must be non-negative. Received: dice_weight={dice_weight}")
    if dice_classes not in DICE_CLASSES:
        raise ValueError(f"dice_classes must be one of {list(DICE_CLASSES)}. Received: dice_classes={dice_classes!r}")
    return float(dice_weight), dice_classes


def segmentation_trackers(dice_weight: float) -> dict:
    """``Mean`` trackers of the per-image loss terms and the hard Dice."""
    names = ["loss", "cross_entropy"] + (["soft_dice"] if dice_weight > 0 else []) + ["dice"]
    return {name: keras.metrics.Mean(name=name) for name in names}


def segmentation_train_step(model, inputs, labels) -> dict:
    """One optimizer step of ``model.unet`` on ``inputs`` and integer ``labels``; updates ``model.trackers``.

    ``model`` has ``unet``, ``optimizer``, ``dice_weight``, ``dice_classes`` and ``trackers``.
    """
    terms = {}
    with tf.GradientTape() as tape:
        logits = model.unet(inputs, training=True)
        terms["cross_entropy"] = cross_entropy_per_image(labels, logits)
        per_example = terms["cross_entropy"]
        if model.dice_weight > 0:
            terms["soft_dice"] = soft_dice_loss_per_image(labels, logits, classes=model.dice_classes)
            per_example = per_example + model.dice_weight * terms["soft_dice"]
        scaled = model.optimizer.scale_loss(tf.nn.compute_average_loss(per_example))
    variables = model.unet.trainable_variables
    model.optimizer.apply(tape.gradient(scaled, variables), variables)

    terms["loss"] = per_example
    terms["dice"] = mean_dice_per_image(labels, ops.argmax(logits, axis=-1), logits.shape[-1])
    # Per-image values: across replicas a Mean then gives the global batch mean.
    for name, tracker in model.trackers.items():
        tracker.update_state(terms[name])
    return {name: tracker.result() for name, tracker in model.trackers.items()}


def mean_dice_per_image(labels, predictions, num_classes):
    """Hard Dice per image, averaged over the foreground classes present in either map.

    Args:
        labels: integer label maps ``(batch, height, width)``.
        predictions: integer label maps of the same shape.
        num_classes: classes including background (class 0, not scored).

    Returns:
        float32 ``(batch,)``; 1 for an image where neither map has foreground.
    """
    truth = ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype="float32")[..., 1:]
    predicted = ops.one_hot(ops.cast(predictions, "int32"), num_classes, dtype="float32")[..., 1:]
    intersection = ops.sum(truth * predicted, axis=(1, 2))
    total = ops.sum(truth, axis=(1, 2)) + ops.sum(predicted, axis=(1, 2))
    present = ops.cast(total > 0, "float32")
    dice = 2.0 * intersection / ops.maximum(total, 1.0)
    count = ops.sum(present, axis=1)
    return ops.where(count > 0, ops.sum(dice * present, axis=1) / ops.maximum(count, 1.0), 1.0)
