"""Milliseconds of one instance normalization, forward and backward: element-wise ops against the fused kernel.

The generator and discriminator normalize every feature map; on CPU the
element-wise form (moments, subtract, scale, and the autodiff chain behind
them) was about a third of a CycleGAN step. mr2ct's InstanceNormalization
uses TensorFlow's fused batch-norm kernel instead. Prints, for the feature
maps of the ``cpu`` preset's generator (160x160 slices, 24 filters), the
median time of forward + backward of both forms and their largest
difference.

    python benchmarks/instance_norm.py [--size 160] [--filters 24] [--batch 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mr2ct.models import InstanceNormalization  # noqa: E402


def elementwise(x, epsilon=1e-5):
    """Instance normalization from element-wise ops (the form before the fused kernel)."""
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon)


def forward_backward(norm, x, weights):
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(x)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, x)

    return run


def median_ms(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--filters", type=int, default=24)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"instance normalization, forward + backward, batch {args.batch}; "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}")
    print(f"{'feature map':>18} {'element-wise ms':>16} {'fused ms':>9} {'speed-up':>9} {'max |diff|':>11}")
    for level in range(3):
        size, channels = args.size // 2**level, args.filters * 2**level
        shape = (args.batch, size, size, channels)
        x = tf.constant(rng.normal(1.0, 3.0, shape).astype("float32"))
        weights = tf.constant(rng.normal(size=shape).astype("float32"))
        slow = forward_backward(elementwise, x, weights)
        fast = forward_backward(InstanceNormalization(), x, weights)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(slow(), fast()))
        a, b = median_ms(slow, args.repeats), median_ms(fast, args.repeats)
        print(f"{'x'.join(map(str, shape[1:])):>18} {a:16.2f} {b:9.2f} {a / b:8.1f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
