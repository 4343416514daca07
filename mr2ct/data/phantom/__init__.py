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

One module per step: ``tissues`` and ``grids`` (the scanners), ``parameters``
(what is drawn per subject), ``shapes`` (signed-distance primitives),
``anatomy`` (the shapes of a subject), ``tissue_map`` (the anatomy sampled on a
grid), ``rendering`` (CT, MR, bias field, noise), ``subjects`` (one subject from
its seed), ``dataset`` (the writer) and ``montage``. The names are re-exported here.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1 for the scanners' fields of view).
"""

from mr2ct.data.folders import link_subjects
from mr2ct.data.phantom.anatomy import Anatomy, build_anatomy
from mr2ct.data.phantom.dataset import DATASET_FOLDERS, write_phantom_dataset
from mr2ct.data.phantom.grids import Grid, PhantomSize, scanner_grid
from mr2ct.data.phantom.montage import write_montage
from mr2ct.data.phantom.parameters import SubjectParameters, sample_parameters
from mr2ct.data.phantom.rendering import bias_field, expected_ct, render_ct, render_mr
from mr2ct.data.phantom.subjects import PhantomSubject, generate_subject, subject_name, subject_tissue_on_mr_grid
from mr2ct.data.phantom.tissue_map import TissueMap, render_tissue
from mr2ct.data.phantom.tissues import STRUCTURE_TISSUES, TISSUES, Tissue
from mr2ct.labels import (
    BONES,
    EVALUATED_STRUCTURES,
    FEMUR,
    GLUTEUS_MAXIMUS,
    GLUTEUS_MEDIUS,
    GLUTEUS_MINIMUS,
    LABELS,
    MUSCLES,
    NUM_CLASSES,
    PELVIS,
    SACRUM,
    label_colours,
)

__all__ = [
    "Anatomy",
    "BONES",
    "DATASET_FOLDERS",
    "EVALUATED_STRUCTURES",
    "FEMUR",
    "GLUTEUS_MAXIMUS",
    "GLUTEUS_MEDIUS",
    "GLUTEUS_MINIMUS",
    "Grid",
    "LABELS",
    "MUSCLES",
    "NUM_CLASSES",
    "PELVIS",
    "PhantomSize",
    "PhantomSubject",
    "SACRUM",
    "STRUCTURE_TISSUES",
    "SubjectParameters",
    "TISSUES",
    "Tissue",
    "TissueMap",
    "bias_field",
    "build_anatomy",
    "expected_ct",
    "generate_subject",
    "label_colours",
    "link_subjects",
    "render_ct",
    "render_mr",
    "render_tissue",
    "sample_parameters",
    "scanner_grid",
    "subject_name",
    "subject_tissue_on_mr_grid",
    "write_montage",
    "write_phantom_dataset",
]
