"""Shared test helpers for segmentation through synthesis: labelled prepared phantoms.

The folders are made once per test session (cached by their root), since
preparing volumes and training networks are the slow parts of these tests.
"""

import os

from run_fixtures import make_run

SIZE = 32
_CACHE = {}


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def phantom_folders(tmp_path_factory):
    """Two small phantom subjects (MR, CT, CT labels) written as NIfTI."""
    from mr2ct.data.phantom import write_phantom_dataset

    def make():
        root = tmp_path_factory.mktemp("seg_phantoms")
        write_phantom_dataset(root, 2, seed=11, size="small")
        return root

    return _cached("phantoms", make)


def prepared_folders(tmp_path_factory):
    """``(labelled, unlabelled)`` prepared folders of the phantoms' CT at 32x32."""
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.data.preprocess import PreprocessConfig

    def make():
        phantoms = phantom_folders(tmp_path_factory)
        root = tmp_path_factory.mktemp("seg_prepared")
        config = PreprocessConfig(image_size=SIZE, n4_shrink_factor=1)
        prepare_dataset(root / "labelled", ct_dir=phantoms / "ct", labels_dir=phantoms / "labels_ct",
                        config=config, workers=1)
        prepare_dataset(root / "unlabelled", ct_dir=phantoms / "ct", config=config, workers=1)
        return root / "labelled", root / "unlabelled"

    return _cached("prepared", make)


def cyclegan_run(tmp_path_factory):
    """A tiny CycleGAN run folder (config, preprocessing record, checkpoint at step 7) and its model."""

    def make():
        run_dir = tmp_path_factory.mktemp("seg_cyclegan") / "run"
        model, _ = make_run(run_dir, step=7, seed=5)
        return run_dir, model

    return _cached("cyclegan", make)


def segmentation_run(tmp_path_factory, steps=2):
    """A segmentation run trained for ``steps`` steps behind :func:`cyclegan_run`."""
    from mr2ct.training.segmentation import train_segmentation

    def make():
        gan_dir, _ = cyclegan_run(tmp_path_factory)
        labelled, _ = prepared_folders(tmp_path_factory)
        run_dir = tmp_path_factory.mktemp("seg_run") / "seg"
        train_segmentation(gan_dir, labelled, run_dir, max_steps=steps, progress=False)
        return run_dir

    return _cached(("segmentation", steps), make)


def mr_volume_path(tmp_path_factory):
    """One phantom MR volume file."""
    return os.path.join(phantom_folders(tmp_path_factory), "mr", "subject_000.nii.gz")


def segmentation_export(tmp_path_factory):
    """``saved_models/hips/1``: :func:`cyclegan_run` exported with :func:`segmentation_run` (steps=2)."""
    from mr2ct.export import export_run

    def make():
        gan_dir, _ = cyclegan_run(tmp_path_factory)
        seg_dir = segmentation_run(tmp_path_factory, steps=2)
        out = tmp_path_factory.mktemp("seg_export") / "saved_models"
        return export_run(gan_dir, out, name="hips", segmentation=seg_dir)

    return _cached("segmentation_export", make)
