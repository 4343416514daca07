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


@pytest.mark.parametrize("shape", [(3, 6, 5, 4), (1, 16, 16, 2)])
def test_instance_norm_gradient_matches_the_moments_form(shape):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(3.0, 2.0, shape).astype("float32"))
    weights = tf.constant(rng.normal(size=shape).astype("float32"))

    def elementwise(v):
        mean, var = tf.nn.moments(v, axes=[1, 2], keepdims=True)
        return (v - mean) * tf.math.rsqrt(var + 1e-5)

    grads = []
    for norm in (InstanceNormalization(), elementwise):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(norm(x) * weights)
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)
    # images of a batch do not share statistics: changing one leaves the others' outputs as they were
    y = InstanceNormalization()(x).numpy()
    y2 = InstanceNormalization()(tf.concat([x[:1] * 5.0 + 2.0, x[1:]], 0)).numpy()
    np.testing.assert_allclose(y[1:], y2[1:], atol=1e-6)


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
