"""The experiment's stages: phantoms, split, prepared slices, training (or reuse), evaluation, figures."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from mr2ct.config import Config
from mr2ct.data.folders import link_subjects
from mr2ct.data.phantom import subject_name
from mr2ct.errors import Mr2ctError
from mr2ct.evaluation.experiment.design import CONDITIONS, SEGMENTATION_METRICS, ExperimentPlan, TrainingSet

# The MR-supervised reference's name in folders and results: a U-Net trained on the small set's labelled MR.
REFERENCE = "mr_supervised"
REFERENCE_LABEL = "MR-supervised (reference)"
EVALUATED_FILE = "evaluated.json"  # the checkpoints and subjects an evaluation folder holds metrics of
# The CycleGAN losses drawn over the steps (TensorBoard tags of the training loop).
TRAINING_CURVES = (
    ("loss/cycle", "cycle loss (L1, both cycles)"),
    ("loss/gc", "GC loss, 1 - GC(x, G(x)), both generators"),
    ("loss/adv_ct", "adversarial loss of G_CT"),
    ("loss/d_ct", "CT discriminator loss"),
)


def _seed_prepared(src, dst, groups):
    """Put the small set's shards and records, prepared in ``src``, into ``dst`` (hard links, else copies).

    ``prepare_dataset`` on ``dst`` then finds them finished (same sources, same
    settings) and only writes the manifest.
    """
    for modality, subjects in (("mr", groups["train_mr_small"]), ("ct", groups["train_ct_small"])):
        for subject in subjects:
            for folder, suffix in (("records", ".tfrecord"), ("volumes", ".json")):
                source = os.path.join(src, folder, modality, subject + suffix)
                target = os.path.join(dst, folder, modality, subject + suffix)
                if os.path.exists(target) or not os.path.exists(source):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)


def _finished_step(run_dir, config: Config, unused_sections=()) -> int | None:
    """The final step of a finished run folder made with ``config``, else None (ConfigError if other settings)."""
    from mr2ct.training.trainer import CONFIG_FILE, resolve_run_config

    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        return None
    resolve_run_config(run_dir, config, unused_sections)  # refuses a run folder made with other settings
    try:
        with open(os.path.join(run_dir, "status.json")) as f:
            status = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if status.get("state") == "finished" and status.get("step", -1) >= status.get("total_steps", 0):
        return int(status["step"])
    return None


class _TestSet:
    """The held-out subjects' volumes, and their preprocessed MR and CT, shared by every condition."""

    def __init__(self, split_dir, subjects):
        from mr2ct.data.io import read_volume

        self.subjects = list(subjects)

        def read(folder):
            return {s: read_volume(os.path.join(split_dir, f"test_{folder}", f"{s}.nii.gz")) for s in self.subjects}

        self.mr = read("mr")
        self.ct_on_mr_grid = read("ct_on_mr_grid")
        self.labels = {s: np.rint(v.array).astype(np.int64) for s, v in read("labels_mr").items()}
        self.ct = read("ct")
        self.structures = sorted({int(v) for a in self.labels.values() for v in np.unique(a) if v != 0})
        self._mr_slices = {}
        self._ct_hu = {}

    def prepared_mr(self, subject, config):
        """``preprocess_mr`` of a test MR (computed once per preprocessing config)."""
        from mr2ct.data.preprocess import preprocess_mr

        key = (subject, json.dumps(config.to_dict(), sort_keys=True))
        if key not in self._mr_slices:
            self._mr_slices[key] = preprocess_mr(self.mr[subject], config)
        return self._mr_slices[key]

    def ct_hu(self, subject, mr_synthesizer):
        """A test CT's prepared slices in HU (computed once per preprocessing config)."""
        key = (subject, json.dumps(mr_synthesizer.preprocessing, sort_keys=True))
        if key not in self._ct_hu:
            self._ct_hu[key] = mr_synthesizer.prepare_ct(self.ct[subject])
        return self._ct_hu[key]


