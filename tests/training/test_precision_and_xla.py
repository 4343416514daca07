"""A few training steps in bfloat16, float16 with loss scaling, and XLA, on CPU."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.config import preset
from mr2ct.training import builders
from mr2ct.training.strategy import set_precision


def data(size, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "mr": tf.constant(rng.uniform(-1, 1, (2, size, size, 1)).astype("float32")),
        "ct": tf.constant(rng.uniform(-1, 1, (2, size, size, 1)).astype("float32")),
    }


@pytest.mark.parametrize(
    "precision, xla, compute_dtype",
    [("bfloat16", False, "bfloat16"), ("float16", False, "float16"), ("off", True, "float32")],
)
def test_steps_are_finite_and_learn(precision, xla, compute_dtype):
    config = preset("tiny").override([f"runtime.mixed_precision={precision}"])
    policy = set_precision(config.runtime.mixed_precision)
    try:
        keras.utils.set_random_seed(0)
        model = builders.build_cyclegan(config)
        model.compile(
            builders.build_adam(config, policy, "g"), builders.build_adam(config, policy, "d")
        )
        g = model.generator_mr_to_ct
        assert g.get_layer("stem_conv").compute_dtype == compute_dtype
        assert g.get_layer("stem_conv").kernel.dtype == "float32"  # master weights stay float32
        if precision == "float16":
            assert isinstance(model.generator_optimizer, keras.optimizers.LossScaleOptimizer)
        step = tf.function(model.train_step, jit_compile=xla)
        before = g.get_layer("stem_conv").kernel.numpy().copy()
        # float16: dynamic loss scaling starts at 2**15 and skips the steps whose gradients overflow
        # while it halves the scale; with N(0, 0.02) kernels the tiny networks' first gradients are
        # large, so the first few steps are skipped. Eight steps, then the kernel must have moved.
        for i in range(8 if precision == "float16" else 3):
            logs = step(data(config.data.image_size, i))
        assert all(np.isfinite(float(v)) for v in logs.values())
        assert not np.allclose(before, g.get_layer("stem_conv").kernel.numpy())
        if precision == "float16":
            assert float(model.generator_optimizer.dynamic_scale) < 2.0**15
        assert model(data(config.data.image_size)["mr"]).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
