import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import ResnetGenerator, ValidConv2D, valid_conv2d

# (batch, height, width, in_channels, out_channels, kernel)
CASES = [
    (1, 12, 12, 3, 1, 7),  # the generator's head: many channels to one
    (1, 13, 10, 1, 4, 7),  # the stem: one channel to many, not square
    (2, 9, 9, 5, 5, 3),  # residual convolutions, a batch of two
    (3, 6, 7, 2, 3, 1),  # 1x1
]


def _pair(case, seed=0):
    batch, height, width, cin, cout, size = case
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch, height, width, cin)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(size, size, cin, cout)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(batch, height - size + 1, width - size + 1, cout)).astype("float32"))
    return x, kernel, upstream


def _values_and_gradients_tensors(conv, x, kernel, upstream):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = conv(x, kernel)
    return [y] + tape.gradient(y, [x, kernel], output_gradients=upstream)


def _values_and_gradients(conv, x, kernel, upstream):
    return [t.numpy() for t in _values_and_gradients_tensors(conv, x, kernel, upstream)]


@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_equal_tensorflows(case):
    x, kernel, upstream = _pair(case)
    ours = _values_and_gradients(valid_conv2d, x, kernel, upstream)
    reference = _values_and_gradients(lambda a, k: tf.nn.conv2d(a, k, 1, "VALID"), x, kernel, upstream)
    for a, b, what in zip(ours, reference, ("values", "input gradient", "kernel gradient")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=what)


def test_gradients_equal_a_finite_difference():
    x, kernel, upstream = _pair((1, 6, 6, 2, 1, 3), seed=3)
    _, dx, dk = _values_and_gradients(valid_conv2d, x, kernel, upstream)
    loss = lambda a, k: float(tf.reduce_sum(valid_conv2d(a, k) * upstream))  # noqa: E731
    eps = 1e-2
    for index in [(0, 2, 3, 1), (0, 0, 5, 0)]:
        bump = tf.tensor_scatter_nd_update(tf.zeros_like(x), [index], [eps])
        assert (loss(x + bump, kernel) - loss(x - bump, kernel)) / (2 * eps) == pytest.approx(dx[index], abs=1e-2)
    for index in [(1, 2, 0, 0), (0, 0, 1, 0)]:
        bump = tf.tensor_scatter_nd_update(tf.zeros_like(kernel), [index], [eps])
        assert (loss(x, kernel + bump) - loss(x, kernel - bump)) / (2 * eps) == pytest.approx(dk[index], abs=1e-2)


def test_gradients_under_xla_equal_eager():
    x, kernel, upstream = _pair(CASES[0])
    eager = _values_and_gradients(valid_conv2d, x, kernel, upstream)
    compiled = tf.function(lambda a, k, u: _values_and_gradients_tensors(valid_conv2d, a, k, u), jit_compile=True)(
        x, kernel, upstream)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)


def test_layer_equals_keras_conv2d_with_the_same_weights():
    x, _, _ = _pair((2, 11, 11, 3, 4, 3))
    ours = ValidConv2D(4, 3, name="conv")
    theirs = keras.layers.Conv2D(4, 3, name="conv")
    ours.build(x.shape)
    theirs.build(x.shape)
    assert [(v.path, tuple(v.shape)) for v in ours.weights] == [(v.path, tuple(v.shape)) for v in theirs.weights]
    theirs.set_weights(ours.get_weights())
    weights = tf.constant(np.random.default_rng(5).normal(size=(2, 9, 9, 4)).astype("float32"))
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * weights)
        grads.append([g.numpy() for g in tape.gradient(loss, layer.trainable_variables)])
    np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"strides": 2}, {"padding": "same"}, {"dilation_rate": 2}, {"groups": 2}, {"data_format": "channels_first"}]
)
def test_layer_refuses_other_convolutions(kwargs):
    with pytest.raises(ValueError, match="ValidConv2D needs"):
        ValidConv2D(4, 3, **kwargs)


def test_layer_round_trips_its_config():
    layer = ValidConv2D(6, 5, use_bias=False, name="c")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is ValidConv2D
    assert clone.get_config() == layer.get_config()


def test_generator_trains_through_it_under_float16():
    """Mixed precision hands the op float16 inputs and kernels; its gradients must come back finite."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        generator = ResnetGenerator(filters=4, num_blocks=1)
        x = tf.random.uniform((1, 16, 16, 1), -1, 1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(generator(x, training=True)))
        grads = tape.gradient(loss, generator.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(g is not None and bool(tf.reduce_all(tf.math.is_finite(tf.cast(g, tf.float32)))) for g in grads)
    assert any(isinstance(layer, ValidConv2D) for layer in generator._flatten_layers())
