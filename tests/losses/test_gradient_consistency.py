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


def reference_gc(a, b, kernel_x, absolute=False):
    """GC with SciPy: NCC of x- and y-gradients per image.

    Signed (Eq. 4): borders mirrored (NumPy 'reflect'). Absolute (the authors'
    code): absolute gradients, the edge pixel repeated (PyTorch 'replicate').
    """
    mode = "nearest" if absolute else "mirror"
    out = []
    for ai, bi in zip(a, b):
        values = []
        for k in (kernel_x, kernel_x.T):
            ga = np.stack([ndimage.correlate(ai[..., c].astype(float), k, mode=mode) for c in range(ai.shape[-1])], -1)
            gb = np.stack([ndimage.correlate(bi[..., c].astype(float), k, mode=mode) for c in range(bi.shape[-1])], -1)
            if absolute:
                ga, gb = np.abs(ga), np.abs(gb)
            ga, gb = ga - ga.mean(), gb - gb.mean()
            values.append((ga * gb).sum() / np.sqrt((ga**2).sum() * (gb**2).sum()))
        out.append(np.mean(values))
    return np.array(out)


def replicate_padded_gradients(image):
    """Central differences [-1, 0, 1] / 2 on an edge-replicated pad, written out by hand (no SciPy)."""
    p = np.pad(image, 1, mode="edge")
    return (p[1:-1, 2:] - p[1:-1, :-2]) / 2, (p[2:, 1:-1] - p[:-2, 1:-1]) / 2


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


@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("operator, kernel, shape", CASES)
def test_matches_scipy_reference(operator, kernel, shape, absolute):
    a = smooth_images(shape, 0)
    b = a + 0.5 * smooth_images(shape, 1)
    ours = gradient_correlation(a, b, operator=operator, absolute=absolute).numpy()
    np.testing.assert_allclose(ours, reference_gc(a, b, kernel, absolute), atol=1e-5)


def test_absolute_form_is_the_authors_code_written_out():
    """NCC(|d_x a|, |d_x b|) and NCC(|d_y a|, |d_y b|) with [-1, 0, 1] and edge padding, averaged."""
    a = smooth_images((2, 20, 18, 1), 20)
    b = -3.0 * a + 0.8 * smooth_images((2, 20, 18, 1), 21)
    expected = []
    for ai, bi in zip(a[..., 0].astype(float), b[..., 0].astype(float)):
        parts = []
        for ga, gb in zip(replicate_padded_gradients(ai), replicate_padded_gradients(bi)):
            ga, gb = np.abs(ga).ravel(), np.abs(gb).ravel()
            parts.append(np.corrcoef(ga, gb)[0, 1])
        expected.append(np.mean(parts))
    np.testing.assert_allclose(gradient_correlation(a, b).numpy(), expected, atol=1e-5)


def test_default_form_is_the_authors():
    a = smooth_images((2, 16, 16, 1), 22)
    b = smooth_images((2, 16, 16, 1), 23)
    np.testing.assert_allclose(gradient_correlation(a, b).numpy(),
                               gradient_correlation(a, b, "central", absolute=True).numpy())
    assert not np.allclose(gradient_correlation(a, b).numpy(),
                           gradient_correlation(a, b, "central", absolute=False).numpy(), atol=1e-3)


def test_gradients_match_scipy():
    a = smooth_images((1, 12, 10, 1), 3)
    gx, gy = image_gradients(a, "sobel", "reflect")
    np.testing.assert_allclose(gx.numpy()[0, ..., 0], ndimage.correlate(a[0, ..., 0], SOBEL_X, mode="mirror"), atol=1e-5)
    np.testing.assert_allclose(gy.numpy()[0, ..., 0], ndimage.correlate(a[0, ..., 0], SOBEL_X.T, mode="mirror"), atol=1e-5)
    gx, gy = image_gradients(a)  # central differences, edge repeated
    hx, hy = replicate_padded_gradients(a[0, ..., 0].astype(float))
    np.testing.assert_allclose(gx.numpy()[0, ..., 0], hx, atol=1e-5)
    np.testing.assert_allclose(gy.numpy()[0, ..., 0], hy, atol=1e-5)


