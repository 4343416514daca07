"""How far does the demo's step budget take its generator when the generator is told the answer?

The CycleGAN learns MR -> CT from unpaired slices. The phantom also has the
answer: every MR volume's registered CT. This trains the ``cpu`` preset's
MR -> CT generator (same size, optimizer, schedule, batch and slices) on
those pairs with a plain L1 loss for as many steps as the demo's CycleGAN
takes, then scores it on the held-out subjects through the demo's own
prediction and evaluation path (``Synthesizer.from_generator``,
``evaluate_volume``). A supervised generator reaching the demo's targets
(MAE <= 60 HU, SSIM >= 0.75, bone Dice >= 0.85, bone-edge MAE <= 200 HU)
where the CycleGAN does not says that network and budget would suffice and
the unpaired objective is what is slow; one missing them says the budget
itself is short. A CycleGAN step runs two generators forward twice and
backward, a supervised step one generator once, so this takes about a
quarter of the CycleGAN's time.

    python benchmarks/supervised_bound.py --phantom demo/phantom [--steps 2600] [--train 0-9] [--test 20-23]

Reads ``mr/`` and ``ct_on_mr_grid/`` of a phantom folder (``mr2ct phantom``
or the demo's ``demo/phantom``); prints the training progress and a table;
nothing is written.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _paired import true_ct_slices  # noqa: E402


def subject_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def paired_slices(mr, ct_on_mr_grid, config):
    """The MR's network slices and, on exactly their grid, the registered CT's (both in [-1, 1])."""
    from mr2ct.data.preprocess import preprocess_mr

    mr_slices, record = preprocess_mr(mr, config)
    return mr_slices, true_ct_slices(ct_on_mr_grid, record, config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantom", default="demo/phantom", help="a phantom folder with mr/ and ct_on_mr_grid/")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=None, help="defaults to the preset's CycleGAN steps")
    parser.add_argument("--train", default="0-9", help="training subjects (the demo's MR subjects: 0-9)")
    parser.add_argument("--test", default="20-23", help="held-out subjects (the demo's: 20-23)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from mr2ct.config import preset
    from mr2ct.data.io import read_volume
    from mr2ct.data.prepare import preprocessing_record
    from mr2ct.evaluation.evaluate import evaluate_volume
    from mr2ct.serving.predict import Synthesizer
    from mr2ct.training.builders import build_generator, build_preprocess_config
    from mr2ct.training.schedules import ConstantThenLinearDecay

    config = preset(args.preset)
    prep = build_preprocess_config(config)
    train_cfg = config.train
    steps = args.steps or train_cfg.total_steps
    constant = round(steps * train_cfg.constant_steps / train_cfg.total_steps)

    def load(index):
        name = f"subject_{index:03d}.nii.gz"
        return (read_volume(os.path.join(args.phantom, "mr", name)),
                read_volume(os.path.join(args.phantom, "ct_on_mr_grid", name)))

    t0 = time.perf_counter()
    pairs = [paired_slices(*load(i), prep) for i in subject_range(args.train)]
    mr_train = np.concatenate([p[0] for p in pairs])[..., None]
    ct_train = np.concatenate([p[1] for p in pairs])[..., None]
    print(f"{len(mr_train)} paired {prep.image_size}x{prep.image_size} slices of {len(pairs)} subjects "
          f"in {time.perf_counter() - t0:.0f} s")

    keras.utils.set_random_seed(args.seed)
    generator = build_generator(config, name="supervised_mr_to_ct")
    optimizer = keras.optimizers.Adam(
        ConstantThenLinearDecay(train_cfg.learning_rate, constant, steps - constant), beta_1=train_cfg.beta_1
    )
    batch = config.data.batch_size
    rng = np.random.default_rng(args.seed)

    @tf.function
    def step(mr, ct):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(generator(mr, training=True) - ct))
        optimizer.apply(tape.gradient(loss, generator.trainable_variables), generator.trainable_variables)
        return loss

    start = time.perf_counter()
    losses = []
    for i in range(1, steps + 1):
        pick = rng.integers(0, len(mr_train), batch)
        losses.append(float(step(mr_train[pick], ct_train[pick])))
        if i % 200 == 0 or i == steps:
            rate = (time.perf_counter() - start) / i
            print(f"step {i}/{steps}  {rate:.3f} s/step  ETA {rate * (steps - i) / 60:.1f} min  "
                  f"L1 {np.mean(losses[-200:]):.4f}", flush=True)

    synthesizer = Synthesizer.from_generator(generator, preprocessing_record(prep))
    rows = []
    for index in subject_range(args.test):
        mr, truth = load(index)
        sct = synthesizer.volume(mr)
        rows.append((index, evaluate_volume(mr.array, sct.array, truth.array)))

    keys = ("mae_hu", "ssim", "bone_dice", "mae_bone_band_hu")
    print(f"\nsupervised (paired L1) {args.preset} generator, {steps} steps at batch {batch}, "
          f"{(time.perf_counter() - start) / steps:.3f} s/step")
    print("| subject | MAE [HU] | SSIM | bone Dice | bone-edge MAE [HU] |")
    print("|---|---|---|---|---|")
    for index, row in rows:
        print(f"| subject_{index:03d} | {row['mae_hu']:.1f} | {row['ssim']:.3f} | {row['bone_dice']:.3f} | "
              f"{row['mae_bone_band_hu']:.0f} |")
    mean = {k: float(np.mean([r[k] for _, r in rows])) for k in keys}
    print(f"| mean | {mean['mae_hu']:.1f} | {mean['ssim']:.3f} | {mean['bone_dice']:.3f} | "
          f"{mean['mae_bone_band_hu']:.0f} |")


if __name__ == "__main__":
    main()
