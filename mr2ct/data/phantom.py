"""A procedural 3D hip phantom: paired, registered MR, CT and label volumes.

Each subject is a small anatomy built from implicit shapes in a continuous
body frame (millimetres): ellipsoids and tapered tubes of elliptic cross-section
along bent axes, joined with smooth unions. Bones (pelvis, femur, sacrum) have
a cortical shell around cancellous bone or marrow; 19 muscles run from their
origins on the pelvis to their insertions on the femur, so when a hip is
flexed, abducted or rotated (about the femoral head centre) the femur, the
thigh and the muscles attached to it follow. Muscles compete for the space
inside the deep fascia, which packs them against each other with thin fat
planes in between, the way real muscles are packed. Subcutaneous fat, bladder,
rectum, bowel, the femoral vessels and the hip joint space fill the rest.

Per-subject random parameters vary body size and shape, fat thickness, muscle
bulk, bone size, the pose of each hip, the position and rotation of the body in
the field of view, bladder filling and the scanners' contrast, noise and bias
field, so no two subjects align.

The anatomy is rendered onto two scanner grids (identity direction, LPS world:
``i`` to the patient's left, ``j`` posterior, ``k`` superior):

* MR (as in the paper): 256x256 at 1.25 mm, 38 slices of 2 mm (a 76 mm slab
  over the hip joints), T1-weighted SPGR look: fat and fatty marrow bright,
  muscle intermediate, cortical bone, air and urine dark, a smooth
  multiplicative bias field and Rician noise.
* CT: 512x512 at 0.703 mm (360 mm field of view), 75 slices of 2 mm (150 mm,
  more than the MR slab), HU with tissue texture and Gaussian noise.

``size="small"`` keeps the same fields of view on 64x64x8 (MR) and 96x96x12
(CT) voxels, which renders a subject in a fraction of a second. Rendering
samples every voxel on a finer sub-grid and averages, so edges have partial
volume; at paper size a small Gaussian point-spread function does that job.

Labels (``LABELS``, from :mod:`mr2ct.labels`) are per structure (a bone's label covers its cortex and
its marrow); tissue classes (``TISSUES``) are what the intensities are made of.
The 22 structures are the paper's (19 muscles, pelvis, femur, sacrum), so
``NUM_CLASSES`` is 23 with background; left and right share a label.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1 for the scanners' fields of view).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable

import numpy as np
from scipy import ndimage

from mr2ct._atomic import atomic_write_text

from mr2ct.data.volume import Volume
from mr2ct.errors import InputError
from mr2ct.labels import (  # noqa: F401  (the label names are re-exported from here too)
    BONES,
    EVALUATED_STRUCTURES,
    FEMUR,
    GLUTEUS_MAXIMUS,
    GLUTEUS_MEDIUS,
    GLUTEUS_MINIMUS,
    LABEL_VALUES,
    LABELS,
    MUSCLES,
    NUM_CLASSES,
    PELVIS,
    SACRUM,
    label_colours,
)

# --------------------------------------------------------------------------- tables


class Tissue(enum.IntEnum):
    """What a voxel is made of; the intensities are rendered from this."""

    AIR = 0  # outside the body and bowel gas
    FAT = 1  # subcutaneous, intermuscular and pelvic fat
    MUSCLE = 2
    CORTICAL_BONE = 3
    CANCELLOUS_BONE = 4  # trabecular bone with mixed marrow (pelvis, sacrum, proximal femur)
    YELLOW_MARROW = 5  # fatty marrow of the femoral shaft
    URINE = 6
    SOFT_TISSUE = 7  # skin, joint cartilage and capsule, bowel, organ walls
    BLOOD = 8  # femoral vessels


TISSUES = {t.value: t.name.lower() for t in Tissue}
"""Tissue value -> name."""

STRUCTURE_TISSUES = {
    **{b: ("cortical_bone", "cancellous_bone") for b in (PELVIS, SACRUM)},
    FEMUR: ("cortical_bone", "cancellous_bone", "yellow_marrow"),
    **{m: ("muscle",) for m in MUSCLES},
}
"""Structure label -> the tissues its voxels can be made of."""


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


# --------------------------------------------------------------------------- parameters


@dataclasses.dataclass
class SubjectParameters:
    """The random choices that make one phantom subject.

    Lengths in mm, angles in degrees, pairs are ``(left, right)``. Bone,
    pelvis-width and muscle-bulk factors scale the anatomy (around 1);
    ``flexion``, ``abduction`` and ``external_rotation`` pose each hip about
    its femoral head centre; ``body_rotation`` and ``body_position`` place the
    body in the world; ``mr_centre`` and ``ct_centre`` are the world centres of
    the two fields of view; ``ct_hu`` and ``mr_signal`` are per-tissue
    intensities, ``mr_bias`` the bias field's coefficients.
    """

    bone_scale: float
    pelvis_width: float
    body_aspect: float
    fat_mm: float
    buttock_fat: float
    muscle_bulk: float
    muscle_jitter: list
    flexion: tuple
    abduction: tuple
    external_rotation: tuple
    body_rotation: tuple  # about the body's z (yaw), x (tilt), y (roll)
    body_position: tuple  # world position of the midpoint between the femoral heads
    bladder_fill: float
    rectal_gas: bool
    bowel: list  # [x, y, z, radius, gas] per loop
    mr_centre: tuple
    ct_centre: tuple
    ct_hu: dict
    ct_noise: float
    mr_signal: dict
    mr_noise: float
    mr_bias: list  # polynomial coefficients and a coil hot spot

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def sample_parameters(rng: np.random.Generator) -> SubjectParameters:
    """Draw the parameters of one subject.

    Args:
        rng: the random generator.

    Returns:
        A :class:`SubjectParameters`.
    """
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    pair = lambda lo, hi: (u(lo, hi), u(lo, hi))  # noqa: E731
    body_position = (u(-8, 8), u(-14, 10), u(-6, 6))
    bowel = []
    for _ in range(int(rng.integers(5, 10))):
        bowel.append([u(-45, 45), u(-55, 25), u(45, 110), u(12, 22), bool(rng.random() < 0.4)])
    return SubjectParameters(
        bone_scale=u(0.82, 0.96),
        pelvis_width=u(0.95, 1.07),
        body_aspect=u(0.92, 1.06),
        fat_mm=u(4, 22),
        buttock_fat=u(0, 20),
        muscle_bulk=u(0.85, 1.15),
        muscle_jitter=[u(0.92, 1.08) for _ in LABELS],
        flexion=pair(-4, 18),
        abduction=pair(-4, 10),
        external_rotation=pair(-8, 22),
        body_rotation=(u(-6, 6), u(-7, 7), u(-3, 3)),
        body_position=body_position,
        bladder_fill=u(0.35, 1.4),
        rectal_gas=bool(rng.random() < 0.5),
        bowel=bowel,
        mr_centre=_floats(np.add(body_position, _MR_CENTRE) + rng.uniform([-5, -8, -5], [5, 8, 5])),
        ct_centre=_floats(np.add(body_position, _CT_CENTRE) + rng.uniform([-8, -8, -6], [8, 8, 6])),
        ct_hu={
            "air": -1000.0,
            "fat": u(-110, -85),
            "muscle": u(42, 60),
            "cortical_bone": u(1250, 1750),
            "cancellous_bone": u(180, 380),
            "yellow_marrow": u(-40, 30),
            "urine": u(0, 15),
            "soft_tissue": u(30, 55),
            "blood": u(35, 50),
        },
        ct_noise=u(10, 20),
        mr_signal={
            "air": 0.0,
            "fat": 1.0,
            "muscle": u(0.27, 0.38),
            "cortical_bone": u(0.02, 0.06),
            "cancellous_bone": u(0.55, 0.78),
            "yellow_marrow": u(0.85, 0.95),
            "urine": u(0.05, 0.12),
            "soft_tissue": u(0.38, 0.48),
            "blood": u(0.15, 0.35),
        },
        mr_noise=u(0.01, 0.03),
        mr_bias=[*(float(c) for c in rng.normal(0, 1, size=9)), u(0.6, 1.0), u(0, 0.25),
                 u(-120, 120), u(-100, 100), u(60, 120)],
    )


# --------------------------------------------------------------------------- shapes
#
# Every shape gives an approximate signed distance in mm (negative inside) for
# float32 coordinate arrays in the body frame, and an axis-aligned bounding box
# so it is evaluated only near itself. Scalars are Python floats: NumPy scalars
# would promote the float32 arrays to float64.

_FAR = 1.0e6  # "no shape here"


def _sdf_from_ellipsoid(q1, q2, q3, r1, r2, r3):
    """Approximate signed distance (mm) to an axis-aligned ellipsoid at the origin.

    ``(rho - 1) / |grad rho|`` is exact on the surface and close to it, which is
    where it matters (cortex thickness, fat planes, smooth unions).
    """
    u1, u2, u3 = q1 / r1, q2 / r2, q3 / r3
    rho2 = u1 * u1 + u2 * u2 + u3 * u3
    v1, v2, v3 = u1 / r1, u2 / r2, u3 / r3
    g2 = v1 * v1 + v2 * v2 + v3 * v3
    rmin = np.minimum(np.minimum(r1, r2), r3)
    scale = np.sqrt((rho2 + 1e-6) / (g2 + 1e-6 / (rmin * rmin)))
    return (np.sqrt(rho2) - 1.0) * scale


def _smin(a, b, k):
    """Smooth minimum (polynomial) with blending radius ``k`` mm."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) * (1.0 / k)
    return np.minimum(a, b) - h * h * (k * 0.25)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _floats(v) -> tuple:
    return tuple(float(x) for x in np.ravel(v))


