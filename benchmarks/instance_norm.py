"""Milliseconds per instance normalization, forward and backward, against the autodiffed moments form.

For the feature-map shapes of the cpu preset's generator (160x160 slices,
24 filters), prints the median over ``--iterations`` of one forward pass plus
the gradient for ``mr2ct``'s `instance_normalize` (closed-form gradient) and
for ``tf.nn.moments`` differentiated by TensorFlow, and the largest
difference of their values and gradients.

    python benchmarks/instance_norm.py [--iterations 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from mr2ct.models.normalization import instance_normalize  # noqa: E402


def moments_form(x, axes, epsilon=1e-5):
    mean, variance = tf.nn.moments(x, axes, keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon)


def closed_form(x, axes, epsilon=1e-5):
    return instance_normalize(x, axes, epsilon)


def time_pass(norm, x, weights, iterations):
    @tf.function
    def step(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = norm(v, [1, 2])
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, v)

    step(x)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step(x)[1].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, step(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    print(f"{'shape':<22}{'moments [ms]':>14}{'closed form [ms]':>18}{'speed-up':>10}{'max |dy|':>11}{'max |dx|':>11}")
    for shape in [(1, 160, 160, 24), (1, 80, 80, 48), (1, 40, 40, 96)]:
        x = tf.random.stateless_normal(shape, seed=(0, 1)) * 3.0 + 1.0
        weights = tf.random.stateless_normal(shape, seed=(0, 2))
        t_ref, (y_ref, g_ref) = time_pass(moments_form, x, weights, args.iterations)
        t_ours, (y, g) = time_pass(closed_form, x, weights, args.iterations)
        dy = float(tf.reduce_max(tf.abs(y - y_ref)))
        dx = float(tf.reduce_max(tf.abs(g - g_ref)))
        print(f"{str(shape):<22}{t_ref:>14.2f}{t_ours:>18.2f}{t_ref / t_ours:>9.2f}x{dy:>11.1e}{dx:>11.1e}")


if __name__ == "__main__":
    main()
