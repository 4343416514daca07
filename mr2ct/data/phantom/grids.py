"""The phantom's scanner grids: MR and CT voxel grids in LPS world space, at the paper's size or small."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from mr2ct.data.volume import Volume


class PhantomSize(enum.StrEnum):
    """Grid sizes: the paper's scanners, or a small version with the same fields of view."""

    SMALL = "small"
    PAPER = "paper"


# (shape (k, j, i), spacing (i, j, k) mm) per size; fields of view are the same.
_GRIDS = {
    PhantomSize.PAPER: {
        "mr": ((38, 256, 256), (1.25, 1.25, 2.0)),
        "ct": ((75, 512, 512), (0.703125, 0.703125, 2.0)),
    },
    PhantomSize.SMALL: {
        "mr": ((8, 64, 64), (5.0, 5.0, 9.5)),
        "ct": ((12, 96, 96), (3.75, 3.75, 12.5)),
    },
}
# Where the fields of view are centred, in body coordinates (mm; origin midway
# between the femoral head centres): the MR slab sits on the hip joints, the
# CT covers more of the ilium above and of the femur below.
_MR_CENTRE = (0.0, 22.0, -3.0)
_CT_CENTRE = (0.0, 22.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A voxel grid in LPS world space.

    Args:
        shape: number of voxels along ``(k, j, i)``.
        spacing: voxel size in mm along ``(i, j, k)``.
        origin: world position of voxel ``(0, 0, 0)``.
        direction: 3x3 matrix, columns are the world directions of ``i, j, k``.
            Defaults to identity.
    """

    shape: tuple
    spacing: tuple
    origin: tuple
    direction: tuple = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    @property
    def matrix(self) -> np.ndarray:
        """3x3 matrix mapping voxel index ``(i, j, k)`` steps to world mm."""
        return np.asarray(self.direction, dtype=np.float64) @ np.diag(self.spacing)

    def volume(self, array: np.ndarray) -> Volume:
        """A :class:`~mr2ct.data.volume.Volume` of ``array`` on this grid."""
        if tuple(array.shape) != tuple(self.shape):
            raise ValueError(f"array shape {array.shape} does not match grid shape {self.shape}")
        return Volume(array, self.spacing, self.origin, np.asarray(self.direction))

    def subdivided(self, factor: tuple) -> "Grid":
        """The grid with each voxel split into ``factor`` (k, j, i) sub-voxels."""
        fk, fj, fi = factor
        f_ijk = np.array([fi, fj, fk], dtype=np.float64)
        spacing = np.asarray(self.spacing) / f_ijk
        shift = (-0.5 + 0.5 / f_ijk) * np.asarray(self.spacing)
        origin = np.asarray(self.origin) + np.asarray(self.direction) @ shift
        shape = (self.shape[0] * fk, self.shape[1] * fj, self.shape[2] * fi)
        return Grid(shape, tuple(spacing), tuple(origin), self.direction)


def scanner_grid(modality: str, size: str = "small", centre=(0.0, 0.0, 0.0)) -> Grid:
    """The MR or CT grid of the phantom, centred on a world point.

    Args:
        modality: ``"mr"`` or ``"ct"``.
        size: ``"small"`` or ``"paper"``. Defaults to `"small"`.
        centre: world position (LPS, mm) of the centre of the field of view.
            Defaults to the origin.

    Returns:
        A :class:`Grid` with identity direction.
    """
    size = PhantomSize(size)
    if modality not in ("mr", "ct"):
        raise ValueError(f"modality must be 'mr' or 'ct', received: {modality!r}")
    shape, spacing = _GRIDS[size][modality]
    extent = (np.array(shape[::-1]) - 1) * np.array(spacing)
    origin = np.asarray(centre, dtype=np.float64) - extent / 2
    return Grid(tuple(shape), tuple(float(s) for s in spacing), tuple(float(o) for o in origin))