class _Ellipsoid:
    def __init__(self, centre, radii, axes=None):
        self.centre = _floats(centre)
        self.radii = _floats(radii)
        axes = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)  # columns
        self.axes = tuple(_floats(axes[:, m]) for m in range(3))
        extent = np.abs(axes) @ np.asarray(self.radii)
        self._box = (np.asarray(self.centre) - extent, np.asarray(self.centre) + extent)

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        cx, cy, cz = self.centre
        dx, dy, dz = x - cx, y - cy, z - cz
        q = [dx * a0 + dy * a1 + dz * a2 for a0, a1, a2 in self.axes]
        return _sdf_from_ellipsoid(*q, *self.radii)


class _Sphere:
    def __init__(self, centre, radius):
        self.centre = _floats(centre)
        self.radius = float(radius)

    def box(self):
        c = np.asarray(self.centre)
        return c - self.radius, c + self.radius

    def sdf(self, x, y, z):
        cx, cy, cz = self.centre
        return np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) - self.radius


class _Segment:
    """A tapered tube of elliptic cross-section from ``a`` to ``b`` with rounded ends.

    ``ra``/``rb`` are the (wide, thick) semi-axes at each end; the thick axis
    points along ``normal`` made perpendicular to the tube; ``cap`` is how far
    the rounded ends reach beyond ``a`` and ``b``.
    """

    def __init__(self, a, b, ra, rb, normal=(0.0, 1.0, 0.0), cap=None):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        axis = b - a
        self.length = float(np.linalg.norm(axis))
        u = axis / self.length
        n = np.asarray(normal, dtype=np.float64)
        n = n - (n @ u) * u
        if np.linalg.norm(n) < 1e-6:  # normal along the tube: any perpendicular
            n = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        e2 = _unit(n)
        e1 = np.cross(e2, u)
        self.a, self.b, self.u = _floats(a), _floats(b), _floats(u)
        self.e1, self.e2 = _floats(e1), _floats(e2)
        self.ra, self.rb = _floats(ra), _floats(rb)
        self.cap = (min(self.ra), min(self.rb)) if cap is None else _floats(cap)
        r = max(*self.ra, *self.rb, *self.cap)
        self._box = (np.minimum(a, b) - r, np.maximum(a, b) + r)

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        (ax, ay, az), (u0, u1, u2) = self.a, self.u
        (p0, p1, p2), (n0, n1, n2) = self.e1, self.e2
        dx, dy, dz = x - ax, y - ay, z - az
        along = dx * u0 + dy * u1 + dz * u2
        t = np.clip(along * (1.0 / self.length), 0.0, 1.0)
        q1 = dx * p0 + dy * p1 + dz * p2
        q2 = dx * n0 + dy * n1 + dz * n2
        q3 = along - t * self.length
        (a1, a2), (b1, b2), (c1, c2) = self.ra, self.rb, self.cap
        r1 = a1 + t * (b1 - a1) if a1 != b1 else a1
        r2 = a2 + t * (b2 - a2) if a2 != b2 else a2
        r3 = c1 + t * (c2 - c1) if c1 != c2 else c1
        return _sdf_from_ellipsoid(q1, q2, q3, r1, r2, r3)


class _Cup:
    """A spherical shell between radii ``inner`` and ``outer`` cut by a plane: the acetabulum."""

    def __init__(self, centre, inner, outer, opening, cut):
        self.centre = _floats(centre)
        self.inner, self.outer = float(inner), float(outer)
        self.opening = _floats(_unit(opening))
        self.cut = float(cut)

    def box(self):
        c = np.asarray(self.centre)
        return c - self.outer, c + self.outer

    def sdf(self, x, y, z):
        (cx, cy, cz), (n0, n1, n2) = self.centre, self.opening
        dx, dy, dz = x - cx, y - cy, z - cz
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        shell = np.maximum(r - self.outer, self.inner - r)
        plane = dx * n0 + dy * n1 + dz * n2 - self.cut
        return np.maximum(shell, plane)


class _Trunk:
    """A vertical column of elliptic cross-section varying with height, cut off below.

    ``nodes`` are rows ``(z, centre_y, radius_x, radius_y)``; between nodes
    everything is interpolated linearly. The bottom at ``z_bottom`` is rounded
    with ``rounding`` mm.
    """

    def __init__(self, nodes, z_bottom, rounding, reach):
        self.nodes = np.asarray(nodes, dtype=np.float64)
        self.z_bottom, self.rounding = float(z_bottom), float(rounding)
        r = float(self.nodes[:, 2:].max())
        self._box = (np.array([-r, float(self.nodes[:, 1].min()) - r, self.z_bottom]),
                     np.array([r, float(self.nodes[:, 1].max()) + r, float(reach)]))

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        n = self.nodes
        z1 = np.asarray(z).ravel()
        # the radii depend on z only: interpolate along z once, broadcast
        cy, rx, ry = (np.interp(z1, n[:, 0], n[:, m]).astype(np.float32).reshape(np.shape(z)) for m in (1, 2, 3))
        side = _sdf_from_ellipsoid(x, y - cy, np.zeros_like(cy), rx, ry, 1e6)
        return -_smin(-side, -(self.z_bottom - z), self.rounding)


def _tube(points, radii, normal=(0.0, 1.0, 0.0), caps=None) -> list:
    """Segments along a polyline; ``radii`` are (wide, thick) per point."""
    segments = []
    for n in range(len(points) - 1):
        cap = None if caps is None else (caps[n], caps[n + 1])
        segments.append(_Segment(points[n], points[n + 1], radii[n], radii[n + 1], normal, cap))
    return segments


def _box_corners(lo, hi) -> np.ndarray:
    return np.array([[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]]
                     for a in (0, 1) for b in (0, 1) for c in (0, 1)])


@dataclasses.dataclass
class _Structure:
    """One labelled (or unlabelled) structure: a smooth union of parts."""

    name: str
    label: int
    tissue: Tissue
    parts: list
    blend: float = 0.0
    cortex: list | None = None  # per part, bones only
    marrow: list | None = None  # per part, bones only
    carve: list = dataclasses.field(default_factory=list)  # (shape, gap): keep out of shape + gap
    pose: tuple | None = None  # (centre, rotation): parts are in a frame rotated about centre

    def part_box(self, part):
        """Body-frame bounding box of one part (posed)."""
        lo, hi = part.box()
        if self.pose is None:
            return lo, hi
        pivot, rotation = self.pose
        corners = (_box_corners(lo, hi) - pivot) @ rotation.T + pivot
        return corners.min(axis=0), corners.max(axis=0)

    def box(self):
        boxes = [self.part_box(p) for p in self.parts]
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        return lo - self.blend, hi + self.blend


