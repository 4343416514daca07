"""Framing: MR slices centred on the body like the CT, and the inverse by world coordinates."""

import numpy as np
import pytest

from mr2ct.data.framing import body_centred_square, crop_box, frame_mr, mr_body_mask
from mr2ct.data.intensity import MRIntensity
from mr2ct.data.phantom import generate_subject
from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr, resample_to_reference, volume_from_geometry
from mr2ct.data.volume import Volume


def ellipse_mr(shape=(6, 128, 128), spacing=(2.5, 2.5, 4.0), centre_ij=(80.0, 50.0), radii_ij=(30.0, 22.0)):
    """A bright ellipse (the body) with a dark disc inside (bone), off-centre, on a dark noisy background."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    body = ((i - centre_ij[0]) / radii_ij[0]) ** 2 + ((j - centre_ij[1]) / radii_ij[1]) ** 2 < 1
    bone = ((i - centre_ij[0]) / 6) ** 2 + ((j - centre_ij[1]) / 6) ** 2 < 1
    image = np.where(body, 800.0, 0.0) * np.where(bone, 0.05, 1.0)
    image = image + np.abs(np.random.default_rng(0).normal(0, 8.0, shape))
    return Volume(image.astype(np.float32), spacing, (-40.0, 25.0, -10.0), path="offcentre_mr.nii.gz")


def bbox_centre(mask):
    js = np.flatnonzero(mask.any(axis=(0, 2)))
    is_ = np.flatnonzero(mask.any(axis=(0, 1)))
    return 0.5 * (is_[0] + is_[-1]), 0.5 * (js[0] + js[-1])


def value_at_world(volume, point):
    ijk = np.linalg.solve(volume.direction @ np.diag(volume.spacing), np.asarray(point) - np.asarray(volume.origin))
    i, j, k = np.round(ijk).astype(int)
    return volume.array[k, j, i]


def test_mr_body_mask_is_the_body_with_its_dark_bone_inside():
    mr = ellipse_mr()
    mask = mr_body_mask(mr.array)
    assert mask.any() and not mask[:, 0, 0].any()
    assert bbox_centre(mask) == pytest.approx((80.0, 50.0), abs=1.0)
    assert not mr_body_mask(np.zeros((3, 8, 8))).any()


def test_framing_centres_the_body_and_keeps_world_positions():
    mr = ellipse_mr()
    framed, info = frame_mr(mr, fov_mm=320.0)
    assert framed.array.shape == (6, 128, 128) and info["framed"]
    centre = bbox_centre(mr_body_mask(framed.array))
    assert centre == pytest.approx((63.5, 63.5), abs=1.0)
    # every body voxel keeps its world position and value
    for ijk in [(80, 50, 2), (60, 45, 0), (100, 60, 5)]:
        world = np.asarray(mr.origin) + mr.direction @ (np.asarray(mr.spacing) * np.array(ijk))
        assert value_at_world(framed, world) == mr.array[ijk[2], ijk[1], ijk[0]]
    assert info["padded_ij"] == [True, True] and (framed.array == 0).any()


def test_a_body_touching_the_field_of_view_edge_is_kept_whole():
    mr = ellipse_mr(centre_ij=(10.0, 64.0), radii_ij=(40.0, 30.0))  # cut by the left edge of the image
    framed, info = frame_mr(mr, fov_mm=320.0)
    assert mr_body_mask(framed.array).sum() == mr_body_mask(mr.array).sum()  # no body voxel lost
    assert info["crop_start_ijk"][0] < 0  # padded on the left, air dropped on the right


def test_an_mr_smaller_than_the_field_of_view_is_padded_around():
    mr = ellipse_mr(shape=(4, 80, 80), centre_ij=(40.0, 40.0), radii_ij=(25.0, 20.0))  # 200 mm of 320
    framed, info = frame_mr(mr, fov_mm=320.0)
    assert framed.array.shape == (4, 128, 128)
    assert bbox_centre(mr_body_mask(framed.array)) == pytest.approx((63.5, 63.5), abs=1.0)
    assert (framed.array[:, :20, :] == 0).all()


def test_an_mr_without_a_body_is_left_as_it_is():
    mr = Volume(np.zeros((3, 16, 16), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    framed, info = frame_mr(mr)
    assert framed is mr and info["framed"] is False


def test_crop_box_pads_and_moves_the_origin():
    v = Volume(np.arange(2 * 4 * 5, dtype=np.int16).reshape(2, 4, 5), (1.0, 2.0, 3.0), (10.0, 20.0, 30.0))
    out = crop_box(v, (-1, 1, 0), (4, 3, 2), -7)
    assert out.array.dtype == np.int16 and out.array.shape == (2, 3, 4)
    assert out.origin == (9.0, 22.0, 30.0)
    np.testing.assert_array_equal(out.array[:, :, 0], -7)
    np.testing.assert_array_equal(out.array[:, :, 1:], v.array[:, 1:4, 0:3])
    assert body_centred_square(np.ones((1, 4, 6), bool), (1.0, 1.0), 8.0)["start_ij"] == [-1, -2]


def test_prepared_mr_goes_back_onto_its_own_grid():
    """What predict does: slices of the framed grid, resampled by world coordinates, land on the input."""
    subject = generate_subject(2, "small", seed=1)
    mr = subject.mr
    slices, record = preprocess_mr(mr, PreprocessConfig(image_size=64, n4=False))
    assert record["framing"]["framed"]
    values = MRIntensity.from_config(record["mr_intensity"]).inverse(slices)
    back = resample_to_reference(volume_from_geometry(values, record["output_geometry"]), mr, order=1,
                                 default_value=0.0)
    body = mr_body_mask(mr.array)
    inside = body & (mr.array < record["mr_intensity"]["upper_value"])  # not clipped by the scaling
    np.testing.assert_allclose(back.array[inside], mr.array[inside], rtol=1e-4, atol=1e-3)


def test_old_preprocessing_records_keep_the_scanner_field_of_view():
    old = PreprocessConfig().to_dict()
    del old["frame_mr"]
    assert PreprocessConfig.from_dict(old).frame_mr is False
    assert PreprocessConfig.from_dict(PreprocessConfig().to_dict()).frame_mr is True
