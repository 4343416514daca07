"""Score synthesized CT against MR (always) and ground-truth CT (when there is one); segmentation and CT-to-MR too.

Per MR volume (the rows of ``metrics.csv``):

* ``mi_mr_sct``: mean over axial slices of the mutual information between the
  real MR and the synthesized CT (the paper's measure when no registered CT
  exists, Fig. 3a right), inside the body;
* ``gc_abs_mr_sct``: gradient correlation of MR and synthesized CT, per slice,
  mean, in the form of the GC loss's default (absolute central-difference
  gradients, the paper's first author's code); ``gc_mr_sct``: the same with
  signed Sobel gradients (Eq. 4 as written);
* with a ground-truth CT on the MR grid (the phantom has one): ``mae_hu``,
  ``me_hu``, ``psnr_db``, ``ssim`` inside the body, and ``mae_bone_band_hu``
  in a band of +-2 voxels around bone boundaries (where the GC loss should
  matter most), ``bone_dice``, the Dice of bone (sCT above 250 HU against CT
  above 250 HU, inside the body), ``mi_ct_sct``, and, for reference, ``mi_mr_ct`` and
  ``gc_abs_mr_ct``, ``gc_mr_ct``: the MI and both GCs of the MR with the
  ground-truth CT, the values a perfect synthesis would have (the signed GC
  is negative there: many edges have opposite signs in T1 MR and CT, e.g. fat
  bright in MR and dark in CT, so on paper-size phantoms it is about -0.2
  while the absolute form is about +0.5 to +0.6); and the body's shape and
  the agreement of neighbouring slices (:mod:`mr2ct.evaluation.geometry`:
  ``body_dice``, ``extent_ratio_lr``, ``extent_ratio_ap``,
  ``mae_through_plane_hu``, ``mae_in_plane_hu``);
* with ground-truth labels on the MR grid and a segmentation run
  (section 3.2, Fig. 5): the MR is segmented through synthesis
  (:class:`~mr2ct.serving.segment.VolumeSegmenter`: U-Net on synthesized CT
  and MR) and ``dice_<structure>`` is the Dice of each structure present in
  the ground truth of any subject (names from
  :data:`mr2ct.labels.LABELS`), ``dice_mean`` their mean. A structure
  in neither map of a subject scores NaN there (left out of the mean), one in
  only one map 0. The predicted labels are written to ``labels/``;
* with real CT volumes and a CT-to-MR generator: ``mi_ct_smr``, see below,
  for subjects that have both.

Per CT volume (``metrics_ct.csv``; the CT may be of other subjects than the
MR, as in the paper): ``mi_ct_smr``, the mutual information between the real
CT and its synthesized MR, G_MR(CT) (Fig. 3a left). There is no MR grid for
it, so it is computed on the CT's *prepared* grid: the CT is cropped to the
MR-like field of view and resampled to S x S slices exactly as for training
(the model's preprocessing record), G_MR translates those slices, and the MI
is the mean over slices of the per-slice MI inside the body (prepared CT above
-500 HU), each image binned into 64 equal bins over its own range in the
slice (:func:`~mr2ct.metrics.mean_slice_mutual_information`).

Results go to ``metrics.csv``, ``metrics.json``, ``boxplots.png``,
``montage.png`` (MR | synthesized CT | ground truth | error per subject),
with ground truth ``reformats.png`` (coronal and sagittal: MR | synthesized
CT | ground truth) and,
with labels, ``dice_boxplots.png`` and ``segmentation_montage.png`` (MR |
predicted labels | true labels); with CT, ``metrics_ct.csv`` and
``metrics_ct.json``.
"""

from __future__ import annotations

import csv
import os
import warnings

import numpy as np
from scipy import ndimage

from mr2ct._atomic import atomic_write_json, atomic_write_text
from mr2ct.data.io import list_volumes, read_volume, subject_id, write_volume
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.evaluation.geometry import geometry_columns
from mr2ct.labels import LABELS
from mr2ct.metrics import (
    dice,
    dice_coefficient,
    mean_absolute_error,
    mean_error,
    mean_slice_gradient_correlation,
    mean_slice_mutual_information,
    psnr,
    ssim,
)

BODY_HU = -500.0
BONE_HU = 250.0


def body_mask_from_mr(mr: np.ndarray) -> np.ndarray:
    """Voxels above a tenth of the robust MR maximum, holes filled per slice."""
    threshold = 0.1 * np.percentile(mr, 99.5)
    mask = mr > threshold
    return np.stack([ndimage.binary_fill_holes(ndimage.binary_opening(s, iterations=1)) for s in mask])


