"""Seconds per CycleGAN training iteration for the paper-size networks.

Prints, for 256x256 slices and batch 1, the median (and min and max) of the
wall time of one iteration (both generators and both discriminators
updated) after warm-up, and the achieved GFLOP/s, for float32 and bfloat16,
with and without XLA. It names the CPU (vendor, model and the flags that
decide its speed: avx512f, avx512_bf16, amx_bf16) and, per ``ValidConv2D``
shape, which gradient forms were used (``--gradient auto``, the default,
times TensorFlow's and ours at the first step and keeps the faster), and the
process's resident memory with the networks built and at its peak after the
steps (what a replica of that size needs, on CPU).

    python benchmarks/train_step.py [--iterations 10] [--size 256] [--filters 64] [--blocks 9]
        [--only fp32|bf16] [--no-xla] [--gradient auto|tensorflow|forward]

FLOPs are counted analytically from the layer shapes (2 FLOPs per
multiply-add; the backward pass counted as twice the forward pass).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mr2ct.models import CycleGAN, PatchDiscriminator, ResnetGenerator, ValidConv2D  # noqa: E402
from mr2ct.models.convolution import gradient_choices  # noqa: E402
from mr2ct.training.strategy import cpu_info  # noqa: E402


def conv_flops(model, size):
    """Forward FLOPs of the convolutions of ``model`` for one ``size`` x ``size`` image."""
    total = 0
    x = keras.KerasTensor((1, size, size, model.input_channels))
    # Trace shapes layer by layer through the model's stages.
    stack = list(model.stages)
    shape = x.shape
    for layer in stack:
        out = layer.compute_output_shape(shape)
        total += _layer_flops(layer, shape, out)
        shape = out
    return total


def _layer_flops(layer, in_shape, out_shape):
    if hasattr(layer, "stages"):  # residual block
        total, shape = 0, in_shape
        for sub in layer.stages:
            out = sub.compute_output_shape(shape)
            total += _layer_flops(sub, shape, out)
            shape = out
        return total
    if isinstance(layer, keras.layers.Conv2DTranspose):
        k = layer.kernel.shape  # (kh, kw, out, in)
        return 2 * k[0] * k[1] * k[2] * k[3] * in_shape[1] * in_shape[2]
    if isinstance(layer, keras.layers.Conv2D):
        k = layer.kernel.shape  # (kh, kw, in, out)
        return 2 * k[0] * k[1] * k[2] * k[3] * out_shape[1] * out_shape[2]
    return 0


def iteration_flops(g, d, size):
    """FLOPs of one CycleGAN iteration with batch 1.

    Generator step: 4 generator and 2 discriminator forwards, backward through
    all of them (2x). Discriminator step: 4 discriminator forwards and their
    backward (2x).
    """
    fg, fd = conv_flops(g, size), conv_flops(d, size)
    return 3 * (4 * fg + 2 * fd) + 3 * (4 * fd), fg, fd


def valid_conv_layers(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, ValidConv2D)]


def build_cycle_gan(precision, xla, size, filters, blocks, gradient="auto"):
    """A compiled CycleGAN of the given size and its ``train_step`` as a ``tf.function`` (not yet traced).

    Sets Keras' global dtype policy for ``precision``; the caller resets it.
    """
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    keras.utils.set_random_seed(0)
    model = CycleGAN(
        ResnetGenerator(filters=filters, num_blocks=blocks),
        ResnetGenerator(filters=filters, num_blocks=blocks),
        PatchDiscriminator(filters=filters),
        PatchDiscriminator(filters=filters),
        image_shape=(size, size, 1),
    )
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    for layer in valid_conv_layers(model):  # read when the step is traced
        layer.gradient = gradient
    return model, tf.function(model.train_step, jit_compile=xla)


def bench(precision, xla, size, filters, blocks, iterations, warmup, gradient="auto"):
    model, step = build_cycle_gan(precision, xla, size, filters, blocks, gradient)
    rng = np.random.default_rng(0)
    data = {
        "mr": tf.constant(rng.uniform(-1, 1, (1, size, size, 1)).astype("float32")),
        "ct": tf.constant(rng.uniform(-1, 1, (1, size, size, 1)).astype("float32")),
    }
    built = resident_gb()
    for _ in range(warmup):
        logs = step(data)
        float(logs["generator_loss"])
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        logs = step(data)
        float(logs["generator_loss"])  # wait for the step
        times.append(time.perf_counter() - t0)
    keras.mixed_precision.set_global_policy("float32")
    flops, fg, fd = iteration_flops(model.generator_mr_to_ct, model.discriminator_ct, size)
    print(f"  resident memory: {built:.2f} GB with the networks built, peak {peak_resident_gb():.2f} GB after "
          f"{warmup + iterations} steps", flush=True)
    return times, flops, fg, fd, model


def resident_gb() -> float:
    """This process's resident memory now, in GB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def peak_resident_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux: ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def print_gradient_choices(model, precision, xla):
    """Which gradient forms each ValidConv2D shape of this model used (those "auto" timed, with its times)."""
    dtype = "bfloat16" if precision == "bf16" else "float32"
    layers = valid_conv_layers(model)
    for choice in gradient_choices():
        if choice["dtype"] != dtype or choice["xla"] != xla:
            continue
        names = sorted({layer.name for layer in layers if list(layer.kernel.shape) == choice["kernel_shape"]})
        times = "; ".join(f"{half.split('_')[0]}: " + ", ".join(f"{form} {ms:.1f} ms" for form, ms in forms.items())
                          for half, forms in (choice["milliseconds"] or {}).items()) or choice.get("reason", "")
        print(f"  {'/'.join(names)} {tuple(choice['input_shape'])} {dtype}: input gradient {choice['input_gradient']}, "
              f"kernel gradient {choice['kernel_gradient']} ({times})", flush=True)


