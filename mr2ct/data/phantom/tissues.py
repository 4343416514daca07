"""The phantom's tissue classes: what a voxel is made of, which its intensities are rendered from."""

from __future__ import annotations

import enum

from mr2ct.labels import FEMUR, MUSCLES, PELVIS, SACRUM


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
