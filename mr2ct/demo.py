"""The whole job on the built-in phantom: synthesis, then segmentation through synthesis.

Subjects are split three ways so that training is truly unpaired and the
evaluation is on unseen anatomy: MR volumes from one group of subjects, CT
volumes (with labels) from another, and held-out test subjects whose MR is
translated and compared with their registered ground-truth CT. Then, as in
section 3.2 of the paper, a U-Net learns from the labelled training CT and
its synthesized MR, and segments the held-out MR with its synthesized CT;
its labels are scored against the held-out subjects' true labels.

Every step reuses what an earlier, interrupted run finished.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings

from mr2ct._atomic import atomic_write_json
from mr2ct.config import Config, preset
from mr2ct.errors import ConfigError


@dataclasses.dataclass
class DemoPlan:
    """Sizes of one demo."""

    phantom_size: str
    train_mr: int
    train_ct: int
    test: int
    config: Config

    @property
    def subjects(self) -> int:
        return self.train_mr + self.train_ct + self.test


def plan(quick: bool) -> DemoPlan:
    """The demo's sizes.

    ``quick``: small phantoms, 300 CycleGAN and 100 U-Net steps, every
    stage of the job in a few minutes; the models are barely trained (the
    synthesized CT is still noise-like). Otherwise paper-size phantoms and
    the cpu preset (3,000 CycleGAN steps on 160x160 slices, then the U-Net).
    """
    if quick:
        config = preset("cpu").override([
            "data.image_size=64", "data.batch_size=2", "train.constant_steps=150", "train.decay_steps=150",
            "train.checkpoint_every=100", "train.image_summary_every=100", "prepare.n4_shrink_factor=1",
            "segmentation.steps=100", "segmentation.checkpoint_every=50", "segmentation.crop_size=0",
        ])
        return DemoPlan("small", train_mr=5, train_ct=5, test=2, config=config)
    return DemoPlan("paper", train_mr=10, train_ct=10, test=4, config=preset("cpu"))


def run_demo(out_dir="demo", quick=False, seed=0, echo=print, sizes: DemoPlan | None = None) -> dict:
    """Run every step into ``out_dir``; returns the paths of the results.

    ``sizes`` replaces the plan ``quick`` selects (the tests run a tiny one).
    """
    from mr2ct.data.folders import link_subjects
    from mr2ct.data.phantom import write_phantom_dataset
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.evaluation.evaluate import evaluate_folders
    from mr2ct.evaluation.segmentation import evaluate_segmentation, summary_line
    from mr2ct.export import export_run
    from mr2ct.export.exporter import existing_versions, resolve_export
    from mr2ct.serving.predict import Synthesizer, predict_paths
    from mr2ct.serving.segment import VolumeSegmenter
    from mr2ct.training.builders import build_preprocess_config
    from mr2ct.training.segmentation import train_segmentation
    from mr2ct.training.trainer import train_cyclegan

    p = sizes or plan(quick)
    out = os.fspath(out_dir)
    t0 = time.perf_counter()

    def step(title):
        echo(f"\n== {title}  [{time.perf_counter() - t0:.0f} s]")

    phantom_dir = os.path.join(out, "phantom")
    step(f"1/8 phantom: {p.subjects} {p.phantom_size} subjects -> {phantom_dir}")
    if os.path.exists(os.path.join(phantom_dir, "phantom.json")):
        echo("already generated")
    else:
        write_phantom_dataset(phantom_dir, p.subjects, seed=seed, size=p.phantom_size, montage=True,
                              workers=None if p.phantom_size == "paper" else 1,
                              progress=lambda subject: echo(f"  {subject} [{time.perf_counter() - t0:.0f} s]"))
    names = [f"subject_{i:03d}" for i in range(p.subjects)]
    groups = {
        "train_mr": names[: p.train_mr],
        "train_ct": names[p.train_mr : p.train_mr + p.train_ct],
        "test": names[p.train_mr + p.train_ct :],
    }
    split = os.path.join(out, "split")
    link_subjects(os.path.join(phantom_dir, "mr"), os.path.join(split, "train_mr"), groups["train_mr"])
    link_subjects(os.path.join(phantom_dir, "ct"), os.path.join(split, "train_ct"), groups["train_ct"])
    link_subjects(os.path.join(phantom_dir, "labels_ct"), os.path.join(split, "train_ct_labels"), groups["train_ct"])
    for folder in ("mr", "ct_on_mr_grid", "labels_mr"):
        link_subjects(os.path.join(phantom_dir, folder), os.path.join(split, f"test_{folder}"), groups["test"])
    echo("unpaired training: MR of " + ", ".join(groups["train_mr"]) + "; CT of " + ", ".join(groups["train_ct"]))
    echo("held out for testing: " + ", ".join(groups["test"]))

    prepared = os.path.join(out, "prepared")
    step(f"2/8 prepare: N4, CT field of view, {p.config.data.image_size}x{p.config.data.image_size} slices -> {prepared}")
    with warnings.catch_warnings(record=True) as caught:  # e.g. a body wider than the field of view
        warnings.simplefilter("always")
        manifest = prepare_dataset(
            prepared, mr_dir=os.path.join(split, "train_mr"), ct_dir=os.path.join(split, "train_ct"),
            labels_dir=os.path.join(split, "train_ct_labels"), config=build_preprocess_config(p.config),
            progress=lambda done, total, subject: subject and echo(f"  {subject} ({done}/{total} volumes)"),
        )
    for warning in caught:
        echo(f"  warning: {warning.message}")
    echo(f"{manifest['counts']['mr']} MR and {manifest['counts']['ct']} CT slices")

    run_dir = os.path.join(out, "runs", "gc_cyclegan")
    step(f"3/8 train the GC-CycleGAN ({p.config.train.total_steps} steps) -> {run_dir}")
    try:
        result = train_cyclegan(prepared, run_dir, config=p.config)
    except ConfigError as error:
        raise ConfigError(f"{error}. {out} holds a demo run of another plan (an earlier mr2ct, or other "
                          f"options): remove {run_dir} to train it anew, or pass --out to use another "
                          "folder") from None
    if result.interrupted:
        raise KeyboardInterrupt
    echo(f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'logs')}")

    seg_dir = os.path.join(out, "runs", "segmentation")
    step(f"4/8 train the U-Net on the labelled training CT and its synthesized MR "
         f"({p.config.segmentation.steps} steps) -> {seg_dir}")
    seg_result = train_segmentation(run_dir, prepared, seg_dir, config=p.config, echo=echo)
    if seg_result.interrupted:
        raise KeyboardInterrupt

    models = os.path.join(out, "saved_models")
    step(f"5/8 export: synthesis and segmentation -> {models}/mr2ct/")
    latest = existing_versions(os.path.join(models, "mr2ct"))
    info = resolve_export(os.path.join(models, "mr2ct"))[1] if latest else {}
    if info.get("step") == result.step and info.get("segmentation", {}).get("step") == seg_result.step:
        export_path = os.path.join(models, "mr2ct", str(latest[-1]))
        echo(f"already exported: {export_path}")
    else:
        export_path = export_run(run_dir, models, name="mr2ct", segmentation=seg_dir).path
        echo(f"exported {export_path}")

    sct_dir = os.path.join(out, "predictions")
    step(f"6/8 predict: synthesized CT of the held-out MR -> {sct_dir}")
    written = predict_paths(Synthesizer.local(export_path), os.path.join(split, "test_mr"), sct_dir)
    for path in written:
        echo(f"wrote {path}")

    eval_dir = os.path.join(out, "evaluation")
    step(f"7/8 evaluate the synthesized CT against the registered ground-truth CT -> {eval_dir}")
    rows = evaluate_folders(os.path.join(split, "test_mr"), sct_dir, eval_dir,
                            ct_on_mr_grid_dir=os.path.join(split, "test_ct_on_mr_grid"))
    for row in rows:
        echo(f"{row['subject']}: MAE {row['mae_hu']:.0f} HU  ME {row['me_hu']:+.0f} HU  PSNR {row['psnr_db']:.1f} dB  "
             f"SSIM {row['ssim']:.3f}  bone Dice {row['bone_dice']:.3f}  bone-edge MAE {row['mae_bone_band_hu']:.0f} HU  "
             f"MI(MR, sCT) {row['mi_mr_sct']:.3f}  GC|abs|(MR, sCT) {row['gc_abs_mr_sct']:.3f}")
        echo(f"{' ' * len(row['subject'])}  body Dice {row['body_dice']:.3f}  extent sCT/CT left-right "
             f"{row['extent_ratio_lr']:.3f} front-back {row['extent_ratio_ap']:.3f}  slice-to-slice step MAE "
             f"{row['mae_through_plane_hu']:.0f} HU (row-to-row {row['mae_in_plane_hu']:.0f} HU)")

    step(f"8/8 segment the held-out MR through synthesis, score against their true labels -> {eval_dir}")
    seg_rows = evaluate_segmentation(os.path.join(split, "test_mr"), os.path.join(split, "test_labels_mr"),
                                     VolumeSegmenter.from_export(export_path), eval_dir)
    for row in seg_rows:
        echo(summary_line(row))
    results = {
        "phantom_montage": os.path.join(phantom_dir, "montage.png"),
        "run": run_dir,
        "segmentation_run": seg_dir,
        "export": export_path,
        "predictions": sct_dir,
        "metrics": os.path.join(eval_dir, "metrics.csv"),
        "boxplots": os.path.join(eval_dir, "boxplots.png"),
        "montage": os.path.join(eval_dir, "montage.png"),
        "reformats": os.path.join(eval_dir, "reformats.png"),
        "segmentation_metrics": os.path.join(eval_dir, "segmentation_metrics.csv"),
        "segmentation_boxplots": os.path.join(eval_dir, "segmentation_boxplots.png"),
        "segmentation_montage": os.path.join(eval_dir, "segmentation_montage.png"),
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    atomic_write_json(os.path.join(out, "results.json"), results)
    return results
