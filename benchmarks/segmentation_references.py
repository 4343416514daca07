"""Segmentation references on a finished demo's held-out subjects: what the synthesis costs, what the U-Net costs.

Scores, against the held-out subjects' true labels on the MR grid (Dice of
the 22 structures, means over the subjects):

* ``through synthesis``: the demo's U-Net on (synthesized CT, MR), as
  ``mr2ct demo`` segments (its ``evaluation/segmentation_metrics.csv``);
* ``perfect synthesis``: the same U-Net given the subject's *true* CT
  (``ct_on_mr_grid``, sent through the MR's slices exactly as a synthesized
  CT is) in place of the synthesized one: what a perfect CycleGAN would give;
* ``MR-supervised``: the same U-Net (one input channel), loss, optimizer,
  batch and steps, trained on the *training* MR subjects' labelled MR and
  tested on MR alone: the paper's comparison (its 5-fold MR U-Net);
* with ``--cross-entropy-alone``: a second segmentation run behind the same
  CycleGAN with ``segmentation.dice_weight=0`` (the same data, steps and
  seed): the loss comparison;
* with ``--dice-over-all``: one with ``segmentation.dice_classes=all`` (the
  soft Dice over all 22 structures, absent ones too; the form before
  ``dice_classes``).

Everything it trains or writes goes to ``<demo>/references/``; it reuses
what is there. Run after ``mr2ct demo`` (or ``mr2ct demo --seed 1 --out
demo_seed1``):

    python benchmarks/segmentation_references.py --demo demo [--cross-entropy-alone] [--dice-over-all]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

STRUCTURE_KEYS = ["dice_pelvis", "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus", "dice_mean"]


def slices_segmenter(preprocess_config, predict):
    """``Volume -> label Volume`` on the MR grid, with ``predict(mr_slices, mr) -> label slices``."""
    from mr2ct.data.preprocess import preprocess_mr, resample_to_reference, volume_from_geometry

    def segment(mr):
        slices, record = preprocess_mr(mr, preprocess_config)
        labels = predict(slices, mr, record).astype(np.uint8)
        on_slices = volume_from_geometry(labels, record["output_geometry"], mr.path)
        return resample_to_reference(on_slices, mr, order=0, default_value=0)

    return segment


def argmax_in_batches(unet, inputs, batch=8):
    return np.concatenate([np.argmax(unet(inputs[i : i + batch], training=False).numpy(), axis=-1)
                           for i in range(0, len(inputs), batch)])


def train_mr_supervised(demo, seg_config, preprocess_config, out, echo=print):
    """The MR-supervised U-Net (:mod:`mr2ct.training.image_segmentation`) on the training MR subjects' labelled MR.

    Its run folder is ``out/mr_supervised`` (reused, or resumed, when there); returns its volume segmenter.
    """
    from mr2ct.data.folders import link_subjects
    from mr2ct.data.io import list_volumes, subject_id
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training.image_segmentation import load_image_segmenter, train_image_segmentation

    subjects = [subject_id(p) for p in list_volumes(os.path.join(demo, "split", "train_mr"))]
    labels_dir = os.path.join(out, "train_mr_labels")
    link_subjects(os.path.join(demo, "phantom", "labels_mr"), labels_dir, subjects)
    prepared = os.path.join(out, "prepared_mr")
    start = time.perf_counter()
    prepare_dataset(prepared, mr_dir=os.path.join(demo, "split", "train_mr"), mr_labels_dir=labels_dir,
                    config=preprocess_config)
    echo(f"prepared the labelled training MR in {time.perf_counter() - start:.0f} s")
    run_dir = os.path.join(out, "mr_supervised")
    train_image_segmentation(prepared, run_dir, config=seg_config)
    return load_image_segmenter(run_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", help="a finished `mr2ct demo` folder")
    parser.add_argument("--segmentation", default=None,
                        help="the segmentation run to score (default: the demo's, <demo>/runs/segmentation)")
    parser.add_argument("--skip-mr-supervised", action="store_true", help="leave out the MR-supervised U-Net")
    parser.add_argument("--cross-entropy-alone", action="store_true",
                        help="also train and score a segmentation run with dice_weight=0")
    parser.add_argument("--dice-over-all", action="store_true",
                        help="also train and score a segmentation run with dice_classes=all")
    args = parser.parse_args()

    from _paired import true_ct_slices

    from mr2ct.data.io import read_volume, subject_id
    from mr2ct.data.preprocess import PreprocessConfig
    from mr2ct.evaluation.segmentation import evaluate_segmentation
    from mr2ct.serving.segment import VolumeSegmenter
    from mr2ct.training.segmentation import load_segmentation_run, train_segmentation

    demo = args.demo
    split = os.path.join(demo, "split")
    out = os.path.join(demo, "references")
    os.makedirs(out, exist_ok=True)
    seg_dir = args.segmentation or os.path.join(demo, "runs", "segmentation")
    tag = os.path.basename(os.path.normpath(seg_dir))
    run = load_segmentation_run(seg_dir)
    preprocess_config = PreprocessConfig.from_dict(run.preprocessing["config"])
    model = run.model

    def through_synthesis(slices, mr, record):
        return argmax_in_batches(model.unet, model.test_inputs(slices[..., None]).numpy())

    def perfect_synthesis(slices, mr, record):
        ct = read_volume(os.path.join(split, "test_ct_on_mr_grid", f"{subject_id(mr.path)}.nii.gz"))
        true = true_ct_slices(ct, record, preprocess_config).astype(np.float32)
        return argmax_in_batches(model.unet, model.two_channel(true[..., None], slices[..., None]).numpy())

    rows = {
        "through synthesis (demo)": slices_segmenter(preprocess_config, through_synthesis),
        "perfect synthesis (true CT)": slices_segmenter(preprocess_config, perfect_synthesis),
    }
    if not args.skip_mr_supervised:
        rows["MR-supervised (MR alone)"] = train_mr_supervised(demo, run.config, preprocess_config, out)
    variants = [("cross-entropy alone", args.cross_entropy_alone, "segmentation_cross_entropy",
                 "segmentation.dice_weight=0.0"),
                ("soft Dice over all 22 structures", args.dice_over_all, "segmentation_dice_all",
                 "segmentation.dice_classes=all")]
    for name, wanted, folder, setting in variants:
        if wanted:
            variant_dir = os.path.join(out, folder)
            train_segmentation(os.path.join(demo, "runs", "gc_cyclegan"), os.path.join(demo, "prepared"),
                               variant_dir, config=run.config.override([setting]))
            rows[name] = VolumeSegmenter.from_run(variant_dir)

    results = {}
    for i, (name, segment) in enumerate(rows.items()):
        results[name] = evaluate_segmentation(os.path.join(split, "test_mr"), os.path.join(split, "test_labels_mr"),
                                              segment, out, name=f"{tag}_{i}")
    print(f"\nDice on {demo}'s held-out subjects (means over {len(next(iter(results.values())))} subjects; "
          f"U-Net {run.config.segmentation.steps} steps, dice_weight {run.config.segmentation.dice_weight}, "
          f"dice_classes {run.config.segmentation.dice_classes})")
    names = [k.removeprefix("dice_").replace("_", " ") for k in STRUCTURE_KEYS[:-1]] + ["mean of 22"]
    print(f"{'':<30}" + "".join(f"{n:>16}" for n in names))
    for name, subject_rows in results.items():
        print(f"{name:<30}" + "".join(f"{np.nanmean([r[k] for r in subject_rows]):>16.3f}" for k in STRUCTURE_KEYS))
    all_keys = [k for k in next(iter(results.values()))[0] if k.startswith("dice_")]
    lines = ["row," + ",".join(all_keys)]
    for name, subject_rows in results.items():
        lines.append(f"{name}," + ",".join(f"{np.nanmean([r[k] for r in subject_rows]):.4f}" for k in all_keys))
    table = os.path.join(out, f"references_{tag}.csv")
    with open(table, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"per structure: {table}")


if __name__ == "__main__":
    main()