# --------------------------------------------------------------------------- anatomy


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclasses.dataclass
class Anatomy:
    """The shapes of one subject in its body frame, and where the body is in the world.

    Body frame: origin midway between the femoral head centres, ``x`` to the
    subject's left, ``y`` posterior, ``z`` superior (mm). World = ``rotation
    @ body + position``.
    """

    envelope: list
    fat_mm: float
    skin_mm: float
    muscles: list
    organs: list  # override muscles
    fillers: list  # only where nothing else is (bowel)
    bones: list
    rotation: np.ndarray
    position: np.ndarray
    head_centres: tuple


def build_anatomy(params: SubjectParameters) -> Anatomy:
    """Lay out the shapes of one subject from its parameters.

    Args:
        params: the subject's :class:`SubjectParameters`.

    Returns:
        An :class:`Anatomy`.
    """
    s = params.bone_scale
    w = params.pelvis_width
    bulk = params.muscle_bulk
    frame = s * (1.0 + 0.35 * (bulk - 1.0))  # how far the fascia is from the bones
    jitter = params.muscle_jitter

    def B(x, y, z):  # a bone landmark of the canonical (left) pelvis -> scaled
        return np.array([x * s * w, y * s, z * s])

    muscles, bones, organs, fillers, envelope = [], [], [], [], []
    pelvis_parts, pelvis_cortex, pelvis_carve = [], [], []
    femur_structures = []
    heads = []
    rh = 23.0 * s  # femoral head radius
    # Sacrum first: the ilia are carved away from it (sacroiliac joint).
    sacrum_points = [B(0, 30, 105), B(0, 42, 82), B(0, 58, 55), B(0, 74, 25), B(0, 86, -5), B(0, 84, -30)]
    sacrum_radii = [(52, 22), (50, 20), (44, 16), (32, 12), (18, 9), (9, 7)]
    sacrum_radii = [(a * s * w, b * s) for a, b in sacrum_radii]
    sacrum_parts = []
    for n in range(len(sacrum_points) - 1):
        sacrum_parts.append(
            _Segment(sacrum_points[n], sacrum_points[n + 1], sacrum_radii[n], sacrum_radii[n + 1],
                     normal=(0.0, 1.0, 0.0), cap=(8.0, 8.0) if n == 0 else None)
        )
    bones.append(_Structure("sacrum", SACRUM, Tissue.CORTICAL_BONE, sacrum_parts, blend=4.0,
                            cortex=[1.5] * len(sacrum_parts),
                            marrow=[Tissue.CANCELLOUS_BONE] * len(sacrum_parts)))

    for side, sigma in (("left", 1.0), ("right", -1.0)):
        index = 0 if side == "left" else 1
        mirror = np.array([sigma, 1.0, 1.0])

        def P(x, y, z):  # bone landmark on this side
            return B(x, y, z) * mirror

        H = P(80, 0, 0)
        heads.append(H)
        # hip pose: flexion, abduction, external rotation about the head centre
        R = (
            _rotation("z", sigma * params.external_rotation[index])
            @ _rotation("y", -sigma * params.abduction[index])
            @ _rotation("x", -params.flexion[index])
        )

        def F(x, y, z):  # a point fixed to this femur (posed)
            return H + R @ (P(x, y, z) - H)

        # ---- femur (in its own frame; posed as a whole)
        femur_parts = [
            _Sphere(H, rh),
            _Segment(H, P(122, 8, -30), (15 * s, 15 * s), (18 * s, 18 * s)),
            _Ellipsoid(P(131, 14, -17), (14 * s, 17 * s, 22 * s)),  # greater trochanter
            _Segment(P(124, 9, -32), P(124, 8, -82), (19 * s, 19 * s), (15 * s, 15 * s)),
            _Ellipsoid(P(112, 19, -58), (9 * s, 9 * s, 12 * s)),  # lesser trochanter
            _Segment(P(124, 8, -82), P(118, 5, -170), (15 * s, 15 * s), (13.5 * s, 13.5 * s)),
            _Segment(P(118, 5, -170), P(112, 2, -300), (13.5 * s, 13.5 * s), (14 * s, 14 * s)),
        ]
        femur_structures.append(_Structure(
            f"femur_{side}", FEMUR, Tissue.CORTICAL_BONE, femur_parts, blend=6.0,
            cortex=[1.5, 2.5, 1.5, 3.0, 1.5, 5.0, 6.0],
            marrow=[Tissue.CANCELLOUS_BONE] * 5 + [Tissue.YELLOW_MARROW] * 2,
            pose=(H, R),
        ))
        # ---- pelvis (this side)
        wing_n = _unit([sigma * 0.85, 0.53, 0.0])  # outer (gluteal) surface normal
        opening = _unit([sigma * 0.66, -0.34, -0.66])  # acetabulum faces out, forward, down
        parts = [
            (_Cup(H, rh + 2.0, rh + 9.0 * s, opening, 3.0), 2.0),
            (_Ellipsoid(P(76, 12, 30), (24 * s, 30 * s, 24 * s)), 2.0),  # supra-acetabular body
        ]
        parts += [(seg, 1.2) for seg in _tube(
            [P(76, 12, 32), P(80, 10, 65), P(84, 13, 105)],
            [(36 * s, 14 * s), (56 * s, 7 * s), (60 * s, 6 * s)],
            normal=wing_n, caps=[10, 10, 6])]
        # posterior column and ischium down to the tuberosity
        parts += [(seg, 1.8) for seg in _tube(
            [P(74, 22, 10), P(62, 32, -28), P(52, 36, -52)],
            [(15 * s, 13 * s), (13 * s, 12 * s), (16 * s, 12 * s)], normal=(1, 0, 0))]
        # ischiopubic ramus to the pubic body
        parts += [(seg, 1.5) for seg in _tube(
            [P(50, 32, -56), P(30, -8, -60), P(14, -44, -42)],
            [(8 * s, 7 * s), (7 * s, 6 * s), (9 * s, 8 * s)], normal=(0, 0, 1))]
        # superior pubic ramus from the anterior acetabulum to the pubic body
        parts += [(seg, 1.5) for seg in _tube(
            [P(66, -22, 4), P(36, -42, -12), P(16, -50, -30)],
            [(13 * s, 12 * s), (10 * s, 9 * s), (11 * s, 10 * s)], normal=(0, 0, 1))]
        parts += [
            (_Ellipsoid(P(15, -50, -36), (12 * s, 12 * s, 20 * s), _rotation("x", 25)), 1.5),  # pubic body
            (_Segment(P(76, -12, 24), P(88, -34, 44), (10 * s, 10 * s), (9 * s, 9 * s)), 1.5),  # AIIS
            # posterior ilium: the thick sacroiliac part and the posterior superior spine
            (_Segment(P(64, 44, 40), P(56, 62, 70), (13 * s, 13 * s), (18 * s, 14 * s), wing_n), 1.5),
            (_Segment(P(56, 62, 70), P(50, 72, 100), (18 * s, 14 * s), (14 * s, 11 * s), wing_n), 1.5),
            (_Segment(P(50, 72, 100), P(40, 86, 88), (11 * s, 9 * s), (8 * s, 7 * s), wing_n), 1.5),
        ]
        pelvis_parts += [p for p, _ in parts]
        pelvis_cortex += [c for _, c in parts]
        pelvis_carve.append((_Sphere(H, rh), 2.0))  # the joint space

        # ---- envelope: thigh (follows the femur) and buttock; fascia + subcutaneous fat
        e, fat = frame, params.fat_mm
        envelope += [
            _Segment(F(92, 10, -20), F(84, 6, -300), (56 * e + fat, 68 * e + fat), (52 * e + fat, 62 * e + fat),
                     (0, 1, 0)),
            _Ellipsoid(P(62, 70, -32), (74 * e + fat, 60 * e + fat + params.buttock_fat, 72 * e + fat)),
        ]

        # ---- muscles. M: pelvis points, F: femur points; radii (wide, thick) mm.
        def muscle(name, points, radii, normal, tissue=Tissue.MUSCLE, label=None, inflate=1.2):
            # inflated muscles overlap and share the space by distance; the
            # ones lining the pelvic cavity keep their size so the cavity stays fat
            lab = LABEL_VALUES[name] if label is None else label
            g = bulk * jitter[lab] * inflate
            scaled = [(a * s * g, t * s * g) for a, t in radii]
            return _Structure(f"{name}_{side}", lab, tissue, _tube(points, scaled, normal), blend=6.0)

        M = P
        lat = (sigma, 0.0, 0.0)
        muscles += [
            muscle("gluteus_maximus", [M(44, 100, 80), M(100, 80, 30), F(154, 22, -14)],
                   [(28, 17), (34, 20), (22, 12)], (sigma * 0.45, 0.9, 0)),
            muscle("gluteus_maximus", [M(32, 112, 28), M(95, 92, -10), F(152, 30, -50)],
                   [(34, 22), (38, 24), (24, 14)], (sigma * 0.45, 0.9, 0)),
            muscle("gluteus_maximus", [M(26, 108, -22), M(85, 90, -55), F(140, 38, -90)],
                   [(30, 20), (32, 22), (22, 14)], (sigma * 0.3, 0.95, 0)),
            muscle("gluteus_medius", [M(100, 32, 102), M(110, 29, 58), F(136, 14, 0)],
                   [(48, 15), (46, 21), (20, 12)], wing_n),
            muscle("gluteus_minimus", [M(92, 19, 84), M(96, 17, 44), F(131, 2, -2)],
                   [(42, 8), (36, 11), (14, 8)], wing_n),
            muscle("tensor_fasciae_latae", [M(116, -32, 66), F(146, -20, -10), F(152, -4, -90)],
                   [(13, 9), (19, 12), (11, 6)], (sigma * 0.7, -0.7, 0)),
            muscle("piriformis", [M(26, 52, 45), M(66, 56, 26), F(127, 20, 2)], [(16, 9), (14, 11), (7, 6)],
                   (0, 0, 1), inflate=1.0),
            muscle("iliacus", [M(66, 4, 96), M(64, 0, 62), M(82, -36, 18), M(88, -44, 0), F(101, -22, -32),
                               F(111, 12, -56)],
                   [(44, 10), (38, 12), (20, 14), (16, 13), (10, 9), (7, 7)], (-sigma * 0.85, -0.53, 0), inflate=1.1),
            muscle("psoas_major", [M(42, 18, 150), M(50, -2, 95), M(66, -28, 40), M(74, -48, 6),
                                   F(98, -26, -30), F(110, 12, -56)],
                   [(22, 20), (20, 18), (16, 15), (13, 12), (9, 8), (6, 6)], lat, inflate=1.1),
            muscle("obturator_internus", [M(44, -14, -34), M(52, 24, -26), M(72, 43, -18), F(122, 20, -12)],
                   [(26, 8), (14, 9), (9, 8), (6, 5)], lat, inflate=1.0),
            muscle("obturator_externus", [M(66, -18, -44), M(86, 6, -46), F(118, 22, -22)],
                   [(22, 8), (14, 10), (8, 7)], lat, inflate=1.05),
            muscle("gemelli", [M(70, 44, -6), F(122, 25, -5)], [(8, 6), (7, 6)], (0, 0, 1), inflate=1.0),
            muscle("gemelli", [M(72, 46, -30), F(122, 27, -21)], [(8, 6), (7, 6)], (0, 0, 1), inflate=1.0),
            muscle("quadratus_femoris", [M(76, 46, -50), F(124, 32, -44)], [(15, 8), (17, 9)], (0, 1, 0), inflate=1.05),
            muscle("sartorius", [M(112, -40, 62), M(110, -58, 22), F(102, -66, -40), F(72, -58, -150)],
                   [(11, 6), (13, 8), (15, 9), (15, 9)], (0, -1, 0)),
            muscle("rectus_femoris", [M(92, -32, 36), F(100, -46, -8), F(110, -56, -80), F(112, -56, -200)],
                   [(9, 8), (14, 12), (22, 15), (20, 14)], (0, -1, 0)),
            muscle("vastus_lateralis", [F(140, 10, -28), F(146, 0, -90), F(140, -10, -200)],
                   [(16, 12), (28, 20), (26, 18)], lat),
            muscle("vastus_medialis_intermedius", [F(122, -14, -48), F(118, -22, -130), F(112, -18, -250)],
                   [(20, 10), (25, 14), (22, 12)], (0, -1, 0)),
            muscle("vastus_medialis_intermedius", [F(106, -6, -90), F(96, -20, -200)], [(14, 10), (25, 18)],
                   lat),
            muscle("pectineus", [M(54, -50, -22), F(104, 4, -62)], [(18, 8), (15, 8)], (0, -1, 0)),
            muscle("adductors", [M(26, -48, -48), F(75, -26, -120), F(112, 10, -230)],
                   [(15, 11), (30, 22), (14, 9)], (0, -1, 0)),
            muscle("adductors", [M(40, -36, -58), F(94, 0, -100)], [(14, 10), (22, 14)], (0, -1, 0)),
            muscle("adductors", [M(54, 30, -62), F(80, 30, -140), F(108, 20, -260)],
                   [(22, 14), (40, 28), (22, 15)], (0, 1, 0)),
            muscle("gracilis", [M(14, -38, -56), F(40, -20, -150), F(60, 0, -280)], [(18, 7), (16, 9), (10, 7)],
                   lat),
            muscle("hamstrings", [M(68, 48, -58), F(88, 56, -130), F(100, 45, -260)],
                   [(14, 12), (35, 25), (30, 25)], (0, 1, 0)),
            # unlabelled muscles: the abdominal wall above the iliac crest and the pelvic floor
            muscle("abdominal_obliques", [M(108, -20, 96), M(118, -10, 220)], [(42, 13), (46, 14)],
                   (sigma * 0.9, -0.3, 0), label=0),
            muscle("erector_spinae", [M(24, 100, 40), M(30, 110, 110), M(36, 104, 250)],
                   [(18, 14), (26, 22), (30, 26)], (0, 1, 0), label=0),
            muscle("rectus_abdominis", [M(18, -60, -28), M(34, -82, 40), M(44, -88, 220)],
                   [(14, 8), (30, 9), (34, 9)], (0, -1, 0), label=0),
            muscle("levator_ani", [M(22, -40, -32), M(30, 12, -42), M(8, 62, -22)], [(10, 5), (12, 6), (10, 5)],
                   (0, 0, 1), label=0, inflate=1.0),
        ]
        # ---- organs on this side: the femoral vessels and the hip joint space
        organs += [
            _Structure(f"femoral_artery_{side}", 0, Tissue.BLOOD, _tube(
                [M(68, -40, 70), M(80, -54, 10), F(90, -60, -40), F(84, -40, -150)], [(4 * s, 4 * s)] * 4)),
            _Structure(f"femoral_vein_{side}", 0, Tissue.BLOOD, _tube(
                [M(56, -34, 70), M(66, -50, 10), F(76, -56, -40), F(80, -32, -150)], [(6 * s, 5 * s)] * 4)),
            _Structure(f"hip_joint_{side}", 0, Tissue.SOFT_TISSUE, [_Sphere(H, rh + 2.0)]),
        ]

    bones.append(_Structure(
        "pelvis", PELVIS, Tissue.CORTICAL_BONE, pelvis_parts, blend=5.0, cortex=pelvis_cortex,
        marrow=[Tissue.CANCELLOUS_BONE] * len(pelvis_parts),
        carve=pelvis_carve + [(p, 2.5) for p in sacrum_parts],
    ))
    bones += femur_structures

    # ---- midline envelope: the trunk
    fat = params.fat_mm
    ax, ay = 146 * frame * w + fat, 102 * frame * params.body_aspect + fat
    yc = 24 * frame
    envelope.insert(0, _Trunk([(-40, yc, ax, ay), (30, yc, ax, ay), (200, yc - 4, 0.88 * ax, 0.92 * ay)],
                              z_bottom=-70, rounding=30, reach=400))

    # ---- midline organs
    f = params.bladder_fill ** (1 / 3)
    bladder_r = (40 * f * s, 30 * f * s, 30 * f * s)
    bladder_c = B(0, -28, -22) + np.array([0, 0, bladder_r[2] - 4])
    organs += [
        _Structure("bladder_wall", 0, Tissue.SOFT_TISSUE,
                   [_Ellipsoid(bladder_c, tuple(r + 3 for r in bladder_r))]),
        _Structure("urine", 0, Tissue.URINE, [_Ellipsoid(bladder_c, bladder_r)]),
        _Structure("rectum", 0, Tissue.SOFT_TISSUE,
                   _tube([B(0, 66, 70), B(0, 56, 25), B(0, 46, -20), B(0, 30, -55)], [(17, 15)] * 4)),
        _Structure("prostate_or_vagina", 0, Tissue.SOFT_TISSUE, [_Ellipsoid(B(0, -18, -40), (16, 14, 18))]),
    ]
    if params.rectal_gas:
        organs.append(_Structure("rectal_gas", 0, Tissue.AIR, [_Ellipsoid(B(0, 46, 10), (9, 6, 14))]))
    for x, y, z, r, gas in params.bowel:
        fillers.append(_Structure("bowel", 0, Tissue.SOFT_TISSUE, [_Ellipsoid((x, y, z), (r, r * 0.9, r * 1.1))]))
        if gas:
            fillers.append(_Structure("bowel_gas", 0, Tissue.AIR, [_Sphere((x, y - r * 0.3, z), r * 0.45)]))

    rotation = (
        _rotation("z", params.body_rotation[0])
        @ _rotation("x", params.body_rotation[1])
        @ _rotation("y", params.body_rotation[2])
    )
    return Anatomy(
        envelope=envelope,
        fat_mm=params.fat_mm,
        skin_mm=2.0,
        muscles=muscles,
        organs=organs,
        fillers=fillers,
        bones=bones,
        rotation=rotation,
        position=np.asarray(params.body_position, dtype=np.float64),
        head_centres=tuple(heads),
    )


