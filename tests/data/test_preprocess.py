import json
import math

import numpy as np
import pytest

from mr2ct.data.intensity import CTIntensity, MRIntensity
from mr2ct.data.preprocess import (
    PreprocessConfig,
    SlabCenter,
    body_mask,
    check_same_grid,
    check_volume,
    crop_ct_to_mr_fov,
    geometry_record,
    n4_bias_correction,
    preprocess_ct,
    preprocess_mr,
    resample_slices,
    resample_to_reference,
    volume_from_geometry,
)
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError


def rotation_z(degrees):
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


_A, _B = np.deg2rad(17.0), 0.2
OBLIQUE = np.array(
    [
        [np.cos(_A), -np.sin(_A), 0.0],
        [np.sin(_A) * np.cos(_B), np.cos(_A) * np.cos(_B), -np.sin(_B)],
        [np.sin(_A) * np.sin(_B), np.cos(_A) * np.sin(_B), np.cos(_B)],
    ]
)
FLIP_IJ = np.diag([-1.0, -1.0, 1.0])  # a RAS-stored scan seen in LPS
FLIP_K = np.diag([1.0, 1.0, -1.0])  # slices running from head to feet


def world_coordinates(shape, spacing, origin, direction):
    """World (x, y, z) of every voxel centre, each of shape ``shape`` ([k, j, i])."""
    k, j, i = np.indices(shape, dtype=np.float64)
    m = np.asarray(direction) @ np.diag(spacing)
    return tuple(origin[a] + m[a, 0] * i + m[a, 1] * j + m[a, 2] * k for a in range(3))


def world_of(volume, ijk):
    return np.asarray(volume.origin) + volume.direction @ (np.asarray(volume.spacing) * np.asarray(ijk, float))


def weighted_centroid_world(volume, weights):
    k, j, i = np.indices(weights.shape, dtype=np.float64)
    total = weights.sum()
    ijk = [float((weights * a).sum() / total) for a in (i, j, k)]
    return world_of(volume, ijk)


def assert_json(record):
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text) == record


# --------------------------------------------------------------------------- synthetic volumes


def make_mr(shape=(16, 80, 80), spacing=(3.0, 3.0, 4.0), bias=True, noise=5.0, seed=0):
    """Piecewise-constant body (fat 1000, a muscle 300, a dark bone) times a smooth bias field.

    Returns the volume, the uniform muscle region and the field.
    """
    origin = tuple(-(n - 1) * s / 2 for n, s in zip(shape[::-1], spacing))
    x, y, z = world_coordinates(shape, spacing, origin, np.eye(3))
    image = np.zeros(shape, np.float32)
    image[(x / 100) ** 2 + (y / 75) ** 2 < 1] = 1000.0
    muscle = (x / 65) ** 2 + (y / 45) ** 2 < 1
    image[muscle] = 300.0
    bone = ((x - 30) / 15) ** 2 + (y / 15) ** 2 < 1
    image[bone] = 100.0
    field = np.exp(0.35 * x / 100 + 0.25 * (y / 75) ** 2 - 0.15 * z / 30) if bias else np.ones(shape)
    rng = np.random.default_rng(seed)
    image = image * field + rng.normal(0.0, noise, shape)
    erosion = ((x / 60) ** 2 + (y / 40) ** 2 < 1) & ~(((x - 30) / 20) ** 2 + (y / 20) ** 2 < 1)
    return Volume(image.astype(np.float32), spacing, origin, path="mr_phantom.nii.gz"), erosion & muscle


CT_SHAPE = (40, 120, 130)
CT_SPACING = (2.5, 2.5, 4.0)


def make_ct(
    shape=CT_SHAPE,
    spacing=CT_SPACING,
    direction=np.eye(3),
    body_centre=(10.0, -5.0),
    bone_z=20.0,
    table=True,
    marker_ijk=None,
):
    """Air, an elliptic body (40 HU), two 'femoral heads' (1000 HU, radius 18 mm) at ``z = bone_z``,
    a thin table 10 mm behind the body, and optionally a single 3000 HU marker voxel.
    """
    direction = np.asarray(direction, dtype=float)
    centre = np.array([0.0, 0.0, 0.0])
    half = direction @ (np.array(spacing) * (np.array(shape[::-1]) - 1) / 2)
    origin = tuple(centre - half)
    x, y, z = world_coordinates(shape, spacing, origin, direction)
    cx, cy = body_centre
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - cx) / 120) ** 2 + ((y - cy) / 85) ** 2 < 1] = 40.0
    for side in (-1, 1):
        ct[(x - cx - side * 60) ** 2 + (y - cy) ** 2 + (z - bone_z) ** 2 < 18**2] = 1000.0
    if table:
        ct[(y > cy + 95) & (y < cy + 100) & (np.abs(x - cx) < 150)] = 0.0
    if marker_ijk is not None:
        i, j, k = marker_ijk
        ct[k, j, i] = 3000.0
    return Volume(ct, spacing, origin, direction, path="ct_phantom.nii.gz")


