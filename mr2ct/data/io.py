"""Reading and writing volumes: NIfTI, NRRD, MetaImage and DICOM series.

NIfTI files (``.nii``, ``.nii.gz``) go through nibabel; NRRD (``.nrrd``,
``.nhdr``), MetaImage (``.mha``, ``.mhd``) and DICOM series (a folder, or one
``.dcm`` file of the series) through SimpleITK. Whatever the format, a
:class:`~mr2ct.data.volume.Volume` comes back in the package's one orientation
convention (see :mod:`mr2ct.data.volume`): array ``[k, j, i]``, geometry in
LPS millimetres, voxel order as stored in the file. NIfTI's RAS affine is
converted on reading and back on writing, so a file written by SimpleITK and
read here (or the reverse) lands on the same grid.

Every problem with a file the user gave (missing, unsupported, corrupt or
truncated, not 3D, NaN voxels, a folder with no DICOM series) is raised as
:class:`~mr2ct.errors.InputError` naming the file. Writes are atomic: the file
is written into a temporary folder next to the target and moved into place,
so an interrupted run never leaves half a volume behind. The DICOM series
writer, :func:`write_dicom_series`, lives in :mod:`mr2ct.data.dicom`.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import tempfile
import warnings

import numpy as np

from mr2ct.data.dicom import write_dicom_series  # noqa: F401  re-exported beside the other writers
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
ITK_EXTENSIONS = (".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_EXTENSIONS = (".dcm",)
# Files that hold a whole volume (a DICOM series is a folder instead).
VOLUME_EXTENSIONS = NIFTI_EXTENSIONS + ITK_EXTENSIONS

# NIfTI world space is RAS, ours is LPS: flip x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class VolumeFormat(enum.StrEnum):
    """How a path is read or written."""

    NIFTI = "nifti"  # nibabel
    ITK = "itk"  # SimpleITK: NRRD and MetaImage
    DICOM = "dicom"  # SimpleITK/GDCM: a folder holding a series


def volume_format(path: str | os.PathLike) -> VolumeFormat:
    """The format of ``path`` from its extension (a folder is a DICOM series).

    Args:
        path: a file or folder name; it need not exist.

    Returns:
        A :class:`VolumeFormat`.

    Raises:
        InputError: the extension is not one mr2ct reads or writes.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return VolumeFormat.DICOM
    ext = _extension(path)
    if ext in NIFTI_EXTENSIONS:
        return VolumeFormat.NIFTI
    if ext in ITK_EXTENSIONS:
        return VolumeFormat.ITK
    if ext in DICOM_EXTENSIONS:
        return VolumeFormat.DICOM
    supported = ", ".join(VOLUME_EXTENSIONS + DICOM_EXTENSIONS)
    raise InputError(
        path,
        f"unsupported file type {ext or '(no extension)'!r}; expected one of {supported} "
        "or a folder holding a DICOM series",
    )


def subject_id(path: str | os.PathLike) -> str:
    """The name of a volume without its folder and extension.

    ``ct/subject_001.nii.gz`` gives ``subject_001``; a DICOM series folder
    gives the folder's name.

    Args:
        path: a volume file or DICOM series folder.

    Returns:
        The subject identifier.
    """
    name = os.path.basename(os.fspath(path).rstrip("/\\"))
    lower = name.lower()
    for ext in VOLUME_EXTENSIONS + DICOM_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def list_volumes(folder: str | os.PathLike) -> list[str]:
    """The volumes in a folder, sorted by name.

    Volumes are files with a supported extension (``.nii``, ``.nii.gz``,
    ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) and sub-folders that hold a DICOM
    series. A folder that itself holds a DICOM series and nothing else gives
    just itself. Hidden entries (names starting with ``.``) are skipped.

    Args:
        folder: the folder to list.

    Returns:
        Paths (``folder`` joined with each entry's name).

    Raises:
        InputError: the folder does not exist, is not a folder, or holds no volume.
    """
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise InputError(folder, "does not exist")
    if not os.path.isdir(folder):
        raise InputError(folder, "is not a folder")
    found = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            if _dicom_series_ids(path):
                found.append(path)
        elif _extension(name) in VOLUME_EXTENSIONS:
            found.append(path)
    if not found and _dicom_series_ids(folder):
        found.append(folder)
    if not found:
        raise InputError(
            folder,
            "contains no volumes (" + ", ".join(VOLUME_EXTENSIONS) + " files or DICOM series folders)",
        )
    return found


