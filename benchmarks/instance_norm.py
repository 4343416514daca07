"""Milliseconds per instance normalization, forward and backward: the forms mr2ct uses against autodiff.

For the feature-map shapes of the cpu preset's generator (160x160 slices, 24
filters) and of the paper's (256x256, 64 filters), in float32 and bfloat16,
prints the median over ``--iterations`` of one forward pass plus the gradient
for ``tf.nn.moments`` differentiated by TensorFlow, for `instance_normalize`
(two passes, closed-form gradient: what inference and batches of several
images use) and for `fused_instance_normalize` (TensorFlow's fused batch-norm
kernel: what training on one image uses), with the largest difference of the
fused form's values and gradients from the closed form's.

    python benchmarks/instance_norm.py [--iterations 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from mr2ct.models.normalization import fused_instance_normalize, instance_normalize  # noqa: E402

SHAPES = [(1, 160, 160, 24), (1, 80, 80, 48), (1, 40, 40, 96), (1, 256, 256, 64), (1, 64, 64, 256)]


def moments_form(x, epsilon=1e-5):
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, [1, 2], keepdims=True)
    return tf.cast((x32 - mean) * tf.math.rsqrt(variance + epsilon), x.dtype)


def closed_form(x, epsilon=1e-5):
    return tf.cast(instance_normalize(tf.cast(x, tf.float32), [1, 2], epsilon), x.dtype)


def fused_form(x, epsilon=1e-5):
    return fused_instance_normalize(x, epsilon)


def time_pass(norm, x, weights, iterations):
    @tf.function
    def step(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = norm(v)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        return y, tape.gradient(loss, v)

    step(x)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step(x)[1].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, step(x)


def max_difference(a, b):
    return float(tf.reduce_max(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    print(f"{'dtype':<10}{'shape':<20}{'moments [ms]':>14}{'closed [ms]':>13}{'fused [ms]':>12}"
          f"{'fused/closed':>14}{'max |dy|':>11}{'max |dx|':>11}")
    for dtype in (tf.float32, tf.bfloat16):
        for shape in SHAPES:
            x = tf.cast(tf.random.stateless_normal(shape, seed=(0, 1)) * 3.0 + 1.0, dtype)
            weights = tf.random.stateless_normal(shape, seed=(0, 2))
            t_moments, _ = time_pass(moments_form, x, weights, args.iterations)
            t_closed, (y_closed, g_closed) = time_pass(closed_form, x, weights, args.iterations)
            t_fused, (y_fused, g_fused) = time_pass(fused_form, x, weights, args.iterations)
            print(f"{dtype.name:<10}{str(shape):<20}{t_moments:>14.2f}{t_closed:>13.2f}{t_fused:>12.2f}"
                  f"{t_fused / t_closed:>13.2f}x{max_difference(y_fused, y_closed):>11.1e}"
                  f"{max_difference(g_fused, g_closed):>11.1e}", flush=True)


if __name__ == "__main__":
    main()
