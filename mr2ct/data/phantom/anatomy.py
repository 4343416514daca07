"""The anatomy of one phantom subject: bones, muscles, organs and the body envelope, laid out from its parameters."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mr2ct.data.phantom.parameters import SubjectParameters
from mr2ct.data.phantom.shapes import _box_corners, _Cup, _Ellipsoid, _Segment, _Sphere, _Trunk, _tube, _unit
from mr2ct.data.phantom.tissues import Tissue
from mr2ct.labels import FEMUR, LABEL_VALUES, PELVIS, SACRUM


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
