import os

import numpy as np
import pytest
import tensorflow as tf

from mr2ct.data import pipeline, records
from mr2ct.errors import InputError, Mr2ctError

SIZE = 8


def make_slices(n, subject="subject_007", modality="ct", labelled=True, seed=0):
    """Slices with awkward float values (not representable in float16) and labels over all of uint8."""
    rng = np.random.default_rng(seed)
    slices = []
    for k in range(n):
        item = {
            "image": rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32),
            "subject": subject,
            "slice_index": 3 * k + 1,
            "modality": modality,
        }
        if labelled:
            item["label"] = rng.integers(0, 256, (SIZE, SIZE)).astype(np.uint8)
        slices.append(item)
    return slices


def assert_same_slices(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g["image"], w["image"])
        assert g["image"].dtype == np.float32
        assert (g["subject"], g["slice_index"], g["modality"]) == (w["subject"], w["slice_index"], w["modality"])
        assert ("label" in g) == ("label" in w)
        if "label" in w:
            np.testing.assert_array_equal(g["label"], w["label"])


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("modality", ["mr", "ct"])
def test_write_shard_read_slices_round_trip(tmp_path, labelled, modality):
    slices = make_slices(3, modality=modality, labelled=labelled)
    path = tmp_path / "a.tfrecord"
    assert records.write_shard(path, iter(slices)) == 3
    assert_same_slices(records.read_slices(path), slices)
    assert records.validate_shard(path) == 3


@pytest.mark.parametrize("with_label", [True, False])
def test_parse_slice_recovers_values_exactly(with_label):
    (item,) = make_slices(1, seed=4)
    out = records.parse_slice(records.slice_example(**item), SIZE, with_label=with_label)
    assert out["image"].shape == (SIZE, SIZE, 1) and out["image"].dtype == tf.float32
    np.testing.assert_array_equal(out["image"].numpy()[..., 0], item["image"])
    assert out["subject"].numpy().decode() == "subject_007"
    assert int(out["slice_index"]) == 1
    if with_label:
        assert out["label"].dtype == tf.int32
        np.testing.assert_array_equal(out["label"].numpy(), item["label"].astype(np.int32))
    else:
        assert "label" not in out


PARSE_ERRORS = [
    # slice keyword changes, parse_slice arguments, words in the error
    ({}, dict(image_size=SIZE * 2), "slice size differs from image_size=16"),
    ({"label": None}, dict(image_size=SIZE, with_label=True), "slice has no label"),
]


@pytest.mark.parametrize("changes, kwargs, words", PARSE_ERRORS)
def test_parse_slice_rejects_a_mismatched_slice(changes, kwargs, words):
    (item,) = make_slices(1)
    item.update(changes)
    with pytest.raises(tf.errors.InvalidArgumentError, match=words):
        records.parse_slice(records.slice_example(**item), **kwargs)


SLICE_ERRORS = [
    (dict(image=np.zeros((2, SIZE, SIZE))), "a slice must be 2D"),
    (dict(image=np.zeros(SIZE)), "a slice must be 2D"),
    (dict(label=np.zeros((SIZE, SIZE + 1))), "label shape"),
]


@pytest.mark.parametrize("changes, words", SLICE_ERRORS)
def test_slice_example_rejects_bad_shapes(changes, words):
    (item,) = make_slices(1)
    item.update(changes)
    with pytest.raises(ValueError, match=words):
        records.slice_example(**item)


# --------------------------------------------------------------------------- atomic writes


def test_write_shard_shows_no_final_file_until_done(tmp_path):
    path = tmp_path / "records" / "ct" / "s.tfrecord"
    seen = []

    def slices():
        for item in make_slices(3):
            seen.append((path.exists(), os.path.exists(f"{path}.partial")))
            yield item

    records.write_shard(path, slices())
    assert seen == [(False, True)] * 3
    assert sorted(os.listdir(path.parent)) == ["s.tfrecord"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "records" / "ct" / "s.tfrecord"

    def failing():
        yield from make_slices(2)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        records.write_shard(path, failing())
    assert os.listdir(path.parent) == []


def test_a_failed_rewrite_keeps_the_finished_shard(tmp_path):
    path = tmp_path / "s.tfrecord"
    slices = make_slices(2)
    records.write_shard(path, slices)

    def failing():
        yield make_slices(1, seed=9)[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records.write_shard(path, failing())
    assert sorted(os.listdir(tmp_path)) == ["s.tfrecord"]
    assert_same_slices(records.read_slices(path), slices)


def test_a_leftover_partial_shard_is_never_listed(tmp_path):
    folder = tmp_path / "records" / "mr"
    records.write_shard(folder / "a.tfrecord", make_slices(2, modality="mr"))
    (folder / "b.tfrecord.partial").write_bytes(b"half a shard")
    assert pipeline.list_shards(tmp_path, "mr") == [str(folder / "a.tfrecord")]
    (folder / "a.tfrecord").unlink()
    with pytest.raises(InputError, match="no MR shards"):
        pipeline.list_shards(tmp_path, "mr")


# --------------------------------------------------------------------------- validation


CORRUPT_SHARDS = [
    # how the bytes of a good 3-slice shard are spoilt, words in the error
    pytest.param(lambda data: data[:-1], "truncated record", id="last-byte-cut"),
    pytest.param(lambda data: data[:-40], "truncated record", id="tail-cut"),
    pytest.param(lambda data: data[: len(data) * 2 // 3 + 5], "5 stray bytes after record 2", id="cut-in-a-header"),
    pytest.param(lambda data: data + b"\0\0\0", "3 stray bytes after record 3", id="trailing-bytes"),
    pytest.param(lambda data: data[:100] + bytes(b ^ 0xFF for b in data[100:110]) + data[110:],
                 "corrupted record at 12", id="flipped-bytes"),
    pytest.param(lambda data: np.random.default_rng(0).bytes(1000), "corrupted record at 0", id="garbage"),
    pytest.param(lambda data: np.random.default_rng(1).bytes(7), "7 stray bytes after record 0", id="short-garbage"),
]


@pytest.mark.parametrize("spoil, words", CORRUPT_SHARDS)
def test_validate_shard_names_a_corrupt_or_truncated_file(tmp_path, spoil, words):
    good = tmp_path / "good.tfrecord"
    records.write_shard(good, make_slices(3))
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(spoil(good.read_bytes()))
    with pytest.raises(InputError, match=words) as info:
        records.validate_shard(bad)
    assert isinstance(info.value, Mr2ctError)
    assert info.value.path == str(bad)
    assert str(info.value).startswith(f"{bad}: corrupt or truncated TFRecord shard (")
    assert "{{" not in str(info.value) and "Op:" not in str(info.value)


def test_validate_shard_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist") as info:
        records.validate_shard(tmp_path / "none.tfrecord")
    assert info.value.path == str(tmp_path / "none.tfrecord")
