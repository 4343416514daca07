"""Seconds per U-Net training step through synthesis: G_MR run at every step against read from the cache.

Builds the networks of a preset (default ``cpu``: 160x160 slices, the U-Net of
its ``segmentation`` section behind its CT->MR generator) on random slices and
times ``SynthesisSegmenter.train_step`` two ways, alternating:

* ``generator``: the batch holds CT and labels; G_MR(CT) is computed in the step
  (mr2ct before the synthesized-MR cache);
* ``cached``: the batch also holds the synthesized MR, as the cache gives it.

Then it times the one-off synthesis of ``--slices`` CT slices in batches of 16,
what the cache costs once per segmentation run.

    python benchmarks/segmentation_step.py [--preset cpu] [--iterations 20] [--rounds 3] [--slices 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from mr2ct.config import preset  # noqa: E402
from mr2ct.labels import NUM_CLASSES  # noqa: E402
from mr2ct.models import SynthesisSegmenter  # noqa: E402
from mr2ct.training import builders  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--iterations", type=int, default=20, help="steps timed per round and form")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both forms")
    parser.add_argument("--slices", type=int, default=400, help="CT slices synthesized once for the cache timing")
    args = parser.parse_args()

    config = preset(args.preset)
    size, batch = config.data.image_size, config.segmentation.batch_size
    keras.utils.set_random_seed(0)
    generator = builders.build_generator(config, "generator_ct_to_mr")
    model = SynthesisSegmenter(builders.build_unet(config, NUM_CLASSES), generator,
                               dice_weight=config.segmentation.dice_weight,
                               dice_classes=config.segmentation.dice_classes)
    model.compile(optimizer=keras.optimizers.Adam(config.segmentation.learning_rate))
    ct = tf.random.uniform((batch, size, size, 1), -1.0, 1.0, seed=1)
    labels = tf.random.uniform((batch, size, size), 0, NUM_CLASSES, tf.int32, seed=2)
    synthesized = generator(ct, training=False)
    batches = {"generator": {"image": ct, "label": labels},
               "cached": {"image": ct, "label": labels, "synthesized": synthesized}}
    steps = {name: tf.function(model.train_step) for name in batches}
    for name, data in batches.items():  # trace and warm up
        steps[name](data)
    times = {name: [] for name in batches}
    for _ in range(args.rounds):
        for name, data in batches.items():
            start = time.perf_counter()
            for _ in range(args.iterations):
                out = steps[name](data)
            float(out["loss"])
            times[name].append((time.perf_counter() - start) / args.iterations)

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; TensorFlow {tf.__version__}")
    print(f"preset {args.preset}: {size}x{size} slices, batch {batch}, U-Net filters {config.segmentation.filters} "
          f"depth {config.segmentation.depth}, generator filters {config.model.generator_filters} "
          f"blocks {config.model.generator_blocks}")
    print(f"{'U-Net step':<22}{'median [s]':>12}{'rounds [s]':>30}")
    for name, values in times.items():
        print(f"{name:<22}{statistics.median(values):>12.3f}{'  '.join(f'{v:.3f}' for v in values):>30}")
    print(f"speed-up of the cached step: {statistics.median(times['generator']) / statistics.median(times['cached']):.2f}x")

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)])
    def synthesize(x):
        return generator(x, training=False)

    synthesize(ct[:1])
    slices = tf.random.uniform((args.slices, size, size, 1), -1.0, 1.0, seed=3)
    start = time.perf_counter()
    for i in range(0, args.slices, 16):
        synthesize(slices[i : i + 16]).numpy()
    print(f"one-off synthesis of {args.slices} slices (batches of 16): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
