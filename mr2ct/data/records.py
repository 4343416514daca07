"""TFRecord shards of 2D slices.

One ``tf.train.Example`` per slice:

========================  ===========================================
``image``                 float32 ``H x W`` in [-1, 1], raw little-endian bytes
``height``, ``width``     int64
``subject``               bytes (the volume's subject id)
``slice_index``           int64 (the slice's index in its volume)
``modality``              bytes, ``"mr"`` or ``"ct"``
``label`` (optional)      uint8 ``H x W`` raw bytes, structure labels
``synthesized`` (opt.)    float32 ``H x W``, the slice translated to the
                          other modality by a frozen generator (the
                          segmentation run's cache of synthesized MR)
========================  ===========================================

Images are stored as float32 so what the network sees is exactly what
preprocessing produced. A shard is written to ``<name>.partial`` and renamed
when complete, so readers (which only take ``*.tfrecord``) never see half a
shard.
"""

from __future__ import annotations

import contextlib
import os
import re

import numpy as np
import tensorflow as tf

from mr2ct.errors import InputError

SUFFIX = ".tfrecord"
# Bytes around each record's data: length (8), its CRC (4) and the data's CRC (4).
_FRAMING_BYTES = 16


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def slice_example(image, subject, slice_index, modality, label=None, synthesized=None) -> bytes:
    """One serialized slice example."""
    image = np.asarray(image, dtype="<f4")
    if image.ndim != 2:
        raise ValueError(f"a slice must be 2D. Received: shape={image.shape}")
    features = {
        "image": _bytes(image.tobytes()),
        "height": _int(image.shape[0]),
        "width": _int(image.shape[1]),
        "subject": _bytes(str(subject).encode()),
        "slice_index": _int(slice_index),
        "modality": _bytes(str(modality).encode()),
    }
    if label is not None:
        label = np.asarray(label)
        if label.shape != image.shape:
            raise ValueError(f"label shape {label.shape} differs from image shape {image.shape}")
        features["label"] = _bytes(label.astype(np.uint8).tobytes())
    if synthesized is not None:
        synthesized = np.asarray(synthesized, dtype="<f4")
        if synthesized.shape != image.shape:
            raise ValueError(f"synthesized shape {synthesized.shape} differs from image shape {image.shape}")
        features["synthesized"] = _bytes(synthesized.tobytes())
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shard(path, slices) -> int:
    """Write slice dicts (keys of :func:`slice_example`) to ``path`` atomically; returns the count."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    count = 0
    try:
        with tf.io.TFRecordWriter(partial) as writer:
            for item in slices:
                writer.write(slice_example(**item))
                count += 1
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return count


FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "subject": tf.io.FixedLenFeature([], tf.string),
    "slice_index": tf.io.FixedLenFeature([], tf.int64),
    "modality": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "synthesized": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def parse_slice(serialized, image_size, with_label=False, with_synthesized=False):
    """A serialized slice as ``{"image": [S, S, 1] float32, "subject", "slice_index"[, "label": [S, S] int32]}``.

    ``with_synthesized`` adds ``"synthesized": [S, S, 1] float32``.
    """
    f = tf.io.parse_single_example(serialized, FEATURES)
    checks = [
        tf.debugging.assert_equal(
            tf.stack([f["height"], f["width"]]), tf.constant([image_size, image_size], tf.int64),
            message=f"slice size differs from image_size={image_size}; prepare the data at this size",
        )
    ]
    with tf.control_dependencies(checks):
        image = tf.reshape(tf.io.decode_raw(f["image"], tf.float32), [image_size, image_size, 1])
    out = {"image": image, "subject": f["subject"], "slice_index": f["slice_index"]}
    if with_label:
        label = tf.io.decode_raw(f["label"], tf.uint8)
        tf.debugging.assert_equal(tf.size(label), image_size * image_size, message="slice has no label")
        out["label"] = tf.cast(tf.reshape(label, [image_size, image_size]), tf.int32)
    if with_synthesized:
        synthesized = tf.io.decode_raw(f["synthesized"], tf.float32)
        tf.debugging.assert_equal(tf.size(synthesized), image_size * image_size, message="slice has no synthesized image")
        out["synthesized"] = tf.reshape(synthesized, [image_size, image_size, 1])
    return out


def read_slices(path) -> list[dict]:
    """Every slice of a shard as NumPy (for tools and tests)."""
    out = []
    for raw in tf.data.TFRecordDataset(os.fspath(path)):
        f = tf.io.parse_single_example(raw, FEATURES)
        h, w = int(f["height"]), int(f["width"])
        item = {
            "image": np.frombuffer(f["image"].numpy(), "<f4").reshape(h, w),
            "subject": f["subject"].numpy().decode(),
            "slice_index": int(f["slice_index"]),
            "modality": f["modality"].numpy().decode(),
        }
        if f["label"].numpy():
            item["label"] = np.frombuffer(f["label"].numpy(), np.uint8).reshape(h, w)
        if f["synthesized"].numpy():
            item["synthesized"] = np.frombuffer(f["synthesized"].numpy(), "<f4").reshape(h, w)
        out.append(item)
    return out


def validate_shard(path) -> int:
    """Read a shard completely; an InputError names it if it is missing, corrupt or truncated."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(path, "does not exist")
    count = size = 0
    try:
        for record in tf.data.TFRecordDataset(path):
            count += 1
            size += len(record.numpy()) + _FRAMING_BYTES
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as exc:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", exc.message).strip()
        raise InputError(path, f"corrupt or truncated TFRecord shard ({reason[:200]})") from None
    # TFRecordDataset stops silently on a tail shorter than a record header.
    extra = os.path.getsize(path) - size
    if extra:
        raise InputError(path, f"corrupt or truncated TFRecord shard ({extra} stray bytes after record {count})")
    return count
