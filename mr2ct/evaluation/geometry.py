"""The shape of a synthesized CT against the true CT, and how well its slices agree with each other.

A CycleGAN can learn to change the body's shape along with its contrast (the
CT training bodies are wider on average, say, and the generator widens every
body); and a slice-by-slice synthesis can disagree between neighbouring
slices, which a coronal or sagittal reformat shows as horizontal stripes. With
the true CT on the MR grid (the phantom's pairing) both are measured:

* ``body_dice``: Dice of the body outline, synthesized against true CT
  (voxels above ``BODY_HU``, holes filled slice by slice);
* ``extent_ratio_lr``, ``extent_ratio_ap``: the body's left-right and
  front-back extent in the synthesized CT over the true CT's, summed over the
  slices that hold body (1 when the shape is kept; the axes come from the
  volume's direction, LPS);
* ``mae_through_plane_hu``: the mean absolute difference, synthesized against
  true CT, of the HU step from each slice to the next, inside the body:
  0 for a perfect synthesis, large where neighbouring slices disagree;
  ``mae_in_plane_hu`` is the same for the step from each row to the next,
  its in-plane counterpart, for scale.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BODY_HU = -500.0


def body_outline(ct_hu: np.ndarray) -> np.ndarray:
    """Voxels above ``BODY_HU``, holes filled in each axial slice (so bowel gas counts as body)."""
    return np.stack([ndimage.binary_fill_holes(s) for s in np.asarray(ct_hu) > BODY_HU])


def in_plane_axes(direction=None) -> dict[str, int]:
    """``{"lr": axis, "ap": axis}``: which array axis (1 rows, 2 columns) runs left-right and front-back.

    ``direction``: the volume's 3x3 direction matrix (columns: world LPS directions of the ``i``, ``j``, ``k``
    voxel axes). Defaults to `None`: identity (columns left-right, rows front-back).
    """
    d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
    # array axis 2 is voxel axis i (column 0 of the direction), array axis 1 is voxel axis j (column 1)
    i_is_lr = abs(d[0, 0]) >= abs(d[1, 0])
    return {"lr": 2, "ap": 1} if i_is_lr else {"lr": 1, "ap": 2}


def _extent(mask: np.ndarray, axis: int) -> int:
    """Sum over slices of the body's extent in voxels along ``axis`` (1 or 2) of a ``[k, j, i]`` mask."""
    other = 2 if axis == 1 else 1
    present = mask.any(axis=other)  # [k, n along axis]
    total = 0
    for line in present:
        hits = np.flatnonzero(line)
        if hits.size:
            total += hits[-1] - hits[0] + 1
    return int(total)


def _step_mae(sct, ct, body, axis) -> float:
    """Mean over voxel pairs inside ``body`` of | step of sCT - step of CT | along ``axis``."""
    both = np.logical_and(np.take(body, range(1, body.shape[axis]), axis=axis),
                          np.take(body, range(body.shape[axis] - 1), axis=axis))
    if not both.any():
        return float("nan")
    return float(np.mean(np.abs(np.diff(sct, axis=axis) - np.diff(ct, axis=axis))[both]))


def geometry_columns(sct, ct, direction=None) -> dict[str, float]:
    """The module's columns for one synthesized CT against the true CT (arrays ``[k, j, i]`` in HU, same grid)."""
    sct, ct = np.asarray(sct, np.float64), np.asarray(ct, np.float64)
    if sct.shape != ct.shape:
        raise ValueError(f"sCT shape {sct.shape} differs from CT shape {ct.shape}")
    outline_sct, outline_ct = body_outline(sct), body_outline(ct)
    overlap = 2.0 * np.logical_and(outline_sct, outline_ct).sum()
    total = outline_sct.sum() + outline_ct.sum()
    row = {"body_dice": float(overlap / total) if total else float("nan")}
    for name, axis in in_plane_axes(direction).items():
        truth = _extent(outline_ct, axis)
        row[f"extent_ratio_{name}"] = _extent(outline_sct, axis) / truth if truth else float("nan")
    body = outline_ct | outline_sct
    row["mae_through_plane_hu"] = _step_mae(sct, ct, body, axis=0)
    row["mae_in_plane_hu"] = _step_mae(sct, ct, body, axis=1)
    return row
