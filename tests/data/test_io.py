import gzip
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mr2ct.data.io import (
    list_volumes,
    read_volume,
    subject_id,
    write_dicom_series,
    write_volume,
)
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError

# An oblique, anisotropic grid with awkward numbers: any axis mix-up or RAS/LPS
# slip shows up as a geometry mismatch.
_ANGLE = np.deg2rad(17.0)
OBLIQUE = np.array(
    [
        [np.cos(_ANGLE), -np.sin(_ANGLE), 0.0],
        [np.sin(_ANGLE) * np.cos(0.2), np.cos(_ANGLE) * np.cos(0.2), -np.sin(0.2)],
        [np.sin(_ANGLE) * np.sin(0.2), np.cos(_ANGLE) * np.sin(0.2), np.cos(0.2)],
    ]
)
GEOMETRY = dict(spacing=(0.703125, 0.8, 2.5), origin=(-159.6484375, 37.25, -88.5), direction=OBLIQUE)


def make_volume(dtype, shape=(5, 7, 6), seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        array = rng.normal(0, 300, size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(max(info.min, -1024), min(info.max, 4000), size=shape).astype(dtype)
    return Volume(array, **GEOMETRY)


def assert_same_geometry(a, b, tol=1e-4):
    np.testing.assert_allclose(a.spacing, b.spacing, atol=tol)
    np.testing.assert_allclose(a.origin, b.origin, atol=tol)
    np.testing.assert_allclose(a.direction, b.direction, atol=tol)


def sitk_write(volume, path):
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction.ravel().tolist())
    sitk.WriteImage(image, str(path))


def sitk_read(path):
    image = sitk.ReadImage(str(path))
    return Volume(
        sitk.GetArrayFromImage(image),
        image.GetSpacing(),
        image.GetOrigin(),
        np.reshape(image.GetDirection(), (3, 3)),
    )


# ----------------------------------------------------------------- round trips

DTYPES = ["int16", "uint16", "float32", "uint8", "float64"]
EXTENSIONS = [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ext", EXTENSIONS)
def test_round_trip_through_our_reader_and_writer(tmp_path, ext, dtype):
    volume = make_volume(dtype)
    path = write_volume(volume, tmp_path / f"v{ext}")
    back = read_volume(path)
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, volume.array)
    assert_same_geometry(back, volume)
    assert back.path == os.fspath(path)
    # nothing left behind but the volume (and a .mhd/.nhdr's data file)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


@pytest.mark.parametrize("dtype", ["int16", "uint16", "float32"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_nifti_written_by_simpleitk_read_through_nibabel(tmp_path, ext, dtype):
    volume = make_volume(dtype)
    sitk_write(volume, tmp_path / f"v{ext}")
    back = read_volume(tmp_path / f"v{ext}")
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, volume.array)
    assert_same_geometry(back, volume)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "float32"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_nifti_written_by_nibabel_read_by_simpleitk(tmp_path, ext, dtype):
    volume = make_volume(dtype)
    write_volume(volume, tmp_path / f"v{ext}")
    back = sitk_read(tmp_path / f"v{ext}")
    np.testing.assert_array_equal(back.array, volume.array)
    assert_same_geometry(back, volume)
    header = nib.load(tmp_path / f"v{ext}").header
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1


def test_identity_lps_volume_has_flipped_ras_affine(tmp_path):
    volume = Volume(np.zeros((2, 3, 4), np.int16), (1, 2, 3), (10, 20, 30))
    write_volume(volume, tmp_path / "v.nii.gz")
    affine = nib.load(tmp_path / "v.nii.gz").affine
    np.testing.assert_allclose(affine[:3, :3], np.diag([-1, -2, 3]))
    np.testing.assert_allclose(affine[:3, 3], [-10, -20, 30])
    assert nib.load(tmp_path / "v.nii.gz").shape == (4, 3, 2)  # (i, j, k) in the file


@pytest.mark.parametrize("ext", [".nrrd", ".mha"])
def test_itk_formats_read_files_written_by_simpleitk(tmp_path, ext):
    volume = make_volume("int16")
    sitk_write(volume, tmp_path / f"v{ext}")
    back = read_volume(tmp_path / f"v{ext}")
    np.testing.assert_array_equal(back.array, volume.array)
    assert_same_geometry(back, volume)


def test_scaled_nifti_is_read_as_float_with_scaling(tmp_path):
    stored = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(0.5, -1024)
    nib.save(image, tmp_path / "s.nii.gz")
    back = read_volume(tmp_path / "s.nii.gz")
    assert back.array.dtype == np.float32
    np.testing.assert_allclose(back.array, stored.transpose(2, 1, 0) * 0.5 - 1024)


@pytest.mark.parametrize("sform_code, qform_code", [(0, 1), (2, 0), (1, 1)])
def test_nifti_geometry_from_qform_or_sform(tmp_path, sform_code, qform_code):
    volume = make_volume("int16")
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine_lps  # RAS
    image = nib.Nifti1Image(volume.array.transpose(2, 1, 0), None)
    image.set_sform(affine if sform_code else np.eye(4), code=sform_code)
    image.set_qform(affine if qform_code else np.eye(4), code=qform_code)
    nib.save(image, tmp_path / "v.nii.gz")
    assert_same_geometry(read_volume(tmp_path / "v.nii.gz"), volume)


def test_trailing_singleton_dimension_is_squeezed(tmp_path):
    image = nib.Nifti1Image(np.ones((4, 3, 2, 1), np.int16), np.diag([2, 2, 2, 1]))
    nib.save(image, tmp_path / "v.nii.gz")
    assert read_volume(tmp_path / "v.nii.gz").shape == (2, 3, 4)


@pytest.mark.parametrize(
    "dtype, values, expected",
    [
        ("int16", [-1000.4, 0.6, 40000.0], [-1000, 1, 32767]),
        ("uint8", [-3.0, 2.5, 300.0], [0, 2, 255]),
        ("float32", [1.25, -2.5, 3.0], [1.25, -2.5, 3.0]),
    ],
)
def test_write_dtype_rounds_and_clips(tmp_path, dtype, values, expected):
    volume = Volume(np.array(values, np.float64).reshape(1, 1, 3))
    back = read_volume(write_volume(volume, tmp_path / "v.nii.gz", dtype=dtype))
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array.ravel(), expected)


def test_write_creates_folders_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "v.nii.gz"
    write_volume(make_volume("int16", seed=1), path)
    write_volume(make_volume("int16", seed=2), path)
    np.testing.assert_array_equal(read_volume(path).array, make_volume("int16", seed=2).array)
    assert os.listdir(path.parent) == ["v.nii.gz"]


# ----------------------------------------------------------------- DICOM

DICOM_CASES = [
    # modality, slope, intercept, values (HU or MR), read dtype
    ("CT", 1.0, -1024.0, np.array([-1024, -1000, -100, 0, 40, 1500, 3071]), np.int16),
    ("CT", 0.5, -1024.0, np.array([-1024, -1000.5, -100, 0, 40.5, 1500, 3071]), np.float32),
    ("CT", 1.0, 0.0, np.array([-1024, -1, 0, 3071]), np.int16),
    ("MR", 1.0, 0.0, np.array([0, 1, 500, 1200]), np.int16),
]


@pytest.mark.parametrize("modality, slope, intercept, values, dtype", DICOM_CASES)
def test_dicom_series_round_trip(tmp_path, modality, slope, intercept, values, dtype):
    rng = np.random.default_rng(0)
    array = rng.choice(values, size=(6, 5, 4))
    volume = Volume(array, **GEOMETRY)
    files = write_dicom_series(
        volume, tmp_path / "series", modality=modality, rescale_slope=slope, rescale_intercept=intercept
    )
    assert len(files) == 6
    back = read_volume(tmp_path / "series")
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, array)
    assert_same_geometry(back, volume)
    # one file of the series reads the whole series
    np.testing.assert_array_equal(read_volume(files[2]).array, array)
    # the tags a PACS and other readers rely on
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[1])
    reader.ReadImageInformation()
    tag = lambda key: reader.GetMetaData(key).strip()  # noqa: E731
    assert float(tag("0028|1053")) == slope and float(tag("0028|1052")) == intercept
    assert float(tag("0018|0050")) == pytest.approx(2.5)
    np.testing.assert_allclose(
        [float(v) for v in tag("0020|0032").split("\\")],
        np.asarray(volume.origin) + 2.5 * OBLIQUE[:, 2],
        atol=1e-4,
    )
    np.testing.assert_allclose(
        [float(v) for v in tag("0020|0037").split("\\")], [*OBLIQUE[:, 0], *OBLIQUE[:, 1]], atol=1e-6
    )
    assert tag("0008|0060") == modality


