"""DICOM series written from a volume: one file per axial slice, 16-bit with rescale tags, UIDs shared.

Reading a series back is :func:`mr2ct.data.io.read_volume` (a folder, or one of
its ``.dcm`` files); :func:`read_identifiers` reads the patient and study
identifiers of a series, so a derived series (a synthesized CT) can keep them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import uuid

import numpy as np

from mr2ct.data.volume import Volume
from mr2ct.errors import InputError

_SOP_CLASS_UIDS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    modality: str = "CT",
    rescale_slope: float = 1.0,
    rescale_intercept: float | None = None,
    series_description: str = "mr2ct",
    patient_id: str = "ANONYMOUS",
    series_instance_uid: str | None = None,
    study_instance_uid: str | None = None,
    identifiers: dict[str, str] | None = None,
) -> list[str]:
    """Write a volume as a DICOM series, one file per axial slice.

    Stored pixels are signed 16-bit integers, ``stored = round((value -
    intercept) / slope)``, with RescaleSlope/RescaleIntercept tags (and
    RescaleType ``HU`` for CT), so readers get the values back. Every slice
    carries ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
    SliceThickness, SpacingBetweenSlices and shared Study, Series and Frame of
    Reference UIDs. The folder is filled in a temporary folder beside it and
    moved into place.

    DICOM stacks slices along the normal of the slice plane, so a volume whose
    ``k`` axis points against ``i x j`` (a left-handed direction matrix) reads
    back with its slice order reversed (same voxels in space, other origin).

    Args:
        volume: the volume; values are rounded to multiples of the slope.
        folder: the series folder; it must not exist or be empty.
        modality: ``"CT"`` or ``"MR"``. Defaults to `"CT"`.
        rescale_slope: RescaleSlope. Defaults to `1.0`.
        rescale_intercept: RescaleIntercept. Defaults to `None` (-1024 for CT,
            0 otherwise).
        series_description: SeriesDescription. Defaults to `"mr2ct"`.
        patient_id: PatientID and PatientName. Defaults to `"ANONYMOUS"`.
        series_instance_uid: SeriesInstanceUID. Defaults to `None` (a new UID).
        study_instance_uid: StudyInstanceUID. Defaults to `None` (a new UID).
        identifiers: tags of the series this one derives from
            (:func:`read_identifiers`: patient, study, frame of reference),
            which take the place of the defaults above; the series and
            instance UIDs are always new. Defaults to `None`.

    Returns:
        The paths of the slice files, in slice order.

    Raises:
        InputError: the folder exists and is not empty.
        ValueError: bad ``modality`` or ``rescale_slope``, or values that do
            not fit 16 bits with this slope and intercept.
    """
    import SimpleITK as sitk

    folder = os.fspath(folder)
    modality = str(modality).upper()
    if modality not in _SOP_CLASS_UIDS:
        raise ValueError(f"modality must be one of {sorted(_SOP_CLASS_UIDS)}, received: {modality!r}")
    if not rescale_slope or not np.isfinite(rescale_slope):
        raise ValueError(f"rescale_slope must be finite and non-zero, received: {rescale_slope}")
    if rescale_intercept is None:
        rescale_intercept = -1024.0 if modality == "CT" else 0.0
    if os.path.exists(folder) and (not os.path.isdir(folder) or os.listdir(folder)):
        raise InputError(folder, "already exists and is not an empty folder")

    array = np.asarray(volume.array, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"write_dicom_series needs a 3D array, received shape: {array.shape}")
    stored = np.rint((array - rescale_intercept) / rescale_slope)
    if stored.size and (stored.min() < -32768 or stored.max() > 32767):
        raise ValueError(
            f"values {array.min()}..{array.max()} do not fit 16-bit storage with "
            f"rescale_slope={rescale_slope}, rescale_intercept={rescale_intercept}"
        )
    # GDCM inverse-rescales the float buffer it is given; handing it values
    # that are exact multiples of the slope makes the stored integers exact.
    quantised = (stored * rescale_slope + rescale_intercept).astype(np.float32)

    direction = volume.direction
    spacing = volume.spacing
    now = datetime.datetime.now()
    study_uid = study_instance_uid or _new_uid()
    series_uid = series_instance_uid or _new_uid()
    frame_uid = (identifiers or {}).get("0020|0052") or _new_uid()
    shared = {
        "0008|0008": "DERIVED\\SECONDARY\\AXIAL",
        "0008|0016": _SOP_CLASS_UIDS[modality],
        "0008|0020": now.strftime("%Y%m%d"),
        "0008|0030": now.strftime("%H%M%S"),
        "0008|0060": modality,
        "0008|103e": series_description,
        "0010|0010": patient_id,
        "0010|0020": patient_id,
        "0018|0050": _ds(spacing[2]),
        "0018|0088": _ds(spacing[2]),
        "0020|000d": study_uid,
        "0020|000e": series_uid,
        "0020|0011": "1",
        "0020|0052": frame_uid,
        "0020|0037": "\\".join(_ds(v) for v in (*direction[:, 0], *direction[:, 1])),
        "0028|0100": "16",  # bits allocated
        "0028|0101": "16",  # bits stored
        "0028|0102": "15",  # high bit
        "0028|0103": "1",  # signed
        "0028|1052": _ds(rescale_intercept),
        "0028|1053": _ds(rescale_slope),
    }
    if modality == "CT":
        shared["0028|1054"] = "HU"
    for tag, value in (identifiers or {}).items():
        if tag not in IDENTIFIER_TAGS:
            raise ValueError(f"identifiers may hold only the tags {sorted(IDENTIFIER_TAGS)}, received: {tag!r}")
        shared[tag] = value

    origin = np.asarray(volume.origin)
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(folder) + ".tmp-", dir=parent)
    names = []
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(array.shape[0]):
            image = sitk.GetImageFromArray(np.ascontiguousarray(quantised[k]))
            image.SetSpacing((spacing[0], spacing[1]))
            position = origin + k * spacing[2] * direction[:, 2]
            tags = dict(shared)
            tags.update({
                "0008|0018": _new_uid(),
                "0020|0013": str(k + 1),
                "0020|0032": "\\".join(_ds(v) for v in position),
                "0020|1041": _ds(float(position @ np.cross(direction[:, 0], direction[:, 1]))),
            })
            for tag, value in tags.items():
                image.SetMetaData(tag, value)
            name = f"IM{k + 1:05d}.dcm"
            writer.SetFileName(os.path.join(tmp, name))
            writer.Execute(image)
            names.append(name)
        if os.path.isdir(folder):
            os.rmdir(folder)  # empty, checked above
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [os.path.join(folder, name) for name in names]


# Patient, study and frame-of-reference tags a derived series keeps from its source (SimpleITK's "gggg|eeee").
IDENTIFIER_TAGS = {
    "0010|0010": "PatientName",
    "0010|0020": "PatientID",
    "0010|0030": "PatientBirthDate",
    "0010|0040": "PatientSex",
    "0008|0020": "StudyDate",
    "0008|0030": "StudyTime",
    "0008|0050": "AccessionNumber",
    "0008|0090": "ReferringPhysicianName",
    "0008|1030": "StudyDescription",
    "0020|000d": "StudyInstanceUID",
    "0020|0010": "StudyID",
    "0020|0052": "FrameOfReferenceUID",
}


def read_identifiers(path: str | os.PathLike) -> dict[str, str]:
    """The :data:`IDENTIFIER_TAGS` present in a DICOM series (a folder, or one of its files): ``{tag: value}``.

    Read from the first file of the series :func:`mr2ct.data.io.read_volume` reads.
    """
    import SimpleITK as sitk

    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        if os.path.isdir(path):
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
            if not series:
                raise InputError(path, "holds no DICOM series")
            files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid) for uid in series}
            first = files[max(series, key=lambda u: len(files[u]))][0]
        else:
            first = path
        reader = sitk.ImageFileReader()
        reader.SetFileName(first)
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, f"cannot be read as DICOM: {str(exc).strip().splitlines()[-1]}") from None
    return {tag: reader.GetMetaData(tag).strip() for tag in IDENTIFIER_TAGS if reader.HasMetaDataKey(tag)}


def _new_uid() -> str:
    """A DICOM UID under the 2.25 (UUID) root: at most 44 characters."""
    return f"2.25.{uuid.uuid4().int}"


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    value = float(value)
    for digits in range(12, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.1e}"