def bone_band(ct: np.ndarray, width: int = 2) -> np.ndarray:
    """Voxels within ``width`` voxels (in-plane) of a bone boundary of ``ct``."""
    bone = ct > BONE_HU
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    grown = ndimage.binary_dilation(bone, structure, iterations=width)
    shrunk = ndimage.binary_erosion(bone, structure, iterations=width)
    return grown & ~shrunk


def _gc_columns(pair: str, a, b) -> dict:
    """``gc_abs_<pair>`` (the authors' form: absolute central differences) and ``gc_<pair>`` (signed Sobel, Eq. 4)."""
    return {
        f"gc_abs_{pair}": mean_slice_gradient_correlation(a, b, "central", absolute=True),
        f"gc_{pair}": mean_slice_gradient_correlation(a, b, "sobel", absolute=False),
    }


def bone_dice(sct: np.ndarray, ct: np.ndarray, body: np.ndarray) -> float:
    """Dice of bone, ``sct > BONE_HU`` against ``ct > BONE_HU``, inside ``body`` (NaN if neither has bone)."""
    return dice_coefficient((sct > BONE_HU) & body, (ct > BONE_HU) & body)


def evaluate_volume(mr, sct, ct=None, direction=None) -> dict:
    """Metrics of one synthesized CT (arrays on the MR grid, CT in HU).

    ``direction``: the MR grid's direction matrix, which names the left-right
    and front-back axes of the extent ratios. Defaults to `None` (identity).
    """
    mr, sct = np.asarray(mr, np.float64), np.asarray(sct, np.float64)
    body = body_mask_from_mr(mr)
    row = {
        "mi_mr_sct": mean_slice_mutual_information(mr, sct, mask=body),
        **_gc_columns("mr_sct", mr, sct),
    }
    if ct is not None:
        ct = np.asarray(ct, np.float64)
        body_ct = body | (ct > BODY_HU)
        band = bone_band(ct)
        row.update(
            mi_ct_sct=mean_slice_mutual_information(ct, sct, mask=body_ct),
            mae_hu=mean_absolute_error(sct, ct, body_ct),
            me_hu=mean_error(sct, ct, body_ct),
            psnr_db=psnr(sct, ct, mask=body_ct),
            ssim=ssim(sct, ct, mask=body_ct),
            mae_bone_band_hu=mean_absolute_error(sct, ct, band) if band.any() else float("nan"),
            bone_dice=bone_dice(sct, ct, body_ct),
            mi_mr_ct=mean_slice_mutual_information(mr, ct, mask=body),
            **_gc_columns("mr_ct", mr, ct),
            **geometry_columns(sct, ct, direction),
        )
    return row


def structure_name(label: int) -> str:
    """The name of a label value (:data:`mr2ct.labels.LABELS`), or ``label_<n>`` for others."""
    return LABELS.get(int(label), f"label_{int(label)}")


def _structure_label(structure) -> int:
    if isinstance(structure, str):
        names = {name: value for value, name in LABELS.items()}
        if structure not in names:
            raise Mr2ctError(f"unknown structure {structure!r}; known: {sorted(names)}")
        return names[structure]
    return int(structure)


def dice_scores(pred_labels, true_labels, structures) -> dict:
    """``{"dice_<name>": dice, ..., "dice_mean": mean}`` of two label maps.

    Args:
        pred_labels: integer label map.
        true_labels: integer label map of the same shape.
        structures: label values (or names) to score.

    Returns:
        Dice per structure (NaN where a structure is in neither map, 0 where it
        is in only one) and their mean over the finite values (NaN if none).
    """
    labels = [_structure_label(s) for s in structures]
    return _dice_columns(dice(pred_labels, true_labels, labels=labels), labels)


def _dice_columns(values: dict, labels) -> dict:
    """``dice_<name>`` of each label (NaN if ``values`` lacks it) and ``dice_mean`` of the finite ones."""
    row = {f"dice_{structure_name(label)}": values.get(label, float("nan")) for label in labels}
    finite = [v for v in row.values() if np.isfinite(v)]
    row["dice_mean"] = float(np.mean(finite)) if finite else float("nan")
    return row


