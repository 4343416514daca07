"""Writing a phantom data set: one NIfTI file per subject and volume, and the manifest ``phantom.json``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

import numpy as np

from mr2ct._atomic import atomic_write_text
from mr2ct.data.phantom.grids import PhantomSize
from mr2ct.data.phantom.montage import _montage_slices, write_montage
from mr2ct.data.phantom.subjects import generate_subject
from mr2ct.data.phantom.tissues import TISSUES
from mr2ct.errors import InputError
from mr2ct.labels import EVALUATED_STRUCTURES, LABELS, NUM_CLASSES


DATASET_FOLDERS = ("mr", "ct", "ct_on_mr_grid", "labels_mr", "labels_ct")
"""Sub-folders of a phantom data set, one ``<subject>.nii.gz`` per subject in each."""

_STORE_DTYPES = {"mr": "int16", "ct": "int16", "ct_on_mr_grid": "int16", "labels_mr": "uint8",
                 "labels_ct": "uint8"}


def _write_subject(job):
    """Render one subject and write its volumes; ``(id, parameters, montage slices or None)``."""
    from mr2ct.data.io import write_volume

    index, size, seed, out_dir, with_montage = job
    subject = generate_subject(index, size=size, seed=seed)
    for folder in DATASET_FOLDERS:
        write_volume(getattr(subject, folder), os.path.join(out_dir, folder, subject.subject_id + ".nii.gz"),
                     dtype=_STORE_DTYPES[folder])
    return subject.subject_id, subject.parameters.to_dict(), _montage_slices(subject) if with_montage else None


def write_phantom_dataset(
    out_dir: str | os.PathLike,
    subjects: int | Iterable[int],
    seed: int = 0,
    size: str = "small",
    montage: bool = False,
    progress: Callable[[str], None] | None = None,
    workers: int | None = 1,
) -> dict:
    """Generate phantom subjects and write them as NIfTI files.

    Layout::

        out_dir/mr/subject_000.nii.gz              T1 MR, int16
        out_dir/ct/subject_000.nii.gz              CT in HU, int16
        out_dir/ct_on_mr_grid/subject_000.nii.gz   CT on the MR grid, int16
        out_dir/labels_mr/subject_000.nii.gz       labels on the MR grid, uint8
        out_dir/labels_ct/subject_000.nii.gz       labels on the CT grid, uint8
        out_dir/phantom.json                       seed, size, label table, parameters
        out_dir/montage.png                        (with montage=True)

    Args:
        out_dir: the data set folder (created if needed).
        subjects: how many subjects (indices ``0 .. n-1``), or the indices.
        seed: seed of the data set. Defaults to `0`.
        size: ``"small"`` or ``"paper"``. Defaults to `"small"`.
        montage: also write ``montage.png`` with mid slices of the first
            subjects. Defaults to `False`.
        progress: called with each subject's id once it is written. Defaults
            to `None`.
        workers: subjects rendered in parallel processes; `None` for one per
            CPU core. The output does not depend on it. Defaults to `1`.

    Returns:
        The manifest written to ``phantom.json``.
    """
    from mr2ct import __version__

    size = PhantomSize(size)
    indices = list(range(int(subjects))) if isinstance(subjects, (int, np.integer)) else [int(i) for i in subjects]
    if not indices:
        raise ValueError("subjects must name at least one subject, received none")
    out_dir = os.fspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(out_dir, f"cannot be used as the output folder ({exc.strerror or exc})") from exc
    shown, parameters = [], {}
    jobs = [(index, str(size), int(seed), out_dir, montage and n < 4) for n, index in enumerate(indices)]
    workers = min(len(jobs), os.cpu_count() or 1) if workers is None else max(1, min(int(workers), len(jobs)))
    if workers == 1:
        results = map(_write_subject, jobs)
    else:
        from mr2ct._workers import process_pool

        pool = process_pool(workers)
        results = pool.map(_write_subject, jobs)
    try:
        for subject_id, subject_parameters, slices in results:
            parameters[subject_id] = subject_parameters
            if slices is not None:
                shown.append(slices)
            if progress is not None:
                progress(subject_id)
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    manifest = {
        "generator": "mr2ct.data.phantom",
        "mr2ct_version": __version__,
        "seed": int(seed),
        "size": str(size),
        "subjects": list(parameters),
        "folders": {f: f"{f}/<subject>.nii.gz" for f in DATASET_FOLDERS},
        "labels": {str(k): v for k, v in LABELS.items()},
        "num_classes": NUM_CLASSES,
        "evaluated_structures": {str(k): LABELS[k] for k in EVALUATED_STRUCTURES},
        "tissues": {str(k): v for k, v in TISSUES.items()},
        "orientation": "LPS world; array [k, j, i]; i -> left, j -> posterior, k -> superior",
        "parameters": parameters,
    }
    if montage:
        write_montage(shown, os.path.join(out_dir, "montage.png"))
        manifest["montage"] = "montage.png"
    atomic_write_text(os.path.join(out_dir, "phantom.json"), json.dumps(manifest, indent=2))
    return manifest
