import json
import os
import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from mr2ct.data import records
from mr2ct.data.intensity import CTIntensity
from mr2ct.data.io import read_volume, write_volume
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.data.prepare import prepare_dataset
from mr2ct.data.preprocess import PreprocessConfig
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.labels import LABELS

CONFIG = PreprocessConfig(image_size=32, n4_shrink_factor=1)
SUBJECTS = ["subject_000", "subject_001"]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(root, 3, seed=11, size="small")
    return root


def copy_subjects(phantoms, dest, subjects, folders=("mr", "ct", "labels_ct")):
    for folder in folders:
        os.makedirs(dest / folder, exist_ok=True)
        for subject in subjects:
            shutil.copy(phantoms / folder / f"{subject}.nii.gz", dest / folder)
    return dest


@pytest.fixture(scope="module")
def prepared(phantoms, tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    inputs = copy_subjects(phantoms, root / "in", SUBJECTS)
    manifest = prepare_dataset(root / "out", mr_dir=inputs / "mr", ct_dir=inputs / "ct",
                               labels_dir=inputs / "labels_ct", config=CONFIG, workers=1)
    return root / "out", manifest, inputs


def stored(out, volume):
    slices = records.read_slices(out / volume["shard"])
    return slices, np.stack([s["image"] for s in slices])


# --------------------------------------------------------------------------- the manifest


def test_the_manifest_is_written_and_returned(prepared):
    out, manifest, _ = prepared
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["format_version"] == 1 and manifest["image_size"] == 32
    assert manifest["preprocessing"]["config"] == CONFIG.to_dict()
    assert manifest["preprocessing"]["ct_intensity"] == {"hu_min": -1024.0, "hu_max": 2048.0}
    assert manifest["skipped"] == []


@pytest.mark.parametrize("modality", ["mr", "ct"])
def test_counts_are_the_slices_in_the_shards(prepared, modality):
    out, manifest, _ = prepared
    volumes = manifest["volumes"][modality]
    assert [v["subject"] for v in volumes] == SUBJECTS
    in_shards = [records.validate_shard(out / v["shard"]) for v in volumes]
    assert in_shards == [v["slices"] for v in volumes]
    counts = manifest["counts"]
    assert counts[modality] == sum(in_shards) > 0
    assert counts[f"{modality}_volumes"] == 2
    assert counts[f"{modality}_labelled"] == (sum(in_shards) if modality == "ct" else 0)
    assert sorted(os.listdir(out / "records" / modality)) == [f"{s}.tfrecord" for s in SUBJECTS]


@pytest.mark.parametrize("modality", ["mr", "ct"])
def test_each_volume_records_its_grids(prepared, modality):
    out, manifest, inputs = prepared
    for volume in manifest["volumes"][modality]:
        subject = volume["subject"]
        assert volume["shard"] == os.path.join("records", modality, f"{subject}.tfrecord")
        assert volume["source"] == str(inputs / modality / f"{subject}.nii.gz")
        source = read_volume(volume["source"])
        geometry = volume["input_geometry"]
        assert geometry["shape"] == list(source.shape)
        np.testing.assert_allclose(geometry["spacing"], source.spacing)
        np.testing.assert_allclose(geometry["origin"], source.origin)

        slices, images = stored(out, volume)
        output = volume["output_geometry"]
        assert output["shape"] == [len(slices), 32, 32] == list(images.shape)
        assert [s["slice_index"] for s in slices] == list(range(len(slices)))
        assert {(s["subject"], s["modality"]) for s in slices} == {(subject, modality)}
        # Slices keep their thickness; in-plane, the field of view is kept (MR) or cropped (CT).
        assert output["spacing"][2] == pytest.approx(source.spacing[2])
        fov = output["spacing"][0] * 32
        if modality == "mr":
            assert fov == pytest.approx(source.spacing[0] * source.shape[2])
        else:
            assert abs(fov - CONFIG.fov_mm) <= source.spacing[0]


def test_mr_is_scaled_between_its_recorded_percentiles(prepared):
    out, manifest, _ = prepared
    for volume in manifest["volumes"]["mr"]:
        scaling = volume["mr_intensity"]
        assert (scaling["lower_percentile"], scaling["upper_percentile"]) == (0.5, 99.5)
        assert 0 <= scaling["lower_value"] < scaling["upper_value"]
        assert volume["n4"]["shrink_factor"] == 1
        _, images = stored(out, volume)
        assert images.min() == -1.0 and images.max() == 1.0
        np.testing.assert_allclose(np.percentile(images, [0.5, 99.5]), [-1.0, 1.0], atol=1e-3)


def test_ct_keeps_its_hu_window_and_labels(prepared):
    out, manifest, inputs = prepared
    for volume in manifest["volumes"]["ct"]:
        assert volume["ct_intensity"] == {"hu_min": -1024.0, "hu_max": 2048.0}
        assert volume["labels"] == str(inputs / "labels_ct" / f"{volume['subject']}.nii.gz")
        slices, images = stored(out, volume)
        hu = CTIntensity.from_config(volume["ct_intensity"]).inverse(images)
        assert -1030 < hu.min() < -900 and hu.max() > 500  # air and bone
        labels = np.stack([s["label"] for s in slices])
        assert set(np.unique(labels)) <= set(LABELS) and labels.max() > 0
        assert np.all(hu[labels > 0] > -500)  # labelled structures lie inside the body


# --------------------------------------------------------------------------- reruns


def mtimes(out):
    return {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def test_a_rerun_skips_finished_volumes_and_picks_up_new_ones(phantoms, tmp_path):
    inputs = copy_subjects(phantoms, tmp_path / "in", SUBJECTS, ["ct"])
    out = tmp_path / "out"
    first = prepare_dataset(out, ct_dir=inputs / "ct", config=CONFIG, workers=1)
    before = mtimes(out)
    assert len(before) == 4  # two shards, two records

    calls = []
    again = prepare_dataset(out, ct_dir=inputs / "ct", config=CONFIG, workers=1,
                            progress=lambda *args: calls.append(args))
    assert calls == [(2, 2, None)]  # both already done
    assert mtimes(out) == before
    assert again["volumes"] == first["volumes"] and again["counts"] == first["counts"]

    copy_subjects(phantoms, inputs, ["subject_002"], ["ct"])
    calls.clear()
    third = prepare_dataset(out, ct_dir=inputs / "ct", config=CONFIG, workers=1,
                            progress=lambda *args: calls.append(args))
    assert calls == [(2, 3, None), (3, 3, "subject_002")]
    after = mtimes(out)
    assert {p: after[p] for p in before} == before
    assert [v["subject"] for v in third["volumes"]["ct"]] == [*SUBJECTS, "subject_002"]
    assert third["volumes"]["ct"][:2] == first["volumes"]["ct"]
    assert third["counts"]["ct"] == first["counts"]["ct"] + records.validate_shard(
        out / "records" / "ct" / "subject_002.tfrecord")


CHANGED_RERUNS = [
    # what the second run changes, what its records show
    pytest.param(lambda d: dict(config=PreprocessConfig(image_size=16, n4_shrink_factor=1)),
                 lambda v: v["output_geometry"]["shape"][1:] == [16, 16], id="settings"),
    pytest.param(lambda d: dict(labels_dir=d / "labels_ct"), lambda v: "labels" in v, id="labels-added"),
    pytest.param(lambda d: dict(ct_dir=shutil.copytree(d / "ct", d / "ct_copy")),
                 lambda v: "ct_copy" in v["source"], id="other-source"),
]


@pytest.mark.parametrize("change, check", CHANGED_RERUNS)
def test_a_rerun_with_other_inputs_or_settings_prepares_again(phantoms, tmp_path, change, check):
    inputs = copy_subjects(phantoms, tmp_path / "in", SUBJECTS, ["ct", "labels_ct"])
    out = tmp_path / "out"
    prepare_dataset(out, ct_dir=inputs / "ct", config=CONFIG, workers=1)
    calls = []
    kwargs = dict(ct_dir=inputs / "ct", config=CONFIG, workers=1, progress=lambda *args: calls.append(args))
    manifest = prepare_dataset(out, **{**kwargs, **change(inputs)})
    assert calls[0] == (0, 2, None)
    assert len(manifest["volumes"]["ct"]) == 2
    for volume in manifest["volumes"]["ct"]:
        assert check(volume)
        slices, images = stored(out, volume)
        assert images.shape[1:] == (manifest["image_size"],) * 2
        assert all(("label" in s) == ("labels" in volume) for s in slices)


# --------------------------------------------------------------------------- bad input


def corrupt(ct, labels):
    path = ct / "bad.nii.gz"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    return path


def truncated(ct, labels):
    data = (ct / "subject_000.nii.gz").read_bytes()
    path = ct / "bad.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def nifti_of_shape(shape):
    def make(ct, labels):
        path = ct / "bad.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), path)
        return path

    return make


def with_voxel(value):
    def make(ct, labels):
        array = read_volume(ct / "subject_000.nii.gz").array.astype(np.float32)
        array[2, 10, 20] = value
        return write_volume(Volume(array, spacing=(3.0, 3.0, 10.0)), ct / "bad.nii.gz")

    return make


def missing_label(ct, labels):
    shutil.copy(ct / "subject_000.nii.gz", ct / "subject_001.nii.gz")
    return labels / "subject_001"


BAD_VOLUMES = [
    # how the bad volume is made (it returns the file to be named), words in the error
    pytest.param(corrupt, "cannot be read as NIfTI (corrupt or truncated?)", id="corrupt"),
    pytest.param(truncated, "cannot be read as NIfTI (corrupt or truncated?)", id="truncated"),
    pytest.param(nifti_of_shape((16, 16)), "is 2D (shape (16, 16)); a 3D volume is expected", id="2d"),
    pytest.param(nifti_of_shape((16, 16, 4, 2)), "is 4D (shape (16, 16, 4, 2)); a 3D volume is expected", id="4d"),
    pytest.param(with_voxel(np.nan), "has 1 NaN or infinite voxels", id="nan"),
    pytest.param(with_voxel(-np.inf), "has 1 NaN or infinite voxels", id="inf"),
    pytest.param(missing_label, "missing label volume for this subject", id="missing-label"),
]


def empty_folder(ct, labels):
    os.unlink(ct / "subject_000.nii.gz")
    return ct


def missing_folder(ct, labels):
    shutil.rmtree(ct)
    return ct


def same_subject_twice(ct, labels):
    write_volume(read_volume(ct / "subject_000.nii.gz"), ct / "subject_000.nrrd")
    return ct / "subject_000.nrrd"


BAD_FOLDERS = [
    # problems no volume can be skipped for
    pytest.param(empty_folder, "contains no volumes", id="empty-folder"),
    pytest.param(missing_folder, "does not exist", id="missing-folder"),
    pytest.param(same_subject_twice, "two volumes of subject 'subject_000'", id="same-subject-twice"),
]


@pytest.fixture
def good_inputs(phantoms, tmp_path):
    """A CT folder with one good labelled subject."""
    inputs = copy_subjects(phantoms, tmp_path / "in", SUBJECTS[:1], ["ct", "labels_ct"])
    return inputs / "ct", inputs / "labels_ct"


STOPPING = [pytest.param(*p.values, False, id=p.id) for p in BAD_VOLUMES + BAD_FOLDERS] + [
    pytest.param(*p.values, True, id=f"{p.id}-skip-bad") for p in BAD_FOLDERS
]


@pytest.mark.parametrize("make, words, skip_bad", STOPPING)
def test_bad_input_stops_the_run_before_anything_is_written(good_inputs, tmp_path, make, words, skip_bad):
    ct, labels = good_inputs
    bad = make(ct, labels)
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        prepare_dataset(out, ct_dir=ct, labels_dir=labels, config=CONFIG, skip_bad=skip_bad, workers=1)
    assert isinstance(info.value, Mr2ctError)
    assert f"{bad}: {words}" in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize("make, words", BAD_VOLUMES)
def test_skip_bad_prepares_the_good_volumes_and_lists_the_bad(good_inputs, tmp_path, make, words):
    ct, labels = good_inputs
    bad = make(ct, labels)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=re.escape(f"skipping {bad}: {words}")):
        manifest = prepare_dataset(out, ct_dir=ct, labels_dir=labels, config=CONFIG, skip_bad=True, workers=1)
    (skipped,) = [dict(s) for s in manifest["skipped"]]
    subject = "subject_001" if make is missing_label else "bad"
    assert skipped.pop("error").startswith(f"{bad}: {words}")
    assert skipped == {"modality": "ct", "subject": subject, "path": str(ct / f"{subject}.nii.gz")}
    assert json.loads((out / "manifest.json").read_text())["skipped"] == manifest["skipped"]
    assert [v["subject"] for v in manifest["volumes"]["ct"]] == ["subject_000"]
    assert manifest["counts"]["ct_labelled"] == manifest["counts"]["ct"] > 0
    assert os.listdir(out / "records" / "ct") == ["subject_000.tfrecord"]


def test_a_bad_volume_error_says_nothing_was_written(good_inputs, tmp_path):
    ct, labels = good_inputs
    bad = corrupt(ct, labels)
    with pytest.raises(InputError, match="nothing was written; use --skip-bad") as info:
        prepare_dataset(tmp_path / "out", ct_dir=ct, config=CONFIG)
    assert str(bad) in str(info.value)


def test_only_bad_volumes_is_an_error_even_with_skip_bad(good_inputs, tmp_path):
    ct, labels = good_inputs
    os.unlink(ct / "subject_000.nii.gz")
    corrupt(ct, labels)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="no usable volume left to prepare"):
        prepare_dataset(tmp_path / "out", ct_dir=ct, config=CONFIG, skip_bad=True)
    assert not (tmp_path / "out").exists()


