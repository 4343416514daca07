"""Framing: both modalities' slices show the body at the same place, the centre of a fixed field of view.

A CycleGAN trained on unpaired MR and CT learns whatever differs between the
two sets of slices, position included: cycle consistency allows any
invertible warp. If the CT slices are centred on the body and the MR slices
keep the scanner's field of view, where the body sits off-centre, the
generators learn to move the anatomy along with the contrast. So both domains
are framed by one rule (the paper: "the CT volumes were cropped so that the
FOV resembles that of MRI volumes"):

* body: a mask of the patient (CT: :func:`mr2ct.data.preprocess.body_mask`,
  above -500 HU; MR: :func:`mr_body_mask`, above a tenth of the robust
  maximum), largest 3D connected component;
* in plane: a square of ``round(fov_mm / spacing)`` voxels per axis centred
  on the centre of the body's bounding box (:func:`body_centred_square`),
  padded with the background value (air) where it reaches beyond the image.

Cropping copies voxels (:func:`crop_box`, no interpolation); the origin moves
to the first kept voxel, so every voxel keeps its world position and the
inverse is a resampling by world coordinates
(:func:`mr2ct.data.preprocess.resample_to_reference`), which is how
``predict`` puts synthesized CT back on the MR's own grid.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from mr2ct.data.volume import Volume

# The MR body is the largest component above this fraction of the volume's 99.5th percentile.
MR_BODY_FRACTION = 0.1


def round_half_up(x: float) -> int:
    """Round half up (so that crop boxes do not depend on banker's rounding)."""
    return int(math.floor(x + 0.5))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component (face connectivity) of a boolean mask."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def open_in_plane(mask: np.ndarray) -> np.ndarray:
    """Binary opening by a 3x3 in-plane cross (cuts thin bridges); the mask itself if that empties it."""
    cross = np.zeros((3, 3, 3), dtype=bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    opened = ndimage.binary_opening(mask, structure=cross)
    return opened if opened.any() else mask


def mr_body_mask(mr: np.ndarray, fraction: float = MR_BODY_FRACTION) -> np.ndarray:
    """The patient's body in an MR array ``[k, j, i]``.

    Voxels above ``fraction`` of the volume's 99.5th percentile (air and
    background noise are far below it, fat and muscle far above), opened
    in-plane by one voxel, then the largest 3D connected component. Dark
    tissue inside (cortical bone, fluid) leaves holes, which do not change the
    bounding box.

    Args:
        mr: MR array.
        fraction: threshold as a fraction of the 99.5th percentile.
            Defaults to `0.1`.

    Returns:
        Boolean array of ``mr``'s shape (all false for an all-zero MR).
    """
    mr = np.asarray(mr, dtype=np.float32)
    top = float(np.percentile(mr, 99.5))
    if not top > 0:
        return np.zeros(mr.shape, dtype=bool)
    return largest_component(open_in_plane(mr > fraction * top))


def body_centred_square(body: np.ndarray, spacing_ij, fov_mm: float) -> dict:
    """The in-plane square of ``fov_mm`` centred on the bounding box of ``body`` (``[k, j, i]``, any ``k``).

    Returns:
        ``{"start_ij": [i0, j0], "size_ij": [n_i, n_j], "body_bbox_ij":
        [[i_min, i_max], [j_min, j_max]]}``; ``i0``, ``j0`` may be negative
        and the square may reach beyond the image (the crop pads there).
    """
    js = np.flatnonzero(body.any(axis=(0, 2)))
    is_ = np.flatnonzero(body.any(axis=(0, 1)))
    centre_i, centre_j = 0.5 * (is_[0] + is_[-1]), 0.5 * (js[0] + js[-1])
    s_i, s_j = spacing_ij
    size_i, size_j = max(1, round_half_up(fov_mm / s_i)), max(1, round_half_up(fov_mm / s_j))
    return {
        "start_ij": [round_half_up(centre_i - (size_i - 1) / 2.0), round_half_up(centre_j - (size_j - 1) / 2.0)],
        "size_ij": [int(size_i), int(size_j)],
        "body_bbox_ij": [[int(is_[0]), int(is_[-1])], [int(js[0]), int(js[-1])]],
    }


def crop_box(volume: Volume, start_ijk, size_ijk, pad_value: float) -> Volume:
    """The box of ``size_ijk`` voxels from ``start_ijk`` (may reach outside: padded with ``pad_value``).

    Voxels are copied; the origin moves to the first kept voxel, so world
    positions are unchanged. An integer array keeps its dtype if
    ``pad_value`` fits it, a float array its own; others become float32.
    """
    array = np.asarray(volume.array)
    n_k, n_j, n_i = array.shape
    i0, j0, k0 = (int(v) for v in start_ijk)
    size_i, size_j, size_k = (int(v) for v in size_ijk)
    if array.dtype.kind in "iu":
        limits = np.iinfo(array.dtype)
        keep = float(pad_value).is_integer() and limits.min <= pad_value <= limits.max
    else:
        keep = array.dtype.kind == "f"
    out = np.full((size_k, size_j, size_i), pad_value, dtype=array.dtype if keep else np.float32)
    src = [slice(max(s, 0), min(s + n, total)) for s, n, total in
           ((k0, size_k, n_k), (j0, size_j, n_j), (i0, size_i, n_i))]
    dst = [slice(sl.start - s, sl.stop - s) for sl, s in zip(src, (k0, j0, i0))]
    if all(sl.stop > sl.start for sl in src):
        out[tuple(dst)] = array[tuple(src)]
    origin = np.asarray(volume.origin) + volume.direction @ (np.asarray(volume.spacing) * np.array([i0, j0, k0]))
    return dataclasses.replace(volume, array=out, origin=tuple(float(o) for o in origin))


def frame_mr(mr: Volume, fov_mm: float = 320.0, pad_value: float = 0.0,
             fraction: float = MR_BODY_FRACTION) -> tuple[Volume, dict]:
    """Crop an MR in plane to a ``fov_mm`` square centred on the body, every slice kept.

    The same in-plane rule as the CT crop
    (:func:`mr2ct.data.preprocess.crop_ct_to_mr_fov`), so MR and CT slices
    show the body at the same place. An MR with no body above the threshold
    is returned uncropped (``info["framed"]`` false).

    Args:
        mr: MR volume, axial slices.
        fov_mm: in-plane field of view. Defaults to `320.0`.
        pad_value: value of padded voxels (background). Defaults to `0.0`.
        fraction: body threshold, a fraction of the 99.5th percentile.
            Defaults to `0.1`.

    Returns:
        ``(framed, info)``: the cropped MR and a JSON-serialisable dict with
        the rule's parameters, the body's bounding box (``body_bbox_ij``), the
        crop box (``crop_start_ijk``, ``crop_size_ijk``), whether it pads
        (``padded_ij``) and the shapes and origins before and after.
    """
    fov_mm = float(fov_mm)
    if not fov_mm > 0:
        raise ValueError(f"fov_mm must be positive. Received: fov_mm={fov_mm}")
    array = np.asarray(mr.array)
    body = mr_body_mask(array, fraction)
    info = {"fov_mm": fov_mm, "pad_value": float(pad_value), "body_fraction": float(fraction),
            "shape_before": [int(n) for n in array.shape], "origin_before": [float(o) for o in mr.origin]}
    if not body.any():
        return mr, {**info, "framed": False}
    square = body_centred_square(body, mr.spacing[:2], fov_mm)
    (i0, j0), (size_i, size_j) = square["start_ij"], square["size_ij"]
    n_k, n_j, n_i = array.shape
    framed = crop_box(mr, (i0, j0, 0), (size_i, size_j, n_k), pad_value)
    info.update(
        framed=True,
        body_bbox_ij=square["body_bbox_ij"],
        crop_start_ijk=[int(i0), int(j0), 0],
        crop_size_ijk=[int(size_i), int(size_j), int(n_k)],
        padded_ij=[bool(i0 < 0 or i0 + size_i > n_i), bool(j0 < 0 or j0 + size_j > n_j)],
        shape_after=[int(n) for n in framed.array.shape],
        origin_after=[float(o) for o in framed.origin],
    )
    return framed, info