def read_volume(path: str | os.PathLike, check_finite: bool = True) -> Volume:
    """Read a 3D volume with its geometry.

    Integer voxels stay integers (``int16`` CT in HU, ``uint16`` MR, ``uint8``
    labels) unless the file asks for scaling (NIfTI ``scl_slope``/``scl_inter``
    other than 1/0), in which case the scaled values come back as ``float32``.
    DICOM rescale slope and intercept are always applied, so a CT series comes
    back in HU; integral results that fit are returned as ``int16``. A 4D file
    whose extra dimensions are all 1 is read as 3D.

    If a folder holds several DICOM series, the one with the most files is
    read and a warning names it; give the path of one ``.dcm`` file to choose
    another series.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or
            ``.mhd`` file, a folder holding a DICOM series, or one ``.dcm``
            file of a series.
        check_finite: raise if any voxel is NaN or infinite. Defaults to `True`.

    Returns:
        A :class:`~mr2ct.data.volume.Volume` whose ``path`` is ``path``.

    Raises:
        InputError: the file is missing, of an unsupported type, corrupt or
            truncated, not 3D, has non-finite voxels, or (for a folder) holds
            no readable DICOM series.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(path, "does not exist")
    fmt = volume_format(path)
    if fmt is VolumeFormat.NIFTI:
        volume = _read_nifti(path)
    elif fmt is VolumeFormat.ITK:
        volume = _read_itk(path)
    else:
        volume = _read_dicom(path)
    if check_finite and volume.array.dtype.kind == "f":
        bad = int(np.size(volume.array) - np.count_nonzero(np.isfinite(volume.array)))
        if bad:
            raise InputError(path, f"has {bad} NaN or infinite voxels")
    return volume


def write_volume(volume: Volume, path: str | os.PathLike, dtype=None) -> str:
    """Write a volume to a NIfTI, NRRD or MetaImage file, atomically.

    NIfTI files get the RAS affine of the volume's LPS geometry in both sform
    and qform (code 1, scanner) and no intensity scaling. NRRD and MetaImage
    files are compressed. Parent folders are created.

    Args:
        volume: the volume to write.
        path: the target; its extension chooses the format (``.nii``,
            ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``).
        dtype: voxel type to store, e.g. ``"int16"`` for CT or ``"uint8"``
            for labels; floats are rounded and clipped to an integer type's
            range. Defaults to `None` (the array's own type; ``bool`` is
            stored as ``uint8``).

    Returns:
        The path written.

    Raises:
        InputError: the extension is not a writable volume format.
    """
    path = os.fspath(path)
    ext = _extension(path)
    fmt = VolumeFormat.NIFTI if ext in NIFTI_EXTENSIONS else VolumeFormat.ITK
    if os.path.isdir(path) or ext not in VOLUME_EXTENSIONS:
        raise InputError(
            path,
            "cannot write a volume here; use a file ending in " + ", ".join(VOLUME_EXTENSIONS)
            + " (DICOM series are written with write_dicom_series)",
        )
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise ValueError(f"write_volume needs a 3D array, received shape: {array.shape}")
    array = _cast(array, dtype if dtype is not None else _default_store_dtype(array))
    with _atomic_file(path) as tmp:
        if fmt is VolumeFormat.NIFTI:
            _write_nifti(volume, array, tmp)
        else:
            _write_itk(volume, array, tmp)
    return path


# --------------------------------------------------------------------------- readers


def _read_nifti(path: str) -> Volume:
    import nibabel as nib

    try:
        image = nib.load(path, mmap=False)
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputError(path, "is not a NIfTI image")
        stored_dtype = np.dtype(image.header.get_data_dtype())
        if stored_dtype.kind not in "iuf" or stored_dtype.fields is not None:
            raise InputError(path, f"has unsupported voxel type {stored_dtype}")
        shape = _check_3d(path, image.shape)
        slope, inter = image.dataobj.slope, image.dataobj.inter
        if slope == 1 and inter == 0:
            data = np.asarray(image.dataobj)
        else:
            data = image.get_fdata(dtype=np.float64 if stored_dtype == np.float64 else np.float32)
        affine = np.asarray(image.affine, dtype=np.float64)
    except InputError:
        raise
    except Exception as exc:  # nibabel, zlib, EOFError, OSError, ... on corrupt files
        raise InputError(path, f"cannot be read as NIfTI (corrupt or truncated?): {_describe(exc)}") from exc
    data = data.reshape(shape)
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    lps = _LPS_TO_RAS @ affine  # the flip is its own inverse
    spacing, direction = _split_matrix(path, lps[:3, :3])
    return Volume(array, spacing, lps[:3, 3], direction, path=path)


def _read_itk(path: str) -> Volume:
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(path, f"cannot be read (corrupt or truncated?): {_describe(exc)}") from exc
    return _from_sitk(path, image)


def _read_dicom(path: str) -> Volume:
    import SimpleITK as sitk

    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    series = _dicom_series_ids(folder)
    if not series:
        raise InputError(path, "holds no readable DICOM series")
    reader = sitk.ImageSeriesReader()
    if os.path.isdir(path):
        files = {uid: reader.GetGDCMSeriesFileNames(folder, uid) for uid in series}
        uid = max(series, key=lambda u: len(files[u]))
        if len(series) > 1:
            warnings.warn(
                f"{path}: holds {len(series)} DICOM series; reading the largest "
                f"({len(files[uid])} files, SeriesInstanceUID {uid}). Give the path of one "
                "of its .dcm files to read another series.",
                stacklevel=3,
            )
        names = files[uid]
    else:
        try:
            info = sitk.ImageFileReader()
            info.SetFileName(path)
            info.ReadImageInformation()
            uid = info.GetMetaData("0020|000e").strip() if info.HasMetaDataKey("0020|000e") else None
        except RuntimeError as exc:
            raise InputError(path, f"cannot be read as DICOM: {_describe(exc)}") from exc
        names = reader.GetGDCMSeriesFileNames(folder, uid) if uid in series else ()
        if not names:
            raise InputError(path, "is not part of a readable DICOM series")
    try:
        reader.SetFileNames(names)
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(path, f"DICOM series cannot be read: {_describe(exc)}") from exc
    volume = _from_sitk(path, image)
    # GDCM returns rescaled values as int32 or float64; narrow where exact.
    array = volume.array
    if array.dtype.kind in "iu" and array.dtype.itemsize > 2:
        for candidate in (np.int16, np.uint16):
            info = np.iinfo(candidate)
            if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
                array = array.astype(candidate)
                break
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    return volume.with_array(array)


def _dicom_series_ids(folder: str) -> tuple:
    import SimpleITK as sitk

    try:
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder))
    except RuntimeError:
        return ()


def _from_sitk(path: str, image) -> Volume:
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            path, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; one is expected"
        )
    dim = image.GetDimension()
    size = image.GetSize()  # (i, j, k, ...)
    shape = _check_3d(path, size)
    array = sitk.GetArrayFromImage(image)  # (..., k, j, i)
    if array.dtype.kind not in "iuf":
        raise InputError(path, f"has unsupported voxel type {array.dtype}")
    array = np.ascontiguousarray(array.reshape(shape[::-1]))
    spacing = image.GetSpacing()[:3]
    origin = image.GetOrigin()[:3]
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    return Volume(array, spacing, origin, direction, path=path)


def _check_3d(path: str, shape) -> tuple:
    """The 3D shape (i, j, k) of an image of shape ``shape`` (i, j, k, ...), or InputError."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3:
        raise InputError(path, f"is {len(shape)}D (shape {shape}); a 3D volume is expected")
    if len(shape) > 3 and any(s != 1 for s in shape[3:]):
        raise InputError(path, f"is {len(shape)}D (shape {shape}); a 3D volume is expected")
    if 0 in shape[:3]:
        raise InputError(path, f"is empty (shape {shape})")
    return shape[:3]


