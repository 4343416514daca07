"""The in-memory volume: voxels plus the geometry that places them in space.

Orientation convention (one for the whole package):

* ``array`` is indexed ``[k, j, i]``: slices first, then rows, then columns,
  exactly as ``SimpleITK.GetArrayFromImage`` returns it. Axial slices are
  ``array[k]``; the slice axis is the third voxel axis of the file.
* ``spacing`` and ``origin`` are given in ``(i, j, k)`` order, in millimetres;
  ``direction`` is the 3x3 matrix whose columns are the world directions of the
  ``i``, ``j`` and ``k`` axes. World coordinates follow ITK/DICOM: LPS
  (x to the patient's left, y to posterior, z to superior). NIfTI files, which
  are RAS, are converted on reading and back on writing.
* Voxel order is never changed on reading, so a volume written back with the
  geometry it was read with lands exactly on the input's grid.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class Volume:
    """A 3D image and its geometry.

    Args:
        array: voxels, shape ``(k, j, i)`` (slices, rows, columns).
        spacing: voxel size in mm along ``(i, j, k)``. Defaults to 1 mm.
        origin: world position (LPS, mm) of voxel ``(0, 0, 0)``. Defaults to 0.
        direction: 3x3 matrix, columns are the directions of ``i``, ``j``, ``k``
            in LPS. Defaults to identity.
        path: the file it was read from, if any (used in error messages).
    """

    array: np.ndarray
    spacing: tuple = (1.0, 1.0, 1.0)
    origin: tuple = (0.0, 0.0, 0.0)
    direction: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))
    path: str | None = None

    def __post_init__(self):
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if self.path is not None:
            self.path = os.fspath(self.path)

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping voxel ``(i, j, k, 1)`` to LPS world millimetres."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction @ np.diag(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same geometry around new voxels of the same shape."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(
                f"with_array needs shape {self.array.shape}, received: {array.shape}"
            )
        return dataclasses.replace(self, array=array)

    def same_grid(self, other: "Volume", tol: float = 1e-4) -> bool:
        """Whether ``other`` has the same shape, spacing, origin and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )
