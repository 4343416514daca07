"""Segmentation through synthesis: a two-channel U-Net behind frozen CycleGAN generators."""

from __future__ import annotations

import keras
from keras import ops

from mr2ct.models.image_segmenter import (
    check_loss_settings,
    segmentation_train_step,
    segmentation_trackers,
)


class SynthesisSegmenter(keras.Model):
    """A U-Net segmenting (CT, MR) image pairs, one of them synthesized (section 3.2).

    Labels exist only for CT, and MR has no standard intensity, so the U-Net
    learns on labelled CT together with its synthesized MR, and segments a
    real MR together with its synthesized CT. Both generators come from a
    trained CycleGAN and stay frozen; only the U-Net learns.

    Channel convention of the U-Net input (``two_channel``): channel 0 is the
    CT-like image, channel 1 the MR-like image. So:

    * training (``train_step``): ``concat([ct, G_MR(ct)])``: real CT, synthesized MR.
      A batch may bring ``G_MR(ct)`` along (``{"image", "label", "synthesized"}``,
      as a segmentation run's cache of synthesized MR does); since G_MR is
      frozen, that is the same input, without running G_MR at every step;
    * test (calling the model on MR): ``concat([G_CT(mr), mr])``: synthesized CT, real MR.

    Loss per image, with ``ce`` the softmax cross-entropy averaged over the
    image's pixels and ``soft_dice`` one minus the mean soft Dice of the
    foreground classes present in the image's labels, or of all of them
    (``dice_classes``; :func:`~mr2ct.losses.soft_dice_loss_per_image`):
    ``loss = ce + dice_weight * soft_dice``. The paper names no loss; the
    presets use ``dice_weight=1`` (see ``SegmentationConfig``). The per-image losses are summed
    over the replica's examples and divided by the global batch size, so a
    step under ``tf.distribute.MirroredStrategy`` equals a single-device step
    on the whole batch; the U-Net then takes one optimizer step.

    Reported metrics (``Mean`` trackers of per-image values): ``loss``,
    ``cross_entropy``, ``soft_dice`` (only when ``dice_weight > 0``) and
    ``dice``: the hard Dice of the argmax prediction, averaged over the
    foreground classes present in the prediction or the labels of each image
    (1 for an image where neither has any foreground).

    The wrapper is not serialized itself: the U-Net and the generators are,
    and checkpoints hold all three networks' variables.

    Args:
        unet: the segmentation network, 2 input channels, returning logits
            (a :class:`~mr2ct.models.UNet`).
        generator_ct_to_mr: CT -> MR generator (G_MR), used in training.
        generator_mr_to_ct: MR -> CT generator (G_CT), used when calling the
            model on MR. Defaults to `None` (training only).
        dice_weight: weight of the soft Dice loss. Defaults to `0.0`.
        dice_classes: the classes the soft Dice averages over, ``"present"``
            (in the image's labels) or ``"all"``. Defaults to `"present"`.
        ct_dropout: probability with which a training image's CT channel is
            blanked (set to 0), so the U-Net also learns to segment from the
            MR-like channel alone: at test time the CT channel is synthesized
            and the MR real. Defaults to `0.0`.
        seed: seed of the CT-channel dropout. Defaults to `None`.

    Reference:
        Hiasa et al., "Cross-modality image synthesis from unpaired data using
        CycleGAN: effects of gradient consistency loss and training data size",
        SASHIMI 2018 (section 3.2).
    """

    def __init__(self, unet, generator_ct_to_mr, generator_mr_to_ct=None, dice_weight=0.0, ct_dropout=0.0,
                 seed=None, dice_classes="present", **kwargs):
        super().__init__(**kwargs)
        channels = getattr(unet, "input_channels", None)
        if channels != 2:
            raise ValueError(
                f"the U-Net must take 2 input channels (CT-like, MR-like). Received: input_channels={channels}"
            )
        self.unet = unet
        self.generator_ct_to_mr = generator_ct_to_mr
        self.generator_mr_to_ct = generator_mr_to_ct
        for generator in (generator_ct_to_mr, generator_mr_to_ct):
            if generator is not None:
                generator.trainable = False
        self.dice_weight, self.dice_classes = check_loss_settings(dice_weight, dice_classes)
        if not 0.0 <= ct_dropout < 1.0:
            raise ValueError(f"ct_dropout must be in [0, 1). Received: ct_dropout={ct_dropout}")
        self.ct_dropout = float(ct_dropout)
        self.seed_generator = keras.random.SeedGenerator(seed) if self.ct_dropout > 0 else None
        self.trackers = segmentation_trackers(self.dice_weight)

    def compile(self, optimizer, **kwargs):
        """Set the U-Net's optimizer; other keyword arguments go to ``keras.Model.compile``."""
        super().compile(optimizer=optimizer, **kwargs)
        # Create the slots now, outside any replica context.
        self.optimizer.build(self.unet.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    @staticmethod
    def two_channel(ct_like, mr_like):
        """The U-Net input: channel 0 the CT-like image, channel 1 the MR-like image."""
        return ops.concatenate([ops.cast(ct_like, "float32"), ops.cast(mr_like, "float32")], axis=-1)

    def synthesize_mr(self, ct):
        """``G_MR(ct)`` for CT slices in [-1, 1]; no gradient flows into G_MR."""
        return ops.stop_gradient(self.generator_ct_to_mr(ct, training=False))

    def training_inputs(self, ct, synthesized_mr=None):
        """``concat([ct, G_MR(ct)])`` for CT slices in [-1, 1]; ``G_MR(ct)`` is computed unless given."""
        if synthesized_mr is None:
            synthesized_mr = self.synthesize_mr(ct)
        return self.two_channel(ct, synthesized_mr)

    def test_inputs(self, mr):
        """``concat([G_CT(mr), mr])`` for preprocessed MR slices in [-1, 1]."""
        if self.generator_mr_to_ct is None:
            raise ValueError("segmenting MR needs generator_mr_to_ct; this model was built without it")
        synthesized_ct = ops.stop_gradient(self.generator_mr_to_ct(mr, training=False))
        return self.two_channel(synthesized_ct, mr)

    def _drop_ct(self, inputs):
        """Blank the CT channel (to 0) of each image with probability ``ct_dropout``."""
        keep = keras.random.uniform((ops.shape(inputs)[0], 1, 1, 1), seed=self.seed_generator) >= self.ct_dropout
        ct = ops.where(keep, inputs[..., :1], ops.zeros_like(inputs[..., :1]))
        return ops.concatenate([ct, inputs[..., 1:]], axis=-1)

    def call(self, inputs, training=None):
        """Class logits ``(batch, S, S, classes)`` for MR slices ``(batch, S, S, 1)``."""
        return self.unet(self.test_inputs(inputs), training=training)

    def train_step(self, data):
        if self.optimizer is None:
            raise RuntimeError("SynthesisSegmenter.compile(optimizer) first")
        ct, labels, synthesized_mr = _unpack(data)
        inputs = self.training_inputs(ct, synthesized_mr)
        if self.ct_dropout > 0:
            inputs = self._drop_ct(inputs)
        return segmentation_train_step(self, inputs, labels)


def _unpack(data):
    """``(ct, labels, synthesized MR or None)`` from a ``{"image", "label"[, "synthesized"]}`` dict or a pair."""
    if isinstance(data, dict):
        return data["image"], data["label"], data.get("synthesized")
    ct, labels = data[:2]
    return ct, labels, None
