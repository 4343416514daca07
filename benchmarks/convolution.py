"""Forward and backward time of the ResNet generator's unpadded stride-1 convolutions: TensorFlow's gradient or ours.

For each convolution shape of the ``cpu`` and ``paper`` generators (the 7x7
stem and head, a 3x3 residual convolution), the time of the forward pass
alone, and of forward plus both gradients (input and kernel) computed by
TensorFlow's own ``Conv2DBackpropInput`` / ``Conv2DBackpropFilter`` and by
:func:`mr2ct.models.valid_conv2d` (forward convolutions), with the largest
difference between the two gradients. Median of ``--iterations`` calls of
a ``tf.function`` after two warm-up calls.

    python benchmarks/convolution.py [--iterations 10]

prints a table; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from mr2ct.models import valid_conv2d  # noqa: E402

# name, batch, padded side, in channels, out channels, kernel
SHAPES = [
    ("cpu stem 7x7, 1 -> 24", 1, 166, 1, 24, 7),
    ("cpu head 7x7, 24 -> 1", 1, 166, 24, 1, 7),
    ("cpu residual 3x3, 96 -> 96", 1, 42, 96, 96, 3),
    ("paper stem 7x7, 1 -> 64", 1, 262, 1, 64, 7),
    ("paper head 7x7, 64 -> 1", 1, 262, 64, 1, 7),
    ("paper residual 3x3, 256 -> 256", 1, 66, 256, 256, 3),
]


def median_ms(fn, iterations):
    fn()
    fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores; milliseconds, median of {args.iterations}")
    print()
    print("| convolution | forward | forward + TF gradients | forward + ours | speed-up | max gradient difference |")
    print("|---|---|---|---|---|---|")
    for name, batch, side, cin, cout, size in SHAPES:
        x = tf.random.uniform((batch, side, side, cin))
        kernel = tf.random.normal((size, size, cin, cout), stddev=0.02)
        upstream = tf.random.normal((batch, side - size + 1, side - size + 1, cout))

        def with_gradients(conv):
            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch([x, kernel])
                    y = conv(x, kernel)
                return tape.gradient(y, [x, kernel], output_gradients=upstream)

            return run

        theirs = with_gradients(lambda a, k: tf.nn.conv2d(a, k, 1, "VALID"))
        ours = with_gradients(valid_conv2d)
        forward = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "VALID"))
        difference = max(
            float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))) for a, b in zip(theirs(), ours())
        )
        t_forward = median_ms(forward, args.iterations)
        t_theirs = median_ms(theirs, args.iterations)
        t_ours = median_ms(ours, args.iterations)
        print(f"| {name} | {t_forward:.1f} | {t_theirs:.1f} | {t_ours:.1f} | {t_theirs / t_ours:.1f}x "
              f"| {difference:.1e} (relative) |")


if __name__ == "__main__":
    main()
