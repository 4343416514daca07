import keras
import numpy as np
import pytest

from mr2ct.models import InstanceNormalization, ReflectionPadding2D


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 5, 7, 1)])
def test_instance_norm_matches_keras_group_norm(shape):
    x = np.random.default_rng(0).normal(3.0, 2.0, shape).astype("float32")
    ours = InstanceNormalization()(x).numpy()
    keras_gn = keras.layers.GroupNormalization(groups=-1, center=False, scale=False, epsilon=1e-5)
    np.testing.assert_allclose(ours, keras_gn(x).numpy(), atol=1e-5)
    # and with NumPy directly
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(ours, (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def _moments_form(v, axes):
    import tensorflow as tf

    mean, var = tf.nn.moments(v, axes=axes, keepdims=True)
    return (v - mean) * tf.math.rsqrt(var + 1e-5)


@pytest.mark.parametrize("shape", [(3, 6, 5, 4), (1, 16, 16, 2)])
def test_instance_norm_gradient_matches_the_moments_form(shape):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(3.0, 2.0, shape).astype("float32"))
    weights = tf.constant(rng.normal(size=shape).astype("float32"))

    grads = []
    for norm in (InstanceNormalization(), lambda v: _moments_form(v, [1, 2])):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(norm(x) * weights)
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)
    # images of a batch do not share statistics: changing one leaves the others' outputs as they were
    y = InstanceNormalization()(x).numpy()
    y2 = InstanceNormalization()(tf.concat([x[:1] * 5.0 + 2.0, x[1:]], 0)).numpy()
    np.testing.assert_allclose(y[1:], y2[1:], atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 6, 5, 3), (1, 4, 5, 3, 2)])
def test_instance_norm_closed_form_gradient_with_scale_offset_and_volumes(shape):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(-1.0, 4.0, shape).astype("float32"))
    weights = tf.constant(rng.normal(size=shape).astype("float32"))
    axes = list(range(1, len(shape) - 1))
    layer = InstanceNormalization(center=True, scale=True)
    layer.build(shape)
    layer.gamma.assign(rng.uniform(0.5, 2.0, shape[-1]).astype("float32"))
    layer.beta.assign(rng.normal(size=shape[-1]).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = tf.reduce_sum(layer(x) * weights)
        reference = tf.reduce_sum((_moments_form(x, axes) * layer.gamma + layer.beta) * weights)
    ours_grads = tape.gradient(ours, [x, layer.gamma, layer.beta])
    for ours_grad, reference_grad in zip(ours_grads, tape.gradient(reference, [x, layer.gamma, layer.beta])):
        np.testing.assert_allclose(ours_grad.numpy(), reference_grad.numpy(), rtol=1e-4, atol=1e-5)
    # the gradient is a real function of the input: a different image gives a different gradient
    with tf.GradientTape() as other_tape:
        other_tape.watch(x)
        other = tf.reduce_sum(layer(x * x) * weights)
    assert not np.allclose(other_tape.gradient(other, x).numpy(), ours_grads[0].numpy(), atol=1e-3)


def test_instance_norm_of_a_constant_image_equals_the_moments_form_exactly():
    # An empty slice: the forward pass must be the moments form to the last bit (a fused kernel's
    # round-off here, times 1/sqrt(epsilon), changed exported predictions), and its gradient finite.
    import tensorflow as tf

    x = tf.concat([tf.fill((1, 9, 7, 3), 0.7), tf.fill((1, 9, 7, 3), -1234.5)], 0)
    np.testing.assert_array_equal(InstanceNormalization()(x).numpy(), _moments_form(x, [1, 2]).numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(InstanceNormalization()(x) * tf.range(3, dtype="float32"))
    assert np.isfinite(tape.gradient(loss, x).numpy()).all()


def test_instance_norm_gradient_under_xla():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(4).normal(2.0, 3.0, (2, 8, 8, 4)).astype("float32"))
    layer = InstanceNormalization()

    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(tf.square(layer(v) - 0.5))
        return tape.gradient(loss, v)

    np.testing.assert_allclose(tf.function(gradient, jit_compile=True)(x).numpy(), gradient(x).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_instance_norm_of_volumes_normalizes_over_all_spatial_axes():
    x = np.random.default_rng(2).normal(1.0, 3.0, (2, 4, 5, 6, 3)).astype("float32")
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(InstanceNormalization()(x).numpy(), (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def test_instance_norm_weights_and_config():
    assert InstanceNormalization()(np.zeros((1, 4, 4, 2), "float32")) is not None
    layer = InstanceNormalization(center=True, scale=True)
    layer.build((None, 4, 4, 2))
    assert len(layer.weights) == 2
    assert InstanceNormalization.from_config(layer.get_config()).get_config() == layer.get_config()
    assert len(InstanceNormalization().weights) == 0
    with pytest.raises(ValueError, match="epsilon"):
        InstanceNormalization(epsilon=0)


def test_instance_norm_in_bfloat16_keeps_compute_dtype():
    layer = InstanceNormalization(dtype="mixed_bfloat16")
    y = layer(np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype("float32"))
    assert y.dtype == "bfloat16"


def test_reflection_padding_matches_numpy():
    x = np.arange(2 * 4 * 5 * 1, dtype="float32").reshape(2, 4, 5, 1)
    y = ReflectionPadding2D(2)(x).numpy()
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))
    assert ReflectionPadding2D(2).compute_output_shape((None, 4, None, 1)) == (None, 8, None, 1)
    with pytest.raises(ValueError, match="padding"):
        ReflectionPadding2D(-1)


@pytest.mark.parametrize("cropping", [((1, 0), (1, 0)), ((0, 2), (3, 1))])
def test_crop2d_equals_keras_cropping_in_values_and_gradient(cropping):
    import tensorflow as tf

    from mr2ct.models import Crop2D

    rng = np.random.default_rng(9)
    x = tf.constant(rng.normal(size=(2, 9, 8, 3)).astype("float32"))
    ours, theirs = Crop2D(cropping), keras.layers.Cropping2D(cropping)
    np.testing.assert_array_equal(ours(x).numpy(), theirs(x).numpy())
    weights = tf.constant(rng.normal(size=theirs(x).shape).astype("float32"))
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weights)
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert ours.compute_output_shape((None, 9, None, 3)) == theirs.compute_output_shape((None, 9, None, 3))
    assert Crop2D.from_config(ours.get_config()).cropping == ours.cropping


def test_crop2d_gradient_has_no_strided_slice_and_bad_cropping_is_refused():
    import tensorflow as tf

    from mr2ct.models import Crop2D

    layer = Crop2D(((1, 0), (1, 0)))

    @tf.function
    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v))
        return tape.gradient(loss, v)

    ops_run = {op.type for op in gradient.get_concrete_function(tf.TensorSpec((1, 5, 5, 2))).graph.get_operations()}
    assert "StridedSliceGrad" not in ops_run and "Pad" in ops_run
    for bad in [((1, 0),), ((-1, 0), (0, 0)), ((0.5, 0), (0, 0)), "top"]:
        with pytest.raises(ValueError, match="cropping"):
            Crop2D(bad)