def row_summary(row) -> str:
    """One progress line of a test subject's metrics."""
    return (f"{row['subject']}: MI(MR, sCT) {row['mi_mr_sct']:.3f}  MI(CT, sMR) {row['mi_ct_smr']:.3f}  "
            f"MAE {row['mae_hu']:.0f} HU  bone Dice {row['bone_dice']:.3f}  Dice pelvis "
            f"{row.get('dice_pelvis', float('nan')):.3f}  femur {row.get('dice_femur', float('nan')):.3f}  "
            f"mean {row['dice_mean']:.3f}")


def _evaluate_condition(gan_dir, seg_dir, test: _TestSet, eval_dir, echo=None) -> list[dict]:
    """Metrics of one condition on every test subject (a line each to ``echo``); sCT and labels into ``eval_dir``."""
    from mr2ct.data.io import write_volume
    from mr2ct.evaluation.evaluate import dice_scores, evaluate_synthetic_mr, evaluate_volume, write_tables
    from mr2ct.export.exporter import load_run_generators
    from mr2ct.serving.mr_synthesizer import MRSynthesizer
    from mr2ct.serving.predict import Synthesizer
    from mr2ct.serving.segment import VolumeSegmenter
    from mr2ct.training.trainer import PREPROCESSING_FILE

    with open(os.path.join(gan_dir, PREPROCESSING_FILE)) as f:
        preprocessing = json.load(f)
    generator_mr_to_ct, generator_ct_to_mr, _, _ = load_run_generators(gan_dir)
    synthesizer = Synthesizer.from_generator(generator_mr_to_ct, preprocessing)
    mr_synthesizer = MRSynthesizer.from_generator(generator_ct_to_mr, preprocessing)
    segmenter = VolumeSegmenter.from_run(seg_dir)
    rows = []
    for subject in test.subjects:
        mr = test.mr[subject]
        prepared = test.prepared_mr(subject, synthesizer.preprocess_config)
        sct = synthesizer.volume(mr, prepared=prepared)
        labels = segmenter.volume(mr, prepared=test.prepared_mr(subject, segmenter.preprocess_config))
        ct_hu = test.ct_hu(subject, mr_synthesizer)
        rows.append({
            "subject": subject,
            **evaluate_volume(mr.array, sct.array, test.ct_on_mr_grid[subject].array),
            **evaluate_synthetic_mr(ct_hu, mr_synthesizer.slices(ct_hu)),
            **dice_scores(labels.array, test.labels[subject], test.structures),
        })
        hu = np.clip(np.round(sct.array), -32768, 32767).astype(np.int16)
        write_volume(sct.with_array(hu), os.path.join(eval_dir, "sct", f"{subject}.nii.gz"))
        write_volume(labels, os.path.join(eval_dir, "labels", f"{subject}.nii.gz"), dtype="uint8")
        if echo is not None:
            echo(row_summary(rows[-1]))
    write_tables(rows, eval_dir)
    return rows


def _evaluate_reference(run_dir, test: _TestSet, eval_dir, echo=None) -> list[dict]:
    """Dice of the MR-supervised U-Net on every test MR (a line each to ``echo``); labels into ``eval_dir``."""
    from mr2ct.data.io import write_volume
    from mr2ct.evaluation.evaluate import dice_scores, write_tables
    from mr2ct.training.image_segmentation import load_image_segmenter

    segmenter = load_image_segmenter(run_dir)
    rows = []
    for subject in test.subjects:
        mr = test.mr[subject]
        labels = segmenter.volume(mr, prepared=test.prepared_mr(subject, segmenter.preprocess_config))
        rows.append({"subject": subject, **dice_scores(labels.array, test.labels[subject], test.structures)})
        write_volume(labels, os.path.join(eval_dir, "labels", f"{subject}.nii.gz"), dtype="uint8")
        if echo is not None:
            echo(f"{subject}: Dice " + "  ".join(f"{k.removeprefix('dice_').replace('_', ' ')} {rows[-1][k]:.3f}"
                                                 for k in SEGMENTATION_METRICS if k in rows[-1]))
    write_tables(rows, eval_dir)
    return rows


