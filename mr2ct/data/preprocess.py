"""Preprocessing of MR and CT volumes into network slices (section 2.1 of the paper).

Each step is a function ``step(volume, ...) -> (volume, info)`` that keeps the
package's orientation convention (:mod:`mr2ct.data.volume`: array ``[k, j, i]``,
geometry in ``(i, j, k)`` order, LPS world) and returns, next to the new
:class:`~mr2ct.data.volume.Volume`, a JSON-serialisable ``info`` dict with
every parameter it used and what it measured, so a step can be repeated or
inverted later:

1. :func:`n4_bias_correction` (MR only): N4ITK on a shrunk copy, then the
   full-resolution bias field divides the original.
2. :func:`crop_ct_to_mr_fov` (CT only): the paper crops its CTs (360 mm, long
   craniocaudal range) "so that the FOV resembles that of MRI volumes" (320 mm,
   76 mm slab over the hips). The rule used here, from the CT alone:

   * body = voxels above ``body_threshold_hu`` (-500 HU), opened in-plane by
     one voxel (cuts thin bridges to the table), largest 3D connected component;
   * craniocaudal: a slab of ``round(slab_mm / spacing_k)`` slices centred on a
     landmark chosen by :class:`SlabCenter`. By default (``"bone"``) the
     landmark is the slice of largest bone cross-section: the area of body
     voxels above ``bone_threshold_hu`` (200 HU) per slice, smoothed along
     ``k`` with a Gaussian of ``BONE_PROFILE_SIGMA_MM`` (10 mm), at its peak.
     In a hip CT that is the level of the femoral heads, necks and greater
     trochanters together with the acetabula, the MR's target (on the
     phantom of :mod:`mr2ct.data.phantom` it lands 0-13 mm below the MR slab
     centre). It is a heuristic: a CT reaching far up the lumbar spine or
     holding another bulky bone may fool it, so ``center_mm`` (world ``z``,
     LPS superior) overrides it. The slab is shifted to stay inside the
     image; a CT shorter than the slab is kept whole;
   * in-plane: a square of ``round(fov_mm / spacing)`` voxels per axis centred
     on the centre of the body's bounding box (within the slab), padded with
     air (``pad_value``, -1000 HU) where it reaches beyond the image.

   Cropping copies voxels (no interpolation); the origin moves to the first
   kept voxel, so every voxel keeps its world position. Voxel counts and
   start indices are rounded half up.
3. :func:`resample_slices`: each axial slice to ``size`` pixels over the same
   physical extent (``N`` pixels of spacing ``s`` become ``M`` pixels of
   spacing ``N * s / M``; the origin moves by ``(s_new - s_old) / 2`` along
   the ``i`` and ``j`` direction columns, so the outer pixel edges stay put).
   :func:`resample_to_reference` maps a volume onto any other grid by world
   coordinates, e.g. synthesized CT back onto the MR's own grid.
4. Intensities to ``[-1, 1]`` with the reversible mappings of
   :mod:`mr2ct.data.intensity` (:class:`~mr2ct.data.intensity.CTIntensity`,
   :class:`~mr2ct.data.intensity.MRIntensity`).

:func:`preprocess_mr` and :func:`preprocess_ct` chain the steps under a
:class:`PreprocessConfig` and return ``float32`` slices ``[K, H, W]`` in
``[-1, 1]`` and a record (JSON-serialisable) holding the config, each step's
info, and the input and output geometries. To put network output back on the
MR's grid::

    hu = CTIntensity.from_config(ct_record["ct_intensity"]).inverse(slices)
    sct = resample_to_reference(
        volume_from_geometry(hu, mr_record["output_geometry"]),
        mr_record["input_geometry"], default_value=-1000.0)

Bad input (not 3D, empty, NaN or infinite voxels, non-positive spacing, a
singular direction, two volumes that should share a grid and do not) raises
:class:`~mr2ct.errors.InputError` naming the volume's file.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1).
    Tustison et al., "N4ITK: improved N3 bias correction", IEEE TMI 29(6), 2010.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from mr2ct.data.framing import (
    body_centred_square,
    crop_box,
    frame_mr,
    largest_component,
    open_in_plane,
    round_half_up,
)
from mr2ct.data.intensity import DEFAULT_HU_MAX, DEFAULT_HU_MIN, CTIntensity, MRIntensity
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


# --------------------------------------------------------------------------- checks and geometry


def _name(volume: Volume) -> str:
    return volume.path if volume.path is not None else "<in-memory volume>"


def check_volume(volume: Volume) -> Volume:
    """Check that a volume can be preprocessed; return it unchanged.

    Args:
        volume: the volume to check.

    Returns:
        ``volume``.

    Raises:
        InputError: naming ``volume.path``, if the array is not 3D, is empty,
            is not numeric, has NaN or infinite voxels, or the spacing is not
            positive or the direction singular.
    """
    if not isinstance(volume, Volume):
        raise TypeError(f"expected a mr2ct Volume. Received: {type(volume).__name__}")
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise InputError(volume.path, f"is not a 3D volume: array shape {array.shape}")
    if array.size == 0:
        raise InputError(volume.path, f"is empty: array shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise InputError(volume.path, f"has non-numeric voxels of dtype {array.dtype}")
    if array.dtype.kind == "f":
        nans = int(np.count_nonzero(np.isnan(array)))
        if nans:
            raise InputError(volume.path, f"has {nans} NaN voxels")
        infs = int(np.count_nonzero(np.isinf(array)))
        if infs:
            raise InputError(volume.path, f"has {infs} infinite voxels")
    spacing = np.asarray(volume.spacing)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(volume.path, f"has a non-positive or invalid spacing {volume.spacing}")
    if not np.all(np.isfinite(volume.origin)):
        raise InputError(volume.path, f"has an invalid origin {volume.origin}")
    if not np.all(np.isfinite(volume.direction)) or abs(np.linalg.det(volume.direction)) < 1e-6:
        raise InputError(volume.path, f"has a singular direction matrix {volume.direction.tolist()}")
    return volume


def check_same_grid(a: Volume, b: Volume, tol: float = 1e-4) -> None:
    """Check that two volumes share one voxel grid (e.g. an image and its mask).

    Args:
        a: the first volume.
        b: the second volume.
        tol: absolute tolerance on spacing (mm), origin (mm) and direction.
            Defaults to `1e-4`.

    Raises:
        InputError: naming ``a.path`` and ``b.path`` and what differs.
    """
    if a.same_grid(b, tol=tol):
        return
    differences = []
    if a.shape != b.shape:
        differences.append(f"shape {a.shape} vs {b.shape}")
    if not np.allclose(a.spacing, b.spacing, atol=tol):
        differences.append(f"spacing {a.spacing} vs {b.spacing}")
    if not np.allclose(a.origin, b.origin, atol=tol):
        differences.append(f"origin {a.origin} vs {b.origin}")
    if not np.allclose(a.direction, b.direction, atol=tol):
        differences.append(f"direction {a.direction.tolist()} vs {b.direction.tolist()}")
    raise InputError(a.path, f"is not on the same voxel grid as {_name(b)}: " + "; ".join(differences))


def geometry_record(volume: Volume) -> dict:
    """The grid of a volume as a JSON-ready dict.

    Keys: ``shape`` (array shape, ``[k, j, i]``), ``spacing`` and ``origin``
    (``(i, j, k)``, mm), ``direction`` (3x3 nested list, columns are the
    ``i, j, k`` directions in LPS).
    """
    return {
        "shape": [int(n) for n in volume.shape],
        "spacing": [float(s) for s in volume.spacing],
        "origin": [float(o) for o in volume.origin],
        "direction": np.asarray(volume.direction, dtype=float).tolist(),
    }


def volume_from_geometry(array, geometry: Mapping, path=None) -> Volume:
    """A volume of ``array`` on the grid a :func:`geometry_record` describes.

    Args:
        array: voxels ``[k, j, i]`` of the recorded shape.
        geometry: a dict from :func:`geometry_record` (e.g. a record's
            ``output_geometry``).
        path: file name carried for error messages. Defaults to `None`.
    """
    array = np.asarray(array)
    shape = tuple(geometry["shape"])
    if array.shape != shape:
        raise ValueError(f"array shape {array.shape} does not match the recorded grid shape {shape}")
    return Volume(array, geometry["spacing"], geometry["origin"], np.asarray(geometry["direction"]), path)


def _as_geometry(reference) -> dict:
    if isinstance(reference, Volume):
        return geometry_record(reference)
    if isinstance(reference, Mapping):
        return {key: reference[key] for key in ("shape", "spacing", "origin", "direction")}
    raise TypeError(f"reference must be a Volume or a geometry record. Received: {type(reference).__name__}")


def _to_sitk(array: np.ndarray, spacing, origin, direction):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
    return image


# --------------------------------------------------------------------------- N4


def _n4_shrink_factors(shape, spacing, shrink_factor: int) -> list:
    """Per-axis shrink ``(i, j, k)``: ``shrink_factor`` in-plane, about isotropic along ``k``."""
    n_k, n_j, n_i = shape
    s_i, s_j, s_k = spacing
    f_k = max(1, min(shrink_factor, round(shrink_factor * min(s_i, s_j) / s_k)))
    return [max(1, min(shrink_factor, n_i)), max(1, min(shrink_factor, n_j)), max(1, min(f_k, n_k))]


def n4_bias_correction(
    volume: Volume,
    shrink_factor: int = 4,
    iterations=(50, 50, 30),
    mask=None,
    convergence_threshold: float = 1e-3,
    control_points: int = 4,
    histogram_bins: int = 200,
) -> tuple[Volume, dict]:
    """Correct the intensity inhomogeneity (bias field) of an MR volume with N4ITK.

    The bias field is estimated by SimpleITK's
    ``N4BiasFieldCorrectionImageFilter`` on a copy shrunk by ``shrink_factor``
    in-plane (and along ``k`` by the factor that keeps the shrunk voxels about
    isotropic), then evaluated at full resolution
    (``GetLogBiasFieldAsImage(full_res_image)``) and divided out:
    ``corrected = volume / exp(log_field)``. The log field is shifted to mean
    0 inside the mask, so the corrected volume keeps the tissue's intensity
    level. The other N4 settings are ITK's defaults (B-spline order 3, bias
    FWHM 0.15, Wiener noise 0.01).

    Args:
        volume: the MR volume.
        shrink_factor: in-plane shrink of the image the field is fitted on.
            Defaults to `4`.
        iterations: maximum iterations per fitting level; its length is the
            number of levels (the B-spline mesh doubles at each). Defaults to
            `(50, 50, 30)`.
        mask: voxels the field is fitted on: a boolean array ``[k, j, i]`` or a
            :class:`Volume` on the same grid. Defaults to `None`: the Otsu
            threshold of the volume (the body). Voxels ``<= 0`` are always
            left out (N4 works on the log of the signal).
        convergence_threshold: N4's stopping threshold per level.
            Defaults to `1e-3`.
        control_points: B-spline control points per axis at the first level.
            Defaults to `4`.
        histogram_bins: bins of N4's intensity histogram. Defaults to `200`.

    Returns:
        ``(corrected, info)``: the corrected volume (``float32``, same grid) and
        a JSON-serialisable dict of the parameters, the mask used, the
        iterations run and the range of the bias field inside the mask.

    Raises:
        InputError: the volume is not a valid 3D volume, or has no positive
            voxel in the mask.

    Reference:
        Tustison et al., "N4ITK: improved N3 bias correction", IEEE TMI 2010.
    """
    import SimpleITK as sitk

    check_volume(volume)
    shrink_factor = int(shrink_factor)
    iterations = [int(n) for n in np.atleast_1d(iterations)]
    if shrink_factor < 1:
        raise ValueError(f"shrink_factor must be >= 1. Received: shrink_factor={shrink_factor}")
    if not iterations or min(iterations) < 1:
        raise ValueError(f"iterations must be one or more positive counts. Received: iterations={iterations}")
    if int(control_points) < 4:
        raise ValueError(f"control_points must be >= 4 (spline order 3 + 1). Received: {control_points}")

    array = np.asarray(volume.array, dtype=np.float32)
    image = _to_sitk(array, volume.spacing, volume.origin, volume.direction)
    if mask is None:
        mask_kind = "otsu"
        # OtsuThreshold(image, inside, outside): voxels above the threshold get `outside`.
        mask_array = sitk.GetArrayFromImage(sitk.OtsuThreshold(image, 0, 1, 200)).astype(bool)
    else:
        mask_kind = "given"
        if isinstance(mask, Volume):
            check_same_grid(mask, volume)
            mask = mask.array
        mask_array = np.asarray(mask).astype(bool)
        if mask_array.shape != array.shape:
            raise ValueError(f"mask must have the volume's shape {array.shape}. Received: {mask_array.shape}")
    mask_array &= array > 0
    if not mask_array.any():
        raise InputError(volume.path, "has no positive voxel inside the N4 mask")

    factors = _n4_shrink_factors(array.shape, volume.spacing, shrink_factor)
    mask_image = _to_sitk(mask_array.astype(np.uint8), volume.spacing, volume.origin, volume.direction)
    small = sitk.Shrink(image, factors)
    small_mask = sitk.Shrink(mask_image, factors)
    if not sitk.GetArrayViewFromImage(small_mask).any():  # a tiny mask can vanish when shrunk
        small_mask = sitk.Cast(sitk.Shrink(sitk.BinaryDilate(mask_image, [f // 2 + 1 for f in factors]),
                                           factors), sitk.sitkUInt8)

    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(iterations)
    n4.SetConvergenceThreshold(float(convergence_threshold))
    n4.SetNumberOfControlPoints([int(control_points)] * 3)
    n4.SetNumberOfHistogramBins(int(histogram_bins))
    n4.SetMaskLabel(1)
    n4.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(image)).astype(np.float64)
    log_field -= log_field[mask_array].mean()
    field = np.exp(log_field)
    corrected = (array / field).astype(np.float32)

    info = {
        "shrink_factor": shrink_factor,
        "shrink_factors_ijk": factors,
        "iterations": iterations,
        "convergence_threshold": float(convergence_threshold),
        "control_points": int(control_points),
        "histogram_bins": int(histogram_bins),
        "spline_order": 3,
        "mask": mask_kind,
        "mask_fraction": float(mask_array.mean()),
        "elapsed_iterations": int(n4.GetElapsedIterations()),
        "final_convergence": float(n4.GetCurrentConvergenceMeasurement()),
        "bias_field_range_in_mask": [float(field[mask_array].min()), float(field[mask_array].max())],
    }
    return volume.with_array(corrected), info


# --------------------------------------------------------------------------- CT crop


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


# --------------------------------------------------------------------------- resampling


_SITK_INTERPOLATORS = {0: "sitkNearestNeighbor", 1: "sitkLinear", 3: "sitkBSpline"}


def _size_pair(size) -> tuple[int, int]:
    rows, cols = (size, size) if np.isscalar(size) else tuple(size)
    rows, cols = int(rows), int(cols)
    if rows < 1 or cols < 1:
        raise ValueError(f"size must be positive. Received: size={size}")
    return rows, cols


def resample_slices(volume: Volume, size=(256, 256), order: int = 1, antialias: bool = True) -> tuple[Volume, dict]:
    """Resample every axial slice to ``size`` pixels over the same physical extent.

    ``N`` pixels of spacing ``s`` (extent ``N * s``) become ``M`` pixels of
    spacing ``N * s / M``; the origin (centre of the first pixel) moves by
    ``(s_new - s_old) / 2`` along the ``i`` and ``j`` direction columns, so the
    outer pixel edges, and every world point, stay where they were. Slices
    (``k``) are untouched. Pixels are sampled with
    ``scipy.ndimage.affine_transform`` (edge values repeated at the border).

    Args:
        volume: the volume.
        size: ``(rows, cols)`` of the new slices (``j``, ``i``), or one int
            for square slices. Defaults to `(256, 256)`.
        order: spline order, 0 (nearest, for labels; keeps the dtype), 1
            (linear) or 3 (cubic). Defaults to `1`.
        antialias: when shrinking, smooth first with a Gaussian of
            ``sigma = (N / M - 1) / 2`` pixels per axis (ignored for
            ``order=0``). Defaults to `True`.

    Returns:
        ``(resampled, info)``: the new volume (``float32`` unless ``order=0``)
        and a JSON-serialisable dict with the size, order and the shapes,
        spacings and origins before and after.
    """
    check_volume(volume)
    rows, cols = _size_pair(size)
    order = int(order)
    if order not in _SITK_INTERPOLATORS:
        raise ValueError(f"order must be 0, 1 or 3. Received: order={order}")
    array = np.asarray(volume.array)
    n_k, n_j, n_i = array.shape
    scale = np.array([n_j / rows, n_i / cols])  # old pixels per new pixel, (j, i)
    offset = 0.5 * scale - 0.5  # new pixel m sits at old index (m + 0.5) * N / M - 0.5
    sigma = np.maximum(0.0, (scale - 1.0) / 2.0) if (antialias and order > 0) else np.zeros(2)
    out_dtype = array.dtype if order == 0 else np.float32
    if order == 0:
        source = array.view(np.uint8) if array.dtype == bool else array
    else:
        source = array.astype(np.float32, copy=False)
    out = np.empty((n_k, rows, cols), dtype=source.dtype)
    for k in range(n_k):
        image = source[k]
        if sigma.any():
            image = ndimage.gaussian_filter(image, sigma, mode="nearest")
        out[k] = ndimage.affine_transform(
            image, scale, offset=offset, output_shape=(rows, cols), order=order, mode="nearest"
        )
    out = out.astype(out_dtype, copy=False)

    s_i, s_j, s_k = volume.spacing
    new_spacing = (n_i * s_i / cols, n_j * s_j / rows, s_k)
    shift = np.array([(new_spacing[0] - s_i) / 2.0, (new_spacing[1] - s_j) / 2.0, 0.0])
    origin = np.asarray(volume.origin) + volume.direction @ shift
    resampled = dataclasses.replace(volume, array=out, spacing=new_spacing, origin=tuple(origin))
    info = {
        "size": [rows, cols],
        "order": order,
        "antialias": bool(antialias),
        "antialias_sigma_ji": [float(s) for s in sigma],
        "shape_before": [int(n) for n in array.shape],
        "shape_after": [int(n) for n in out.shape],
        "spacing_before": [float(s) for s in volume.spacing],
        "spacing_after": [float(s) for s in new_spacing],
        "origin_before": [float(o) for o in volume.origin],
        "origin_after": [float(o) for o in origin],
    }
    return resampled, info


def resample_to_reference(volume: Volume, reference, order: int = 1, default_value: float | None = None) -> Volume:
    """Map a volume onto another grid by world coordinates (SimpleITK ``Resample``).

    Every voxel of the reference grid takes the value of ``volume`` at the same
    LPS world point (identity transform); points outside ``volume`` get
    ``default_value``. Used to put synthesized CT back on the MR's own grid, or
    to compare it with a ground-truth CT on another grid. No anti-aliasing:
    smooth first when mapping onto a much coarser grid.

    Args:
        volume: the volume to resample.
        reference: the target grid: a :class:`Volume` (only its geometry is
            used) or a dict from :func:`geometry_record`.
        order: 0 (nearest; keeps the dtype, for labels), 1 (linear) or 3
            (B-spline). Defaults to `1`.
        default_value: value outside ``volume``, e.g. -1000 for CT in HU.
            Defaults to `None`: the volume's minimum (its background).

    Returns:
        A :class:`Volume` on the reference grid (``float32`` unless
        ``order=0``), with ``volume.path``.
    """
    import SimpleITK as sitk

    check_volume(volume)
    order = int(order)
    if order not in _SITK_INTERPOLATORS:
        raise ValueError(f"order must be 0, 1 or 3. Received: order={order}")
    geometry = _as_geometry(reference)
    array = np.asarray(volume.array)
    if default_value is None:
        default_value = float(array.min())
    if order == 0:
        out_dtype = np.uint8 if array.dtype == bool else array.dtype
        source = array.astype(out_dtype, copy=False)
    else:
        out_dtype = np.float32
        source = array.astype(np.float32, copy=False)
    image = _to_sitk(source, volume.spacing, volume.origin, volume.direction)
    n_k, n_j, n_i = (int(n) for n in geometry["shape"])
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([n_i, n_j, n_k])
    resampler.SetOutputSpacing([float(s) for s in geometry["spacing"]])
    resampler.SetOutputOrigin([float(o) for o in geometry["origin"]])
    resampler.SetOutputDirection(np.asarray(geometry["direction"], dtype=float).ravel().tolist())
    resampler.SetInterpolator(getattr(sitk, _SITK_INTERPOLATORS[order]))
    resampler.SetDefaultPixelValue(float(default_value))
    resampler.SetOutputPixelType(image.GetPixelID())
    out = sitk.GetArrayFromImage(resampler.Execute(image)).astype(out_dtype, copy=False)
    if array.dtype == bool and order == 0:
        out = out.astype(bool)
    return Volume(out, geometry["spacing"], geometry["origin"], np.asarray(geometry["direction"]), volume.path)


# --------------------------------------------------------------------------- drivers


@dataclasses.dataclass
class PreprocessConfig:
    """Every setting of :func:`preprocess_mr` and :func:`preprocess_ct`.

    Args:
        image_size: slices are resampled to ``image_size x image_size``.
            Defaults to `256` (the paper).
        n4: N4 bias correction of MR. Defaults to `True` (the paper).
        n4_shrink_factor: N4's in-plane shrink. Defaults to `4`.
        n4_iterations: N4's iterations per level. Defaults to `(50, 50, 30)`.
        crop_ct: crop CT to the MR-like field of view. Defaults to `True`.
        frame_mr: crop MR in plane to the same ``fov_mm`` square centred on
            its body (:func:`mr2ct.data.framing.frame_mr`), so both domains
            show the body at the same place. Defaults to `True`.
        fov_mm: in-plane field of view of the CT crop and the MR framing.
            Defaults to `320.0`.
        slab_mm: craniocaudal slab of the CT crop. Defaults to `76.0`.
        slab_center: landmark of the slab (:class:`SlabCenter`).
            Defaults to `"bone"`.
        ct_hu_min: lower end of the CT window. Defaults to `-1024.0`.
        ct_hu_max: upper end of the CT window. Defaults to `2048.0`.
        mr_lower_percentile: MR percentile mapped to -1. Defaults to `0.5`.
        mr_upper_percentile: MR percentile mapped to 1. Defaults to `99.5`.
    """

    image_size: int = 256
    n4: bool = True
    n4_shrink_factor: int = 4
    n4_iterations: tuple = (50, 50, 30)
    crop_ct: bool = True
    frame_mr: bool = True
    fov_mm: float = 320.0
    slab_mm: float = 76.0
    slab_center: SlabCenter = SlabCenter.BONE
    ct_hu_min: float = DEFAULT_HU_MIN
    ct_hu_max: float = DEFAULT_HU_MAX
    mr_lower_percentile: float = 0.5
    mr_upper_percentile: float = 99.5

    def __post_init__(self):
        self.image_size = int(self.image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive. Received: image_size={self.image_size}")
        self.n4_iterations = tuple(int(n) for n in np.atleast_1d(self.n4_iterations))
        self.slab_center = SlabCenter(self.slab_center)
        for name in ("fov_mm", "slab_mm", "ct_hu_min", "ct_hu_max", "mr_lower_percentile", "mr_upper_percentile"):
            setattr(self, name, float(getattr(self, name)))
        CTIntensity(self.ct_hu_min, self.ct_hu_max)  # validate
        MRIntensity(self.mr_lower_percentile, self.mr_upper_percentile)

    def to_dict(self) -> dict:
        """JSON-ready dict (enums as strings, tuples as lists)."""
        out = dataclasses.asdict(self)
        out["n4_iterations"] = list(self.n4_iterations)
        out["slab_center"] = self.slab_center.value
        return out

    @classmethod
    def from_dict(cls, values: Mapping) -> "PreprocessConfig":
        """The config :meth:`to_dict` wrote.

        A record written before a setting existed lacks its key; it takes the
        value that reproduces what was done then (:data:`RECORD_LEGACY_VALUES`),
        not today's default, so an old export preprocesses as it was trained.
        """
        return cls(**{**RECORD_LEGACY_VALUES, **values})


# Settings added after preprocessing records were first written, with the behaviour before them:
# MR slices kept the scanner's field of view.
RECORD_LEGACY_VALUES = {"frame_mr": False}


def preprocess_mr(volume: Volume, config: PreprocessConfig | None = None) -> tuple[np.ndarray, dict]:
    """MR volume -> network slices: N4, framing on the body, resampling, percentile scaling.

    Args:
        volume: the MR volume, axial slices.
        config: settings. Defaults to `None` (``PreprocessConfig()``).

    Returns:
        ``(slices, record)``: ``float32`` array ``[K, H, W]`` in ``[-1, 1]`` and
        a JSON-serialisable record: ``modality``, ``source``, ``image_size``,
        ``config``, ``input_geometry``, ``n4`` (info or ``None``), ``framing``
        (info or ``None``), ``resample``, ``output_geometry`` and
        ``mr_intensity`` (the fitted mapping).

    Raises:
        InputError: the volume is invalid or its intensity is constant.
    """
    config = PreprocessConfig() if config is None else config
    check_volume(volume)
    record = {"modality": "mr", "source": volume.path, "image_size": config.image_size,
              "config": config.to_dict(), "input_geometry": geometry_record(volume), "n4": None,
              "framing": None}
    if config.n4:
        volume, record["n4"] = n4_bias_correction(
            volume, shrink_factor=config.n4_shrink_factor, iterations=config.n4_iterations
        )
    if config.frame_mr:
        volume, record["framing"] = frame_mr(volume, fov_mm=config.fov_mm)
    volume, record["resample"] = resample_slices(volume, config.image_size, order=1)
    record["output_geometry"] = geometry_record(volume)
    try:
        mapping = MRIntensity(config.mr_lower_percentile, config.mr_upper_percentile).fit(volume.array)
    except ValueError as error:
        raise InputError(volume.path, f"cannot be scaled to [-1, 1]: {error}") from None
    record["mr_intensity"] = mapping.get_config()
    return mapping.forward(volume.array), record


def preprocess_ct(volume: Volume, config: PreprocessConfig | None = None) -> tuple[np.ndarray, dict]:
    """CT volume -> network slices: MR-like crop, resampling, HU window.

    Args:
        volume: the CT volume in HU, axial slices.
        config: settings. Defaults to `None` (``PreprocessConfig()``).

    Returns:
        ``(slices, record)``: ``float32`` array ``[K, H, W]`` in ``[-1, 1]`` and
        a JSON-serialisable record: ``modality``, ``source``, ``image_size``,
        ``config``, ``input_geometry``, ``ct_crop`` (info or ``None``),
        ``resample``, ``output_geometry`` and ``ct_intensity`` (the window).

    Raises:
        InputError: the volume is invalid or holds no body to crop.
    """
    config = PreprocessConfig() if config is None else config
    check_volume(volume)
    record = {"modality": "ct", "source": volume.path, "image_size": config.image_size,
              "config": config.to_dict(), "input_geometry": geometry_record(volume), "ct_crop": None}
    if config.crop_ct:
        volume, record["ct_crop"] = crop_ct_to_mr_fov(
            volume, fov_mm=config.fov_mm, slab_mm=config.slab_mm, slab_center=config.slab_center
        )
    volume, record["resample"] = resample_slices(volume, config.image_size, order=1)
    record["output_geometry"] = geometry_record(volume)
    mapping = CTIntensity(config.ct_hu_min, config.ct_hu_max)
    record["ct_intensity"] = mapping.get_config()
    return mapping.forward(volume.array), record