@pytest.mark.parametrize("operator", ["sobel", "central"])
def test_properties_signed(operator):
    x = smooth_images((4, 32, 32, 1), 5)
    y = smooth_images((4, 32, 32, 1), 6)
    np.testing.assert_allclose(gradient_correlation(x, x, operator, absolute=False).numpy(), 1.0, atol=1e-5)
    for a_, b_ in [(2.5, -0.3), (0.01, 7.0)]:
        np.testing.assert_allclose(gradient_correlation(x, a_ * x + b_, operator, absolute=False).numpy(), 1.0, atol=1e-4)
    np.testing.assert_allclose(gradient_correlation(x, -x, operator, absolute=False).numpy(), -1.0, atol=1e-5)
    xy = gradient_correlation(x, y, operator, absolute=False).numpy()
    np.testing.assert_allclose(xy, gradient_correlation(y, x, operator, absolute=False).numpy(), atol=1e-6)
    assert np.all(np.abs(xy) < 1)
    noise = np.random.default_rng(7).normal(size=(16, 32, 32, 1)).astype("float32")
    values = gradient_correlation(noise, noise[::-1], operator, absolute=False).numpy()
    assert np.all(values >= -1) and np.all(values <= 1)


@pytest.mark.parametrize("operator", ["sobel", "central"])
def test_properties_absolute(operator):
    """Polarity does not matter: GC_abs(x, a x + b) = 1 for every a != 0, negative a too."""
    x = smooth_images((4, 32, 32, 1), 5)
    y = smooth_images((4, 32, 32, 1), 6)
    np.testing.assert_allclose(gradient_correlation(x, x, operator).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(gradient_correlation(x, -x, operator).numpy(), 1.0, atol=1e-5)
    for a_, b_ in [(2.5, -0.3), (0.01, 7.0), (-4.0, 1.0), (-0.05, -2.0)]:
        np.testing.assert_allclose(gradient_correlation(x, a_ * x + b_, operator).numpy(), 1.0, atol=1e-4)
    xy = gradient_correlation(x, y, operator).numpy()
    np.testing.assert_allclose(xy, gradient_correlation(y, x, operator).numpy(), atol=1e-6)
    assert np.all(np.abs(xy) < 1)
    noise = np.random.default_rng(7).normal(size=(16, 32, 32, 1)).astype("float32")
    values = gradient_correlation(noise, noise[::-1], operator).numpy()
    assert np.all(values >= -1) and np.all(values <= 1)


def test_absolute_form_rewards_reversed_edges_that_the_signed_form_punishes():
    """A bright disc on dark (MR-like fat) against a dark disc on bright: an exact edge match, reversed."""
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 15.5) ** 2 + (xx - 13.0) ** 2 < 81).astype("float32")
    a, b = disc[None, ..., None], (1.0 - 2.0 * disc)[None, ..., None]
    assert gradient_correlation(a, b, absolute=False).numpy()[0] < -0.99
    assert gradient_correlation(a, b).numpy()[0] > 0.99


@pytest.mark.parametrize("absolute", [False, True])
def test_constant_images_are_finite_with_finite_gradients(absolute):
    constant = tf.zeros((2, 16, 16, 1))
    other = tf.constant(smooth_images((2, 16, 16, 1), 8))
    for a, b in [(constant, other), (other, constant + 3.0), (constant, constant)]:
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = gradient_consistency_loss(a, b, absolute=absolute)
        grads = tape.gradient(loss, [a, b])
        assert np.isfinite(loss.numpy())
        assert all(np.isfinite(g.numpy()).all() for g in grads)
    np.testing.assert_allclose(gradient_correlation(constant, other, absolute=absolute).numpy(), 0.0)


def test_loss_is_one_minus_mean_gc_and_keras_form():
    x = smooth_images((3, 16, 16, 1), 9)
    y = smooth_images((3, 16, 16, 1), 10)
    gc = gradient_correlation(x, y).numpy()
    np.testing.assert_allclose(gradient_consistency_loss(x, y).numpy(), np.mean(1 - gc), atol=1e-6)
    loss = GradientConsistencyLoss(operator="sobel", absolute=False)
    np.testing.assert_allclose(
        loss(x, y).numpy(), np.mean(1 - gradient_correlation(x, y, "sobel", absolute=False).numpy()), atol=1e-6
    )
    restored = GradientConsistencyLoss.from_config(loss.get_config())
    assert restored.operator == "sobel" and restored.absolute is False
    default = GradientConsistencyLoss()
    assert default.operator == "central" and default.absolute is True
    np.testing.assert_allclose(default(x, y).numpy(), np.mean(1 - gc), atol=1e-6)


