"""``mr2ct prepare``: MR and CT volumes to TFRecord shards of 2D slices and a manifest.

Per volume (section 2.1 of the paper): MR is N4-corrected, resampled to
``image_size`` x ``image_size`` slices and scaled to [-1, 1] between its
0.5th and 99.5th percentiles; CT is cropped to an MR-like field of view,
resampled, and its HU window mapped to [-1, 1]. Label volumes (optional) are
taken through the same crop and resampling with nearest-neighbour
interpolation.

Output::

    OUT/manifest.json            volumes, shapes, spacings, every parameter, counts
    OUT/records/mr/<subject>.tfrecord   one shard per volume
    OUT/records/ct/<subject>.tfrecord
    OUT/volumes/<modality>/<subject>.json   the record of each finished volume

All volumes are read and checked before anything is written, so a bad volume
stops the run with a message naming it (or, with ``skip_bad``, is skipped,
warned about and listed in the manifest). A failure later, while
preprocessing (say, an MR of constant intensity), stops the run too; the
volumes finished before it are kept and a rerun resumes from them. Each shard is written under a
temporary name and renamed when complete; its record follows it. A rerun
skips every volume whose shard and record exist and were made from the same
files with the same settings (others are prepared again), so an interrupted
run resumes where it stopped and never leaves a half-written shard that the
pipeline would read. The manifest lists the shards of the current inputs:
the pipeline reads those and no others.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
import warnings

import numpy as np

from mr2ct import __version__
from mr2ct._atomic import atomic_write_json, read_json
from mr2ct._workers import process_pool
from mr2ct.data.io import list_volumes, read_volume, subject_id
from mr2ct.data.preprocess import (
    PreprocessConfig,
    check_same_grid,
    preprocess_ct,
    preprocess_mr,
    resample_to_reference,
)
from mr2ct.errors import InputError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def _label_path(labels_dir, subject):
    """The label volume of ``subject`` in ``labels_dir``; if there is none, a path that :func:`_check` rejects."""
    matches = [p for p in list_volumes(labels_dir) if subject_id(p) == subject]
    return matches[0] if matches else os.path.join(os.fspath(labels_dir), subject)


def _plan(mr_dir, ct_dir, labels_dir, mr_labels_dir):
    """``[(modality, subject, image path, label path or None)]`` for every input volume."""
    jobs = []
    for modality, folder, label_folder in (("mr", mr_dir, mr_labels_dir), ("ct", ct_dir, labels_dir)):
        if folder is None:
            continue
        paths = list_volumes(folder)
        seen = {}
        for path in paths:
            subject = subject_id(path)
            if subject in seen:
                raise InputError(path, f"two volumes of subject {subject!r} ({seen[subject]})")
            seen[subject] = path
            label = _label_path(label_folder, subject) if label_folder is not None else None
            jobs.append((modality, subject, path, label))
    return jobs


def _check(job):
    """Read and validate one job's volumes (no writing). Returns an error message or None."""
    modality, subject, path, label_path = job
    try:
        image = read_volume(path)
        if label_path is not None:
            if not os.path.exists(label_path):
                raise InputError(label_path, "missing label volume for this subject")
            labels = read_volume(label_path)
            check_same_grid(image, labels)
            if not np.issubdtype(labels.array.dtype, np.integer) and not np.all(
                labels.array == np.round(labels.array)
            ):
                raise InputError(label_path, "label volume holds non-integer values")
        return None
    except InputError as error:
        return str(error)


def _process(job, config_dict):
    """Preprocess one volume (runs in a worker process): slices, labels and record."""
    modality, subject, path, label_path = job
    config = PreprocessConfig.from_dict(config_dict)
    volume = read_volume(path)
    fn = preprocess_mr if modality == "mr" else preprocess_ct
    slices, record = fn(volume, config)
    labels = None
    if label_path is not None:
        label_volume = read_volume(label_path)
        resampled = resample_to_reference(
            label_volume.with_array(label_volume.array.astype(np.int16)),
            record["output_geometry"], order=0, default_value=0,
        )
        labels = resampled.array.astype(np.uint8)
        record["labels"] = os.fspath(label_path)
    record["subject"] = subject
    record["slices"] = int(slices.shape[0])
    cut = fov_cut_mm(record)
    if cut:
        record["fov_cut_mm"] = cut
    return modality, subject, slices.astype(np.float32), labels, record


def fov_cut_mm(record) -> dict[str, float]:
    """``{"left-right": mm, "front-back": mm}``: how much of the body a volume's in-plane crop cut off.

    From the body's bounding box in the input (``ct_crop`` or ``framing`` of a preprocessing record) against
    the field of view; only the axes where the body is wider than it by more than a voxel.
    """
    box = record.get("ct_crop") or record.get("framing") or {}
    if "body_bbox_ij" not in box:
        return {}
    spacing = record["input_geometry"]["spacing"]
    direction = np.asarray(record["input_geometry"]["direction"], float)
    i_is_left_right = abs(direction[0, 0]) >= abs(direction[1, 0])
    cut = {}
    for axis, ((lo, hi), step) in enumerate(zip(box["body_bbox_ij"], spacing[:2])):
        extent = (hi - lo + 1) * step
        if extent > box["fov_mm"] + step:
            name = "left-right" if (axis == 0) == i_is_left_right else "front-back"
            cut[name] = round(float(extent - box["fov_mm"]), 1)
    return cut


def _write_shard(out_dir, modality, subject, slices, labels):
    from mr2ct.data import records

    path = os.path.join(out_dir, "records", modality, f"{subject}.tfrecord")
    examples = (
        {
            "image": slices[k],
            "subject": subject,
            "slice_index": k,
            "modality": modality,
            **({"label": labels[k]} if labels is not None else {}),
        }
        for k in range(slices.shape[0])
    )
    records.write_shard(path, examples)
    return path