# --------------------------------------------------------------------------- rendering

_MUSCLE_MARGIN = 5.0  # muscles grow this far into free space inside the fascia
_FAT_PLANE = 1.2  # fat between two muscles whose distances differ by less (mm)


class _Canvas:
    """Body-frame coordinates of blocks of a (sub-)grid's slices ``k0:k1``."""

    def __init__(self, grid: Grid, anatomy: Anatomy, k0: int, k1: int):
        # index (i, j, k) -> body: R^T (origin + M idx - position)
        rt = anatomy.rotation.T
        self.a = rt @ grid.matrix
        self.b = rt @ (np.asarray(grid.origin) - anatomy.position) + self.a[:, 2] * k0
        self.a_inv = np.linalg.inv(self.a)
        self.shape = (k1 - k0, grid.shape[1], grid.shape[2])

    def index_box(self, lo, hi, pad=0.0):
        """Index range ``(lo, hi)`` as (i, j, k) of the voxels in a padded body box, or None."""
        corners = _box_corners(np.asarray(lo) - pad, np.asarray(hi) + pad)
        u = (corners - self.b) @ self.a_inv.T
        first = np.maximum(np.floor(u.min(axis=0)).astype(int), 0)
        last = np.minimum(np.ceil(u.max(axis=0)).astype(int) + 1, self.shape[::-1])
        if np.any(last <= first):
            return None
        return first, last

    def segment_ranges(self, a, b, radius, first, last) -> list:
        """Disjoint index ranges covering the voxels within ``radius`` of the segment ``a``-``b``.

        An oblique tube's bounding box is mostly empty; slabs along the axis
        it runs furthest along, each boxed on its own, fit it much tighter.
        """
        ua = self.a_inv @ (np.asarray(a) - self.b)
        ub = self.a_inv @ (np.asarray(b) - self.b)
        h = radius * np.linalg.norm(self.a_inv, axis=1)
        lo = np.maximum(np.floor(np.minimum(ua, ub) - h).astype(int), first)
        hi = np.minimum(np.ceil(np.maximum(ua, ub) + h).astype(int) + 1, last)
        if np.any(hi <= lo):
            return []
        span = np.abs(ub - ua)
        axis = int(np.argmax(span / h))
        if span[axis] < 1.5 * h[axis]:
            return [(lo, hi)]
        step = max(2, int(math.ceil(h[axis])))
        du = ub[axis] - ua[axis]
        ranges = []
        for s0 in range(int(lo[axis]), int(hi[axis]), step):
            s1 = min(s0 + step, int(hi[axis]))
            ta = (s0 - h[axis] - ua[axis]) / du
            tb = (s1 - 1 + h[axis] - ua[axis]) / du
            t0, t1 = max(min(ta, tb), 0.0), min(max(ta, tb), 1.0)
            if t0 > t1:
                continue
            p0, p1 = ua + t0 * (ub - ua), ua + t1 * (ub - ua)
            f = np.maximum(np.floor(np.minimum(p0, p1) - h).astype(int), lo)
            l_ = np.minimum(np.ceil(np.maximum(p0, p1) + h).astype(int) + 1, hi)
            f[axis], l_[axis] = s0, s1
            if np.all(l_ > f):
                ranges.append((f, l_))
        return ranges

    def coords(self, first, last):
        """Body coordinates (x, y, z float32 arrays) of an index range."""
        i = np.arange(first[0], last[0], dtype=np.float32)[None, None, :]
        j = np.arange(first[1], last[1], dtype=np.float32)[None, :, None]
        k = np.arange(first[2], last[2], dtype=np.float32)[:, None, None]
        a, b = self.a, self.b
        return [
            (float(a[m, 0]) * i + float(a[m, 1]) * j) + (float(a[m, 2]) * k + float(b[m])) for m in range(3)
        ]