# --------------------------------------------------------------------------- N4


@pytest.mark.parametrize("mask_kind", ["otsu", "given"])
def test_n4_flattens_a_known_bias_field(mask_kind):
    volume, region = make_mr()
    mask = None if mask_kind == "otsu" else (volume.array > 50.0)
    corrected, info = n4_bias_correction(volume, shrink_factor=3, mask=mask)
    cv = lambda a: a[region].std() / a[region].mean()  # noqa: E731
    before, after = cv(volume.array), cv(corrected.array)
    assert before > 0.08
    assert after < 0.25 * before, (before, after)  # 0.143 -> 0.019 here
    assert corrected.array.dtype == np.float32 and corrected.same_grid(volume)
    assert corrected.path == volume.path
    assert info["mask"] == mask_kind and info["shrink_factor"] == 3 and info["iterations"] == [50, 50, 30]
    assert_json(info)


def test_n4_leaves_an_unbiased_volume_nearly_unchanged():
    volume, region = make_mr(bias=False)
    corrected, info = n4_bias_correction(volume)
    ratio = corrected.array[region] / volume.array[region]
    assert abs(np.median(ratio) - 1.0) < 0.05 and ratio.std() < 0.05
    assert info["shrink_factors_ijk"] == [4, 4, 3]  # k shrunk to keep voxels about isotropic


@pytest.mark.parametrize(
    "kwargs, error",
    [
        [{"shrink_factor": 0}, ValueError],
        [{"iterations": ()}, ValueError],
        [{"control_points": 3}, ValueError],
        [{"mask": np.zeros((16, 80, 80), dtype=bool)}, InputError],
        [{"mask": np.ones((3, 3, 3), dtype=bool)}, ValueError],
    ],
)
def test_n4_rejects_bad_arguments(kwargs, error):
    volume, _ = make_mr()
    with pytest.raises(error):
        n4_bias_correction(volume, **kwargs)


def test_n4_mask_volume_must_share_the_grid():
    volume, _ = make_mr()
    mask = Volume(volume.array > 50, spacing=(1.0, 1.0, 1.0), path="mask.nii.gz")
    with pytest.raises(InputError, match=r"^mask.nii.gz: .*mr_phantom.nii.gz"):
        n4_bias_correction(volume, mask=mask)


# --------------------------------------------------------------------------- CT crop

# [make_ct kwargs, crop kwargs]
CROP_CASES = [
    [{}, {}],
    [{"direction": rotation_z(30.0)}, {}],
    [{"direction": FLIP_IJ, "body_centre": (-25.0, 15.0)}, {}],
    [{"direction": FLIP_K, "bone_z": -30.0}, {}],
    [{"bone_z": -40.0}, {"fov_mm": 200.0, "slab_mm": 50.0}],
    [{"table": False, "body_centre": (0.0, 0.0)}, {"fov_mm": 300.0}],
]


@pytest.mark.parametrize("ct_kwargs, crop_kwargs", CROP_CASES)
def test_crop_ct_field_of_view(ct_kwargs, crop_kwargs):
    ct = make_ct(**ct_kwargs)
    fov_mm, slab_mm = crop_kwargs.get("fov_mm", 320.0), crop_kwargs.get("slab_mm", 76.0)
    cropped, info = crop_ct_to_mr_fov(ct, **crop_kwargs)
    s_i, s_j, s_k = ct.spacing
    half_up = lambda x: math.floor(x + 0.5)  # noqa: E731
    n_i, n_j, n_k = half_up(fov_mm / s_i), half_up(fov_mm / s_j), half_up(slab_mm / s_k)
    assert cropped.shape == (n_k, n_j, n_i)
    assert info["crop_size_ijk"] == [n_i, n_j, n_k]
    assert cropped.spacing == ct.spacing and np.allclose(cropped.direction, ct.direction)
    # centre of the crop: in-plane on the body's centre, craniocaudally on the bone landmark
    centre = world_of(cropped, [(n_i - 1) / 2, (n_j - 1) / 2, (n_k - 1) / 2])
    cx, cy = ct_kwargs.get("body_centre", (10.0, -5.0))
    np.testing.assert_allclose(centre[:2], [cx, cy], atol=max(s_i, s_j))
    assert abs(centre[2] - ct_kwargs.get("bone_z", 20.0)) <= s_k
    assert abs(info["landmark_z_mm"] - ct_kwargs.get("bone_z", 20.0)) <= s_k / 2 + 1e-6
    # the table (the only 0 HU voxels) is not part of the body, so it does not shift the centre
    assert not body_mask(ct.array)[ct.array == 0.0].any()
    assert info["landmark_rule"] == "bone"
    assert_json(info)