def _record_path(out_dir, modality, subject):
    return os.path.join(out_dir, "volumes", modality, f"{subject}.json")


def _finished(out_dir, job, config_dict):
    """Whether the shard and record of ``job`` exist, made from the same files with the same settings."""
    modality, subject, path, label_path = job
    record_path = _record_path(out_dir, modality, subject)
    if not (os.path.exists(os.path.join(out_dir, "records", modality, f"{subject}.tfrecord"))
            and os.path.exists(record_path)):
        return False
    with open(record_path) as f:
        record = json.load(f)

    def real(p):
        return p and os.path.realpath(p)

    made_from = (real(record["source"]), real(record.get("labels")))
    return record["config"] == config_dict and made_from == (real(path), real(label_path))


def preprocessing_record(config: PreprocessConfig) -> dict:
    """How slices were made from volumes (a manifest's and a run's ``preprocessing``): size, settings, CT window."""
    return {
        "image_size": config.image_size,
        "config": config.to_dict(),
        "ct_intensity": {"hu_min": config.ct_hu_min, "hu_max": config.ct_hu_max},
    }


def prepare_dataset(
    out_dir,
    mr_dir=None,
    ct_dir=None,
    labels_dir=None,
    mr_labels_dir=None,
    config: PreprocessConfig | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress=None,
) -> dict:
    """Preprocess every volume into TFRecord shards and write the manifest.

    Args:
        out_dir: output folder (created; a rerun resumes).
        mr_dir: folder of MR volumes. Defaults to `None`.
        ct_dir: folder of CT volumes. Defaults to `None`.
        labels_dir: label volumes of the CT subjects (same subject names).
            Defaults to `None`.
        mr_labels_dir: label volumes of the MR subjects, for evaluation.
            Defaults to `None`.
        config: preprocessing settings. Defaults to `PreprocessConfig()`.
        skip_bad: skip unreadable or invalid volumes with a warning instead
            of stopping. Defaults to `False`.
        workers: processes preprocessing volumes in parallel. Defaults to
            the number of CPU cores.
        progress: callable ``(done, total, subject)`` called after each volume.
            Defaults to `None`.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    if mr_dir is None and ct_dir is None:
        raise InputError(None, "give at least one of an MR folder and a CT folder")
    config = config or PreprocessConfig()
    out_dir = os.fspath(out_dir)
    jobs = _plan(mr_dir, ct_dir, labels_dir, mr_labels_dir)

    skipped = []
    for job, error in zip(jobs, map(_check, jobs)):
        if error is None:
            continue
        if not skip_bad:
            raise InputError(None, f"{error} (nothing was written; use --skip-bad to skip bad volumes)")
        warnings.warn(f"skipping {error}", stacklevel=2)
        skipped.append({"modality": job[0], "subject": job[1], "path": os.fspath(job[2]), "error": error})
    bad = {(s["modality"], s["subject"]) for s in skipped}
    good = [job for job in jobs if (job[0], job[1]) not in bad]
    if not good:
        raise InputError(None, "no usable volume left to prepare")

    config_dict = config.to_dict()
    todo = [job for job in good if not _finished(out_dir, job, config_dict)]
    total, done = len(good), len(good) - len(todo)
    if progress:
        progress(done, total, None)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    if todo:
        with process_pool(workers) as pool:
            futures = {pool.submit(_process, job, config_dict): job for job in todo}
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                try:
                    modality, subject, slices, labels, record = future.result()
                except InputError as error:
                    if not skip_bad:
                        for other in futures:
                            other.cancel()
                        raise
                    warnings.warn(f"skipping {error}", stacklevel=2)
                    skipped.append({"modality": job[0], "subject": job[1], "path": os.fspath(job[2]), "error": str(error)})
                    continue
                box = record.get("ct_crop") or record.get("framing")
                for axis, mm in record.get("fov_cut_mm", {}).items():
                    warnings.warn(f"{job[2]}: the body is {mm:.0f} mm wider {axis} than the {box['fov_mm']:.0f} mm "
                                  f"field of view; that much is cut off (prepare.fov_mm)", stacklevel=2)
                record["shard"] = os.path.relpath(_write_shard(out_dir, modality, subject, slices, labels), out_dir)
                atomic_write_json(_record_path(out_dir, modality, subject), record)
                done += 1
                if progress:
                    progress(done, total, subject)
    return write_manifest(out_dir, good, skipped, config)


def write_manifest(out_dir, jobs, skipped, config: PreprocessConfig) -> dict:
    """Collect the per-volume records into ``manifest.json``."""
    volumes = {"mr": [], "ct": []}
    for modality, subject, _, _ in jobs:
        path = _record_path(out_dir, modality, subject)
        if os.path.exists(path):
            with open(path) as f:
                volumes[modality].append(json.load(f))
    counts = {m: sum(v["slices"] for v in vols) for m, vols in volumes.items()}
    counts.update({f"{m}_labelled": sum(v["slices"] for v in vols if "labels" in v) for m, vols in volumes.items()})
    counts.update({f"{m}_volumes": len(vols) for m, vols in volumes.items()})
    manifest = {
        "format_version": FORMAT_VERSION,
        "mr2ct_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "image_size": config.image_size,
        "preprocessing": preprocessing_record(config),
        "counts": counts,
        "volumes": volumes,
        "skipped": skipped,
    }
    atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest


def read_manifest(prepared_dir) -> dict:
    """The manifest of a prepared folder, or an InputError naming what is wrong."""
    path = os.path.join(os.fspath(prepared_dir), MANIFEST)
    return read_json(path, "missing: is this a folder written by `mr2ct prepare`?", "corrupt manifest")
