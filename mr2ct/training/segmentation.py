"""Training a U-Net through synthesis (section 3.2 of the paper), and loading the result.

A segmentation run starts from a trained CycleGAN run and a prepared folder
with labelled CT (``mr2ct prepare --ct ... --labels ...``). The CycleGAN's
generators are restored from its latest checkpoint and frozen; the U-Net
learns on ``concat([CT, G_MR(CT)])`` (see
:class:`~mr2ct.models.SynthesisSegmenter`), with ``G_MR(CT)`` computed once
per run (:mod:`mr2ct.training.synthesized_cache`).

The segmentation run folder holds::

    config.yaml          the resolved config (data, segmentation and runtime sections apply)
    cyclegan.json        the CycleGAN run: path, checkpoint step and its whole config
    preprocessing.json   the CycleGAN run's preprocessing record (how MR is prepared for G_CT)
    synthesized_mr/      the labelled CT slices with their synthesized MR (the training data)
    checkpoints/         U-Net, both frozen generators and the optimizer
    logs/, status.json   as for CycleGAN runs

The checkpoints hold the generators too, so a segmentation run is
self-contained: it keeps working, and segments with the very generators it was
trained behind, when the CycleGAN run trains on or is deleted.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from mr2ct._atomic import atomic_write_json, read_json
from mr2ct.config import Config
from mr2ct.labels import NUM_CLASSES
from mr2ct.errors import ConfigError, InputError, Mr2ctError
from mr2ct.models import SynthesisSegmenter
from mr2ct.training import builders
from mr2ct.training.cluster import worker_role
from mr2ct.training.loop import LoopResult, TrainingLoop
from mr2ct.training.strategy import make_strategy, set_precision
from mr2ct.training.synthesized_cache import CACHE_DIR, cache_synthesized_mr
from mr2ct.training.tracking import checkpoint_items, variable_map
from mr2ct.training.trainer import CONFIG_FILE, PREPROCESSING_FILE, global_batch, resolve_run_config

# The CycleGAN run a segmentation run was trained behind.
CYCLEGAN_FILE = "cyclegan.json"


@dataclasses.dataclass
class CycleGANSource:
    """What a segmentation run needs of a CycleGAN run folder."""

    run_dir: str
    config: Config
    preprocessing: dict
    checkpoint: str


def read_cyclegan_run(run_dir) -> CycleGANSource:
    """The config, preprocessing record and latest checkpoint of a CycleGAN run, or an InputError."""
    if run_dir is None:
        raise InputError(None, "give the CycleGAN run folder (--cyclegan) for a new segmentation run")
    run_dir = os.path.abspath(os.fspath(run_dir))
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "CycleGAN run folder not found")
    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        raise InputError(run_dir, f"not a CycleGAN run folder (no {CONFIG_FILE})")
    if os.path.exists(os.path.join(run_dir, CYCLEGAN_FILE)):
        raise InputError(run_dir, "this is a segmentation run; give the CycleGAN run it was trained behind")
    # The CycleGAN never used its segmentation section: a new segmentation run that takes this config gets
    # today's segmentation defaults for the keys it predates, not those of old segmentation runs.
    config = Config.from_yaml(os.path.join(run_dir, CONFIG_FILE), run=True, unused_sections=("segmentation",))
    preprocessing = read_json(os.path.join(run_dir, PREPROCESSING_FILE),
                              "missing: the CycleGAN run has no preprocessing record", "corrupt preprocessing record")
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if checkpoint is None:
        raise InputError(run_dir, "no checkpoint in this CycleGAN run folder (train it first)")
    return CycleGANSource(run_dir, config, preprocessing, checkpoint)


def check_segmentation_data(data_dir, config: Config, source: CycleGANSource) -> dict:
    """Refuse prepared data without labelled CT, or whose slices do not fit the networks.

    Returns the prepared folder's manifest.
    """
    from mr2ct.data.prepare import read_manifest

    manifest = read_manifest(data_dir)
    if not manifest.get("counts", {}).get("ct_labelled", 0):
        raise InputError(
            data_dir, "no labelled CT slices; prepare the CT volumes with their labels (mr2ct prepare --labels)"
        )
    size = config.data.image_size
    gan_size = source.config.data.image_size
    if gan_size != size:
        raise ConfigError(
            f"{source.run_dir}: the CycleGAN works on {gan_size}x{gan_size} slices but data.image_size is {size}; "
            f"use --set data.image_size={gan_size}"
        )
    if manifest["image_size"] != size:
        raise ConfigError(
            f"{data_dir}: slices were prepared at {manifest['image_size']}x{manifest['image_size']} but the "
            f"networks take {size}x{size}; prepare again with --image-size {size}"
        )
    window = manifest.get("preprocessing", {}).get("ct_intensity")
    gan_window = source.preprocessing.get("ct_intensity")
    if window and gan_window and window != gan_window:
        raise ConfigError(
            f"{data_dir}: CT was scaled with the HU window {window}, the CycleGAN was trained with {gan_window}; "
            "prepare the labelled CT with the CycleGAN's window"
        )
    return manifest


def _generators(config: Config):
    """Freshly built ``(generator_mr_to_ct, generator_ct_to_mr)`` of a CycleGAN config."""
    return (
        builders.build_generator(config, "generator_mr_to_ct"),
        builders.build_generator(config, "generator_ct_to_mr"),
    )


def _restore_generators(source: CycleGANSource, generators) -> int:
    """Restore the generators from the CycleGAN run's latest checkpoint; returns its step."""
    variables = {}
    for generator in generators:
        variables.update(variable_map(generator))
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step, model=variables)
    try:
        checkpoint.restore(source.checkpoint).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise Mr2ctError(
            f"{source.checkpoint}: cannot restore the CycleGAN's generators ({str(exc).splitlines()[0][:300]})"
        ) from None
    return int(step.numpy())


