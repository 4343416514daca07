import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from mr2ct.losses import (
    GradientConsistencyLoss,
    gradient_consistency_loss,
    gradient_correlation,
    image_gradients,
)

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
CENTRAL_X = np.array([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], float) / 2


def reference_gc(a, b, kernel_x):
    """Eq. 4 with SciPy: NCC of x- and y-gradients, borders mirrored (NumPy 'reflect')."""
    out = []
    for ai, bi in zip(a, b):
        values = []
        for k in (kernel_x, kernel_x.T):
            ga = np.stack([ndimage.correlate(ai[..., c].astype(float), k, mode="mirror") for c in range(ai.shape[-1])], -1)
            gb = np.stack([ndimage.correlate(bi[..., c].astype(float), k, mode="mirror") for c in range(bi.shape[-1])], -1)
            ga, gb = ga - ga.mean(), gb - gb.mean()
            values.append((ga * gb).sum() / np.sqrt((ga**2).sum() * (gb**2).sum()))
        out.append(np.mean(values))
    return np.array(out)


def smooth_images(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    return ndimage.gaussian_filter(x, sigma=(0, 2, 2, 0)).astype("float32")


CASES = [
    # operator, reference kernel, shape
    ("sobel", SOBEL_X, (3, 24, 20, 1)),
    ("central", CENTRAL_X, (2, 17, 31, 1)),
    ("sobel", SOBEL_X, (2, 16, 16, 2)),
]


@pytest.mark.parametrize("operator, kernel, shape", CASES)
def test_matches_scipy_reference(operator, kernel, shape):
    a = smooth_images(shape, 0)
    b = a + 0.5 * smooth_images(shape, 1)
    ours = gradient_correlation(a, b, operator=operator).numpy()
    np.testing.assert_allclose(ours, reference_gc(a, b, kernel), atol=1e-5)


def test_gradients_match_scipy():
    a = smooth_images((1, 12, 10, 1), 3)
    gx, gy = image_gradients(a)
    np.testing.assert_allclose(gx.numpy()[0, ..., 0], ndimage.correlate(a[0, ..., 0], SOBEL_X, mode="mirror"), atol=1e-5)
    np.testing.assert_allclose(gy.numpy()[0, ..., 0], ndimage.correlate(a[0, ..., 0], SOBEL_X.T, mode="mirror"), atol=1e-5)


@pytest.mark.parametrize("operator", ["sobel", "central"])
def test_properties(operator):
    x = smooth_images((4, 32, 32, 1), 5)
    y = smooth_images((4, 32, 32, 1), 6)
    np.testing.assert_allclose(gradient_correlation(x, x, operator).numpy(), 1.0, atol=1e-5)
    for a_, b_ in [(2.5, -0.3), (0.01, 7.0)]:
        np.testing.assert_allclose(gradient_correlation(x, a_ * x + b_, operator).numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(gradient_correlation(x, -x, operator).numpy(), -1.0, atol=1e-5)
    xy = gradient_correlation(x, y, operator).numpy()
    np.testing.assert_allclose(xy, gradient_correlation(y, x, operator).numpy(), atol=1e-6)
    assert np.all(np.abs(xy) < 1)
    noise = np.random.default_rng(7).normal(size=(16, 32, 32, 1)).astype("float32")
    values = gradient_correlation(noise, noise[::-1], operator).numpy()
    assert np.all(values >= -1) and np.all(values <= 1)


def test_constant_images_are_finite_with_finite_gradients():
    constant = tf.zeros((2, 16, 16, 1))
    other = tf.constant(smooth_images((2, 16, 16, 1), 8))
    for a, b in [(constant, other), (other, constant + 3.0), (constant, constant)]:
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = gradient_consistency_loss(a, b)
        grads = tape.gradient(loss, [a, b])
        assert np.isfinite(loss.numpy())
        assert all(np.isfinite(g.numpy()).all() for g in grads)
    np.testing.assert_allclose(gradient_correlation(constant, other).numpy(), 0.0)


def test_loss_is_one_minus_mean_gc_and_keras_form():
    x = smooth_images((3, 16, 16, 1), 9)
    y = smooth_images((3, 16, 16, 1), 10)
    gc = gradient_correlation(x, y).numpy()
    np.testing.assert_allclose(gradient_consistency_loss(x, y).numpy(), np.mean(1 - gc), atol=1e-6)
    loss = GradientConsistencyLoss(operator="central")
    np.testing.assert_allclose(
        loss(x, y).numpy(), np.mean(1 - gradient_correlation(x, y, "central").numpy()), atol=1e-6
    )
    assert GradientConsistencyLoss.from_config(loss.get_config()).operator == "central"


def test_loss_gradient_pulls_towards_consistency():
    """A few gradient steps on G(x) raise GC(x, G(x))."""
    x = tf.constant(smooth_images((1, 24, 24, 1), 11))
    y = tf.Variable(smooth_images((1, 24, 24, 1), 12))
    before = gradient_correlation(x, y).numpy()[0]
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = gradient_consistency_loss(x, y)
        y.assign_sub(5.0 * tape.gradient(loss, y))
    assert gradient_correlation(x, y).numpy()[0] > before + 0.1


def test_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        gradient_correlation(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 9, 1), "float32"))
    with pytest.raises(ValueError, match="batch, height, width, channels"):
        image_gradients(np.zeros((8, 8), "float32"))
    with pytest.raises(ValueError):
        gradient_correlation(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 8, 1), "float32"), "laplace")
