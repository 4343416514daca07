"""Forward and backward time of the ResNet generator's unpadded stride-1 convolutions, by gradient form.

For each convolution shape of the ``cpu`` and ``paper`` generators (the 7x7
stem and head, a 3x3 residual convolution), the time of the forward pass
alone, and of forward plus both gradients (input and kernel) as
:func:`mr2ct.models.valid_conv2d` computes them with ``gradient=
"tensorflow"`` (TensorFlow's own ``Conv2DBackpropInput`` /
``Conv2DBackpropFilter``), ``"forward"`` (a forward convolution and matrix
products) and ``"auto"`` (for each gradient the faster of the two, timed on
first use), with the largest difference from TensorFlow's gradients and the
forms ``"auto"`` chose (and the times it measured for each gradient). The
three are called in turn (A, B, C, A, B, C, ...), so a slower period of a
shared machine falls on all of them; median of ``--iterations`` calls of a
``tf.function`` after two warm-up calls.

    python benchmarks/convolution.py [--iterations 10] [--only head]

prints a table; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from mr2ct.models.convolution import gradient_choices, valid_conv2d  # noqa: E402
from mr2ct.training.strategy import cpu_info  # noqa: E402

# name, batch, padded side, in channels, out channels, kernel
SHAPES = [
    ("cpu stem 7x7, 1 -> 24", 1, 166, 1, 24, 7),
    ("cpu head 7x7, 24 -> 1", 1, 166, 24, 1, 7),
    ("cpu residual 3x3, 96 -> 96", 1, 42, 96, 96, 3),
    ("paper stem 7x7, 1 -> 64", 1, 262, 1, 64, 7),
    ("paper head 7x7, 64 -> 1", 1, 262, 64, 1, 7),
    ("paper residual 3x3, 256 -> 256", 1, 66, 256, 256, 3),
]
GRADIENTS = ["tensorflow", "forward", "auto"]


def medians_ms(functions, iterations):
    """Median milliseconds of each of ``functions``, called in turn, after two warm-up calls of each."""
    for function in functions:
        function()
        function()
    times = [[] for _ in functions]
    for _ in range(iterations):
        for function, t in zip(functions, times):
            t0 = time.perf_counter()
            function()
            t.append(time.perf_counter() - t0)
    return [1000 * statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--only", default="", help="only the shapes whose name contains this text")
    args = parser.parse_args(argv)

    cpu = cpu_info()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, {cpu['vendor']} {cpu['model']} "
          f"(flags: {', '.join(cpu['important_flags']) or 'none of avx512f, avx512_bf16, amx_bf16'}); "
          f"milliseconds, median of {args.iterations}")
    print()
    print("| convolution | forward | + TF gradients | + forward/matmul | + auto | auto: input, kernel gradient "
          "| max gradient difference |")
    print("|---|---|---|---|---|---|---|")
    for name, batch, side, cin, cout, size in SHAPES:
        if args.only not in name:
            continue
        x = tf.random.uniform((batch, side, side, cin))
        kernel = tf.random.normal((size, size, cin, cout), stddev=0.02)
        upstream = tf.random.normal((batch, side - size + 1, side - size + 1, cout))

        def with_gradients(gradient):
            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch([x, kernel])
                    y = valid_conv2d(x, kernel, gradient=gradient)
                return tape.gradient(y, [x, kernel], output_gradients=upstream)

            return run

        runs = [with_gradients(gradient) for gradient in GRADIENTS]
        forward = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "VALID"))
        reference = runs[0]()
        difference = max(
            float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
            for run in runs[1:] for a, b in zip(reference, run())
        )
        times = medians_ms([forward] + runs, args.iterations)
        choice = next(c for c in gradient_choices() if c["input_shape"] == list(x.shape))
        measured = "; ".join(f"{half.split('_')[0]} " + " / ".join(f"{form} {ms:.1f}" for form, ms in forms.items())
                             for half, forms in choice["milliseconds"].items())
        print(f"| {name} | " + " | ".join(f"{t:.1f}" for t in times)
              + f" | {choice['input_gradient']}, {choice['kernel_gradient']} ({measured}) "
              f"| {difference:.1e} (relative) |", flush=True)


if __name__ == "__main__":
    main()
