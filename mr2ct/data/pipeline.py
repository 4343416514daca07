"""``tf.data`` input pipelines over prepared TFRecord shards.

* :func:`unpaired_dataset`: ``{"mr": [B, S, S, 1], "ct": [B, S, S, 1]}``
  batches drawn from two independently shuffled streams, so MR and CT slices
  come from unrelated subjects and positions, as unpaired training needs;
* :func:`labelled_dataset`: ``{"image": [B, S, S, 1], "label": [B, S, S]}``
  batches of labelled slices, for segmentation; with ``with_synthesized``
  also ``"synthesized": [B, S, S, 1]``, each slice's translation into the
  other modality (the shards a segmentation run caches).

Shards are interleaved, batches have a static size (``drop_remainder``) and
are prefetched. ``batch_size`` is the global batch. Under ``tf.distribute``
the datasets shard by data (``AutoShardPolicy.DATA``), which works for
MirroredStrategy and MultiWorkerMirroredStrategy alike: every worker runs the
whole pipeline and ``experimental_distribute_dataset`` keeps each worker's
own part of every global batch, so with the same seeds N workers train on the
global batches one process would. ``deterministic=True`` fixes every order
(tests, and the workers of one run, which must agree on it).
"""

from __future__ import annotations

import glob
import json
import os

import tensorflow as tf

from mr2ct.data.records import SUFFIX, parse_slice
from mr2ct.errors import InputError

AUTOTUNE = tf.data.AUTOTUNE
# Resize-and-crop augmentation (CycleGAN's "resize_and_crop"): up to 12 % larger, then crop.
MAX_ZOOM = 1.12


