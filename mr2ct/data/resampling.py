"""Resampling: axial slices to the network's size, and any volume onto another grid by world coordinates."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from mr2ct.data.geometry import _as_geometry, _to_sitk, check_volume
from mr2ct.data.volume import Volume


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
