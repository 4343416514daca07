"""The label table: the paper's 22 hip structures, their values and names.

One label per structure (a bone's label covers its cortex and its marrow);
left and right share a label. The table is the same for the phantom and for
real data: segmentation trains on it (``NUM_CLASSES`` with background), the
export writes it into the model's metadata, and evaluation names Dice scores
after it. The 22 structures are the paper's (19 muscles, pelvis, femur, sacrum),
four of which (``EVALUATED_STRUCTURES``) are labelled in its MR evaluation set.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1).
"""

from __future__ import annotations

import numpy as np

LABELS = {
    0: "background",
    1: "pelvis",
    2: "femur",
    3: "sacrum",
    4: "gluteus_maximus",
    5: "gluteus_medius",
    6: "gluteus_minimus",
    7: "tensor_fasciae_latae",
    8: "piriformis",
    9: "iliacus",
    10: "psoas_major",
    11: "obturator_internus",
    12: "obturator_externus",
    13: "gemelli",
    14: "quadratus_femoris",
    15: "sartorius",
    16: "rectus_femoris",
    17: "vastus_lateralis",
    18: "vastus_medialis_intermedius",
    19: "pectineus",
    20: "adductors",  # longus, brevis and magnus
    21: "gracilis",
    22: "hamstrings",  # semimembranosus, semitendinosus, biceps femoris
}
"""Label value -> structure name. Left and right share a label."""

LABEL_VALUES = {name: value for value, name in LABELS.items()}
"""Structure name -> label value."""

PELVIS = LABEL_VALUES["pelvis"]
FEMUR = LABEL_VALUES["femur"]
SACRUM = LABEL_VALUES["sacrum"]
GLUTEUS_MAXIMUS = LABEL_VALUES["gluteus_maximus"]
GLUTEUS_MEDIUS = LABEL_VALUES["gluteus_medius"]
GLUTEUS_MINIMUS = LABEL_VALUES["gluteus_minimus"]
BONES = (PELVIS, FEMUR, SACRUM)
MUSCLES = tuple(v for v in LABELS if v not in BONES and v != 0)
EVALUATED_STRUCTURES = (PELVIS, FEMUR, GLUTEUS_MEDIUS, GLUTEUS_MINIMUS)
"""The four structures labelled in the paper's MR evaluation set (section 2.1)."""
NUM_CLASSES = len(LABELS)


def label_colours() -> np.ndarray:
    """RGBA colour per label (background transparent), for overlays."""
    from matplotlib import colormaps

    colours = np.concatenate([colormaps["tab20"](np.arange(20)), colormaps["tab20b"](np.arange(0, 20, 2))])
    table = np.zeros((NUM_CLASSES, 4))
    table[1:] = colours[: NUM_CLASSES - 1]
    table[1:, 3] = 1.0
    return table
