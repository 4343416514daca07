import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.losses import BodyOutlineLoss, body_envelope, body_outline_loss

SIZE = 64


def ellipse(width, height, size=SIZE, centre=None):
    """A ``[1, S, S, 1]`` body: an ellipse of textured tissue in air (-1)."""
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = np.mgrid[:size, :size]
    inside = ((xx - cx) / (width / 2)) ** 2 + ((yy - cy) / (height / 2)) ** 2 <= 1
    tissue = np.random.default_rng(0).uniform(-0.5, 1.0, (size, size))
    return np.where(inside, tissue, -1.0).astype("float32")[None, :, :, None], inside


def test_envelope_is_the_filled_body():
    image, inside = ellipse(40, 30)
    # A dark hole (bladder in T1 MR) and dark spots in the body are still body.
    image[0, 28:36, 28:36, 0] = -1.0
    env = body_envelope(image).numpy()[0, :, :, 0]
    assert np.all(env[inside] > 0.99)
    assert np.all(env[~inside] < 0.01)


def test_air_alone_stays_outside():
    air = np.full((2, SIZE, SIZE, 1), -1.0, "float32")
    air += np.random.default_rng(1).normal(0, 0.01, air.shape).astype("float32")  # background noise
    assert float(np.max(body_envelope(air))) < 0.01


def test_loss_is_zero_for_the_same_outline_whatever_the_contrast():
    mr, inside = ellipse(40, 30)
    # CT-like contrast inside the same body: other values, the dark hole filled with soft tissue.
    ct = np.where(inside[None, :, :, None], -0.3 - 0.2 * mr, -1.0).astype("float32")
    mr[0, 28:36, 28:36, 0] = -1.0
    assert float(body_outline_loss(mr, ct)[0]) < 1e-3


@pytest.mark.parametrize("wider", [2, 4, 8])
def test_loss_grows_with_the_shape_change(wider):
    source, inside = ellipse(40, 30)
    widened, wide_inside = ellipse(40 + wider, 30)
    loss = float(body_outline_loss(source, widened)[0])
    changed = np.mean(inside != wide_inside)
    assert loss == pytest.approx(changed, rel=0.2)
    smaller = float(body_outline_loss(source, ellipse(40 + wider // 2, 30)[0])[0])
    assert smaller < loss


def test_loss_is_per_image_and_symmetric():
    a, _ = ellipse(40, 30)
    b, _ = ellipse(30, 40)
    pair = body_outline_loss(np.concatenate([a, a]), np.concatenate([a, b])).numpy()
    assert pair.shape == (2,) and pair[0] == 0 and pair[1] > 0.05
    assert float(body_outline_loss(b, a)[0]) == pytest.approx(float(pair[1]), rel=1e-6)


def test_gradient_moves_the_outline_towards_the_source():
    source, _ = ellipse(40, 30)
    wide, _ = ellipse(48, 30)
    image = tf.Variable(wide)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(body_outline_loss(source, image))
    grad = tape.gradient(loss, image).numpy()
    assert np.all(np.isfinite(grad))
    # Descent darkens the pixels where the widened body overhangs the source's, and nowhere brightens them much.
    row = SIZE // 2
    overhang = grad[0, row, (SIZE - 48) // 2 + 1, 0]
    assert overhang > 0
    assert float(tf.reduce_mean(body_outline_loss(source, image - 10.0 * grad / np.abs(grad).max()))) < float(loss)


def test_bfloat16_input_gives_float32_loss():
    a, _ = ellipse(40, 30)
    b, _ = ellipse(44, 30)
    loss = body_outline_loss(tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16))
    assert loss.dtype == tf.float32
    assert float(loss[0]) == pytest.approx(float(body_outline_loss(a, b)[0]), abs=2e-3)


def test_keras_loss_round_trips_and_checks_softness():
    loss = BodyOutlineLoss(threshold=-0.7, softness=0.05)
    clone = BodyOutlineLoss.from_config(loss.get_config())
    assert (clone.threshold, clone.softness) == (-0.7, 0.05)
    a, _ = ellipse(40, 30)
    b, _ = ellipse(44, 30)
    assert float(clone(a, b)) == pytest.approx(float(body_outline_loss(a, b, -0.7, 0.05)[0]), rel=1e-6)
    assert isinstance(keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)),
                      BodyOutlineLoss)
    with pytest.raises(ValueError, match="softness"):
        BodyOutlineLoss(softness=0)
    with pytest.raises(ValueError, match="softness"):
        body_envelope(a, softness=-1)
