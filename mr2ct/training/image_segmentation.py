"""Training a U-Net on one modality's own labelled slices: the paper's MR-supervised reference.

The paper (section 4) compares segmentation through synthesis with a U-Net
trained on labelled MR and tested on MR. Such a run needs no CycleGAN: a
prepared folder with labelled MR (``mr2ct prepare --mr ... --mr-labels ...``)
and the ``segmentation`` settings of a config (U-Net size, loss, learning
rate, batch, steps). It trains on whole slices (no ``segmentation.crop_size``
windows, no CT channel to drop).

The run folder holds ``config.yaml``, ``preprocessing.json`` (the prepared
folder's record: how an MR is prepared for the U-Net), ``checkpoints/``,
``logs/`` and ``status.json``, as a segmentation run does.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from mr2ct._atomic import atomic_write_json, read_json
from mr2ct.config import Config
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.labels import NUM_CLASSES
from mr2ct.models import ImageSegmenter, UNet
from mr2ct.training import builders
from mr2ct.training.cluster import worker_role
from mr2ct.training.loop import LoopResult, TrainingLoop
from mr2ct.training.segmentation import unet_loop_settings
from mr2ct.training.strategy import make_strategy, set_precision
from mr2ct.training.tracking import checkpoint_items
from mr2ct.training.trainer import PREPROCESSING_FILE, check_prepared_data, global_batch, resolve_run_config

# Config sections an image segmentation run does not read.
UNUSED_SECTIONS = ("model", "loss")


def _segmenter(config: Config) -> ImageSegmenter:
    s = config.segmentation
    unet = UNet(input_channels=1, num_classes=NUM_CLASSES, depth=s.depth, filters=s.filters, name="unet")
    return ImageSegmenter(unet, dice_weight=s.dice_weight, dice_classes=s.dice_classes, name="image_segmenter")


def train_image_segmentation(
    data_dir,
    run_dir,
    config: Config | None = None,
    modality: str = "mr",
    max_steps: int | None = None,
    progress: bool = True,
    strategy: tf.distribute.Strategy | None = None,
) -> LoopResult:
    """Train (or resume) a one-channel U-Net on the labelled ``modality`` slices of a prepared folder.

    Args:
        data_dir: a prepared folder whose ``modality`` volumes have labels.
        run_dir: the run folder; created, or resumed if it has checkpoints.
        config: settings for a new run (its ``data``, ``segmentation`` and
            ``runtime`` sections, ``train.keep_checkpoints`` and the summary
            intervals apply). Defaults to the run folder's saved config.
        modality: ``"mr"`` or ``"ct"``. Defaults to `"mr"`.
        max_steps: stop at this global step. Defaults to ``segmentation.steps``.
        progress: print a progress line. Defaults to `True`.
        strategy: a ``tf.distribute`` strategy. Defaults to the config's.

    Returns:
        A :class:`~mr2ct.training.loop.LoopResult`.

    Raises:
        InputError: a prepared folder without labelled ``modality`` slices.
        ConfigError: slices of another size than ``data.image_size``, or a
            changed config on resume.
    """
    from mr2ct.data.pipeline import labelled_dataset, labelled_shards
    from mr2ct.data.prepare import read_manifest

    if modality not in ("mr", "ct"):
        raise ValueError(f"modality must be 'mr' or 'ct'. Received: {modality!r}")
    run_dir = os.fspath(run_dir)
    config = resolve_run_config(run_dir, config, unused_sections=UNUSED_SECTIONS, write=False)
    preprocessing = check_prepared_data(data_dir, config.data.image_size)
    if not read_manifest(data_dir).get("counts", {}).get(f"{modality}_labelled", 0):
        option = "--mr-labels" if modality == "mr" else "--labels"
        raise InputError(data_dir, f"no labelled {modality.upper()} slices; prepare the {modality.upper()} volumes "
                                   f"with their labels (mr2ct prepare {option})")
    shards = labelled_shards(data_dir, modality)
    strategy = strategy or make_strategy(config.runtime.strategy)
    batch_size = global_batch(config.segmentation.batch_size, strategy, "segmentation.batch_size",
                              config.runtime.batch_per_replica)
    if worker_role(strategy).is_chief:
        resolve_run_config(run_dir, config, unused_sections=UNUSED_SECTIONS)
        atomic_write_json(os.path.join(run_dir, PREPROCESSING_FILE), preprocessing)
    keras.utils.set_random_seed(config.runtime.seed)
    policy = set_precision(config.runtime.mixed_precision)
    try:
        with strategy.scope():
            model = _segmenter(config)
            model.compile(optimizer=builders.build_segmentation_adam(config, policy))
        loop = TrainingLoop(
            model,
            strategy,
            dataset=lambda start: labelled_dataset(
                data_dir, image_size=config.data.image_size, batch_size=batch_size, modality=modality,
                shuffle_buffer=config.data.shuffle_buffer, seed=config.data.seed + start,
                augment=config.data.augment, deterministic=True, shards=shards,
            ),
            run_dir=run_dir,
            progress=progress,
            **unet_loop_settings(config, model),
        )
        return loop.run(max_steps=max_steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def load_image_segmenter(run_dir, batch_size: int = 8):
    """A :class:`~mr2ct.serving.segment.VolumeSegmenter` of an image segmentation run's latest checkpoint.

    It prepares each MR as the run's prepared folder did and labels it with the U-Net alone.
    """
    from mr2ct.serving.segment import VolumeSegmenter

    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "image segmentation run folder not found")
    preprocessing = read_json(os.path.join(run_dir, PREPROCESSING_FILE),
                              "missing: not an image segmentation run folder", "corrupt preprocessing record")
    config = resolve_run_config(run_dir, None)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise InputError(run_dir, "no checkpoint in this image segmentation run folder (train it first)")
    keras.mixed_precision.set_global_policy("float32")
    model = _segmenter(config)
    step = tf.Variable(0, dtype=tf.int64)
    try:
        tf.train.Checkpoint(step=step, **checkpoint_items(model=model)).restore(latest).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise Mr2ctError(f"{latest}: cannot restore the U-Net ({str(exc).splitlines()[0][:300]})") from None

    def run_batch(slices: np.ndarray) -> np.ndarray:
        return np.argmax(model(slices, training=False).numpy(), axis=-1)

    return VolumeSegmenter(preprocessing=preprocessing, run_batch=run_batch, image_size=config.data.image_size,
                           batch_size=batch_size)