def _train_reference(data_dir, run_dir, config, progress):
    from mr2ct.training.image_segmentation import train_image_segmentation

    return train_image_segmentation(data_dir, run_dir, config=config, modality="mr", progress=progress)


def _train_cyclegan(data_dir, run_dir, config, progress):
    from mr2ct.training.trainer import train_cyclegan

    return train_cyclegan(data_dir, run_dir, config=config, progress=progress)


def _train_segmentation(cyclegan_dir, data_dir, run_dir, config, progress):
    from mr2ct.training.segmentation import train_segmentation

    return train_segmentation(cyclegan_dir, data_dir, run_dir, config=config, progress=progress)


def _generate_phantoms(phantom_dir, p: ExperimentPlan, echo) -> bool:
    """Generate every subject unless ``phantom.json`` already lists them; returns whether reused."""
    from mr2ct.data.phantom import write_phantom_dataset

    path = os.path.join(phantom_dir, "phantom.json")
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
        if (manifest.get("subjects") == [subject_name(i) for i in range(p.subjects)]
                and manifest.get("seed") == p.seed and manifest.get("size") == p.phantom_size):
            return True
    write_phantom_dataset(phantom_dir, p.subjects, seed=p.seed, size=p.phantom_size,
                          progress=(lambda s: echo(f"  {s}")) if echo else None,
                          workers=None if p.phantom_size == "paper" else 1)
    return False


def _split_subjects(phantom_dir, split, groups):
    """Folders of links: each training set's MR and CT, the CT labels, the test subjects' volumes."""
    for modality in ("mr", "ct"):
        for size in TrainingSet:
            link_subjects(os.path.join(phantom_dir, modality), os.path.join(split, f"train_{modality}_{size}"),
                           groups[f"train_{modality}_{size}"])
    link_subjects(os.path.join(phantom_dir, "labels_ct"), os.path.join(split, "train_ct_labels"),
                   groups["train_ct_large"])
    # the labels of the small set's MR: the MR-supervised reference U-Net trains on them
    link_subjects(os.path.join(phantom_dir, "labels_mr"), os.path.join(split, "train_mr_labels"),
                   groups["train_mr_small"])
    for folder in ("mr", "ct", "ct_on_mr_grid", "labels_mr"):
        link_subjects(os.path.join(phantom_dir, folder), os.path.join(split, f"test_{folder}"), groups["test"])


def _prepare(prepared_dir, split, p: ExperimentPlan, echo):
    """Prepare the large set, then the small set from its slices; returns the folders and the slice counts."""
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training.builders import build_preprocess_config

    prepared = {s: os.path.join(prepared_dir, s.value) for s in TrainingSet}
    counts = {}

    def progress(done, total, subject):
        if subject is not None:
            echo(f"  prepared {done}/{total} volumes ({subject})")

    for size in (TrainingSet.LARGE, TrainingSet.SMALL):
        if size == TrainingSet.SMALL:
            _seed_prepared(prepared[TrainingSet.LARGE], prepared[size], p.groups())
        manifest = prepare_dataset(
            prepared[size], mr_dir=os.path.join(split, f"train_mr_{size}"),
            ct_dir=os.path.join(split, f"train_ct_{size}"), labels_dir=os.path.join(split, "train_ct_labels"),
            config=build_preprocess_config(p.config), progress=progress,
        )
        counts[size.value] = manifest["counts"]
        echo(f"{size} set: {manifest['counts']['mr']} MR and {manifest['counts']['ct']} CT slices "
             f"({manifest['counts']['ct_labelled']} labelled)")
    prepared[REFERENCE] = os.path.join(prepared_dir, "mr_labelled")
    manifest = prepare_dataset(
        prepared[REFERENCE], mr_dir=os.path.join(split, "train_mr_small"),
        mr_labels_dir=os.path.join(split, "train_mr_labels"), config=build_preprocess_config(p.config),
        progress=progress,
    )
    counts[REFERENCE] = manifest["counts"]
    echo(f"small set MR with labels (the MR-supervised reference): {manifest['counts']['mr_labelled']} slices")
    return prepared, counts


