"""Training a CycleGAN run end to end: config, strategy, precision, data, loop."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from mr2ct._atomic import atomic_write_json
from mr2ct.config import Config, predated_settings
from mr2ct.errors import ConfigError
from mr2ct.models.convolution import gradient_choices, use_gradient_choices
from mr2ct.training import builders
from mr2ct.training.cluster import worker_role
from mr2ct.training.loop import LoopResult, TrainingLoop
from mr2ct.training.strategy import make_strategy, set_precision
from mr2ct.training.validation import CheckpointValidation, load_validation_slices, resolve_validation_folder

CONFIG_FILE = "config.yaml"
# Config sections a CycleGAN run does not read: changing them does not invalidate a run.
CYCLEGAN_UNUSED_SECTIONS = ("segmentation",)
# Copy of the prepared data's preprocessing record: export and predict invert it.
PREPROCESSING_FILE = "preprocessing.json"
# The gradient form each ValidConv2D shape uses (mr2ct.models.convolution.gradient_choices), written before each
# checkpoint; a resumed run uses these choices again instead of timing anew.
CONV_GRADIENTS_FILE = "conv_gradients.json"


def resolve_run_config(
    run_dir, config: Config | None, unused_sections: tuple[str, ...] = (), write: bool = True
) -> Config:
    """The config of a run folder, written there on first use.

    A new run saves ``config`` (unless ``write`` is false: a multi-worker
    run's other workers leave that to the chief). A run folder that already
    has one resumes with it; a different ``config`` is refused (naming the
    keys that differ) so a resumed run cannot silently change its settings.
    Differences only in ``unused_sections`` (sections this kind of run does
    not read, such as the segmentation settings of a CycleGAN run) are
    allowed; the saved config stays.
    """
    path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
    if os.path.exists(path):
        saved = Config.from_yaml(path, run=True)
        if config is not None and _used(config, unused_sections) != _used(saved, unused_sections):
            diff = _differences(_used(saved, unused_sections), _used(config, unused_sections))
            predates = _predated_settings(path)
            note = (f"; its {CONFIG_FILE} predates {', '.join(predates)}, so it was trained with "
                    + ", ".join(f"{k}={v!r}" for k, v in predates.items())) if predates else ""
            raise ConfigError(
                f"{path}: this run was started with other settings ({', '.join(diff)}){note}; "
                "use a new run folder, or resume without changing the config"
            )
        return saved
    if config is None:
        raise ConfigError(f"{run_dir}: no {CONFIG_FILE} here and no config given")
    if write:
        os.makedirs(run_dir, exist_ok=True)
        config.to_yaml(path)
    return config


def _predated_settings(path) -> dict[str, object]:
    """The settings the run's YAML file predates, with the values it was trained with."""
    import yaml

    with open(path) as f:
        return predated_settings(yaml.safe_load(f) or {})


def _used(config: Config, unused_sections) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in unused_sections}


