"""Data: volumes and their I/O, the procedural hip phantom, preprocessing, TFRecords, tf.data.

Only the light, TensorFlow-free parts are imported here; ``mr2ct.data.records``
and ``mr2ct.data.pipeline`` are imported where needed.
"""

from mr2ct.data.io import list_volumes, read_volume, subject_id, write_dicom_series, write_volume
from mr2ct.data.phantom import PhantomSubject, generate_subject, write_phantom_dataset
from mr2ct.data.volume import Volume
from mr2ct.labels import (
    EVALUATED_STRUCTURES,
    FEMUR,
    GLUTEUS_MEDIUS,
    GLUTEUS_MINIMUS,
    LABELS,
    NUM_CLASSES,
    PELVIS,
    SACRUM,
)

__all__ = [
    "EVALUATED_STRUCTURES",
    "FEMUR",
    "GLUTEUS_MEDIUS",
    "GLUTEUS_MINIMUS",
    "LABELS",
    "NUM_CLASSES",
    "PELVIS",
    "PhantomSubject",
    "SACRUM",
    "Volume",
    "generate_subject",
    "list_volumes",
    "read_volume",
    "subject_id",
    "write_dicom_series",
    "write_phantom_dataset",
    "write_volume",
]