def cpu_line() -> str:
    """The CPU's vendor, model, core count and the flags that decide the step's speed, as one line."""
    cpu = cpu_info()
    flags = ", ".join(f"{flag} {'yes' if flag in cpu['flags'] else 'no'}" for flag in ("avx512f", "avx512_bf16",
                                                                                      "amx_bf16"))
    name = f"{cpu['vendor'] or 'unknown vendor'} {cpu['model'] or 'unknown model'}"
    return f"CPU: {name}, {os.cpu_count()} cores; {flags}"


def gemm_gflops(n=2048, repeats=5):
    """Achieved GFLOP/s of a large float32 matrix product: this machine's practical ceiling."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.reduce_sum(a @ b))
    matmul()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(matmul())
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--only", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA rows")
    parser.add_argument("--gradient", choices=["auto", "tensorflow", "forward"], default="auto",
                        help="the gradient form of the ValidConv2D layers (default: auto)")
    parser.add_argument("--inter-op", type=int, default=0,
                        help="TensorFlow's inter-op threads (independent ops run at once); 0: its default, one per "
                             "core")
    parser.add_argument("--intra-op", type=int, default=0,
                        help="TensorFlow's intra-op threads (threads within one op); 0: its default, one per core")
    args = parser.parse_args(argv)
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    print(cpu_line(), flush=True)

    print(f"CycleGAN iteration, {args.size}x{args.size}, batch 1, filters {args.filters}, "
          f"{args.blocks} blocks; {os.cpu_count()} CPU cores, TF {tf.__version__}; ValidConv2D gradient "
          f"{args.gradient}; threads inter-op {args.inter_op or 'default'}, intra-op {args.intra_op or 'default'}",
          flush=True)
    print(f"float32 GEMM ceiling on this machine: {gemm_gflops():.0f} GFLOP/s", flush=True)
    header = False
    for precision in ["fp32", "bf16"]:
        if args.only and precision != args.only:
            continue
        for xla in [False] if args.no_xla else [False, True]:
            times, flops, fg, fd, model = bench(precision, xla, args.size, args.filters, args.blocks, args.iterations,
                                                args.warmup, args.gradient)
            if not header:
                print(f"generator forward {fg / 1e9:.1f} GFLOP, discriminator forward {fd / 1e9:.1f} GFLOP, "
                      f"iteration {flops / 1e9:.0f} GFLOP")
                print(f"{'precision':<10}{'xla':<6}{'median s':>10}{'min s':>9}{'max s':>9}{'GFLOP/s':>10}")
                header = True
            med = statistics.median(times)
            print(f"{precision:<10}{str(xla):<6}{med:>10.3f}{min(times):>9.3f}{max(times):>9.3f}"
                  f"{flops / med / 1e9:>10.1f}", flush=True)
            if args.gradient == "auto":
                print_gradient_choices(model, precision, xla)


if __name__ == "__main__":
    main()