def list_shards(prepared_dir, modality) -> list[str]:
    """The complete shards of one modality, sorted; InputError if there are none.

    With a ``manifest.json`` (as ``mr2ct prepare`` writes) exactly the shards
    it lists are used, so a shard left from a volume since removed from the
    inputs is not read; without one, every ``*.tfrecord`` of the folder.
    """
    prepared_dir = os.fspath(prepared_dir)
    folder = os.path.join(prepared_dir, "records", modality)
    if not os.path.isdir(folder):
        raise InputError(folder, f"no {modality.upper()} records folder (run `mr2ct prepare` first)")
    manifest = os.path.join(prepared_dir, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            volumes = json.load(f).get("volumes", {}).get(modality, [])
        shards = sorted(os.path.join(prepared_dir, v["shard"]) for v in volumes)
        for shard in shards:
            if not os.path.isfile(shard):
                raise InputError(shard, "listed in manifest.json but missing (run `mr2ct prepare` again)")
    else:
        shards = sorted(glob.glob(os.path.join(folder, f"*{SUFFIX}")))
    if not shards:
        raise InputError(folder, f"no {modality.upper()} shards ({SUFFIX} files) in this folder")
    return shards


def count_slices(prepared_dir, modality) -> int:
    """Slices of one modality, from the manifest if there is one, else by reading the shards."""
    manifest = os.path.join(os.fspath(prepared_dir), "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            return int(json.load(f)["counts"][modality])
    return sum(1 for _ in tf.data.TFRecordDataset(list_shards(prepared_dir, modality)))


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _slices(shards, image_size, *, seed, shuffle_buffer, deterministic, repeat, with_label, with_synthesized=False):
    files = tf.data.Dataset.from_tensor_slices(shards)
    files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(shards), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.map(lambda s: parse_slice(s, image_size, with_label, with_synthesized), num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    if shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def augment_slice(image, label=None, seed=(0, 0)):
    """Random zoom-in crop and left-right flip, identical for image and label (stateless)."""
    size = tf.shape(image)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    zoom = tf.random.stateless_uniform([], seeds[0], 1.0, MAX_ZOOM)
    big = tf.cast(tf.math.ceil(tf.cast(size, tf.float32) * zoom), tf.int32)
    offsets = tf.random.stateless_uniform([2], seeds[1], 0, big - size + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seeds[2]) < 0.5

    def apply(x, method):
        x = tf.image.resize(x, [big, big], method=method)
        x = tf.image.crop_to_bounding_box(x, offsets[0], offsets[1], size, size)
        return tf.cond(flip, lambda: tf.reverse(x, [1]), lambda: x)

    image = apply(image, "bilinear")
    if label is None:
        return image, None
    label = apply(label[..., None], "nearest")[..., 0]
    return image, label


def scale_slice(image, jitter, seed=(0, 0)):
    """``image`` ``[S, S, C]`` scaled about its centre by independent factors in ``[1 - jitter, 1 + jitter]``
    along rows and columns (bilinear), same size (stateless).

    Beyond the slice the image is the slice's minimum, air in both domains' prepared slices. Not its edge
    values: a body that reaches the edge (a CT cut by the field of view) would be smeared outward as stripes.
    """
    size = tf.cast(tf.shape(image)[0], tf.float32)
    factors = tf.random.stateless_uniform([2], tf.cast(seed, tf.int64), 1.0 - jitter, 1.0 + jitter)
    # output (x, y) samples input (x / fx + cx (1 - 1 / fx), y / fy + ...): columns x, rows y
    centre = (size - 1.0) / 2.0
    inv_x, inv_y = 1.0 / factors[1], 1.0 / factors[0]
    transform = tf.stack([inv_x, 0.0, centre * (1.0 - inv_x), 0.0, inv_y, centre * (1.0 - inv_y), 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform[None], output_shape=tf.shape(image)[:2],
        fill_value=tf.cast(tf.reduce_min(image), tf.float32), interpolation="BILINEAR", fill_mode="CONSTANT")
    return tf.ensure_shape(out[0], image.shape)


def _scaled(ds, seed, jitter):
    def fn(index, image):
        return scale_slice(image, jitter, tf.stack([tf.cast(seed, tf.int64), index]))

    return ds.enumerate().map(fn, num_parallel_calls=AUTOTUNE)


def random_crop(image, crop_size, seed=(0, 0)):
    """A random ``crop_size`` x ``crop_size`` window of an ``[S, S, C]`` slice (stateless)."""
    size = tf.shape(image)[0]
    offsets = tf.random.stateless_uniform([2], tf.cast(seed, tf.int64), 0, size - crop_size + 1, dtype=tf.int32)
    return tf.image.crop_to_bounding_box(image, offsets[0], offsets[1], crop_size, crop_size)


def _cropped(ds, seed, crop_size):
    def fn(index, image):
        return random_crop(image, crop_size, tf.stack([tf.cast(seed, tf.int64), index]))

    return ds.enumerate().map(fn, num_parallel_calls=AUTOTUNE)


def _cropped_items(ds, seed, crop_size, image_size):
    """The same random window of every image of an item, and of its label."""
    if not 1 <= crop_size <= int(image_size):
        raise ValueError(f"crop_size must be between 1 and image_size ({image_size}). Received: {crop_size}")

    def fn(index, item):
        keys = [k for k in item if k != "label"]
        stacked = tf.concat([item[k] for k in keys] + [tf.cast(item["label"][..., None], tf.float32)], axis=-1)
        window = random_crop(stacked, crop_size, tf.stack([tf.cast(seed, tf.int64), index]))
        out = {k: window[..., i : i + 1] for i, k in enumerate(keys)}
        out["label"] = tf.cast(tf.round(window[..., -1]), tf.int32)
        return out

    return ds.enumerate().map(fn, num_parallel_calls=AUTOTUNE)


def _augmented(ds, seed):
    """Each item's image (with its synthesized counterpart, if any) and label, transformed together."""

    def fn(index, item):
        image = item["image"]
        if "synthesized" in item:
            image = tf.concat([image, item["synthesized"]], axis=-1)
        image, label = augment_slice(image, item.get("label"), tf.stack([tf.cast(seed, tf.int64), index]))
        item = dict(item, image=image[..., :1])
        if "synthesized" in item:
            item["synthesized"] = image[..., 1:]
        if label is not None:
            item["label"] = label
        return item

    return ds.enumerate().map(fn, num_parallel_calls=AUTOTUNE)


def unpaired_dataset(
    prepared_dir, image_size, batch_size, *, shuffle_buffer=2048, seed=0, augment=False,
    deterministic=False, repeat=True, crop_size=None, scale_jitter=0.0, downsample=1,
):
    """Batches of unrelated MR and CT slices (or random crops of them) for CycleGAN training.

    Args:
        prepared_dir: a folder written by ``mr2ct prepare``.
        image_size: slice side S (must match the prepared data).
        batch_size: global batch size.
        shuffle_buffer: slices in each stream's shuffle buffer. Defaults to `2048`.
        seed: seed of the shuffles; the CT stream uses ``seed + 1``. Defaults to `0`.
        augment: random zoom-in crops and flips. Defaults to `False` (the paper).
        deterministic: the order depends on ``seed`` alone (reading stays
            parallel but results are kept in order). Defaults to `False`.
        repeat: repeat forever. Defaults to `True`.
        crop_size: give ``[B, crop_size, crop_size, 1]`` random crops, a new
            window for every slice drawn (after ``augment``). Defaults to
            `None`: whole slices.
        scale_jitter: scale each slice about its centre by independent random
            factors in ``[1 - scale_jitter, 1 + scale_jitter]`` along rows and
            columns (after ``augment``, before the crop). Defaults to `0` (off).
        downsample: give images ``downsample`` times smaller, each pixel
            the mean of a ``downsample`` x ``downsample`` block (after the
            crop; the side must divide). Defaults to `1` (full resolution).
    """
    if not 0.0 <= float(scale_jitter) < 1.0:
        raise ValueError(f"scale_jitter must be in [0, 1). Received: {scale_jitter}")
    if crop_size is not None and not 1 <= int(crop_size) <= int(image_size):
        raise ValueError(f"crop_size must be between 1 and image_size ({image_size}). Received: {crop_size}")
    side = int(crop_size or image_size)
    if int(downsample) != downsample or downsample < 1 or side % int(downsample):
        raise ValueError(f"downsample must be a positive integer that divides the image side ({side}). "
                         f"Received: {downsample}")
    downsample = int(downsample)
    streams = {}
    for offset, modality in enumerate(("mr", "ct")):
        ds = _slices(list_shards(prepared_dir, modality), image_size, seed=seed + offset,
                     shuffle_buffer=shuffle_buffer, deterministic=deterministic, repeat=repeat, with_label=False)
        if augment:
            ds = _augmented(ds, seed + 10 + offset)
        images = ds.map(lambda item: item["image"])
        if scale_jitter:
            images = _scaled(images, seed + 30 + offset, float(scale_jitter))
        if crop_size is not None:
            images = _cropped(images, seed + 20 + offset, int(crop_size))
        if downsample > 1:
            images = images.map(lambda x: tf.nn.avg_pool2d(x[None], downsample, downsample, "VALID")[0],
                                num_parallel_calls=AUTOTUNE)
        streams[modality] = images
    ds = tf.data.Dataset.zip(streams).batch(batch_size, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options(deterministic))


def labelled_dataset(
    prepared_dir, image_size, batch_size, *, modality="ct", shuffle_buffer=2048, seed=0, augment=False,
    deterministic=False, repeat=True, shards=None, with_synthesized=False, crop_size=None,
):
    """Batches of labelled slices: ``{"image": [B, S, S, 1], "label": [B, S, S] int32}``.

    Args:
        prepared_dir: a folder written by ``mr2ct prepare``; its labelled
            shards of ``modality`` are read. Ignored when ``shards`` is given.
        image_size: slice side S.
        batch_size: global batch size.
        modality: ``"ct"`` or ``"mr"``. Defaults to `"ct"`.
        shuffle_buffer: slices in the shuffle buffer. Defaults to `2048`.
        seed: seed of the shuffle and augmentation. Defaults to `0`.
        augment: random zoom-in crops and flips, the same for image, label and
            synthesized image. Defaults to `False`.
        deterministic: the order depends on ``seed`` alone. Defaults to `False`.
        repeat: repeat forever. Defaults to `True`.
        shards: read these shards instead of the prepared folder's. Defaults
            to `None`.
        with_synthesized: the shards carry each slice's synthesized
            counterpart; the batches get it as ``"synthesized"``. Defaults to
            `False`.
        crop_size: give random ``crop_size`` x ``crop_size`` windows, the
            same window of image, label and synthesized image (after
            ``augment``). Defaults to `None`: whole slices.
    """
    if shards is None:
        shards = labelled_shards(prepared_dir, modality)
    ds = _slices(shards, image_size, seed=seed, shuffle_buffer=shuffle_buffer, deterministic=deterministic,
                 repeat=repeat, with_label=True, with_synthesized=with_synthesized)
    if augment:
        ds = _augmented(ds, seed + 10)
    keys = ("image", "label") + (("synthesized",) if with_synthesized else ())
    ds = ds.map(lambda item: {key: item[key] for key in keys})
    if crop_size is not None:
        ds = _cropped_items(ds, seed + 20, int(crop_size), image_size)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE).with_options(_options(deterministic))


def labelled_shards(prepared_dir, modality="ct") -> list[str]:
    """The shards of ``modality`` that carry labels (all of them without a manifest); InputError if none."""
    shards = list_shards(prepared_dir, modality)
    manifest = os.path.join(os.fspath(prepared_dir), "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            labelled = [v["shard"] for v in json.load(f)["volumes"][modality] if "labels" in v]
        shards = [s for s in shards if os.path.relpath(s, prepared_dir) in labelled]
        if not shards:
            raise InputError(manifest, f"no labelled {modality.upper()} volumes (prepare with --labels)")
    return shards