@pytest.mark.parametrize("direction", [np.eye(3), rotation_z(30.0), FLIP_IJ, FLIP_K])
def test_crop_keeps_world_positions(direction):
    marker = (70, 55, 25)  # (i, j, k), inside the body and the slab
    ct = make_ct(direction=direction, bone_z=10.0, marker_ijk=marker)
    before = world_of(ct, marker)
    bone_before = weighted_centroid_world(ct, (ct.array == 1000.0).astype(float))
    cropped, info = crop_ct_to_mr_fov(ct)
    k, j, i = np.unravel_index(np.argmax(cropped.array), cropped.shape)
    assert cropped.array[k, j, i] == 3000.0
    np.testing.assert_allclose(world_of(cropped, (i, j, k)), before, atol=1e-6)
    np.testing.assert_allclose(np.subtract(marker, info["crop_start_ijk"]), (i, j, k))
    bone_after = weighted_centroid_world(cropped, (cropped.array == 1000.0).astype(float))
    np.testing.assert_allclose(bone_after, bone_before, atol=1e-6)
    np.testing.assert_allclose(info["origin_after"], cropped.origin)


def test_crop_pads_with_air_beyond_the_image():
    # 325 x 300 mm in-plane: a 320 mm square leaves the image along j
    cropped, info = crop_ct_to_mr_fov(make_ct(body_centre=(0.0, 0.0), table=False))
    assert info["padded_ijk"][1] and info["crop_start_ijk"][1] < 0
    pad = -info["crop_start_ijk"][1]
    assert np.all(cropped.array[:, :pad] == -1000.0)
    assert np.all(cropped.array[:, -1] == -1000.0)


# [crop kwargs, expected landmark rule, expected world z of the slab centre]
SLAB_CASES = [
    [{"center_mm": -30.0}, "center_mm", -30.0],
    [{"center_mm": 200.0}, "center_mm", 80.0 - 38.0],  # shifted to stay inside the image
    [{"slab_center": "image"}, "image", 0.0],
    [{"slab_center": SlabCenter.BODY}, "body", 0.0],
]


@pytest.mark.parametrize("direction", [np.eye(3), FLIP_K])
@pytest.mark.parametrize("crop_kwargs, rule, z", SLAB_CASES)
def test_crop_slab_centre_rules(crop_kwargs, rule, z, direction):
    ct = make_ct(direction=direction, bone_z=50.0)
    cropped, info = crop_ct_to_mr_fov(ct, **crop_kwargs)
    n_k = cropped.shape[0]
    centre = world_of(cropped, [0.0, 0.0, (n_k - 1) / 2])
    assert info["landmark_rule"] == rule
    assert abs(centre[2] - z) <= ct.spacing[2]


def test_crop_short_ct_and_boneless_ct():
    short = make_ct(shape=(10, 120, 130), bone_z=0.0)  # 40 mm, shorter than the 76 mm slab
    cropped, info = crop_ct_to_mr_fov(short)
    assert cropped.shape[0] == 10 and info["slab_shorter_than_requested"]
    boneless = make_ct(bone_z=1000.0)  # the spheres fall outside the image
    _, info = crop_ct_to_mr_fov(boneless)
    assert info["landmark_rule"] == "body"


def test_crop_without_body_is_an_input_error():
    ct = Volume(np.full((8, 20, 20), -1000.0, np.float32), path="empty_ct.nrrd")
    with pytest.raises(InputError, match="empty_ct.nrrd.*body"):
        crop_ct_to_mr_fov(ct)