def _split_matrix(path: str, matrix: np.ndarray) -> tuple:
    """Spacing and direction from a 3x3 matrix whose columns are voxel steps."""
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"has a degenerate affine (voxel sizes {spacing.tolist()})")
    return spacing, matrix / spacing


# --------------------------------------------------------------------------- writers


def _write_nifti(volume: Volume, array: np.ndarray, path: str) -> None:
    import nibabel as nib

    affine = _LPS_TO_RAS @ volume.affine_lps
    data = array.transpose(2, 1, 0)  # (i, j, k)
    image = nib.Nifti1Image(data, affine, dtype=array.dtype)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(1.0, 0.0)
    nib.save(image, path)


def _write_itk(volume: Volume, array: np.ndarray, path: str) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in volume.spacing))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    image.SetDirection(tuple(float(d) for d in np.asarray(volume.direction).ravel()))
    sitk.WriteImage(image, path, True)


@contextlib.contextmanager
def _atomic_file(path: str):
    """Yield a temporary name for ``path``; on success move it (and companions) in place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=".mr2ct-tmp-", dir=folder)
    try:
        yield os.path.join(tmp, name)
        # Companion files (.raw of a .mhd) first, the header last: readers see
        # the header only once its data is in place.
        for entry in sorted(os.listdir(tmp), key=lambda n: n == name):
            os.replace(os.path.join(tmp, entry), os.path.join(folder, entry))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _default_store_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype == np.bool_:
        return np.dtype(np.uint8)
    if array.dtype in (np.int64, np.uint64) and array.size:
        info = np.iinfo(np.int32)
        if array.min() >= info.min and array.max() <= info.max:
            return np.dtype(np.int32)
    if array.dtype == np.float16:
        return np.dtype(np.float32)
    return array.dtype


def _cast(array: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise ValueError(f"dtype must be an integer or float type, received: {dtype}")
    if array.dtype == dtype:
        return array
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.dtype.kind == "f":
            array = np.rint(array)
        if array.dtype.kind in "iuf" and array.size:
            array = np.clip(array, info.min, info.max)
    return array.astype(dtype)


# --------------------------------------------------------------------------- helpers


def _extension(path: str) -> str:
    lower = os.path.basename(os.fspath(path)).lower()
    for ext in VOLUME_EXTENSIONS + DICOM_EXTENSIONS:
        if lower.endswith(ext):
            return ext
    return os.path.splitext(lower)[1]


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