def _slices(first, last, origin=(0, 0, 0)) -> tuple:
    """Array slices [k, j, i] of an (i, j, k) index range, relative to ``origin``."""
    return tuple(slice(int(first[m] - origin[m]), int(last[m] - origin[m])) for m in (2, 1, 0))


def _evaluate(structure: _Structure, canvas: _Canvas, pad: float = 0.0):
    """A structure on its block of the canvas.

    Returns:
        None if it is nowhere near, else ``(slices, d, inner, marrow)``: the
        block's slices in the canvas, the signed distance, and for bones the
        distance to the marrow surface and the marrow tissue (else None).
    """
    block = canvas.index_box(*structure.box(), pad=pad)
    if block is None:
        return None
    first, last = block
    shape = tuple(int(last[m] - first[m]) for m in (2, 1, 0))
    d = np.full(shape, _FAR, dtype=np.float32)
    bone = structure.cortex is not None
    if bone:
        inner = np.full(shape, _FAR, dtype=np.float32)
        marrow = np.zeros(shape, dtype=np.uint8)

    def ranges_of(part, reach):
        if isinstance(part, _Segment):
            a, b = np.asarray(part.a), np.asarray(part.b)
            if structure.pose is not None:
                pivot, rot = structure.pose
                a, b = pivot + rot @ (a - pivot), pivot + rot @ (b - pivot)
            radius = max(*part.ra, *part.rb, *part.cap) + reach
            return canvas.segment_ranges(a, b, radius, first, last)
        sub = canvas.index_box(*structure.part_box(part), pad=reach)
        if sub is None:
            return []
        f, l_ = np.maximum(sub[0], first), np.minimum(sub[1], last)
        return [(f, l_)] if np.all(l_ > f) else []

    def coords(f, l_):
        x, y, z = canvas.coords(f, l_)
        if structure.pose is not None:
            (px, py, pz), rot = _floats(structure.pose[0]), structure.pose[1]
            dx, dy, dz = x - px, y - py, z - pz  # local = pivot + R^T (p - pivot)
            x, y, z = (float(rot[0, m]) * dx + float(rot[1, m]) * dy + float(rot[2, m]) * dz + (px, py, pz)[m]
                       for m in range(3))
        return _slices(f, l_, first), (x, y, z)

    for n, part in enumerate(structure.parts):
        for f, l_ in ranges_of(part, pad + structure.blend):
            sl, xyz = coords(f, l_)
            dp = part.sdf(*xyz)
            d[sl] = _smin(d[sl], dp, structure.blend)
            if bone:
                ip = dp + float(structure.cortex[n])
                marrow[sl] = np.where(ip < inner[sl], np.uint8(structure.marrow[n]), marrow[sl])
                inner[sl] = _smin(inner[sl], ip, structure.blend * 0.5)
    if structure.carve and structure.pose is not None:
        raise NotImplementedError("carving a posed structure")
    for shape_, gap in structure.carve:
        for f, l_ in ranges_of(shape_, gap):
            sl, xyz = coords(f, l_)
            d[sl] = np.maximum(d[sl], gap - shape_.sdf(*xyz))
    if bone:
        return _slices(first, last), d, inner, marrow
    return _slices(first, last), d, None, None