def _differences(a: dict, b: dict, prefix="") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            keys += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            keys.append(f"{prefix}{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return keys


def train_cyclegan(
    data_dir,
    run_dir,
    config: Config | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    val_mr=None,
    echo=None,
) -> LoopResult:
    """Train (or resume) the GC-CycleGAN on a prepared folder.

    Args:
        data_dir: output of ``mr2ct prepare`` (TFRecord shards and manifest).
        run_dir: the run folder; created, or resumed if it has checkpoints.
        config: settings for a new run. Defaults to the run folder's saved
            config.
        max_steps: stop at this global step (the run can be resumed later).
            Defaults to the config's total steps.
        progress: print a progress line. Defaults to `True`.
        strategy: a ``tf.distribute`` strategy. Defaults to the one the
            config's ``runtime.strategy`` names. Under several workers
            (``multi_worker``) only the chief writes into ``run_dir``; every
            worker resumes from the chief's latest checkpoint.
        val_mr: a folder of held-out MR volumes (no CT needed): at every
            checkpoint the chief computes the validation signal on
            ``train.validation_slices`` of their slices
            (:mod:`mr2ct.training.validation`), writes ``validation.csv`` and
            TensorBoard scalars, and keeps the best checkpoint in
            ``best_checkpoint/``. A resumed run reuses the folder it recorded.
            Defaults to `None` (no validation).
        echo: callable printing a line per validation. Defaults to `None`.

    Returns:
        A :class:`LoopResult`.
    """
    from mr2ct.data.pipeline import unpaired_dataset

    # Check everything before waiting for a cluster; under several workers only the chief writes.
    config = resolve_run_config(run_dir, config, unused_sections=CYCLEGAN_UNUSED_SECTIONS, write=False)
    preprocessing = check_prepared_data(data_dir, config.data.image_size)
    val_mr = resolve_validation_folder(run_dir, val_mr)
    validation_slices = None
    strategy = strategy or make_strategy(config.runtime.strategy)
    batch_size = global_batch(config.data.batch_size, strategy, "data.batch_size", config.runtime.batch_per_replica)
    if worker_role(strategy).is_chief:
        if val_mr is not None:  # before anything is written: a bad folder leaves no run behind
            from mr2ct.data.preprocess import PreprocessConfig

            validation_slices = load_validation_slices(
                val_mr, PreprocessConfig.from_dict(preprocessing["config"]), config.train.validation_slices)
        resolve_run_config(run_dir, config, unused_sections=CYCLEGAN_UNUSED_SECTIONS)
        atomic_write_json(os.path.join(os.fspath(run_dir), PREPROCESSING_FILE), preprocessing)
    reuse_gradient_choices(run_dir)  # a resumed run computes its gradients as before
    keras.utils.set_random_seed(config.runtime.seed)
    policy = set_precision(config.runtime.mixed_precision)
    try:
        with strategy.scope():
            model = builders.build_cyclegan(config)
            check_coarse_size(config, model.discriminator_ct.min_input_size)
            model.compile(
                generator_optimizer=builders.build_adam(config, policy, "generator_adam"),
                discriminator_optimizer=builders.build_adam(config, policy, "discriminator_adam"),
            )
        loop = TrainingLoop(
            model,
            strategy,
            dataset=lambda start: unpaired_dataset(
                data_dir,
                image_size=config.data.image_size,
                batch_size=batch_size,
                shuffle_buffer=config.data.shuffle_buffer,
                seed=config.data.seed + start,
                augment=config.data.augment,
                crop_size=config.data.crop_size or None,
                scale_jitter=config.data.scale_jitter,
                downsample=2 if start < config.train.coarse_steps else 1,
                deterministic=True,
            ),
            data_phases=(config.train.coarse_steps,) if config.train.coarse_steps else (),
            run_dir=run_dir,
            total_steps=config.train.total_steps,
            checkpoint_objects={
                "generator_optimizer": model.generator_optimizer,
                "discriminator_optimizer": model.discriminator_optimizer,
                "pool_ct": model.pool_ct,
                "pool_mr": model.pool_mr,
            },
            checkpoint_every=config.train.checkpoint_every,
            keep_checkpoints=config.train.keep_checkpoints,
            summary_every=config.train.summary_every,
            steps_per_execution=config.train.steps_per_execution,
            jit_compile=config.runtime.xla,
            learning_rate=builders.build_schedule(config),
            on_summary=lambda step, samples: write_translation_images(model, samples),
            before_save=lambda step: _write_gradient_choices(run_dir),
            after_save=None if validation_slices is None else CheckpointValidation(
                run_dir, model, validation_slices, config.train.validation_signal, echo=echo).after_save,
            image_every=config.train.image_summary_every,
            progress=progress,
        )
        return loop.run(max_steps=max_steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def check_coarse_size(config: Config, min_size: int) -> None:
    """Refuse coarse steps (``train.coarse_steps``) on images smaller than the discriminators take."""
    half = config.data.train_size // 2
    if config.train.coarse_steps and half < min_size:
        raise ConfigError(
            f"train.coarse_steps trains on {half}x{half} images (half of {config.data.train_size}), smaller "
            f"than the discriminators' smallest input ({min_size}x{min_size} with model.discriminator_layers="
            f"{config.model.discriminator_layers}); use larger slices or crops, or train.coarse_steps=0"
        )


def check_prepared_data(data_dir, image_size: int) -> dict:
    """Check the prepared data fits the config; returns its preprocessing record (to copy into the run)."""
    from mr2ct.data.prepare import read_manifest

    manifest = read_manifest(data_dir)
    if manifest["image_size"] != image_size:
        raise ConfigError(
            f"{data_dir}: slices were prepared at {manifest['image_size']}x{manifest['image_size']} but "
            f"data.image_size is {image_size}; prepare again with --image-size {image_size} "
            f"or train with --set data.image_size={manifest['image_size']}"
        )
    return manifest["preprocessing"]


def global_batch(batch_size: int, strategy: tf.distribute.Strategy, key: str, per_replica: bool = True) -> int:
    """The global batch a step of ``strategy`` takes for the batch setting ``key``.

    With ``per_replica`` (``runtime.batch_per_replica``, every preset) the
    setting is each replica's batch and the global batch is that times the
    number of replicas in sync (GPUs of all workers). Otherwise the setting
    is the global batch itself, and one that cannot be split evenly over the
    replicas is refused.
    """
    replicas = strategy.num_replicas_in_sync
    if per_replica:
        return batch_size * replicas
    if batch_size % replicas:
        raise ConfigError(
            f"{key} is the global batch (runtime.batch_per_replica is false), split over {replicas} replicas, "
            f"and must be a multiple of {replicas}. Received: {batch_size}; use --set "
            f"{key}={max(replicas, batch_size - batch_size % replicas)} or --set runtime.batch_per_replica=true"
        )
    return batch_size


def _write_gradient_choices(run_dir):
    atomic_write_json(os.path.join(os.fspath(run_dir), CONV_GRADIENTS_FILE), gradient_choices())


def reuse_gradient_choices(run_dir) -> None:
    """Install the convolution gradients a run chose (``conv_gradients.json``), so that a resume reproduces it."""
    path = os.path.join(os.fspath(run_dir), CONV_GRADIENTS_FILE)
    if not os.path.exists(path):
        return
    try:
        with open(path) as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the run's convolution gradient choices ({exc}); "
                          "delete the file to time them again") from None
    try:
        use_gradient_choices(records, source=path)
    except ValueError as exc:
        raise ConfigError(f"{exc}; delete the file to time them again") from None


def write_translation_images(model, samples, max_images=3):
    """Image summaries: MR, synthesized CT, reconstructed MR, and CT, synthesized MR, reconstructed CT."""
    mr = samples["mr"][:max_images]
    ct = samples["ct"][:max_images]
    fake_ct = model.generator_mr_to_ct(mr, training=False)
    fake_mr = model.generator_ct_to_mr(ct, training=False)
    rows = {
        "mr_to_ct": [mr, fake_ct, model.generator_ct_to_mr(fake_ct, training=False)],
        "ct_to_mr": [ct, fake_mr, model.generator_mr_to_ct(fake_mr, training=False)],
    }
    for name, images in rows.items():
        # real | translated | reconstructed, side by side, from [-1, 1] to [0, 1]
        strip = tf.concat([tf.cast(i, tf.float32) for i in images], axis=2)
        tf.summary.image(name, (strip + 1.0) / 2.0, max_outputs=max_images)
