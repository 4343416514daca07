import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import LeakyReLU

# A tiny CycleGAN's train step, traced and run once with TensorFlow's C++ log on: grappler's errors go to stderr.
TRAIN_STEP = """
import keras, numpy as np, tensorflow as tf
from mr2ct.models import CycleGAN, PatchDiscriminator, ResnetGenerator
keras.mixed_precision.set_global_policy({policy!r})
model = CycleGAN(ResnetGenerator(filters=4, num_blocks=1), ResnetGenerator(filters=4, num_blocks=1),
                 PatchDiscriminator(filters=4), PatchDiscriminator(filters=4), image_shape=(32, 32, 1))
model.compile(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4))
batch = {{k: tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 1)).astype("float32"))
         for k in ("mr", "ct")}}
print(float(tf.function(model.train_step)(batch)["generator_loss"]))
"""


def _values_and_gradient(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(upstream, y.dtype)).numpy()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0])
def test_values_and_gradient_equal_keras(dtype, slope):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 7, 3)).astype("float32")
    x[0, 0, :, 0] = 0.0  # the kink: both give the negative side's slope at exactly 0
    x = tf.cast(x, dtype).numpy()
    upstream = rng.normal(size=x.shape).astype("float32")
    ours = _values_and_gradient(LeakyReLU(slope, dtype=dtype), x, upstream)
    theirs = _values_and_gradient(keras.layers.LeakyReLU(slope, dtype=dtype), x, upstream)
    for a, b, what in zip(ours, theirs, ("values", "gradient")):
        assert a.dtype == b.dtype, what
        np.testing.assert_array_equal(a, b, err_msg=what)


def test_config_round_trip_and_bad_slope():
    layer = LeakyReLU(0.2, name="act")
    again = LeakyReLU.from_config(layer.get_config())
    assert again.negative_slope == 0.2 and again.name == "act"
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-0.1)
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(1.5)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_cycle_gan_step_passes_grappler_remapper(policy):
    """The CycleGAN step's graph goes through grappler's remapper without an error.

    With Keras' LeakyReLU after the PatchGAN's biased first convolution, TensorFlow 2.21 (oneDNN on) logs
    "remapper failed: ... Mutation::Apply error: fanout '.../LeakyReluGrad' exist for missing node
    '.../BiasAdd'" and runs the step with no remapper fusion at all.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    done = subprocess.run([sys.executable, "-c", TRAIN_STEP.format(policy=policy)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    assert np.isfinite(float(done.stdout.strip().splitlines()[-1]))
    failures = [line for line in done.stderr.splitlines() if "optimizer" in line and " failed" in line]
    assert not failures, "\n".join(failures)