def _render_chunk(anatomy: Anatomy, grid: Grid, k0: int, k1: int):
    canvas = _Canvas(grid, anatomy, k0, k1)
    shape = canvas.shape
    tissue = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)

    # body envelope: air outside, skin, fat inside
    env = np.full(shape, _FAR, dtype=np.float32)
    blend = 20.0
    deep_enough = -(anatomy.fat_mm + blend + _MUSCLE_MARGIN)  # envelope details no longer matter
    for n, part in enumerate(anatomy.envelope):
        block = canvas.index_box(*part.box(), pad=blend)
        if block is None:
            continue
        sl = _slices(*block)
        x, y, z = canvas.coords(*block)
        if n == 0:  # the trunk: everywhere
            env[sl] = _smin(env[sl], part.sdf(x, y, z), blend)
            continue
        region = env[sl]
        todo = region > deep_enough
        if not todo.any():
            continue
        pick = [np.broadcast_to(c, region.shape)[todo] for c in (x, y, z)]
        region[todo] = _smin(region[todo], part.sdf(*pick), blend)
    tissue[env <= 0] = Tissue.FAT
    tissue[(env <= 0) & (env > -anatomy.skin_mm)] = Tissue.SOFT_TISSUE
    deep = env < -anatomy.fat_mm

    # muscles compete for the space inside the fascia
    best = np.full(shape, _FAR, dtype=np.float32)
    second = np.full(shape, _FAR, dtype=np.float32)
    owner = np.zeros(shape, dtype=np.int16)
    # structures of one muscle name (both sides are separate) are merged by name
    groups = {}
    for m in anatomy.muscles:
        groups.setdefault(m.name, []).append(m)
    owners = []
    for name, structures in groups.items():
        owners.append(structures[0])
        index = len(owners)
        results = [r for r in (_evaluate(m, canvas, pad=_MUSCLE_MARGIN + _FAT_PLANE) for m in structures) if r]
        if not results:
            continue
        # one distance over the union of the bundles' blocks, so bundles of
        # one muscle do not leave fat planes between them
        first = [min(r[0][m].start for r in results) for m in range(3)]
        last = [max(r[0][m].stop for r in results) for m in range(3)]
        d = np.full([b - a for a, b in zip(first, last)], _FAR, dtype=np.float32)
        for sl, dm, _, _ in results:
            rel = tuple(slice(q.start - a, q.stop - a) for q, a in zip(sl, first))
            d[rel] = np.minimum(d[rel], dm)
        sl = tuple(slice(a, b) for a, b in zip(first, last))
        b_, s_, o_ = best[sl], second[sl], owner[sl]
        new = d < b_
        s_[...] = np.where(new, b_, np.minimum(s_, d))
        b_[...] = np.where(new, d, b_)
        o_[...] = np.where(new, index, o_)
    grown = deep & (best < _MUSCLE_MARGIN) & (second - best > _FAT_PLANE)
    lut_label = np.array([0] + [o.label for o in owners], dtype=np.uint8)
    lut_tissue = np.array([Tissue.FAT] + [o.tissue for o in owners], dtype=np.uint8)
    labels[grown] = lut_label[owner[grown]]
    tissue[grown] = lut_tissue[owner[grown]]

    # fillers (bowel) only where nothing else is; organs override muscles
    for structure in anatomy.fillers:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, _, _ = result
        free = (d < 0) & (labels[sl] == 0) & (tissue[sl] == Tissue.FAT) & deep[sl]
        tissue[sl][free] = structure.tissue
    for structure in anatomy.organs:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, _, _ = result
        inside = (d < 0) & (env[sl] < -anatomy.skin_mm)
        tissue[sl][inside] = structure.tissue
        labels[sl][inside] = 0

    # bones override everything
    for structure in anatomy.bones:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, inner, marrow = result
        inside = d < 0
        labels[sl][inside] = structure.label
        t = np.where(inner < 0, marrow, np.uint8(Tissue.CORTICAL_BONE))
        tissue[sl][inside] = t[inside]
    return tissue, labels


def _supersampling(grid: Grid) -> tuple:
    """Sub-voxels per voxel (k, j, i): fine enough for thin cortex and fat planes."""
    target = (4.0, 4.0, 6.5)  # mm (i, j, k)
    f = [int(min(3, max(1, math.ceil(s / t - 0.05)))) for s, t in zip(grid.spacing, target)]
    return (f[2], f[1], f[0])


@dataclasses.dataclass
class TissueMap:
    """The anatomy sampled on a grid.

    Args:
        grid: the grid.
        labels: structure labels on the grid (``uint8``, the majority of each voxel's sub-voxels).
        tissue: tissue classes on the grid subdivided ``factor`` times (``uint8``).
        factor: sub-voxels per voxel along ``(k, j, i)``.
    """

    grid: Grid
    labels: np.ndarray
    tissue: np.ndarray
    factor: tuple

    def average(self, table: np.ndarray) -> np.ndarray:
        """Voxel means of a per-tissue value table (partial volume), ``float32`` on the grid."""
        fine = np.asarray(table, dtype=np.float32)[self.tissue]
        return _block_mean(fine, self.factor)

    def fractions(self, tissue: Tissue) -> np.ndarray:
        """The fraction of each voxel made of ``tissue``."""
        table = np.zeros(len(Tissue), dtype=np.float32)
        table[tissue] = 1.0
        return self.average(table)


def _block_mean(fine: np.ndarray, factor: tuple) -> np.ndarray:
    if factor == (1, 1, 1):
        return fine.astype(np.float32, copy=False)
    fk, fj, fi = factor
    k, j, i = fine.shape[0] // fk, fine.shape[1] // fj, fine.shape[2] // fi
    return fine.reshape(k, fk, j, fj, i, fi).mean(axis=(1, 3, 5), dtype=np.float32)


def _block_mode(fine: np.ndarray, factor: tuple, n_values: int) -> np.ndarray:
    if factor == (1, 1, 1):
        return fine
    fk, fj, fi = factor
    k, j, i = fine.shape[0] // fk, fine.shape[1] // fj, fine.shape[2] // fi
    blocks = fine.reshape(k, fk, j, fj, i, fi).transpose(0, 2, 4, 1, 3, 5).reshape(k * j * i, -1)
    offsets = (np.arange(k * j * i, dtype=np.int64) * n_values)[:, None]
    counts = np.bincount((blocks + offsets).ravel(), minlength=k * j * i * n_values)
    return counts.reshape(k * j * i, n_values).argmax(axis=1).astype(fine.dtype).reshape(k, j, i)