def test_dicom_folder_with_two_series_reads_the_largest_and_warns(tmp_path):
    small = Volume(np.zeros((2, 4, 4), np.int16))
    large = Volume(np.full((5, 4, 4), 100, np.int16))
    write_dicom_series(small, tmp_path / "a")
    write_dicom_series(large, tmp_path / "b")
    os.makedirs(tmp_path / "both")
    for name in ("a", "b"):
        for f in os.listdir(tmp_path / name):
            os.replace(tmp_path / name / f, tmp_path / "both" / f"{name}{f}")
    with pytest.warns(UserWarning, match="2 DICOM series"):
        back = read_volume(tmp_path / "both")
    assert back.shape == (5, 4, 4) and (back.array == 100).all()


def test_dicom_writer_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        write_dicom_series(Volume(np.zeros((2, 2, 2))), tmp_path / "s")


# ----------------------------------------------------------------- bad input


def _truncated_gz(tmp_path):
    path = tmp_path / "cut.nii.gz"
    write_volume(make_volume("float32", shape=(20, 30, 30)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _uncompressed_truncated(tmp_path):
    path = tmp_path / "cut.nii"
    write_volume(make_volume("int16", shape=(20, 30, 30)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage_gz(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header" * 10))
    return path


def _not_gzip(tmp_path):
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(b"\x00" * 400)
    return path


def _empty_file(tmp_path):
    path = tmp_path / "empty.nrrd"
    path.write_bytes(b"")
    return path


def _corrupt_mha(tmp_path):
    path = tmp_path / "v.mha"
    write_volume(make_volume("int16", shape=(10, 20, 20)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    return path


def _mhd_without_data(tmp_path):
    path = tmp_path / "v.mhd"
    write_volume(make_volume("int16"), path)
    for name in os.listdir(tmp_path):
        if not name.endswith(".mhd"):
            os.remove(tmp_path / name)
    return path


def _missing(tmp_path):
    return tmp_path / "nope.nii.gz"


def _unsupported(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    return path


def _two_d(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), path)
    return path


def _two_d_itk(tmp_path):
    path = tmp_path / "flat.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(path))
    return path


def _four_d(tmp_path):
    path = tmp_path / "time.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), path)
    return path


def _nan(tmp_path):
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = np.nan
    return write_volume(Volume(array), tmp_path / "nan.nii.gz")


def _inf(tmp_path):
    array = np.zeros((3, 4, 5), np.float32)
    array[0, 0, 0] = np.inf
    return write_volume(Volume(array), tmp_path / "inf.nrrd")


def _vector(tmp_path):
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True), str(path))
    return path


def _empty_folder(tmp_path):
    (tmp_path / "dicom").mkdir()
    return tmp_path / "dicom"


def _folder_of_junk(tmp_path):
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "a.dcm").write_bytes(b"\x00" * 200)
    return tmp_path / "dicom"


def _junk_dcm_file(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"junk" * 50)
    return tmp_path / "x.dcm"


BAD_INPUTS = [
    # builder, words in the message
    (_missing, "does not exist"),
    (_unsupported, "unsupported file type"),
    (_truncated_gz, "corrupt or truncated"),
    (_uncompressed_truncated, "corrupt or truncated"),
    (_garbage_gz, "cannot be read"),
    (_not_gzip, "cannot be read"),
    (_empty_file, "cannot be read"),
    (_corrupt_mha, "cannot be read"),
    (_mhd_without_data, "cannot be read"),
    (_two_d, "2D"),
    (_two_d_itk, "2D"),
    (_four_d, "4D"),
    (_nan, "NaN or infinite"),
    (_inf, "NaN or infinite"),
    (_vector, "components"),
    (_empty_folder, "no readable DICOM series"),
    (_folder_of_junk, "no readable DICOM series"),
    (_junk_dcm_file, "DICOM"),
]


@pytest.mark.parametrize("build, words", BAD_INPUTS, ids=[b.__name__.strip("_") for b, _ in BAD_INPUTS])
def test_bad_input_raises_input_error_naming_the_file(tmp_path, build, words):
    path = os.fspath(build(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=words) as info:
            read_volume(path)
    assert info.value.path == path
    assert str(info.value).startswith(path)


def test_check_finite_can_be_turned_off(tmp_path):
    volume = read_volume(_nan(tmp_path), check_finite=False)
    assert np.isnan(volume.array).sum() == 1


@pytest.mark.parametrize("name", ["v.png", "v", "v.dcm"])
def test_write_to_unsupported_extension(tmp_path, name):
    with pytest.raises(InputError, match="cannot write"):
        write_volume(make_volume("int16"), tmp_path / name)


# ----------------------------------------------------------------- listing and names

SUBJECT_IDS = [
    ("ct/subject_001.nii.gz", "subject_001"),
    ("a.b.nii", "a.b"),
    ("/x/y/Case7.NRRD", "Case7"),
    ("scan.mha", "scan"),
    ("scan.mhd", "scan"),
    ("dicom/patient_3/", "patient_3"),
    ("slice.dcm", "slice"),
    ("noext", "noext"),
]


@pytest.mark.parametrize("path, expected", SUBJECT_IDS)
def test_subject_id(path, expected):
    assert subject_id(path) == expected


def test_list_volumes(tmp_path):
    volume = make_volume("int16", shape=(3, 4, 4))
    for name in ("b.nii.gz", "a.nrrd", "c.mhd", "d.nii"):
        write_volume(volume, tmp_path / name)
    write_dicom_series(volume, tmp_path / "e_dicom")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / ".hidden.nii.gz").write_bytes(b"")
    names = [os.path.basename(p) for p in list_volumes(tmp_path)]
    assert names == ["a.nrrd", "b.nii.gz", "c.mhd", "d.nii", "e_dicom"]
    assert list_volumes(tmp_path / "e_dicom") == [os.fspath(tmp_path / "e_dicom")]


@pytest.mark.parametrize("make", ["missing", "empty", "file", "only_text"])
def test_list_volumes_bad_folder(tmp_path, make):
    folder = tmp_path / "f"
    if make == "empty":
        folder.mkdir()
    elif make == "file":
        folder.write_text("x")
    elif make == "only_text":
        folder.mkdir()
        (folder / "readme.txt").write_text("x")
    with pytest.raises(InputError) as info:
        list_volumes(folder)
    assert info.value.path == os.fspath(folder)
