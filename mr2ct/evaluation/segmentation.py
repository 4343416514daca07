"""Score segmentation through synthesis against ground-truth labels on the MR grid (Fig. 5 of the paper).

Each MR volume is segmented (:class:`~mr2ct.serving.segment.VolumeSegmenter`:
the U-Net on the synthesized CT and the MR, or any other source of label
maps), and the Dice of every structure of :data:`mr2ct.labels.LABELS` is
computed against the true labels of the same subject. Results:

* ``<name>_metrics.csv`` / ``<name>_metrics.json``: one row per subject, a
  ``dice_<structure>`` column per structure (NaN where a structure is in
  neither map) and ``dice_mean``, the mean over the structures scored;
* ``<name>_montage.png``: MR, predicted and true labels, two slices per subject;
* ``<name>_boxplots.png``: Dice of the paper's four evaluated structures
  (pelvis, femur, gluteus medius, gluteus minimus) over the subjects;
* ``labels/<subject>.nii.gz``: the predicted label volumes.
"""

from __future__ import annotations

import os

import numpy as np

from mr2ct.data.io import list_volumes, read_volume, subject_id, write_volume
from mr2ct.errors import InputError
from mr2ct.labels import EVALUATED_STRUCTURES, LABELS

STRUCTURES = tuple(v for v in LABELS if v != 0)
"""Every structure scored: the 22 of the label table."""


def paper_dice_keys() -> list[str]:
    """``dice_<name>`` of the paper's four evaluated structures."""
    return [f"dice_{LABELS[v]}" for v in EVALUATED_STRUCTURES]


def evaluate_segmentation(mr_dir, labels_dir, segment, out_dir, name="segmentation",
                          predicted_dir=None) -> list[dict]:
    """Segment every MR of ``mr_dir`` and score it against the labels of the same subject.

    Args:
        mr_dir: folder of MR volumes.
        labels_dir: folder of ground-truth label volumes on each MR's grid
            (same subject names).
        segment: a :class:`~mr2ct.serving.segment.VolumeSegmenter`, or any
            callable ``Volume -> label Volume`` on the MR's grid.
        out_dir: where tables, figures and ``labels/`` go.
        name: first part of the file names of the tables and figures.
            Defaults to `"segmentation"`.
        predicted_dir: where the predicted label volumes go. Defaults to
            ``out_dir/labels``.

    Returns:
        One dict per subject: ``subject``, ``dice_<structure>`` for the 22
        structures and ``dice_mean``.
    """
    from mr2ct.evaluation import plots
    from mr2ct.evaluation.evaluate import dice_scores, write_tables

    segment_volume = getattr(segment, "volume", segment)
    predicted_dir = predicted_dir or os.path.join(out_dir, "labels")
    rows, examples = [], []
    mr_paths = list_volumes(mr_dir)  # an InputError naming the folder if it holds none
    label_paths = {subject_id(p): p for p in list_volumes(labels_dir)}
    for mr_path in mr_paths:
        subject = subject_id(mr_path)
        label_path = label_paths.get(subject)
        if label_path is None:
            raise InputError(labels_dir, f"no label volume of subject {subject!r} (its MR: {mr_path})")
        mr, truth = read_volume(mr_path), read_volume(label_path)
        if truth.shape != mr.shape:
            raise InputError(label_path, f"shape {truth.shape} differs from its MR {mr.shape} "
                             "(need labels on the MR grid)")
        predicted = segment_volume(mr)
        write_volume(predicted, os.path.join(predicted_dir, f"{subject}.nii.gz"), dtype="uint8")
        truth_array = np.rint(truth.array).astype(np.int64)
        predicted_array = np.rint(predicted.array).astype(np.int64)
        rows.append({"subject": subject, **dice_scores(predicted_array, truth_array, STRUCTURES)})
        examples.append((subject, mr.array, predicted_array, truth_array))
    os.makedirs(out_dir, exist_ok=True)
    write_tables(rows, out_dir, stem=f"{name}_metrics")
    plots.dice_boxplots({"": rows}, os.path.join(out_dir, f"{name}_boxplots.png"), keys=paper_dice_keys())
    plots.segmentation_montage(examples[:6], os.path.join(out_dir, f"{name}_montage.png"))
    return rows


def summary_line(row: dict) -> str:
    """``subject: Dice pelvis 0.91  femur 0.93 ...  mean of 22 0.71`` for one row."""
    four = "  ".join(f"{k.removeprefix('dice_').replace('_', ' ')} {row[k]:.3f}" for k in paper_dice_keys())
    return f"{row['subject']}: Dice {four}  (mean of {len(STRUCTURES)}: {row['dice_mean']:.3f})"
