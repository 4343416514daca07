"""The segmentation run's cache of synthesized MR: values, reuse, refusals, atomicity."""

import json
import os
import shutil

import numpy as np
import pytest

from seg_fixtures import SIZE, cyclegan_run, prepared_folders, segmentation_run

from mr2ct.data.pipeline import labelled_dataset, labelled_shards
from mr2ct.data.records import read_slices, write_shard
from mr2ct.errors import InputError
from mr2ct.training.segmentation import train_segmentation
from mr2ct.training.synthesized_cache import CACHE_DIR, CACHE_FILE, cache_synthesized_mr


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    gan_dir, gan_model = cyclegan_run(tmp_path_factory)
    labelled, _ = prepared_folders(tmp_path_factory)
    return gan_dir, gan_model, labelled


def test_cache_equals_the_generator_on_the_same_ct(folders, tmp_path_factory):
    _, gan_model, labelled = folders
    run_dir = segmentation_run(tmp_path_factory, steps=2)
    record = json.loads((run_dir / CACHE_DIR / CACHE_FILE).read_text())
    assert record["cyclegan_step"] == 7 and record["image_size"] == SIZE
    sources = labelled_shards(labelled)
    assert [s["shard"] for s in record["sources"]] == [os.path.relpath(s, labelled) for s in sources]
    total = 0
    for source, name in zip(sources, record["shards"], strict=True):
        original = read_slices(source)
        cached = read_slices(run_dir / CACHE_DIR / name)
        assert len(cached) == len(original) > 0
        ct = np.stack([item["image"] for item in original])[..., None]
        expected = gan_model.generator_ct_to_mr(ct, training=False).numpy()[..., 0]
        for k, (a, b) in enumerate(zip(original, cached)):
            np.testing.assert_array_equal(b["image"], a["image"])
            np.testing.assert_array_equal(b["label"], a["label"])
            assert (b["subject"], b["slice_index"]) == (a["subject"], a["slice_index"])
            np.testing.assert_allclose(b["synthesized"], expected[k], atol=1e-5)
        total += len(cached)
    assert record["slices"] == total


def test_dataset_of_the_cache_gives_ct_synthesized_mr_and_labels(tmp_path_factory):
    run_dir = segmentation_run(tmp_path_factory, steps=2)
    shards = sorted(str(p) for p in (run_dir / CACHE_DIR).glob("*.tfrecord"))
    batch = next(iter(labelled_dataset(None, SIZE, 4, shards=shards, with_synthesized=True, shuffle_buffer=1,
                                       deterministic=True, repeat=False)))
    assert sorted(batch) == ["image", "label", "synthesized"]
    assert batch["synthesized"].shape == (4, SIZE, SIZE, 1) and batch["label"].shape == (4, SIZE, SIZE)
    assert not np.array_equal(batch["synthesized"].numpy(), batch["image"].numpy())


def test_augmentation_moves_ct_synthesized_mr_and_labels_together(tmp_path):
    # Slices whose "synthesized" image is the CT itself and whose labels are the CT's sign: after
    # augmentation the three still agree pixel for pixel only if they were transformed together.
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    images = [np.sin(2 * np.pi * (a * x + b * y) + c).astype(np.float32) for a, b, c in rng.uniform(0.5, 1.5, (8, 3))]
    write_shard(tmp_path / "a.tfrecord", ({"image": x, "subject": "a", "slice_index": k, "modality": "ct",
                                           "label": (x > 0).astype(np.uint8), "synthesized": x}
                                          for k, x in enumerate(images)))
    batch = next(iter(labelled_dataset(None, SIZE, 8, shards=[str(tmp_path / "a.tfrecord")], with_synthesized=True,
                                       shuffle_buffer=1, deterministic=True, repeat=False, augment=True, seed=3)))
    image, synthesized = batch["image"].numpy()[..., 0], batch["synthesized"].numpy()[..., 0]
    np.testing.assert_array_equal(synthesized, image)
    assert not np.array_equal(image, np.stack(images))  # augmentation did change the slices
    # nearest-neighbour labels against bilinear images: agree away from the zero crossings
    agree = (batch["label"].numpy() == 1) == (image > 0)
    assert agree.mean() > 0.97


def test_refuses_a_cache_of_another_cyclegan_step(folders, tmp_path_factory, tmp_path):
    gan_dir, _, labelled = folders
    run_dir = tmp_path / "seg"
    shutil.copytree(segmentation_run(tmp_path_factory, steps=2), run_dir)
    record_path = run_dir / CACHE_DIR / CACHE_FILE
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps(dict(record, cyclegan_step=3)))
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    with pytest.raises(InputError, match=f"{CACHE_DIR}.*CycleGAN step 3.*step 7"):
        train_segmentation(None, labelled, run_dir, max_steps=4, progress=False)
    assert sorted((run_dir / "checkpoints").iterdir()) == checkpoints  # nothing trained, nothing written


def test_refuses_a_cache_of_other_slices(folders, tmp_path):
    _, gan_model, labelled = folders
    cache = tmp_path / "cache"
    shards = labelled_shards(labelled)
    cache_synthesized_mr(gan_model.generator_ct_to_mr, labelled, shards, cache, cyclegan_step=7, image_size=SIZE)
    with pytest.raises(InputError, match="cache.*other prepared slices"):
        cache_synthesized_mr(gan_model.generator_ct_to_mr, labelled, shards[:1], cache, cyclegan_step=7,
                             image_size=SIZE)


def test_incomplete_cache_is_made_again(folders, tmp_path):
    _, gan_model, labelled = folders
    cache = tmp_path / "cache"
    shards = labelled_shards(labelled)
    first = cache_synthesized_mr(gan_model.generator_ct_to_mr, labelled, shards, cache, cyclegan_step=7,
                                 image_size=SIZE)
    expected = [read_slices(p) for p in first]
    # A run killed while caching leaves shards (or a partial one) but no record.
    (cache / CACHE_FILE).unlink()
    (cache / "stray.tfrecord.partial").write_bytes(b"half")
    again = cache_synthesized_mr(gan_model.generator_ct_to_mr, labelled, shards, cache, cyclegan_step=7,
                                 image_size=SIZE)
    assert again == first and (cache / CACHE_FILE).exists()
    assert not (cache / "stray.tfrecord.partial").exists()
    for a, b in zip(expected, (read_slices(p) for p in again)):
        np.testing.assert_array_equal(a[0]["synthesized"], b[0]["synthesized"])
