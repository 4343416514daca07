"""Checks of input volumes and the geometry records that let every preprocessing step be inverted."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mr2ct.data.volume import Volume
from mr2ct.errors import InputError


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