def evaluate_synthetic_mr(ct_hu, smr) -> dict:
    """``{"mi_ct_smr": MI}`` of prepared CT slices (HU) and their synthesized MR.

    The mean over slices of the per-slice MI inside the body (CT above
    ``BODY_HU``), each image binned over its own range in the slice.
    """
    ct_hu = np.asarray(ct_hu, np.float64)
    return {"mi_ct_smr": mean_slice_mutual_information(ct_hu, np.asarray(smr, np.float64), mask=ct_hu > BODY_HU)}


def evaluate_ct_folder(ct_dir, mr_synthesizer) -> list[dict]:
    """``[{"subject", "mi_ct_smr"}]`` for every CT volume of ``ct_dir`` (see the module doc).

    Args:
        ct_dir: folder of real CT volumes in HU.
        mr_synthesizer: a :class:`~mr2ct.serving.mr_synthesizer.MRSynthesizer`.
    """
    rows = []
    for path in list_volumes(ct_dir):
        ct_hu, smr = mr_synthesizer.prepared(read_volume(path))
        rows.append({"subject": subject_id(path), **evaluate_synthetic_mr(ct_hu, smr)})
    if not rows:
        raise InputError(ct_dir, "no CT volumes to evaluate")
    return rows


def _match(folder, subject):
    if folder is None:
        return None
    matches = [p for p in list_volumes(folder) if subject_id(p) == subject]
    return matches[0] if matches else None


def _resolve_models(labels_dir, segmenter, ct_dir, mr_synthesizer):
    """Check which inputs go together; load the segmenter and the CT-to-MR synthesizer from paths."""
    if (labels_dir is None) != (segmenter is None):
        raise Mr2ctError("Dice needs both ground-truth labels (labels_dir) and a segmentation run (segmenter)")
    segmentation_path = None
    if isinstance(segmenter, (str, os.PathLike)):
        from mr2ct.serving.segment import VolumeSegmenter

        segmentation_path = segmenter
        segmenter = VolumeSegmenter.from_path(segmenter)
    if ct_dir is None:
        return segmenter, None
    from mr2ct.serving.mr_synthesizer import MRSynthesizer

    if mr_synthesizer is None:
        run = getattr(segmenter, "run", None)
        if run is not None:  # the generators the U-Net was trained behind
            mr_synthesizer = MRSynthesizer.from_generator(run.model.generator_ct_to_mr, run.preprocessing)
        elif segmentation_path is not None:  # an export with segmentation has G_MR too
            mr_synthesizer = MRSynthesizer.from_path(segmentation_path)
        else:
            raise Mr2ctError("MI between real CT and synthesized MR needs a CT-to-MR generator: "
                             "give an export or a run (mr_synthesizer) or a segmentation run (segmenter)")
    elif isinstance(mr_synthesizer, (str, os.PathLike)):
        mr_synthesizer = MRSynthesizer.from_path(mr_synthesizer)
    return segmenter, mr_synthesizer