def test_crop_rejects_bad_options():
    with pytest.raises(ValueError):
        crop_ct_to_mr_fov(make_ct(), slab_center="pelvis")
    with pytest.raises(ValueError, match="Received"):
        crop_ct_to_mr_fov(make_ct(), fov_mm=0.0)


# --------------------------------------------------------------------------- resampling

# [shape (k, j, i), spacing (i, j, k), direction, size]
RESAMPLE_CASES = [
    [(6, 96, 96), (1.25, 1.25, 2.0), np.eye(3), (256, 256)],
    [(5, 128, 128), (0.7, 0.7, 2.0), OBLIQUE, 64],
    [(4, 90, 110), (1.1, 1.3, 3.0), rotation_z(-40.0), (64, 80)],
    [(3, 64, 64), (2.0, 2.0, 5.0), FLIP_IJ, (64, 64)],
]


def blob_volume(shape, spacing, direction, centre_ijk=None, sigma_mm=8.0):
    direction = np.asarray(direction, float)
    origin = (-12.0, 30.5, 7.25)
    x, y, z = world_coordinates(shape, spacing, origin, direction)
    if centre_ijk is None:
        centre_ijk = (0.37 * shape[2], 0.58 * shape[1], (shape[0] - 1) / 2)
    c = np.asarray(origin) + direction @ (np.asarray(spacing) * np.asarray(centre_ijk))
    # in-plane blob: each slice holds the same Gaussian around the slice-axis line through c
    d = np.stack([x - c[0], y - c[1], z - c[2]])
    along_k = np.tensordot(direction[:, 2], d, axes=1)
    r2 = (d**2).sum(axis=0) - along_k**2
    return Volume(np.exp(-r2 / (2 * sigma_mm**2)).astype(np.float32), spacing, origin, direction), c


@pytest.mark.parametrize("shape, spacing, direction, size", RESAMPLE_CASES)
def test_resample_slices_keeps_extent_and_positions(shape, spacing, direction, size):
    volume, _ = blob_volume(shape, spacing, direction)
    rows, cols = (size, size) if np.isscalar(size) else size
    out, info = resample_slices(volume, size)
    assert out.shape == (shape[0], rows, cols) and out.array.dtype == np.float32
    s_new = np.asarray(out.spacing)
    np.testing.assert_allclose(s_new[:2] * [cols, rows], np.asarray(spacing[:2]) * [shape[2], shape[1]])
    assert s_new[2] == spacing[2]
    # the outer edge of the first pixel stays put
    edge = lambda v: world_of(v, [-0.5, -0.5, 0.0])  # noqa: E731
    np.testing.assert_allclose(edge(out), edge(volume), atol=1e-9)
    # a landmark blob keeps its world position within half a new pixel
    before = weighted_centroid_world(volume, volume.array.astype(float))
    after = weighted_centroid_world(out, out.array.astype(float))
    assert np.linalg.norm(after - before) < 0.5 * min(s_new[:2]), (before, after)
    assert info["spacing_after"] == list(out.spacing) and info["origin_after"] == list(out.origin)
    assert_json(info)


def test_resample_slices_order_zero_keeps_labels():
    labels = np.zeros((2, 40, 40), np.uint8)
    labels[:, 10:30, 5:15] = 3
    labels[:, 10:30, 25:35] = 7
    out, info = resample_slices(Volume(labels), 20, order=0)
    assert out.array.dtype == np.uint8 and set(np.unique(out.array)) == {0, 3, 7}
    assert info["antialias_sigma_ji"] == [0.0, 0.0]


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"order": 2}, {"size": (4, -1)}])
def test_resample_slices_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        resample_slices(Volume(np.zeros((2, 8, 8))), **kwargs)


def smooth_volume(shape, spacing, direction):
    origin = (3.0, -20.0, 11.0)
    x, y, z = world_coordinates(shape, spacing, origin, direction)
    array = 100 * np.sin(x / 37.0) * np.cos(y / 23.0) + 50 * np.cos(z / 41.0) + 0.02 * x * y
    return Volume(array.astype(np.float32), spacing, origin, direction, path="smooth.mha")


# [shape, spacing, direction, size]
ROUND_TRIP_CASES = [
    [(6, 150, 170), (1.1, 1.3, 3.0), OBLIQUE, 256],
    [(4, 200, 200), (0.9, 0.9, 2.0), np.eye(3), 128],
    [(4, 100, 120), (2.0, 1.5, 4.0), FLIP_IJ, (160, 96)],
]


