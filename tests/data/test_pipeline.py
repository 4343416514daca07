import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mr2ct.data import records
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.data.pipeline import (
    augment_slice,
    count_slices,
    labelled_dataset,
    list_shards,
    scale_slice,
    unpaired_dataset,
)
from mr2ct.data.prepare import prepare_dataset
from mr2ct.data.preprocess import PreprocessConfig
from mr2ct.errors import InputError

SIZE = 16
SUBJECTS, SLICES = 3, 4
BLOCK = 4  # slices are 4 x 4 blocks of constant value, so interpolation leaves most pixels untouched
THRESHOLDS = [-0.5, 0.0, 0.5]


def label_of(image):
    """The label map derived from an image: which quarter of [-1, 1] each pixel falls in."""
    return np.digitize(image, THRESHOLDS)


def slice_image(ident):
    levels = np.random.default_rng(ident).uniform(-1, 1, (SIZE // BLOCK, SIZE // BLOCK))
    return np.kron(levels, np.ones((BLOCK, BLOCK))).astype(np.float32)


IDENTS = {slice_image(i).tobytes(): i for i in range(SUBJECTS * SLICES)}
LEVELS = np.unique(np.concatenate([slice_image(i).ravel() for i in range(SUBJECTS * SLICES)]))


def ident_of(image):
    """Which stored slice an image is, or None if it is none of them."""
    return IDENTS.get(np.ascontiguousarray(np.asarray(image, np.float32).reshape(SIZE, SIZE)).tobytes())


def assert_aligned(image, label):
    """Where the image holds a block's own value, the label is the one derived from it."""
    image = np.asarray(image).reshape(SIZE, SIZE)
    pure = np.min(np.abs(image[..., None] - LEVELS), axis=-1) < 1e-5
    assert pure.mean() > 0.25
    np.testing.assert_array_equal(np.asarray(label)[pure], label_of(image)[pure])


def write_prepared(folder, modalities=("mr", "ct")):
    """A prepared-like folder (no manifest): the same labelled slices for every modality."""
    for modality in modalities:
        for s in range(SUBJECTS):
            items = []
            for k in range(SLICES):
                image = slice_image(s * SLICES + k)
                items.append(dict(image=image, subject=f"s{s}", slice_index=k, modality=modality,
                                  label=label_of(image)))
            records.write_shard(os.path.join(folder, "records", modality, f"s{s}.tfrecord"), items)
    return folder


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    return write_prepared(str(tmp_path_factory.mktemp("handmade")))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two small phantoms through `prepare` (N4 off: its cost is not what is tested here)."""
    root = tmp_path_factory.mktemp("prepared")
    write_phantom_dataset(root / "ph", 2, seed=2, size="small")
    prepare_dataset(root / "out", mr_dir=root / "ph" / "mr", ct_dir=root / "ph" / "ct",
                    labels_dir=root / "ph" / "labels_ct", config=PreprocessConfig(image_size=32, n4=False),
                    workers=1)
    return str(root / "out")


def batches(ds, n=None):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in (ds.take(n) if n else ds)]


# --------------------------------------------------------------------------- unpaired_dataset


def test_unpaired_batches_of_prepared_data(prepared):
    (batch,) = batches(unpaired_dataset(prepared, 32, 3, shuffle_buffer=16), 1)
    assert sorted(batch) == ["ct", "mr"]
    for modality in ("mr", "ct"):
        assert batch[modality].shape == (3, 32, 32, 1) and batch[modality].dtype == np.float32
        assert -1.0 <= batch[modality].min() < batch[modality].max() <= 1.0


def test_the_two_streams_are_shuffled_independently(handmade):
    # MR and CT shards hold the very same slices: only independent orders tell them apart.
    out = batches(unpaired_dataset(handmade, SIZE, 4, shuffle_buffer=64, deterministic=True, repeat=False))
    assert len(out) == SUBJECTS * SLICES // 4
    mr = [ident_of(x) for b in out for x in b["mr"]]
    ct = [ident_of(x) for b in out for x in b["ct"]]
    assert sorted(mr) == sorted(ct) == list(range(SUBJECTS * SLICES))  # each slice once per epoch
    assert mr != ct


@pytest.mark.parametrize("make", [unpaired_dataset, labelled_dataset])
def test_deterministic_mode_repeats_for_a_seed(handmade, make):
    def run(seed):
        return batches(make(handmade, SIZE, 4, shuffle_buffer=64, seed=seed, deterministic=True), 6)

    first, again, other = run(3), run(3), run(4)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    key = "image" if make is labelled_dataset else "mr"
    assert not all(np.array_equal(a[key], b[key]) for a, b in zip(first, other))


@pytest.mark.parametrize("make, key", [(unpaired_dataset, "mr"), (unpaired_dataset, "ct"), (labelled_dataset, "image")])
def test_augmentation_is_off_by_default(handmade, make, key):
    plain = batches(make(handmade, SIZE, 4, deterministic=True, repeat=False))
    assert all(ident_of(x) is not None for b in plain for x in b[key])
    augmented = batches(make(handmade, SIZE, 4, deterministic=True, repeat=False, augment=True))
    unchanged = [ident_of(x) is not None for b in augmented for x in b[key]]
    assert sum(unchanged) < len(unchanged) / 2


# --------------------------------------------------------------------------- labelled_dataset


@pytest.mark.parametrize("augment", [False, True])
def test_labelled_batches_keep_each_label_with_its_image(handmade, augment):
    out = batches(labelled_dataset(handmade, SIZE, 4, shuffle_buffer=64, deterministic=True, repeat=False,
                                   augment=augment))
    assert len(out) == SUBJECTS * SLICES // 4
    for batch in out:
        assert batch["image"].shape == (4, SIZE, SIZE, 1) and batch["image"].dtype == np.float32
        assert batch["label"].shape == (4, SIZE, SIZE) and batch["label"].dtype == np.int32
        for image, label in zip(batch["image"], batch["label"]):
            if augment:
                assert_aligned(image, label)
            else:
                np.testing.assert_array_equal(label, label_of(image[..., 0]))


def test_labelled_batches_of_prepared_data(prepared):
    (batch,) = batches(labelled_dataset(prepared, 32, 2, shuffle_buffer=16), 1)
    assert batch["image"].shape == (2, 32, 32, 1) and batch["label"].shape == (2, 32, 32)
    assert batch["label"].dtype == np.int32
    assert batch["label"].min() >= 0 and batch["label"].max() > 0


def test_labelled_dataset_needs_labelled_volumes_in_the_manifest(prepared):
    with pytest.raises(InputError, match="no labelled MR volumes") as info:
        labelled_dataset(prepared, 32, 2, modality="mr")
    assert info.value.path == os.path.join(prepared, "manifest.json")


# --------------------------------------------------------------------------- augment_slice


def test_augment_slice_keeps_shape_and_alignment():
    image = slice_image(5)
    label = label_of(image)
    outputs = []
    for seed in range(8):
        out_image, out_label = augment_slice(tf.constant(image[..., None]), tf.constant(label, tf.int32), (7, seed))
        assert out_image.shape == (SIZE, SIZE, 1) and out_image.dtype == tf.float32
        assert out_label.shape == (SIZE, SIZE) and out_label.dtype == tf.int32
        assert_aligned(out_image.numpy(), out_label.numpy())
        outputs.append(out_label.numpy())
    assert not any(np.array_equal(o, label) for o in outputs)  # it does augment
    assert len({o.tobytes() for o in outputs}) > 4


def test_augment_slice_zooms_in_and_flips_left_right():
    ramp = np.tile(np.linspace(-1, 1, SIZE, dtype=np.float32), (SIZE, 1))[..., None]
    directions = set()
    for seed in range(8):
        out = augment_slice(tf.constant(ramp), seed=(0, seed))[0].numpy()[..., 0]
        np.testing.assert_allclose(out, np.broadcast_to(out[:1], out.shape), atol=1e-6)  # no up-down change
        steps = np.diff(out[0])
        assert np.all(steps > 0) or np.all(steps < 0)
        assert np.abs(steps).mean() < 2 / (SIZE - 1)  # a zoom-in stretches the ramp
        directions.add(bool(steps[0] > 0))
    assert directions == {True, False}


def test_augment_slice_is_a_function_of_its_seed():
    image = tf.constant(slice_image(1)[..., None])
    a, none = augment_slice(image, seed=(1, 2))
    assert none is None
    np.testing.assert_array_equal(a, augment_slice(image, seed=(1, 2))[0])
    assert not np.array_equal(a, augment_slice(image, seed=(1, 3))[0])


# --------------------------------------------------------------------------- tf.distribute


def test_mirrored_strategy_splits_each_global_batch(prepared, two_cpu_strategy):
    strategy = two_cpu_strategy
    def make():
        return unpaired_dataset(prepared, 32, 4, shuffle_buffer=16, deterministic=True)

    (whole,) = batches(make(), 1)
    batch = next(iter(strategy.experimental_distribute_dataset(make())))
    for modality in ("mr", "ct"):
        parts = [t.numpy() for t in strategy.experimental_local_results(batch[modality])]
        assert [p.shape for p in parts] == [(2, 32, 32, 1)] * 2
        np.testing.assert_array_equal(np.concatenate(parts), whole[modality])


# --------------------------------------------------------------------------- shards and counts


def test_list_shards_and_count_slices_of_a_prepared_folder(prepared):
    with open(os.path.join(prepared, "manifest.json")) as f:
        counts = json.load(f)["counts"]
    for modality in ("mr", "ct"):
        shards = list_shards(prepared, modality)
        assert [os.path.relpath(s, prepared) for s in shards] == [
            os.path.join("records", modality, f"subject_00{i}.tfrecord") for i in range(2)
        ]
        in_shards = sum(records.validate_shard(s) for s in shards)
        assert count_slices(prepared, modality) == counts[modality] == in_shards > 0


def test_count_slices_without_a_manifest_reads_the_shards(handmade):
    assert count_slices(handmade, "ct") == SUBJECTS * SLICES


def no_folder(root):
    return os.path.join(root, "missing")


def empty_folder(root):
    return root


def only_mr(root):
    return write_prepared(root, ["mr"])


def empty_ct_records(root):
    os.makedirs(os.path.join(root, "records", "ct"))
    return write_prepared(root, ["mr"])


def only_partial_ct(root):
    write_prepared(root)
    for name in os.listdir(os.path.join(root, "records", "ct")):
        path = os.path.join(root, "records", "ct", name)
        os.rename(path, path + ".partial")
    return root


BAD_FOLDERS = [
    # how the folder is made, modality named in the error, words in the error
    (no_folder, "mr", "no MR records folder (run `mr2ct prepare` first)"),
    (empty_folder, "mr", "no MR records folder (run `mr2ct prepare` first)"),
    (only_mr, "ct", "no CT records folder (run `mr2ct prepare` first)"),
    (empty_ct_records, "ct", "no CT shards (.tfrecord files) in this folder"),
    (only_partial_ct, "ct", "no CT shards (.tfrecord files) in this folder"),
]


@pytest.mark.parametrize("make, modality, words", BAD_FOLDERS)
@pytest.mark.parametrize("use", [unpaired_dataset, count_slices])
def test_a_folder_without_shards_is_a_clear_error(tmp_path, make, modality, words, use):
    folder = make(str(tmp_path))
    with pytest.raises(InputError) as info:
        if use is count_slices:
            count_slices(folder, "mr")
            count_slices(folder, "ct")
        else:
            unpaired_dataset(folder, SIZE, 2)
    assert info.value.path == os.path.join(folder, "records", modality)
    assert str(info.value) == f"{info.value.path}: {words}"


# --------------------------------------------------------------------------- random crops


def test_random_crops_are_windows_of_the_stored_slices(handmade):
    crop = 8
    out = batches(unpaired_dataset(handmade, SIZE, 4, shuffle_buffer=64, deterministic=True, repeat=False,
                                   crop_size=crop))
    whole = [slice_image(i) for i in range(SUBJECTS * SLICES)]
    offsets = set()
    for batch in out:
        for modality in ("mr", "ct"):
            assert batch[modality].shape == (4, crop, crop, 1)
            for image in batch[modality][..., 0]:
                found = [(i, r, c) for i, w in enumerate(whole) for r in range(SIZE - crop + 1)
                         for c in range(SIZE - crop + 1) if np.array_equal(w[r:r + crop, c:c + crop], image)]
                assert found, "a crop that is no window of any stored slice"
                offsets.add(found[0][1:])
    assert len(offsets) > 3  # windows move


def test_random_crops_repeat_for_a_seed_and_are_checked(handmade):
    make = lambda seed: batches(unpaired_dataset(handmade, SIZE, 2, shuffle_buffer=8, seed=seed,  # noqa: E731
                                                 deterministic=True, crop_size=8), 3)
    first, again, other = make(4), make(4), make(5)
    np.testing.assert_array_equal(first[2]["mr"], again[2]["mr"])
    assert not np.array_equal(first[2]["mr"], other[2]["mr"])
    with pytest.raises(ValueError, match="crop_size"):
        unpaired_dataset(handmade, SIZE, 2, crop_size=SIZE + 1)


def test_labelled_crops_take_the_same_window_of_image_synthesized_image_and_label(tmp_path):
    size, crop = 32, 16
    y, x = np.mgrid[0:size, 0:size]
    images = [(np.sin(0.3 * x + k) * np.cos(0.2 * y) + 0.01 * x).astype(np.float32) for k in range(6)]
    records.write_shard(tmp_path / "a.tfrecord", ({"image": im, "subject": "a", "slice_index": k, "modality": "ct",
                                           "label": (im > 0).astype(np.uint8) * 7, "synthesized": -im}
                                          for k, im in enumerate(images)))
    (batch,) = batches(labelled_dataset(None, size, 6, shards=[str(tmp_path / "a.tfrecord")], with_synthesized=True,
                                        shuffle_buffer=1, deterministic=True, repeat=False, crop_size=crop), 1)
    image, synthesized, label = batch["image"][..., 0], batch["synthesized"][..., 0], batch["label"]
    assert image.shape == (6, crop, crop) and label.dtype == np.int32
    np.testing.assert_array_equal(synthesized, -image)
    np.testing.assert_array_equal(label, (image > 0) * 7)
    # each crop is a window of its slice, and not always the same window
    offsets = []
    for k in range(6):
        matches = [(i, j) for i in range(size - crop + 1) for j in range(size - crop + 1)
                   if np.array_equal(images[k][i : i + crop, j : j + crop], image[k])]
        assert matches, k
        offsets.append(matches[0])
    assert len(set(offsets)) > 1
    with pytest.raises(ValueError, match="crop_size"):
        labelled_dataset(None, size, 2, shards=[str(tmp_path / "a.tfrecord")], crop_size=40)


# --------------------------------------------------------------------------- scale jitter


def ellipse(size=64, half_rows=12.0, half_cols=20.0, background=-1.0):
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    inside = (y / half_rows) ** 2 + (x / half_cols) ** 2 <= 1
    return np.where(inside, 1.0, background).astype(np.float32)[..., None]


def extents(image, threshold=0.0):
    body = np.asarray(image)[..., 0] > threshold
    rows, cols = np.nonzero(body.any(axis=1))[0], np.nonzero(body.any(axis=0))[0]
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_scale_slice_scales_rows_and_columns_about_the_centre_independently():
    image = ellipse()
    seen = []
    for seed in range(12):
        out = scale_slice(tf.constant(image), 0.2, (seed, 3)).numpy()
        assert out.shape == image.shape and out.dtype == np.float32
        assert out[0, 0, 0] == out[-1, -1, 0] == -1.0  # beyond the slice: air
        rows, cols = extents(out)
        seen.append((rows / 25.0, cols / 41.0))
        # the body stays centred: its centre of mass within half a pixel of the slice centre
        mass = np.argwhere(out[..., 0] > 0).mean(axis=0)
        np.testing.assert_allclose(mass, (31.5, 31.5), atol=0.5)
    ratios = np.array(seen)
    assert ratios.min() > 0.8 - 0.05 and ratios.max() < 1.2 + 0.05
    # a body cut by the slice's edge is not smeared outward when shrunk: beyond it, air
    cut = np.full((64, 64, 1), -1.0, np.float32)
    cut[20:44, :, 0] = 0.5  # tissue across the whole width, as a CT cut by the field of view
    for seed in range(6):
        out = scale_slice(tf.constant(cut), 0.2, (seed, 9)).numpy()[..., 0]
        shrunk = out[32] > 0
        if not shrunk.all():  # columns scaled down: the tissue ends at the edges, blended with air, not copied out
            assert out[32, 0] < 0.4 and out[32, -1] < 0.4
    assert ratios[:, 0].std() > 0.05 and ratios[:, 1].std() > 0.05  # both axes vary...
    assert abs(np.corrcoef(ratios.T)[0, 1]) < 0.9  # ... each on its own
    np.testing.assert_array_equal(scale_slice(tf.constant(image), 0.2, (5, 3)), scale_slice(tf.constant(image), 0.2,
                                                                                             (5, 3)))
    np.testing.assert_allclose(scale_slice(tf.constant(image), 0.0, (5, 3)), image, atol=1e-6)  # no jitter: as is


def test_unpaired_batches_are_scaled_only_when_asked(handmade):
    plain = batches(unpaired_dataset(handmade, SIZE, 2, shuffle_buffer=8, seed=1, deterministic=True), 3)
    scaled = batches(unpaired_dataset(handmade, SIZE, 2, shuffle_buffer=8, seed=1, deterministic=True,
                                      scale_jitter=0.25), 3)
    for a, b in zip(plain, scaled):
        for modality in ("mr", "ct"):
            assert ident_of(a[modality][0]) is not None
            assert b[modality].shape == a[modality].shape
            assert all(ident_of(image) is None for image in b[modality])  # resampled, not a stored slice
    with pytest.raises(ValueError, match="scale_jitter must be in"):
        unpaired_dataset(handmade, SIZE, 2, scale_jitter=1.5)


def test_downsampled_batches_are_block_means_of_the_stored_slices(handmade):
    full = batches(unpaired_dataset(handmade, SIZE, 4, shuffle_buffer=1, deterministic=True, repeat=False))
    half = batches(unpaired_dataset(handmade, SIZE, 4, shuffle_buffer=1, deterministic=True, repeat=False,
                                    downsample=2))
    assert len(half) == len(full)
    for a, b in zip(full, half):
        for modality in ("mr", "ct"):
            assert b[modality].shape == (4, SIZE // 2, SIZE // 2, 1)
            means = a[modality].reshape(4, SIZE // 2, 2, SIZE // 2, 2, 1).mean(axis=(2, 4))
            np.testing.assert_allclose(b[modality], means, atol=1e-6)
    # after the crop: an 8 x 8 window becomes 4 x 4
    cropped = batches(unpaired_dataset(handmade, SIZE, 2, shuffle_buffer=8, deterministic=True, crop_size=8,
                                       downsample=2), 1)
    assert cropped[0]["mr"].shape == (2, 4, 4, 1)
    for bad in (0, 3, 1.5):
        with pytest.raises(ValueError, match="downsample"):
            unpaired_dataset(handmade, SIZE, 2, downsample=bad)