def evaluate_folders(
    mr_dir,
    sct_dir,
    out_dir,
    ct_on_mr_grid_dir=None,
    montage=True,
    labels_dir=None,
    segmenter=None,
    ct_dir=None,
    mr_synthesizer=None,
    structures=None,
) -> list[dict]:
    """Evaluate every synthesized CT in ``sct_dir`` against the MR of the same subject.

    Args:
        mr_dir: folder of the real MR volumes.
        sct_dir: folder of synthesized CT on the MR grids (same subject names).
        out_dir: where tables and figures go.
        ct_on_mr_grid_dir: ground-truth CT on each MR's grid. Defaults to `None`.
        montage: write ``montage.png``. Defaults to `True`.
        labels_dir: ground-truth labels on each MR's grid (e.g. the
            phantom's ``labels_mr/``); needs ``segmenter``. A subject without
            a label volume gets NaN Dice. Defaults to `None`.
        segmenter: a :class:`~mr2ct.serving.segment.VolumeSegmenter` or a
            segmentation run folder; needs ``labels_dir``. Defaults to `None`.
        ct_dir: real CT volumes (any subjects) for ``mi_ct_smr``. Defaults to `None`.
        mr_synthesizer: the CT-to-MR generator for ``ct_dir``: a
            :class:`~mr2ct.serving.mr_synthesizer.MRSynthesizer`, an export or
            a run folder. Defaults to `None` (the segmentation run's G_MR).
        structures: label values or names to score. Defaults to `None`
            (every structure present in the ground truth).

    Returns:
        One dict per MR subject (the rows of ``metrics.csv``).
    """
    segmenter, mr_synthesizer = _resolve_models(labels_dir, segmenter, ct_dir, mr_synthesizer)
    rows = []
    examples = []
    overlaps = []  # per subject: {label: dice} over the labels of either map, or None
    label_examples = []  # (subject, MR, predicted labels, true labels) for the segmentation montage
    present = set()
    for sct_path in list_volumes(sct_dir):
        subject = subject_id(sct_path)
        mr_path = _match(mr_dir, subject)
        if mr_path is None:
            raise InputError(sct_path, f"no MR volume of subject {subject!r} in {mr_dir}")
        mr, sct = read_volume(mr_path), read_volume(sct_path)
        if mr.shape != sct.shape:
            raise InputError(sct_path, f"shape {sct.shape} differs from its MR {mr.shape}")
        ct_path = _match(ct_on_mr_grid_dir, subject)
        ct = read_volume(ct_path) if ct_path else None
        if ct is not None and ct.shape != mr.shape:
            raise InputError(ct_path, f"shape {ct.shape} differs from its MR {mr.shape} (need the CT on the MR grid)")
        row = {"subject": subject,
               **evaluate_volume(mr.array, sct.array, None if ct is None else ct.array, mr.direction)}
        label_path = _match(labels_dir, subject)
        if label_path is not None:
            truth = read_volume(label_path).array
            if truth.shape != mr.shape:
                raise InputError(label_path, f"shape {truth.shape} differs from its MR {mr.shape} "
                                 "(need labels on the MR grid)")
            predicted = segmenter.volume(mr)
            write_volume(predicted, os.path.join(out_dir, "labels", f"{subject}.nii.gz"), dtype="uint8")
            truth = np.rint(truth).astype(np.int64)
            present.update(int(v) for v in np.unique(truth) if v != 0)
            overlaps.append(dice(predicted.array, truth))
            label_examples.append((subject, mr.array, np.rint(predicted.array).astype(np.int64), truth))
        else:
            overlaps.append(None)
        rows.append(row)
        examples.append((subject, mr.array, sct.array, None if ct is None else ct.array, mr.spacing))
    if not rows:
        raise InputError(sct_dir, "no synthesized volumes to evaluate")
    if labels_dir is not None:
        if all(o is None for o in overlaps):
            raise InputError(labels_dir, "no label volume of any evaluated subject")
        labels = sorted(present) if structures is None else [_structure_label(s) for s in structures]
        for row, overlap in zip(rows, overlaps):
            row.update(_dice_columns(overlap or {}, labels))
    os.makedirs(out_dir, exist_ok=True)
    if ct_dir is not None:
        ct_rows = evaluate_ct_folder(ct_dir, mr_synthesizer)
        write_tables(ct_rows, out_dir, stem="metrics_ct")
        by_subject = {r["subject"]: r["mi_ct_smr"] for r in ct_rows}
        if any(r["subject"] in by_subject for r in rows):
            for row in rows:
                row["mi_ct_smr"] = by_subject.get(row["subject"], float("nan"))
    write_tables(rows, out_dir)
    from mr2ct.evaluation import plots

    plots.metric_boxplots(rows, os.path.join(out_dir, "boxplots.png"))
    if labels_dir is not None:
        plots.dice_boxplots({"": rows}, os.path.join(out_dir, "dice_boxplots.png"))
        if montage:
            plots.segmentation_montage(label_examples[:6], os.path.join(out_dir, "segmentation_montage.png"))
    if montage:
        plots.synthesis_montage([e[:4] for e in examples[:6]], os.path.join(out_dir, "montage.png"))
        with_truth = [e for e in examples if e[3] is not None]
        if with_truth:
            plots.reformat_montage(with_truth[:4], os.path.join(out_dir, "reformats.png"))
    return rows


def write_tables(rows, out_dir, stem="metrics"):
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(keys)]
    for row in rows:
        lines.append(",".join(_fmt(row.get(k, "")) for k in keys))
    atomic_write_text(os.path.join(out_dir, f"{stem}.csv"), "\n".join(lines) + "\n")
    with warnings.catch_warnings():  # a column that is NaN in every row (e.g. a structure nobody has) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = {k: {"mean": float(np.nanmean([r[k] for r in rows])), "std": float(np.nanstd([r[k] for r in rows]))}
                   for k in keys if k != "subject" and all(isinstance(r.get(k), float) for r in rows)}
    atomic_write_json(os.path.join(out_dir, f"{stem}.json"), {"volumes": rows, "summary": summary})


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_table(path) -> list[dict]:
    with open(path) as f:
        return [
            {k: (v if k == "subject" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)
        ]