@pytest.mark.parametrize("shape, spacing, direction, size", ROUND_TRIP_CASES)
def test_resample_to_reference_round_trip(shape, spacing, direction, size):
    volume = smooth_volume(shape, spacing, direction)
    resampled, _ = resample_slices(volume, size)
    back = resample_to_reference(resampled, volume)
    assert back.same_grid(volume) and back.path == volume.path
    error = np.abs(back.array - volume.array)[:, 2:-2, 2:-2]
    assert error.max() < 0.02 * np.ptp(volume.array), error.max()
    # the same with a geometry record as the reference
    again = resample_to_reference(resampled, json.loads(json.dumps(geometry_record(volume))))
    np.testing.assert_array_equal(again.array, back.array)


def test_resample_to_reference_identity_and_default_value():
    volume = smooth_volume((3, 20, 24), (1.5, 1.5, 2.0), OBLIQUE)
    same = resample_to_reference(volume, volume)
    np.testing.assert_allclose(same.array, volume.array, atol=1e-3)
    moved = dict(geometry_record(volume), origin=[1000.0, 1000.0, 1000.0])
    outside = resample_to_reference(volume, moved, default_value=-1000.0)
    assert np.all(outside.array == -1000.0)
    assert np.all(resample_to_reference(volume, moved).array == volume.array.min())


def test_resample_to_reference_nearest_keeps_labels():
    labels = np.zeros((3, 30, 30), np.int16)
    labels[:, 5:20, 5:20] = 12
    volume = Volume(labels, (1.0, 1.0, 2.0))
    coarse, _ = resample_slices(volume, 15, order=0)
    back = resample_to_reference(coarse, volume, order=0)
    assert back.array.dtype == np.int16 and set(np.unique(back.array)) <= {0, 12}
    assert np.mean(back.array == labels) > 0.95


# --------------------------------------------------------------------------- drivers


def test_preprocess_mr_slices_record_and_inverse():
    volume, _ = make_mr(shape=(8, 80, 80))
    config = PreprocessConfig(image_size=64, n4=False)
    slices, record = preprocess_mr(volume, config)
    assert slices.shape == (8, 64, 64) and slices.dtype == np.float32
    assert slices.min() == -1.0 and slices.max() == 1.0
    assert record["modality"] == "mr" and record["source"] == "mr_phantom.nii.gz"
    assert record["n4"] is None and record["image_size"] == 64
    assert PreprocessConfig.from_dict(record["config"]) == config
    assert_json(record)
    # invert: slices -> signal on the preprocessed grid -> the MR's own grid
    signal = MRIntensity.from_config(record["mr_intensity"]).inverse(slices)
    on_grid = volume_from_geometry(signal, record["output_geometry"])
    back = resample_to_reference(on_grid, record["input_geometry"])
    assert back.same_grid(volume)
    lo, hi = record["mr_intensity"]["lower_value"], record["mr_intensity"]["upper_value"]
    expected = np.clip(volume.array, lo, hi)
    inside = (volume.array > 500)[:, 4:-4, 4:-4]  # away from edges, in the smooth fat
    assert np.median(np.abs(back.array - expected)[:, 4:-4, 4:-4][inside]) < 0.05 * (hi - lo)


def test_preprocess_mr_with_n4():
    volume, region = make_mr(shape=(12, 80, 80))
    # framing off: the muscle region is indexed on the input grid
    slices, record = preprocess_mr(volume, PreprocessConfig(image_size=80, frame_mr=False))
    assert record["n4"]["shrink_factor"] == 4
    muscle = slices[region]
    assert muscle.std() < 0.5 * MRIntensity().fit(volume.array).forward(volume.array)[region].std()
    assert_json(record)


def test_preprocess_ct_slices_record_and_geometry():
    ct = make_ct(bone_z=10.0)
    slices, record = preprocess_ct(ct, PreprocessConfig(image_size=64))
    assert slices.shape == (19, 64, 64) and slices.dtype == np.float32
    assert -1.0 <= slices.min() and slices.max() <= 1.0
    assert record["ct_intensity"] == {"hu_min": -1024.0, "hu_max": 2048.0}
    assert record["ct_crop"]["crop_size_ijk"] == [128, 128, 19]
    assert_json(record)
    # the bone keeps its world position through crop and resampling
    hu = CTIntensity.from_config(record["ct_intensity"]).inverse(slices)
    out = volume_from_geometry(hu, record["output_geometry"])
    bone = lambda v: weighted_centroid_world(v, np.clip(v.array - 200.0, 0, None))  # noqa: E731
    spacing = record["output_geometry"]["spacing"]
    assert np.linalg.norm(bone(out) - bone(ct)) < 0.5 * spacing[0]
    # without cropping only the slices are resampled
    slices, record = preprocess_ct(ct, PreprocessConfig(image_size=32, crop_ct=False))
    assert slices.shape == (40, 32, 32) and record["ct_crop"] is None


