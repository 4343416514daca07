"""Score synthesized CT against MR (always) and ground-truth CT (when there is one).

Per volume:

* ``mi_mr_sct``: mean over axial slices of the mutual information between the
  real MR and the synthesized CT (the paper's measure when no registered CT
  exists), inside the body;
* ``gc_mr_sct``: gradient correlation of MR and synthesized CT, per slice, mean;
* with a ground-truth CT on the MR grid (the phantom has one): ``mae_hu``,
  ``me_hu``, ``psnr_db``, ``ssim`` inside the body, and ``mae_bone_band_hu``
  in a band of +-2 voxels around bone boundaries (where the GC loss should
  matter most).

Results go to ``metrics.csv``, ``metrics.json``, ``boxplots.png`` and
``montage.png`` (MR | synthesized CT | ground truth | error per subject).
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from scipy import ndimage

from mr2ct._atomic import atomic_write_json, atomic_write_text
from mr2ct.data.io import list_volumes, read_volume, subject_id
from mr2ct.errors import InputError
from mr2ct.metrics import mean_absolute_error, mean_error, mean_slice_mutual_information, psnr, ssim

BODY_HU = -500.0
BONE_HU = 250.0


def _gc_slices(a, b):
    """Mean over slices of the gradient correlation (NumPy, Sobel, reflect borders)."""
    values = []
    for sa, sb in zip(a, b):
        parts = []
        for axis in (0, 1):
            ga = ndimage.sobel(sa.astype(np.float64), axis=axis, mode="mirror")
            gb = ndimage.sobel(sb.astype(np.float64), axis=axis, mode="mirror")
            ga, gb = ga - ga.mean(), gb - gb.mean()
            denominator = np.sqrt((ga**2).sum() * (gb**2).sum())
            parts.append((ga * gb).sum() / denominator if denominator > 0 else 0.0)
        values.append(np.mean(parts))
    return float(np.mean(values))


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


def evaluate_volume(mr, sct, ct=None) -> dict:
    """Metrics of one synthesized CT (arrays on the MR grid, CT in HU)."""
    mr, sct = np.asarray(mr, np.float64), np.asarray(sct, np.float64)
    body = body_mask_from_mr(mr)
    row = {
        "mi_mr_sct": mean_slice_mutual_information(mr, sct, mask=body),
        "gc_mr_sct": _gc_slices(mr, sct),
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
        )
    return row


def _match(folder, subject):
    if folder is None:
        return None
    matches = [p for p in list_volumes(folder) if subject_id(p) == subject]
    return matches[0] if matches else None


def evaluate_folders(mr_dir, sct_dir, out_dir, ct_on_mr_grid_dir=None, montage=True) -> list[dict]:
    """Evaluate every synthesized CT in ``sct_dir`` against the MR of the same subject."""
    rows = []
    examples = []
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
        row = {"subject": subject, **evaluate_volume(mr.array, sct.array, None if ct is None else ct.array)}
        rows.append(row)
        examples.append((subject, mr.array, sct.array, None if ct is None else ct.array))
    if not rows:
        raise InputError(sct_dir, "no synthesized volumes to evaluate")
    os.makedirs(out_dir, exist_ok=True)
    write_tables(rows, out_dir)
    from mr2ct.evaluation import plots

    plots.metric_boxplots(rows, os.path.join(out_dir, "boxplots.png"))
    if montage:
        plots.synthesis_montage(examples[:6], os.path.join(out_dir, "montage.png"))
    return rows


def write_tables(rows, out_dir, stem="metrics"):
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(keys)]
    for row in rows:
        lines.append(",".join(_fmt(row.get(k, "")) for k in keys))
    atomic_write_text(os.path.join(out_dir, f"{stem}.csv"), "\n".join(lines) + "\n")
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