def _read_json(path):
    return read_json(path, "missing: not a segmentation run folder (train one with `mr2ct train-seg`)", "corrupt")


def train_segmentation(
    cyclegan_run,
    data_dir,
    run_dir,
    config: Config | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    echo=print,
) -> LoopResult:
    """Train (or resume) the two-channel U-Net behind a trained CycleGAN's frozen generators.

    Before the first step the labelled CT slices are translated to MR once
    (``run_dir/synthesized_mr``); every step then reads CT, synthesized MR
    and labels from there. A resume reuses that cache.

    Args:
        cyclegan_run: the CycleGAN run folder. May be `None` when resuming;
            when given on a resume it must be the run the segmentation run
            started from.
        data_dir: a prepared folder with labelled CT (``mr2ct prepare --labels``),
            at the CycleGAN's slice size and CT window.
        run_dir: the segmentation run folder; created, or resumed if it has
            checkpoints.
        config: settings for a new run; its ``data`` (slice size, shuffling,
            augmentation), ``segmentation`` (U-Net, learning rate, steps,
            batch, checkpoints) and ``runtime`` sections apply, plus
            ``train.keep_checkpoints`` and the summary intervals. Defaults to
            the run folder's saved config, or for a new run the CycleGAN
            run's config.
        max_steps: stop at this global step (the run can be resumed later).
            Defaults to ``segmentation.steps``.
        progress: print a progress line. Defaults to `True`.
        strategy: a ``tf.distribute`` strategy. Defaults to the one the
            config's ``runtime.strategy`` names. Under several workers
            only the chief writes into ``run_dir``; the others cache their
            synthesized MR in a temporary folder of their own.
        echo: callable for a line about the synthesized-MR cache, or `None`.
            Defaults to `print`.

    Returns:
        A :class:`~mr2ct.training.loop.LoopResult`.

    Raises:
        InputError: a missing or unusable CycleGAN run, or data without labels.
        ConfigError: slice sizes or CT windows that differ between the
            CycleGAN, the data and the config, or a changed config on resume.
    """
    from mr2ct.data.pipeline import labelled_dataset, labelled_shards

    run_dir = os.fspath(run_dir)
    link_path = os.path.join(run_dir, CYCLEGAN_FILE)
    link = _read_json(link_path) if os.path.exists(link_path) else None
    if link is not None and cyclegan_run is not None and (
        os.path.realpath(os.fspath(cyclegan_run)) != os.path.realpath(link["run"])
    ):
        raise Mr2ctError(
            f"{run_dir}: this segmentation run was started behind the CycleGAN run {link['run']}, "
            f"not {os.fspath(cyclegan_run)}; use a new run folder"
        )
    has_checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")) is not None
    if has_checkpoint and link is None:
        raise InputError(
            run_dir, f"holds checkpoints but no {CYCLEGAN_FILE}: not a segmentation run; use a new run folder"
        )
    if has_checkpoint:
        # Resume: the generators come back from this run's own checkpoint.
        source = CycleGANSource(
            link["run"], Config.from_dict(link["config"]), _read_json(os.path.join(run_dir, PREPROCESSING_FILE)), ""
        )
    else:
        source = read_cyclegan_run(cyclegan_run if cyclegan_run is not None else (link or {}).get("run"))

    # Check everything before writing anything into the run folder.
    if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        config = resolve_run_config(run_dir, config)
    elif config is None:
        config = source.config
    check_segmentation_data(data_dir, config, source)
    shards = labelled_shards(data_dir)
    config = resolve_run_config(run_dir, config, write=False)
    strategy = strategy or make_strategy(config.runtime.strategy)
    batch_size = global_batch(config.segmentation.batch_size, strategy, "segmentation.batch_size",
                              config.runtime.batch_per_replica)
    chief = worker_role(strategy).is_chief  # under several workers only the chief writes
    if chief:
        resolve_run_config(run_dir, config)

    keras.utils.set_random_seed(config.runtime.seed)
    try:
        keras.mixed_precision.set_global_policy("float32")  # the generators stay float32
        with strategy.scope():
            generator_mr_to_ct, generator_ct_to_mr = _generators(source.config)
        if has_checkpoint:
            gan_step = int(link["step"])
        else:
            gan_step = _restore_generators(source, (generator_mr_to_ct, generator_ct_to_mr))
            if chief:
                atomic_write_json(link_path, {"run": source.run_dir, "step": gan_step,
                                              "config": source.config.to_dict()})
                atomic_write_json(os.path.join(run_dir, PREPROCESSING_FILE), source.preprocessing)
        policy = set_precision(config.runtime.mixed_precision)
        with strategy.scope():
            model = SynthesisSegmenter(
                builders.build_unet(config, NUM_CLASSES),
                generator_ct_to_mr=generator_ct_to_mr,
                generator_mr_to_ct=generator_mr_to_ct,
                dice_weight=config.segmentation.dice_weight,
                dice_classes=config.segmentation.dice_classes,
                ct_dropout=config.segmentation.ct_dropout,
                seed=config.runtime.seed,
                name="synthesis_segmenter",
            )
            model.compile(optimizer=builders.build_segmentation_adam(config, policy))
        s = config.segmentation
        cache_dir = os.path.join(run_dir, CACHE_DIR) if chief else tempfile.mkdtemp(prefix="mr2ct-synthesized-mr-")
        cached = []  # filled once the generators hold their trained values
        loop = TrainingLoop(
            model,
            strategy,
            dataset=lambda start: labelled_dataset(
                data_dir,
                image_size=config.data.image_size,
                batch_size=batch_size,
                shuffle_buffer=config.data.shuffle_buffer,
                seed=config.data.seed + start,
                augment=config.data.augment,
                deterministic=True,
                shards=cached,
                with_synthesized=True,
                crop_size=s.crop_size or None,
            ),
            run_dir=run_dir,
            on_summary=lambda step, samples: write_segmentation_images(model, samples),
            image_every=config.train.image_summary_every,
            progress=progress,
            **unet_loop_settings(config, model),
        )
        try:
            if loop.restore() < s.steps:  # a resume restores the generators with the U-Net
                cached += cache_synthesized_mr(
                    generator_ct_to_mr, data_dir, shards, cache_dir, cyclegan_step=gan_step,
                    image_size=config.data.image_size, echo=echo if chief and progress else None,
                )
            return loop.run(max_steps=max_steps)
        finally:
            if not chief:
                shutil.rmtree(cache_dir, ignore_errors=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def unet_loop_settings(config: Config, model) -> dict:
    """The :class:`~mr2ct.training.loop.TrainingLoop` arguments every U-Net run takes from its config:
    ``segmentation.steps`` at the constant ``segmentation.learning_rate``, its checkpoints and summaries."""
    s = config.segmentation
    return dict(
        total_steps=s.steps,
        checkpoint_objects={"optimizer": model.optimizer},
        checkpoint_every=s.checkpoint_every,
        keep_checkpoints=config.train.keep_checkpoints,
        summary_every=config.train.summary_every,
        steps_per_execution=config.train.steps_per_execution,
        jit_compile=config.runtime.xla,
        learning_rate=lambda step: s.learning_rate,
    )


def write_segmentation_images(model: SynthesisSegmenter, samples, max_images=3):
    """Image summary: CT | synthesized MR | labels | prediction, side by side in [0, 1]."""
    ct = samples["image"][:max_images]
    labels = samples["label"][:max_images]
    synthesized = samples.get("synthesized")
    inputs = model.training_inputs(ct, None if synthesized is None else synthesized[:max_images])
    prediction = tf.argmax(model.unet(inputs, training=False), axis=-1)
    scale = 1.0 / (model.unet.num_classes - 1)
    strip = tf.concat(
        [
            (inputs[..., :1] + 1.0) / 2.0,
            (inputs[..., 1:] + 1.0) / 2.0,
            tf.cast(labels[..., None], tf.float32) * scale,
            tf.cast(prediction[..., None], tf.float32) * scale,
        ],
        axis=2,
    )
    tf.summary.image("segmentation", strip, max_outputs=max_images)


@dataclasses.dataclass
class SegmentationRun:
    """A trained segmentation run, ready to segment MR slices.

    Attributes:
        model: the :class:`~mr2ct.models.SynthesisSegmenter` (U-Net and both
            generators restored); calling it on preprocessed MR slices gives
            class logits.
        config: the segmentation run's config.
        preprocessing: the CycleGAN run's preprocessing record (how MR is
            prepared for the generators).
        step: the checkpoint's step.
        cyclegan: the ``cyclegan.json`` record (run path, step, config).
    """

    model: SynthesisSegmenter
    config: Config
    preprocessing: dict
    step: int
    cyclegan: dict


def load_segmentation_run(run_dir) -> SegmentationRun:
    """Restore a segmentation run's latest checkpoint: the U-Net and the generators it was trained behind."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "segmentation run folder not found")
    link = _read_json(os.path.join(run_dir, CYCLEGAN_FILE))
    preprocessing = _read_json(os.path.join(run_dir, PREPROCESSING_FILE))
    config = resolve_run_config(run_dir, None)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise InputError(run_dir, "no checkpoint in this segmentation run folder (train it first)")
    keras.mixed_precision.set_global_policy("float32")
    generator_mr_to_ct, generator_ct_to_mr = _generators(Config.from_dict(link["config"]))
    model = SynthesisSegmenter(
        builders.build_unet(config, NUM_CLASSES),
        generator_ct_to_mr=generator_ct_to_mr,
        generator_mr_to_ct=generator_mr_to_ct,
        name="synthesis_segmenter",
    )
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step, **checkpoint_items(model=model))
    try:
        checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise Mr2ctError(
            f"{latest}: cannot restore the segmentation networks ({str(exc).splitlines()[0][:300]})"
        ) from None
    return SegmentationRun(model, config, preprocessing, int(step.numpy()), link)