def render_tissue(anatomy: Anatomy, grid: Grid, factor: tuple | None = None) -> TissueMap:
    """Sample an anatomy on a grid.

    Args:
        anatomy: from :func:`build_anatomy`.
        grid: the target grid.
        factor: sub-voxels per voxel ``(k, j, i)``. Defaults to `None` (about
            2.6 mm in-plane and 4.5 mm across slices, at most 3).

    Returns:
        A :class:`TissueMap`.
    """
    factor = _supersampling(grid) if factor is None else tuple(factor)
    fine = grid.subdivided(factor)
    tissue = np.empty(fine.shape, dtype=np.uint8)
    labels = np.empty(fine.shape, dtype=np.uint8)
    step = max(1, 2_000_000 // (fine.shape[1] * fine.shape[2]))
    for k0 in range(0, fine.shape[0], step):
        k1 = min(fine.shape[0], k0 + step)
        tissue[k0:k1], labels[k0:k1] = _render_chunk(anatomy, fine, k0, k1)
    return TissueMap(grid, _block_mode(labels, factor, NUM_CLASSES), tissue, factor)


def _table(values: dict) -> np.ndarray:
    return np.array([values[t.name.lower()] for t in Tissue], dtype=np.float32)


_CT_TEXTURE = {  # HU standard deviation of the smooth tissue texture
    "air": 0.0, "fat": 8.0, "muscle": 6.0, "cortical_bone": 90.0, "cancellous_bone": 70.0,
    "yellow_marrow": 15.0, "urine": 2.0, "soft_tissue": 8.0, "blood": 3.0,
}
_MR_TEXTURE = {  # relative standard deviation of the MR tissue texture
    "air": 0.0, "fat": 0.03, "muscle": 0.05, "cortical_bone": 0.0, "cancellous_bone": 0.10,
    "yellow_marrow": 0.04, "urine": 0.02, "soft_tissue": 0.06, "blood": 0.05,
}


def _smooth_noise(shape, spacing, sigma_mm, rng) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed with ``sigma_mm``."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    sigma = [max(sigma_mm / s, 0.0) for s in (spacing[2], spacing[1], spacing[0])]
    smooth = ndimage.gaussian_filter(noise, sigma, mode="wrap", truncate=3.0)
    std = float(smooth.std())
    return smooth / std if std > 0 else smooth


def _psf(image: np.ndarray, tissue_map: TissueMap) -> np.ndarray:
    """Blur of a voxel's worth where the sub-voxel averaging did not do it."""
    fk, fj, fi = tissue_map.factor
    sigma = [0.0 if f > 1 else 0.45 for f in (fk, fj, fi)]
    if not any(sigma):
        return image
    return ndimage.gaussian_filter(image, sigma, mode="nearest", truncate=2.5)


def render_ct(tissue_map: TissueMap, params: SubjectParameters, rng: np.random.Generator) -> np.ndarray:
    """CT in Hounsfield units from a tissue map.

    Per-tissue HU of the subject (``params.ct_hu``), averaged over each voxel
    (partial volume), a smooth per-tissue texture, and Gaussian noise of
    ``params.ct_noise`` HU with a little spatial correlation; clipped to
    [-1024, 3071].

    Args:
        tissue_map: from :func:`render_tissue`.
        params: the subject's parameters.
        rng: random generator for texture and noise.

    Returns:
        ``float32`` array on the tissue map's grid.
    """
    grid = tissue_map.grid
    hu = _psf(tissue_map.average(_table(params.ct_hu)), tissue_map)
    amplitude = tissue_map.average(_table(_CT_TEXTURE))
    hu += amplitude * _smooth_noise(grid.shape, grid.spacing, 1.5, rng)
    noise = _smooth_noise(grid.shape, grid.spacing, 0.4 * min(grid.spacing), rng)
    hu += float(params.ct_noise) * noise
    return np.clip(hu, -1024.0, 3071.0).astype(np.float32)


def bias_field(grid: Grid, params: SubjectParameters) -> np.ndarray:
    """The smooth multiplicative MR bias field of a subject on a grid (about 0.7 to 1.3).

    A second-order polynomial in world coordinates around the MR field of view
    (exponentiated, so the field is positive), times a Gaussian hot spot near
    one surface coil.
    """
    c = params.mr_bias
    k, j, i = (np.arange(n, dtype=np.float32) for n in grid.shape)
    m = grid.matrix
    centre = np.asarray(params.mr_centre)
    o = np.asarray(grid.origin) - centre
    x = (float(m[0, 0]) * i[None, None, :] + float(m[0, 1]) * j[None, :, None]
         + float(m[0, 2]) * k[:, None, None] + float(o[0])) / 160.0
    y = (float(m[1, 0]) * i[None, None, :] + float(m[1, 1]) * j[None, :, None]
         + float(m[1, 2]) * k[:, None, None] + float(o[1])) / 160.0
    z = (float(m[2, 0]) * i[None, None, :] + float(m[2, 1]) * j[None, :, None]
         + float(m[2, 2]) * k[:, None, None] + float(o[2])) / 160.0
    terms = [x, y, z, x * x, y * y, z * z, x * y, y * z, z * x]
    log_field = sum(float(ci) * t for ci, t in zip(c[:9], terms))
    log_field = np.broadcast_to(log_field, grid.shape).astype(np.float32)
    peak = float(np.abs(log_field).max()) or 1.0
    log_field = log_field * (math.log(1.3) * float(c[9]) / peak)
    spot = np.exp(-((x * 160 - c[11]) ** 2 + (y * 160 - c[12]) ** 2 + (z * 160) ** 2) / (2 * float(c[13]) ** 2))
    field = np.exp(log_field) * (1.0 + float(c[10]) * spot)
    return np.clip(field, 0.6, 1.5).astype(np.float32)


def render_mr(tissue_map: TissueMap, params: SubjectParameters, rng: np.random.Generator) -> np.ndarray:
    """T1-weighted (SPGR-like) MR from a tissue map.

    Per-tissue signal (fat 1.0, muscle about 0.3, cortical bone, air and urine
    near 0) averaged over each voxel, a smooth texture, the subject's
    multiplicative :func:`bias_field`, then Rician noise (magnitude of complex
    Gaussian noise); scaled so fat is about 1000.

    Args:
        tissue_map: from :func:`render_tissue`.
        params: the subject's parameters.
        rng: random generator for texture and noise.

    Returns:
        Positive ``float32`` array on the tissue map's grid.
    """
    grid = tissue_map.grid
    signal = _psf(tissue_map.average(_table(params.mr_signal)), tissue_map)
    texture = tissue_map.average(_table(_MR_TEXTURE))
    signal *= 1.0 + texture * _smooth_noise(grid.shape, grid.spacing, 2.0, rng)
    signal *= bias_field(grid, params)
    sigma = float(params.mr_noise)
    real = signal + sigma * rng.standard_normal(grid.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(grid.shape, dtype=np.float32)
    return (1000.0 * np.sqrt(real * real + imag * imag)).astype(np.float32)


# --------------------------------------------------------------------------- subjects


@dataclasses.dataclass
class PhantomSubject:
    """One phantom subject: registered MR, CT and labels.

    Args:
        subject_id: e.g. ``"subject_000"``.
        parameters: the :class:`SubjectParameters` it was made from.
        mr: T1-weighted MR on the MR grid (``float32``).
        ct: CT in HU on the CT grid (``float32``).
        ct_on_mr_grid: CT of the same anatomy rendered on the MR grid (paired truth).
        labels_mr: structure labels on the MR grid (``uint8``).
        labels_ct: structure labels on the CT grid (``uint8``).
    """

    subject_id: str
    parameters: SubjectParameters
    mr: Volume
    ct: Volume
    ct_on_mr_grid: Volume
    labels_mr: Volume
    labels_ct: Volume


def subject_name(index: int) -> str:
    """The identifier of subject ``index``: ``subject_000``, ``subject_001``, ..."""
    return f"subject_{int(index):03d}"


def generate_subject(index: int, size: str = "small", seed: int = 0) -> PhantomSubject:
    """Make one phantom subject.

    The same ``(seed, index)`` always gives the same subject; different
    indices or seeds give different anatomy, pose and position.

    Args:
        index: the subject's number in the data set (``>= 0``).
        size: ``"small"`` (64x64x8 MR, 96x96x12 CT) or ``"paper"`` (256x256x38
            MR, 512x512x75 CT). Defaults to `"small"`.
        seed: seed of the data set. Defaults to `0`.

    Returns:
        A :class:`PhantomSubject`.
    """
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"index and seed must be >= 0, received: index={index}, seed={seed}")
    size = PhantomSize(size)
    rng = np.random.default_rng([int(seed), int(index), 0x41C7])
    params = sample_parameters(rng)
    anatomy = build_anatomy(params)
    mr_grid = scanner_grid("mr", size, params.mr_centre)
    ct_grid = scanner_grid("ct", size, params.ct_centre)
    on_mr = render_tissue(anatomy, mr_grid)
    on_ct = render_tissue(anatomy, ct_grid)
    return PhantomSubject(
        subject_id=subject_name(index),
        parameters=params,
        mr=mr_grid.volume(render_mr(on_mr, params, rng)),
        ct=ct_grid.volume(render_ct(on_ct, params, rng)),
        ct_on_mr_grid=mr_grid.volume(render_ct(on_mr, params, rng)),
        labels_mr=mr_grid.volume(on_mr.labels),
        labels_ct=ct_grid.volume(on_ct.labels),
    )


DATASET_FOLDERS = ("mr", "ct", "ct_on_mr_grid", "labels_mr", "labels_ct")
"""Sub-folders of a phantom data set, one ``<subject>.nii.gz`` per subject in each."""

_STORE_DTYPES = {"mr": "int16", "ct": "int16", "ct_on_mr_grid": "int16", "labels_mr": "uint8",
                 "labels_ct": "uint8"}


def _write_subject(job):
    """Render one subject and write its volumes; ``(id, parameters, montage slices or None)``."""
    from mr2ct.data.io import write_volume

    index, size, seed, out_dir, with_montage = job
    subject = generate_subject(index, size=size, seed=seed)
    for folder in DATASET_FOLDERS:
        write_volume(getattr(subject, folder), os.path.join(out_dir, folder, subject.subject_id + ".nii.gz"),
                     dtype=_STORE_DTYPES[folder])
    return subject.subject_id, subject.parameters.to_dict(), _montage_slices(subject) if with_montage else None


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    subjects: int | Iterable[int],
    seed: int = 0,
    size: str = "small",
    montage: bool = False,
    progress: Callable[[str], None] | None = None,
    workers: int | None = 1,
) -> dict:
    """Generate phantom subjects and write them as NIfTI files.

    Layout::

        out_dir/mr/subject_000.nii.gz              T1 MR, int16
        out_dir/ct/subject_000.nii.gz              CT in HU, int16
        out_dir/ct_on_mr_grid/subject_000.nii.gz   CT on the MR grid, int16
        out_dir/labels_mr/subject_000.nii.gz       labels on the MR grid, uint8
        out_dir/labels_ct/subject_000.nii.gz       labels on the CT grid, uint8
        out_dir/phantom.json                       seed, size, label table, parameters
        out_dir/montage.png                        (with montage=True)

    Args:
        out_dir: the data set folder (created if needed).
        subjects: how many subjects (indices ``0 .. n-1``), or the indices.
        seed: seed of the data set. Defaults to `0`.
        size: ``"small"`` or ``"paper"``. Defaults to `"small"`.
        montage: also write ``montage.png`` with mid slices of the first
            subjects. Defaults to `False`.
        progress: called with each subject's id once it is written. Defaults
            to `None`.
        workers: subjects rendered in parallel processes; `None` for one per
            CPU core. The output does not depend on it. Defaults to `1`.

    Returns:
        The manifest written to ``phantom.json``.
    """
    from mr2ct import __version__

    size = PhantomSize(size)
    indices = list(range(int(subjects))) if isinstance(subjects, (int, np.integer)) else [int(i) for i in subjects]
    if not indices:
        raise ValueError("subjects must name at least one subject, received none")
    out_dir = os.fspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(out_dir, f"cannot be used as the output folder ({exc.strerror or exc})") from exc
    shown, parameters = [], {}
    jobs = [(index, str(size), int(seed), out_dir, montage and n < 4) for n, index in enumerate(indices)]
    workers = min(len(jobs), os.cpu_count() or 1) if workers is None else max(1, min(int(workers), len(jobs)))
    if workers == 1:
        results = map(_write_subject, jobs)
    else:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold TensorFlow
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        results = pool.map(_write_subject, jobs)
    try:
        for subject_id, subject_parameters, slices in results:
            parameters[subject_id] = subject_parameters
            if slices is not None:
                shown.append(slices)
            if progress is not None:
                progress(subject_id)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    manifest = {
        "generator": "mr2ct.data.phantom",
        "mr2ct_version": __version__,
        "seed": int(seed),
        "size": str(size),
        "subjects": list(parameters),
        "folders": {f: f"{f}/<subject>.nii.gz" for f in DATASET_FOLDERS},
        "labels": {str(k): v for k, v in LABELS.items()},
        "num_classes": NUM_CLASSES,
        "evaluated_structures": {str(k): LABELS[k] for k in EVALUATED_STRUCTURES},
        "tissues": {str(k): v for k, v in TISSUES.items()},
        "orientation": "LPS world; array [k, j, i]; i -> left, j -> posterior, k -> superior",
        "parameters": parameters,
    }
    if montage:
        write_montage(shown, os.path.join(out_dir, "montage.png"))
        manifest["montage"] = "montage.png"
    atomic_write_text(os.path.join(out_dir, "phantom.json"), json.dumps(manifest, indent=2))
    return manifest