@pytest.mark.parametrize("absolute", [False, True])
def test_loss_gradient_pulls_towards_consistency(absolute):
    """A few gradient steps on G(x) raise GC(x, G(x))."""
    x = tf.constant(smooth_images((1, 24, 24, 1), 11))
    y = tf.Variable(smooth_images((1, 24, 24, 1), 12))
    before = gradient_correlation(x, y, absolute=absolute).numpy()[0]
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = gradient_consistency_loss(x, y, absolute=absolute)
        y.assign_sub(5.0 * tape.gradient(loss, y))
    assert gradient_correlation(x, y, absolute=absolute).numpy()[0] > before + 0.1


def test_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        gradient_correlation(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 9, 1), "float32"))
    with pytest.raises(ValueError, match="batch, height, width, channels"):
        image_gradients(np.zeros((8, 8), "float32"))
    with pytest.raises(ValueError):
        gradient_correlation(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 8, 1), "float32"), "laplace")
    with pytest.raises(ValueError):
        image_gradients(np.zeros((1, 8, 8, 1), "float32"), "central", "wrap")


@pytest.mark.parametrize("operator", ["central", "sobel"])
@pytest.mark.parametrize("absolute", [True, False])
def test_evaluation_numpy_gc_agrees_with_the_loss(operator, absolute):
    """mr2ct.metrics' NumPy GC (evaluation) and the TensorFlow GC (the loss) on random images and phantom slices."""
    from mr2ct.data.phantom import generate_subject
    from mr2ct.metrics import gradient_correlation_2d

    subject = generate_subject(0, "small", seed=3)
    mr, ct = subject.mr.array.astype("float32"), subject.ct_on_mr_grid.array.astype("float32")
    rng = np.random.default_rng(24)
    pairs = [(mr[k], ct[k]) for k in range(mr.shape[0])]
    pairs += [(rng.normal(size=(23, 19)).astype("float32"), rng.normal(size=(23, 19)).astype("float32"))]
    for a, b in pairs:
        ours = gradient_correlation(a[None, ..., None], b[None, ..., None], operator, absolute).numpy()[0]
        assert ours == pytest.approx(gradient_correlation_2d(a, b, operator, absolute), abs=1e-5)
        assert ours == pytest.approx(reference_gc(a[None, ..., None], b[None, ..., None],
                                                  CENTRAL_X if operator == "central" else SOBEL_X, absolute)[0], abs=1e-5)


def test_phantom_mr_and_its_true_ct_agree_far_better_in_the_absolute_form():
    """The reason for the default: reversed edges lower the signed GC of an MR and its registered CT.

    (On small phantoms the body outline, of one polarity in both, keeps the
    signed form positive; on paper-size phantoms it is negative.)
    """
    from mr2ct.data.phantom import generate_subject
    from mr2ct.metrics import mean_slice_gradient_correlation

    for index in (0, 1):
        subject = generate_subject(index, "small", seed=0)
        mr, ct = subject.mr.array, subject.ct_on_mr_grid.array
        absolute = mean_slice_gradient_correlation(mr, ct, "central", absolute=True)
        signed = mean_slice_gradient_correlation(mr, ct, "central", absolute=False)
        assert absolute > 0.6 and absolute > signed + 0.25


def test_gradients_of_each_channel_are_its_own_and_the_gc_gradient_has_no_strided_slice():
    # channels are split by an unstack (gradient: a stack), not strided channel slices (StridedSliceGrad)
    a = smooth_images((2, 12, 10, 3), 13)
    gx, gy = image_gradients(a)
    for c in range(3):
        hx, hy = replicate_padded_gradients(a[1, ..., c].astype(float))
        np.testing.assert_allclose(gx.numpy()[1, ..., c], hx, atol=1e-5)
        np.testing.assert_allclose(gy.numpy()[1, ..., c], hy, atol=1e-5)

    @tf.function
    def gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(y)
            loss = gradient_consistency_loss(x, y)
        return tape.gradient(loss, y)

    spec = tf.TensorSpec((1, 12, 10, 1))
    op_types = {op.type for op in gradient.get_concrete_function(spec, spec).graph.get_operations()}
    assert "StridedSliceGrad" not in op_types
