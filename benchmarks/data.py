"""Seconds per phantom subject and per preprocessed volume, and the input pipeline's slices per second.

Three tables:

1. Phantom: seconds per subject of ``write_phantom_dataset`` (render MR, CT,
   CT on the MR grid and both label maps, write the five NIfTI files), at
   ``size="small"`` (64x64x8 MR, 96x96x12 CT) and ``size="paper"``
   (256x256x38 MR, 512x512x75 CT).
2. Preprocessing at paper size (``PreprocessConfig()``: 256x256 slices, N4
   with shrink 4): seconds per volume of ``preprocess_mr`` with and without
   N4 on the paper MR, and of ``preprocess_ct`` (crop to the MR field of
   view, resampling, HU window) on the paper CT; and of ``prepare_dataset``
   (all of it, in worker processes, plus TFRecord writing) per volume of the
   small phantom set.
3. Input pipeline: slice pairs per second (one MR and one CT slice each) that
   ``unpaired_dataset`` delivers from a prepared folder, for the ``cpu``
   preset (96x96, batch 2) and the ``paper`` preset (256x256, batch 1), next
   to the pairs per second the ``cpu`` preset's training step consumes (a
   CycleGAN iteration with XLA, as ``mr2ct train --preset cpu`` runs it), on a
   fixed batch and fed from the pipeline. A ratio above 1 means the pipeline
   is not what limits training.

    python benchmarks/data.py                  # a few minutes (the paper phantom and N4 dominate)
    python benchmarks/data.py --skip-paper     # no paper-size phantom or preprocessing
    python benchmarks/data.py --skip-train     # no training step

The machine's cores are shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mr2ct.config import preset  # noqa: E402
from mr2ct.data.io import read_volume  # noqa: E402
from mr2ct.data.phantom import write_phantom_dataset  # noqa: E402
from mr2ct.data.preprocess import PreprocessConfig, preprocess_ct, preprocess_mr  # noqa: E402


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def row(what, per, seconds, note=""):
    print(f"{what:<48}{per:<10}{seconds:>9.2f}  {note}", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def phantom_rows(args, workdir):
    print(f"{'phantom and preprocessing':<48}{'per':<10}{'seconds':>9}")
    small = os.path.join(workdir, "phantom_small")
    seconds, _ = timed(write_phantom_dataset, small, args.small_subjects, size="small")
    row("write_phantom_dataset, small", "subject", seconds / args.small_subjects,
        f"(mean of {args.small_subjects})")
    if args.skip_paper:
        return small
    paper = os.path.join(workdir, "phantom_paper")
    seconds, _ = timed(write_phantom_dataset, paper, args.paper_subjects, size="paper")
    row("write_phantom_dataset, paper", "subject", seconds / args.paper_subjects, f"(mean of {args.paper_subjects})")

    config = PreprocessConfig()
    no_n4 = PreprocessConfig(n4=False)
    times = {"mr": [], "mr_no_n4": [], "ct": []}
    for mr_path in sorted(glob.glob(os.path.join(paper, "mr", "*.nii.gz"))):
        mr = read_volume(mr_path)
        ct = read_volume(mr_path.replace(os.sep + "mr" + os.sep, os.sep + "ct" + os.sep))
        times["mr"].append(timed(preprocess_mr, mr, config)[0])
        times["mr_no_n4"].append(timed(preprocess_mr, mr, no_n4)[0])
        times["ct"].append(timed(preprocess_ct, ct, config)[0])
    n = len(times["mr"])
    row("preprocess_mr, N4 (256x256x38 MR)", "volume", statistics.mean(times["mr"]), f"(mean of {n})")
    row("preprocess_mr, no N4 (256x256x38 MR)", "volume", statistics.mean(times["mr_no_n4"]), f"(mean of {n})")
    row("preprocess_ct (512x512x75 CT)", "volume", statistics.mean(times["ct"]), f"(mean of {n})")
    return small


def prepare(phantom_dir, out_dir, preset_name):
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training import builders

    config = builders.build_preprocess_config(preset(preset_name))
    seconds, manifest = timed(prepare_dataset, out_dir, mr_dir=os.path.join(phantom_dir, "mr"),
                              ct_dir=os.path.join(phantom_dir, "ct"), config=config)
    volumes = manifest["counts"]["mr_volumes"] + manifest["counts"]["ct_volumes"]
    row(f"prepare_dataset, small phantom, {preset_name} ({config.image_size}x{config.image_size})", "volume",
        seconds / volumes, f"({volumes} volumes, {os.cpu_count()} workers)")
    return manifest


def pipeline_rate(prepared, config, batches, warmup=5):
    """Slice pairs per second delivered by unpaired_dataset (as training builds it, minus determinism)."""
    from mr2ct.data.pipeline import unpaired_dataset

    dataset = unpaired_dataset(prepared, config.data.image_size, config.data.batch_size,
                               shuffle_buffer=config.data.shuffle_buffer, seed=0)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        batch["mr"].numpy(), batch["ct"].numpy()
    return batches * config.data.batch_size / (time.perf_counter() - start)


def train_rates(prepared, steps, warmup=2):
    """Pairs per second of the cpu preset's training step: on one fixed batch, and fed from the pipeline."""
    import keras
    import tensorflow as tf

    from mr2ct.data.pipeline import unpaired_dataset
    from mr2ct.training import builders

    config = preset("cpu")
    keras.utils.set_random_seed(0)
    model = builders.build_cyclegan(config)
    model.compile(builders.build_adam(config, "float32", "generator_adam"),
                  builders.build_adam(config, "float32", "discriminator_adam"))
    step = tf.function(model.train_step, jit_compile=config.runtime.xla)
    dataset = unpaired_dataset(prepared, config.data.image_size, config.data.batch_size,
                               shuffle_buffer=config.data.shuffle_buffer, seed=0)
    iterator = iter(dataset)
    fixed = next(iterator)
    for _ in range(warmup):
        float(step(fixed)["generator_loss"])
    rates = {}
    for name, source in (("fixed", lambda: fixed), ("fed", lambda: next(iterator))):
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            float(step(source())["generator_loss"])
            times.append(time.perf_counter() - start)
        rates[name] = (statistics.median(times), config.data.batch_size / statistics.median(times))
    return rates