@pytest.mark.parametrize(
    "kwargs",
    [{"image_size": 0}, {"slab_center": "knee"}, {"ct_hu_min": 100.0, "ct_hu_max": 0.0},
     {"mr_lower_percentile": 60.0, "mr_upper_percentile": 40.0}],
)
def test_preprocess_config_validation(kwargs):
    with pytest.raises(ValueError):
        PreprocessConfig(**kwargs)


def test_preprocess_config_round_trip():
    config = PreprocessConfig(image_size=128, n4_iterations=[20, 10], slab_center="body")
    values = json.loads(json.dumps(config.to_dict()))
    assert values["slab_center"] == "body" and values["n4_iterations"] == [20, 10]
    assert PreprocessConfig.from_dict(values) == config


# --------------------------------------------------------------------------- bad input

GOOD = Volume(np.ones((4, 8, 8), np.float32))

# [array, spacing, expected problem]
BAD_VOLUMES = [
    [np.ones((8, 8), np.float32), (1.0, 1.0, 1.0), "not a 3D volume"],
    [np.ones((2, 4, 8, 8), np.float32), (1.0, 1.0, 1.0), "not a 3D volume"],
    [np.zeros((0, 8, 8), np.float32), (1.0, 1.0, 1.0), "empty"],
    [np.where(np.arange(256).reshape(4, 8, 8) == 9, np.nan, 1.0), (1.0, 1.0, 1.0), "1 NaN voxels"],
    [np.full((4, 8, 8), np.inf), (1.0, 1.0, 1.0), "256 infinite voxels"],
    [np.ones((4, 8, 8), np.float32), (1.0, 0.0, 1.0), "spacing"],
    [np.ones((4, 8, 8), np.complex64), (1.0, 1.0, 1.0), "non-numeric"],
]

STEPS = {
    "check_volume": check_volume,
    "n4": n4_bias_correction,
    "crop": crop_ct_to_mr_fov,
    "resample_slices": resample_slices,
    "resample_to_reference": lambda v: resample_to_reference(v, GOOD),
    "preprocess_mr": preprocess_mr,
    "preprocess_ct": preprocess_ct,
}


@pytest.mark.parametrize("step", sorted(STEPS))
@pytest.mark.parametrize("array, spacing, problem", BAD_VOLUMES)
def test_bad_volume_is_an_input_error_naming_the_file(step, array, spacing, problem):
    volume = Volume(array, spacing, path="/data/bad_subject.nii.gz")
    with pytest.raises(InputError, match=problem) as caught:
        STEPS[step](volume)
    assert caught.value.path == "/data/bad_subject.nii.gz"
    assert str(caught.value).startswith("/data/bad_subject.nii.gz: ")


def test_constant_mr_is_an_input_error():
    with pytest.raises(InputError, match="flat_mr.nii.gz.*constant"):
        preprocess_mr(Volume(np.full((4, 16, 16), 5.0), path="flat_mr.nii.gz"), PreprocessConfig(n4=False))


# [b's geometry changes, expected text]
GRID_MISMATCHES = [
    [{"spacing": (1.0, 1.0, 2.5)}, "spacing"],
    [{"origin": (0.0, 0.0, 4.0)}, "origin"],
    [{"direction": FLIP_IJ}, "direction"],
    [{"array": np.zeros((5, 8, 8))}, "shape"],
]


@pytest.mark.parametrize("change, text", GRID_MISMATCHES)
def test_check_same_grid(change, text):
    a = Volume(np.zeros((4, 8, 8)), (1.0, 1.0, 2.0), path="mr/subject_001.nii.gz")
    b = Volume(**{"array": np.zeros((4, 8, 8)), "spacing": (1.0, 1.0, 2.0), "path": "labels/subject_001.nii.gz",
                  **change})
    check_same_grid(a, a)
    with pytest.raises(InputError, match=text) as caught:
        check_same_grid(a, b)
    message = str(caught.value)
    assert "mr/subject_001.nii.gz" in message and "labels/subject_001.nii.gz" in message