def _train(run_dir, config, echo, train, unused_sections=()) -> tuple[int, bool]:
    """``(final step, reused)``: a finished run folder is reused, anything else trained (or resumed) by ``train()``."""
    step = _finished_step(run_dir, config, unused_sections)
    if step is not None:
        echo(f"already trained (step {step})")
        return step, True
    result = train()
    if result.interrupted:
        raise KeyboardInterrupt
    return result.step, False


def _check_behind(seg_dir, cyclegan_step):
    """Refuse a segmentation run trained behind another checkpoint of its CycleGAN."""
    from mr2ct.training.segmentation import CYCLEGAN_FILE

    with open(os.path.join(seg_dir, CYCLEGAN_FILE)) as f:
        behind = json.load(f)["step"]
    if behind != cyclegan_step:
        raise Mr2ctError(f"{seg_dir}: trained behind step {behind} of the CycleGAN, which is at step "
                         f"{cyclegan_step} now; delete this segmentation run to train it again")


def _finished_evaluation(eval_dir, stamp) -> list[dict] | None:
    """The rows of an evaluation made of the same checkpoints and subjects, else None."""
    path = os.path.join(eval_dir, EVALUATED_FILE)
    metrics = os.path.join(eval_dir, "metrics.json")
    if not (os.path.exists(path) and os.path.exists(metrics)):
        return None
    with open(path) as f:
        if json.load(f) != stamp:
            return None
    with open(metrics) as f:
        rows = json.load(f)["volumes"]
    # Non-finite values (the Dice of a structure absent from both volumes) are stored as null.
    return [{k: float("nan") if v is None else v for k, v in row.items()} for row in rows]


def _write_figures(out, rows, example_subject, reference_rows) -> dict:
    from mr2ct.data.io import read_volume
    from mr2ct.evaluation import plots

    by_label = {c.label: rows[c.name] for c in CONDITIONS}
    files = {
        "fig3": os.path.join(out, "fig3_mutual_information.png"),
        "fig4": os.path.join(out, "fig4_examples.png"),
        "fig5": os.path.join(out, "fig5_dice.png"),
        "accuracy": os.path.join(out, "synthesis_accuracy.png"),
        "curves": os.path.join(out, "training_curves.png"),
    }
    plots.metric_boxplots(None, files["fig3"], groups=by_label, keys=["mi_ct_smr", "mi_mr_sct"])
    # What the registered ground truth adds: HU accuracy, bone, and both forms of GC against the MR.
    plots.metric_boxplots(None, files["accuracy"], groups=by_label,
                          keys=["mae_hu", "ssim", "bone_dice", "mae_bone_band_hu", "gc_abs_mr_sct", "gc_mr_sct"])
    from mr2ct.evaluation.scalars import read_scalars

    plots.training_curves({c.label: read_scalars(os.path.join(out, "runs", c.name, "cyclegan", "logs"))
                           for c in CONDITIONS}, files["curves"], TRAINING_CURVES)
    plots.dice_boxplots({**by_label, REFERENCE_LABEL: reference_rows}, files["fig5"],
                        keys=[m for m in SEGMENTATION_METRICS if m != "dice_mean"], references=(REFERENCE_LABEL,))
    split = os.path.join(out, "split")

    def load(folder):
        return read_volume(os.path.join(folder, f"{example_subject}.nii.gz")).array

    plots.condition_montage(
        example_subject,
        mr=load(os.path.join(split, "test_mr")),
        ct=load(os.path.join(split, "test_ct_on_mr_grid")),
        labels=load(os.path.join(split, "test_labels_mr")),
        conditions={c.label: (load(os.path.join(out, "evaluation", c.name, "sct")),
                              load(os.path.join(out, "evaluation", c.name, "labels"))) for c in CONDITIONS},
        path=files["fig4"],
    )
    return files
