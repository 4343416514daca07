"""Body-outline loss: a translation keeps the body's outline.

Not in the paper. An unpaired CycleGAN can change the body's shape when the
two domains' training bodies differ in size or framing: the discriminators
then tell the domains apart by shape, and the generators learn to widen or
shrink every body towards the other domain's (measured on the phantom: the
CT training bodies were wider, and the synthesized CT came out 2-7 % wider
than the true CT). This term compares the body of an image with the body of
its translation.

The body is found by intensity, the same way in both domains: after
``mr2ct prepare`` air is near -1 in MR and CT alike, and a pixel belongs to
the body when it is above ``threshold``. Inside the body T1 MR and CT
disagree about what is dark (bladder, cortical bone, air in the bowel are dark
in MR), so the mask is filled: a pixel is inside when body lies on both sides
of it along its row *and* along its column. Soft, so that it has gradients::

    m = sigmoid((x - threshold) / softness)
    before(p) = 1 - prod_{q before p} (1 - m(q))   (body somewhere before p along an axis)
    fill = before_row * after_row * before_column * after_column

computed in log space (``1 - exp(-cumsum(softplus(z)))``), which neither
underflows nor divides by zero. The loss is the mean absolute difference of
the filled masks of an image and of its translation, per image.
"""

from __future__ import annotations

import keras
from keras import ops


def check_softness(softness, name="softness") -> float:
    """``softness`` as a float; ValueError unless it is positive (the soft mask's sigmoid divides by it)."""
    if not softness > 0:
        raise ValueError(f"{name} must be positive. Received: {name}={softness}")
    return float(softness)


def _from_side(z, axis, reverse):
    """Soft 'body at or before this pixel along ``axis``' (after it, if ``reverse``) from logits ``z``."""
    if reverse:
        z = ops.flip(z, axis)
    inside = -ops.expm1(-ops.cumsum(ops.softplus(z), axis=axis))
    return ops.flip(inside, axis) if reverse else inside


def body_envelope(images, threshold=-0.66, softness=0.02):
    """Soft filled body mask of ``[B, H, W, 1]`` images (float32, values in [0, 1]).

    Args:
        images: images with air near -1 (prepared slices or generator outputs).
        threshold: intensity above which a pixel is body. Defaults to `-0.66`:
            -500 HU in the prepared CT window ([-1024, 2048] HU to [-1, 1]), the
            body threshold of ``mr2ct evaluate``, halfway between air and fat;
            in MR well above the background noise (about -0.95).
        softness: width of the sigmoid, in intensity units. Defaults to `0.02`:
            an air pixel at -1 counts 4e-8 towards the body and a noisy one at
            -0.9 counts 6e-6, so the air pixels of a row add up to far less than
            one pixel of body.
    """
    z = (ops.cast(images, "float32") - float(threshold)) / check_softness(softness)
    rows, cols = 1, 2
    return (
        _from_side(z, cols, False) * _from_side(z, cols, True)
        * _from_side(z, rows, False) * _from_side(z, rows, True)
    )


def body_outline_loss(source, translated, threshold=-0.66, softness=0.02):
    """Mean absolute difference of the filled body masks of ``source`` and ``translated``, per image.

    Args:
        source: the generator's input images ``[B, H, W, 1]``.
        translated: its output for them, same shape.
        threshold: see :func:`body_envelope`.
        softness: see :func:`body_envelope`.

    Returns:
        float32 tensor of shape ``(batch,)``: the fraction of the image whose
        body membership differs (0 when the outlines agree).
    """
    diff = ops.abs(body_envelope(source, threshold, softness) - body_envelope(translated, threshold, softness))
    return ops.mean(ops.reshape(diff, (ops.shape(diff)[0], -1)), axis=1)


@keras.saving.register_keras_serializable(package="mr2ct")
class BodyOutlineLoss(keras.losses.Loss):
    """:func:`body_outline_loss` as a Keras loss (``y_true``: the source image, ``y_pred``: its translation)."""

    def __init__(self, threshold=-0.66, softness=0.02, name="body_outline", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.softness = check_softness(softness)

    def call(self, y_true, y_pred):
        return body_outline_loss(y_true, y_pred, self.threshold, self.softness)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "softness": self.softness}
