"""The CT cropped to an MR-like field of view: a craniocaudal slab and a body-centred in-plane square."""

from __future__ import annotations

import enum

import numpy as np
from scipy import ndimage

from mr2ct.data.framing import body_centred_square, crop_box, largest_component, open_in_plane, round_half_up
from mr2ct.data.geometry import _name, check_volume
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError

AIR_HU = -1000.0
# The per-slice bone area of the "bone" slab landmark is smoothed along k with a
# Gaussian of this sigma (mm) before its peak is taken.
BONE_PROFILE_SIGMA_MM = 10.0


class SlabCenter(enum.StrEnum):
    """Where the craniocaudal slab of a cropped CT is centred."""

    BONE = "bone"  # the slice of largest bone cross-section (femoral heads in a hip CT)
    BODY = "body"  # the middle of the body's craniocaudal extent
    IMAGE = "image"  # the middle slice of the image


def body_mask(ct: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """The patient's body in a CT array ``[k, j, i]``.

    Voxels above ``threshold_hu``, opened in-plane by one voxel (a 3x3 cross;
    cuts thin bridges to the table or blanket), then the largest 3D connected
    component. Holes (bowel gas, lungs) are not filled: they do not change the
    bounding box.

    Args:
        ct: CT in HU.
        threshold_hu: tissue threshold. Defaults to `-500.0`.

    Returns:
        Boolean array of ``ct``'s shape (all false if nothing is above threshold).
    """
    return largest_component(open_in_plane(np.asarray(ct) > threshold_hu))


_round = round_half_up


def _slab_landmark(ct: np.ndarray, body: np.ndarray, spacing_k: float, slab_center: SlabCenter,
                   bone_threshold_hu: float) -> tuple[float, str]:
    """Slice index of the slab centre, and the rule actually used."""
    n_slices = ct.shape[0]
    if slab_center == SlabCenter.BONE:
        bone = (ct > bone_threshold_hu) & body
        area = bone.reshape(n_slices, -1).sum(axis=1).astype(np.float64)
        if area.any():
            profile = ndimage.gaussian_filter1d(area, BONE_PROFILE_SIGMA_MM / spacing_k, mode="nearest")
            return float(np.argmax(profile)), SlabCenter.BONE.value
        slab_center = SlabCenter.BODY  # no bone at all: fall back to the body
    if slab_center == SlabCenter.BODY:
        ks = np.flatnonzero(body.reshape(n_slices, -1).any(axis=1))
        return 0.5 * (ks[0] + ks[-1]), SlabCenter.BODY.value
    return (n_slices - 1) / 2.0, SlabCenter.IMAGE.value


def crop_ct_to_mr_fov(
    ct: Volume,
    fov_mm: float = 320.0,
    slab_mm: float = 76.0,
    slab_center: SlabCenter | str = SlabCenter.BONE,
    center_mm: float | None = None,
    body_threshold_hu: float = -500.0,
    bone_threshold_hu: float = 200.0,
    pad_value: float = AIR_HU,
) -> tuple[Volume, dict]:
    """Crop a CT to an MR-like field of view: a square in-plane, a slab craniocaudally.

    The rule (see the module docstring): body = CT above ``body_threshold_hu``,
    largest component. A slab of ``round(slab_mm / spacing_k)`` slices is
    centred on the landmark ``slab_center`` (or on world ``z = center_mm``)
    and shifted to stay inside the image. In-plane, ``round(fov_mm /
    spacing)`` voxels per axis are centred on the centre of the body's
    bounding box within the slab, padded with ``pad_value`` beyond the image.
    Voxels are copied, not interpolated; the origin moves to the first kept
    voxel, so world positions are unchanged.

    Args:
        ct: CT volume in HU, axial slices (``k`` along the body axis).
        fov_mm: in-plane field of view (the paper's MR: 320 mm).
            Defaults to `320.0`.
        slab_mm: craniocaudal thickness (the paper's MR slab: 76 mm).
            Defaults to `76.0`.
        slab_center: how the slab is centred, a :class:`SlabCenter`:
            ``"bone"`` the slice of largest (smoothed) bone cross-section,
            the femoral heads of a hip CT (falls back to ``"body"`` if there
            is no bone); ``"body"`` the middle of the body's extent;
            ``"image"`` the middle slice.
            Defaults to `"bone"`.
        center_mm: world ``z`` (LPS, superior, mm) of the slab centre;
            overrides ``slab_center``. Defaults to `None`.
        body_threshold_hu: body threshold. Defaults to `-500.0`.
        bone_threshold_hu: bone threshold of the ``"bone"`` landmark.
            Defaults to `200.0`.
        pad_value: value of padded voxels (air). Defaults to `-1000.0`.

    Returns:
        ``(cropped, info)``: the cropped CT and a JSON-serialisable dict with the
        rule's parameters, the landmark (``landmark_rule`` actually used,
        ``landmark_index_k``, ``landmark_z_mm``), the body's in-plane bounding
        box within the slab (``body_bbox_ij``) and the crop box as ``crop_start_ijk`` (index of the first kept voxel in the input,
        negative where padded) and ``crop_size_ijk``.

    Raises:
        InputError: the CT is not a valid 3D volume or holds no body.
    """
    check_volume(ct)
    slab_center = SlabCenter(slab_center)
    fov_mm, slab_mm = float(fov_mm), float(slab_mm)
    if not (fov_mm > 0 and slab_mm > 0):
        raise ValueError(f"fov_mm and slab_mm must be positive. Received: fov_mm={fov_mm}, slab_mm={slab_mm}")
    array = np.asarray(ct.array)
    n_k, n_j, n_i = array.shape
    s_i, s_j, s_k = ct.spacing
    body = body_mask(array, body_threshold_hu)
    if not body.any():
        raise InputError(ct.path, f"has no voxel above {body_threshold_hu} HU: cannot find the body to crop")

    size_k = max(1, _round(slab_mm / s_k))
    kept_k = min(size_k, n_k)
    if center_mm is not None:
        # world z of voxel (i, j, k) = origin_z + M[2] . (i, j, k), M = direction @ diag(spacing);
        # solved for k at the in-plane centre of the image.
        m = ct.direction @ np.diag(ct.spacing)
        if abs(m[2, 2]) < 1e-6 * s_k:
            raise ValueError(f"center_mm needs axial slices; the k axis of {_name(ct)} has no z component")
        centre_ij = np.array([(n_i - 1) / 2.0, (n_j - 1) / 2.0])
        landmark_k = (float(center_mm) - ct.origin[2] - m[2, :2] @ centre_ij) / m[2, 2]
        rule = "center_mm"
    else:
        landmark_k, rule = _slab_landmark(array, body, s_k, slab_center, bone_threshold_hu)
    k0 = _round(landmark_k - (kept_k - 1) / 2.0)
    k0 = min(max(k0, 0), n_k - kept_k)

    slab_body = body[k0:k0 + kept_k]
    if not slab_body.any():  # center_mm outside the body: use the whole body
        slab_body = body
    square = body_centred_square(slab_body, (s_i, s_j), fov_mm)
    (i0, j0), (size_i, size_j) = square["start_ij"], square["size_ij"]
    (i_min, i_max), (j_min, j_max) = square["body_bbox_ij"]
    cropped = crop_box(ct, (i0, j0, k0), (size_i, size_j, kept_k), pad_value)
    origin = np.asarray(cropped.origin)

    def world_z(k):  # at the in-plane centre of the crop
        ijk = np.array([i0 + (size_i - 1) / 2.0, j0 + (size_j - 1) / 2.0, k])
        return ct.origin[2] + (ct.direction @ (np.asarray(ct.spacing) * ijk))[2]

    info = {
        "fov_mm": fov_mm,
        "slab_mm": slab_mm,
        "slab_center": slab_center.value,
        "center_mm": None if center_mm is None else float(center_mm),
        "landmark_rule": rule,
        "landmark_index_k": float(landmark_k),
        "body_threshold_hu": float(body_threshold_hu),
        "bone_threshold_hu": float(bone_threshold_hu),
        "pad_value": float(pad_value),
        "landmark_z_mm": float(world_z(landmark_k)),
        "body_bbox_ij": [[i_min, i_max], [j_min, j_max]],
        "crop_start_ijk": [int(i0), int(j0), int(k0)],
        "crop_size_ijk": [int(size_i), int(size_j), int(kept_k)],
        "padded_ijk": [bool(i0 < 0 or i0 + size_i > n_i), bool(j0 < 0 or j0 + size_j > n_j), False],
        "slab_shorter_than_requested": bool(kept_k < size_k),
        "extent_mm_ijk": [size_i * s_i, size_j * s_j, kept_k * s_k],
        "shape_before": [int(n) for n in array.shape],
        "shape_after": [int(n) for n in cropped.array.shape],
        "origin_before": [float(o) for o in ct.origin],
        "origin_after": [float(o) for o in origin],
    }
    return cropped, info
