"""The synthesized MR of a segmentation run's labelled CT, computed once.

The U-Net of section 3.2 learns on ``concat([CT, G_MR(CT)])``. G_MR is
frozen, so the synthesized MR of a slice is the same at every step: a
segmentation run translates its labelled CT slices once, in batches, and
trains on shards that hold each slice's CT, synthesized MR and labels (the
``synthesized`` feature of :mod:`mr2ct.data.records`). The cache lives in the
run folder::

    synthesized_mr/
        <subject>.tfrecord   one shard per labelled CT shard of the prepared folder
        cache.json           the CycleGAN step, slice size and source shards it was made from

Shards are written under temporary names and renamed when complete, and
``cache.json`` is written last, so a run killed while caching synthesizes
again on resume, and a complete cache is reused by every resume. A cache
made by other generators (another CycleGAN step) or from other prepared
slices is refused with an error naming its folder, never silently mixed in.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import tensorflow as tf

from mr2ct._atomic import atomic_write_json, read_json
from mr2ct.data.records import SUFFIX, read_slices, write_shard
from mr2ct.errors import InputError

CACHE_DIR = "synthesized_mr"
CACHE_FILE = "cache.json"


def _sources(prepared_dir, shards) -> list[dict]:
    return [{"shard": os.path.relpath(s, prepared_dir), "bytes": os.path.getsize(s)} for s in shards]


def reusable_cache(cache_dir, cyclegan_step: int, image_size: int, sources: list[dict]) -> list[str] | None:
    """The cached shards if ``cache_dir`` holds a complete cache of these inputs, `None` if it holds none.

    Raises:
        InputError: the cache was made by other generators or from other
            slices (naming ``cache_dir``).
    """
    record_path = os.path.join(cache_dir, CACHE_FILE)
    if not os.path.exists(record_path):
        return None
    record = read_json(record_path, "missing", "corrupt cache record; remove the folder to synthesize again")
    if record.get("cyclegan_step") != cyclegan_step:
        raise InputError(
            cache_dir,
            f"cached synthesized MR of CycleGAN step {record.get('cyclegan_step')}, but this run's generators are "
            f"of step {cyclegan_step}; remove the folder to synthesize again",
        )
    if record.get("image_size") != image_size or record.get("sources") != sources:
        raise InputError(
            cache_dir,
            "cached synthesized MR of other prepared slices than the --data folder's labelled CT; "
            "train on the data the run started with, or use a new run folder",
        )
    shards = [os.path.join(cache_dir, name) for name in record["shards"]]
    missing = [s for s in shards if not os.path.isfile(s)]
    return None if missing else shards


def cache_synthesized_mr(
    generator_ct_to_mr, prepared_dir, shards, cache_dir, *, cyclegan_step: int, image_size: int,
    batch_size: int = 16, echo=None,
) -> list[str]:
    """Translate every labelled CT slice once and write the training shards; reuse a complete cache.

    Args:
        generator_ct_to_mr: the frozen CT -> MR generator (G_MR).
        prepared_dir: the prepared folder the shards belong to.
        shards: the labelled CT shards of ``prepared_dir``.
        cache_dir: where the cache goes (created).
        cyclegan_step: the CycleGAN checkpoint step the generator comes from.
        image_size: slice side S.
        batch_size: slices per generator call. Defaults to `16`.
        echo: callable for a line of progress, or `None`. Defaults to `None`.

    Returns:
        The cached shards, one per source shard, in the same order.
    """
    prepared_dir = os.fspath(prepared_dir)
    sources = _sources(prepared_dir, shards)
    cached = reusable_cache(cache_dir, cyclegan_step, image_size, sources)
    if cached is not None:
        if echo:
            echo(f"synthesized MR: reusing {cache_dir}")
        return cached
    if os.path.isdir(cache_dir):
        shutil.rmtree(cache_dir)  # an incomplete cache (no record): synthesize it again
    os.makedirs(cache_dir)

    @tf.function(input_signature=[tf.TensorSpec((None, image_size, image_size, 1), tf.float32)])
    def synthesize(ct):
        return generator_ct_to_mr(ct, training=False)

    start = time.perf_counter()
    names, count = [], 0
    for shard in shards:
        items = read_slices(shard)
        ct = np.stack([item["image"] for item in items])[..., None].astype(np.float32)
        mr = np.concatenate([synthesize(tf.constant(ct[i : i + batch_size])).numpy()
                             for i in range(0, len(ct), batch_size)])[..., 0]
        name = os.path.basename(shard)
        if not name.endswith(SUFFIX) or name in names:
            name = f"{len(names):04d}{SUFFIX}"
        write_shard(os.path.join(cache_dir, name), (
            {"image": item["image"], "subject": item["subject"], "slice_index": item["slice_index"],
             "modality": item["modality"], "label": item["label"], "synthesized": mr[k]}
            for k, item in enumerate(items)
        ))
        names.append(name)
        count += len(items)
    seconds = time.perf_counter() - start
    atomic_write_json(os.path.join(cache_dir, CACHE_FILE), {
        "cyclegan_step": cyclegan_step, "image_size": image_size, "sources": sources, "shards": names,
        "slices": count, "seconds": round(seconds, 2),
    })
    if echo:
        echo(f"synthesized MR of {count} labelled CT slices in {seconds:.1f} s -> {cache_dir}")
    return [os.path.join(cache_dir, name) for name in names]