def pipeline_rows(args, workdir, small):
    print(f"\n{'input pipeline':<48}{'per':<10}{'seconds':>9}")
    prepared = {}
    for name in ("cpu", "paper"):
        prepared[name] = os.path.join(workdir, f"prepared_{name}")
        prepare(small, prepared[name], name)
    print(f"\n{'slice pairs per second':<48}{'batch':>6}{'pairs/s':>10}{'pipeline/train':>20}")
    train = None if args.skip_train else train_rates(prepared["cpu"], args.steps)
    for name in ("cpu", "paper"):
        config = preset(name)
        rate = pipeline_rate(prepared[name], config, args.batches)
        ratio = f"{rate / train['fixed'][1]:.0f}x" if train and name == "cpu" else ""
        print(f"{f'unpaired_dataset, {name} preset ({config.data.image_size}x{config.data.image_size})':<48}"
              f"{config.data.batch_size:>6}{rate:>10.1f}{ratio:>20}", flush=True)
    if train:
        batch = preset("cpu").data.batch_size
        for name, label in (("fixed", "one fixed batch"), ("fed", "fed by unpaired_dataset")):
            seconds, rate = train[name]
            print(f"{f'cpu train step (XLA), {label}':<48}{batch:>6}{rate:>10.2f}"
                  f"{f'({seconds:.3f} s/step)':>20}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-subjects", type=int, default=8, help="small phantom subjects (also the prepared data)")
    parser.add_argument("--paper-subjects", type=int, default=1)
    parser.add_argument("--batches", type=int, default=1000, help="pipeline batches timed")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed")
    parser.add_argument("--skip-paper", action="store_true", help="no paper-size phantom or preprocessing")
    parser.add_argument("--skip-train", action="store_true", help="no training step")
    args = parser.parse_args(argv)

    print(f"mr2ct data benchmarks; {os.cpu_count()} CPU cores, load average {load_average()}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="mr2ct-data-bench-") as workdir:
        small = phantom_rows(args, workdir)
        pipeline_rows(args, workdir, small)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