def test_needs_an_mr_or_a_ct_folder(tmp_path):
    with pytest.raises(InputError, match="give at least one of an MR folder and a CT folder"):
        prepare_dataset(tmp_path / "out")


def test_a_volume_removed_from_the_inputs_is_no_longer_read(phantoms, tmp_path):
    from mr2ct.data.pipeline import count_slices, list_shards

    inputs = copy_subjects(phantoms, tmp_path / "in", SUBJECTS, folders=("mr", "ct"))
    out = tmp_path / "out"
    prepare_dataset(out, mr_dir=inputs / "mr", ct_dir=inputs / "ct", config=CONFIG, workers=1)
    assert len(list_shards(out, "mr")) == 2
    os.remove(inputs / "mr" / "subject_001.nii.gz")
    manifest = prepare_dataset(out, mr_dir=inputs / "mr", ct_dir=inputs / "ct", config=CONFIG, workers=1)
    assert (out / "records" / "mr" / "subject_001.tfrecord").exists()  # finished work is never deleted
    assert list_shards(out, "mr") == [str(out / "records" / "mr" / "subject_000.tfrecord")]
    assert count_slices(out, "mr") == manifest["counts"]["mr"] == manifest["volumes"]["mr"][0]["slices"]
    os.remove(out / "records" / "ct" / "subject_000.tfrecord")
    with pytest.raises(InputError, match="subject_000.tfrecord.*listed in manifest.json but missing"):
        list_shards(out, "ct")