# --------------------------------------------------------------------------- montage


def _world_to_index(volume: Volume, point) -> np.ndarray:
    """Continuous (k, j, i) index of a world point."""
    ijk = np.linalg.solve(volume.direction @ np.diag(volume.spacing), np.asarray(point) - volume.origin)
    return ijk[::-1]


def _montage_slices(subject: PhantomSubject) -> dict:
    """The few 2D images the montage shows for one subject."""
    k_mid = subject.mr.shape[0] // 2
    centre_world = np.asarray(subject.mr.origin) + subject.mr.direction @ (
        np.array([0, 0, k_mid]) * np.asarray(subject.mr.spacing))
    k_ct = int(round(_world_to_index(subject.ct, centre_world)[0]))
    k_ct = min(max(k_ct, 0), subject.ct.shape[0] - 1)
    head = np.asarray(subject.parameters.body_position)
    j_ct = int(round(_world_to_index(subject.ct, head)[1]))
    j_ct = min(max(j_ct, 0), subject.ct.shape[1] - 1)
    k_hi = min(subject.mr.shape[0] - 1, k_mid + max(1, subject.mr.shape[0] // 4))
    return {
        "id": subject.subject_id,
        "mr": subject.mr.array[k_mid],
        "mr_upper": subject.mr.array[k_hi],
        "ct_on_mr": subject.ct_on_mr_grid.array[k_mid],
        "labels": subject.labels_mr.array[k_mid],
        "ct": subject.ct.array[k_ct],
        "ct_labels": subject.labels_ct.array[k_ct],
        "ct_coronal": subject.ct.array[:, j_ct, :],
        "mr_spacing": subject.mr.spacing,
        "ct_spacing": subject.ct.spacing,
    }


def write_montage(slices: list, path: str | os.PathLike) -> str:
    """Write a PNG of mid slices (MR, CT on the MR grid, labels, CT, CT coronal) per subject.

    Args:
        slices: per subject, the dictionary made by the data set writer.
        path: the PNG file.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    path = os.fspath(path)
    colours = label_colours()
    columns = ["MR (mid slice)", "MR (upper slice)", "CT on MR grid", "labels on MR", "CT (same level)",
               "labels on CT", "CT coronal"]
    rows = len(slices)
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.6 * len(columns), 2.7 * rows + 1.2), squeeze=False)
    for r, s in enumerate(slices):
        mr_aspect = s["mr_spacing"][1] / s["mr_spacing"][0]
        ct_aspect = s["ct_spacing"][1] / s["ct_spacing"][0]
        vmax = float(np.percentile(s["mr"], 99.5)) or 1.0
        panels = [
            (s["mr"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["mr_upper"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["ct_on_mr"], dict(cmap="gray", vmin=-250, vmax=750, aspect=mr_aspect)),
            (s["mr"], dict(cmap="gray", vmin=0, vmax=vmax, aspect=mr_aspect)),
            (s["ct"], dict(cmap="gray", vmin=-250, vmax=750, aspect=ct_aspect)),
            (s["ct"], dict(cmap="gray", vmin=-250, vmax=750, aspect=ct_aspect)),
            (s["ct_coronal"][::-1], dict(cmap="gray", vmin=-250, vmax=750,
                                         aspect=s["ct_spacing"][2] / s["ct_spacing"][0])),
        ]
        for c, (image, kwargs) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, interpolation="nearest", **kwargs)
            if c == 3:
                ax.imshow(colours[s["labels"]], interpolation="nearest", alpha=0.55, aspect=mr_aspect)
            if c == 5:
                ax.imshow(colours[s["ct_labels"]], interpolation="nearest", alpha=0.55, aspect=ct_aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(s["id"], fontsize=9)
    handles = [Patch(color=colours[v], label=f"{v} {LABELS[v]}") for v in range(1, NUM_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.text(0.01, 0.005, "axial: anterior up, patient's left on the right; CT window [-250, 750] HU",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def link_subjects(src_dir, dst_dir, subjects) -> None:
    """Make ``dst_dir/<subject>.nii.gz`` for each subject, linking to ``src_dir`` (a copy where links fail).

    Splits a phantom data set into groups (unpaired MR and CT training
    subjects, test subjects) without copying volumes; existing entries are kept.
    """
    os.makedirs(dst_dir, exist_ok=True)
    for subject in subjects:
        src = os.path.join(src_dir, f"{subject}.nii.gz")
        dst = os.path.join(dst_dir, f"{subject}.nii.gz")
        if not os.path.lexists(dst):
            try:
                os.symlink(os.path.abspath(src), dst)
            except OSError:
                shutil.copyfile(src, dst)
