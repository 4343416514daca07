"""Export a trained run for TF Serving, Keras ``model.predict`` and ``mr2ct predict``.

Layout (TF Serving's): ``<out>/<name>/<version>/`` holds

* the SavedModel (``saved_model.pb``, ``variables/``) with signatures
  ``serving_default`` (= ``mr_to_ct``: input ``mr``, output ``ct_hu``) and
  ``ct_to_mr`` (input ``ct_hu``, output ``mr``);
* ``mr_to_ct.keras`` and ``ct_to_mr.keras`` for ``keras.models.load_model``
  (``import mr2ct`` first so its layers are registered);
* ``mr2ct_export.json``: the contract and every preprocessing parameter.

The contract, shared by the CLI, Keras and Serving: ``mr`` is a float32 batch
``(n, S, S, 1)`` of MR slices preprocessed as in training (N4, field of view,
resampling to S x S, per-volume percentile scaling to [-1, 1]); ``ct_hu`` is
float32 ``(n, S, S, 1)`` in Hounsfield units. The HU mapping (the inverse of
the training CT window) is inside the models, so all three give the same
numbers.

An export is written to a hidden temporary folder and renamed into place, so
a failed export leaves nothing TF Serving would load, and versions only
increase.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import keras
import tensorflow as tf

from mr2ct._atomic import atomic_directory
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.training import builders
from mr2ct.training.tracking import checkpoint_items
from mr2ct.training.trainer import CONFIG_FILE, PREPROCESSING_FILE

EXPORT_FILE = "mr2ct_export.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class ExportResult:
    path: str
    version: int
    step: int


def hu_scale(hu_min: float, hu_max: float) -> tuple[float, float]:
    """``(scale, offset)`` mapping [-1, 1] to [hu_min, hu_max]."""
    return (hu_max - hu_min) / 2.0, (hu_max + hu_min) / 2.0


def mr_to_ct_hu_model(generator, image_size: int, hu_min: float, hu_max: float) -> keras.Model:
    """A Keras model: preprocessed MR slices in, synthesized CT in HU out."""
    scale, offset = hu_scale(hu_min, hu_max)
    mr = keras.Input((image_size, image_size, 1), name="mr")
    ct = keras.layers.Rescaling(scale, offset, name="ct_hu")(generator(mr))
    return keras.Model(mr, ct, name="mr_to_ct")


def ct_hu_to_mr_model(generator, image_size: int, hu_min: float, hu_max: float) -> keras.Model:
    """A Keras model: CT slices in HU in (clipped to the window), synthesized MR in [-1, 1] out."""
    scale, offset = hu_scale(hu_min, hu_max)
    ct = keras.Input((image_size, image_size, 1), name="ct_hu")
    x = keras.layers.Rescaling(1.0 / scale, -offset / scale, name="ct_scaled")(ct)
    x = keras.layers.Activation("hard_tanh", name="ct_clipped")(x)  # clip to [-1, 1]
    return keras.Model(ct, generator(x), name="ct_to_mr")


def load_run_generators(run_dir):
    """The two generators of a run, restored from its latest checkpoint, and the step."""
    from mr2ct.training.trainer import resolve_run_config

    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "run folder not found")
    config = resolve_run_config(run_dir, None)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise InputError(run_dir, "no checkpoint in this run folder (train it first)")
    keras.mixed_precision.set_global_policy("float32")
    model = builders.build_cyclegan(config)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step, **checkpoint_items(model=model))
    try:
        checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise Mr2ctError(f"{latest}: cannot restore the run's networks ({str(exc).splitlines()[0][:300]})") from None
    return model.generator_mr_to_ct, model.generator_ct_to_mr, config, int(step.numpy())


def existing_versions(model_dir) -> list[int]:
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if re.fullmatch(r"\d+", d))


def export_run(run_dir, out_dir="saved_models", name="mr2ct", version: int | None = None) -> ExportResult:
    """Export the latest checkpoint of ``run_dir`` as ``out_dir/name/version``.

    Args:
        run_dir: a training run folder.
        out_dir: the folder TF Serving serves. Defaults to `"saved_models"`.
        name: model name (the TF Serving model). Defaults to `"mr2ct"`.
        version: version number; must exceed every existing version.
            Defaults to one more than the highest existing version.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise Mr2ctError(f"model name must be letters, digits, '_', '-' or '.'. Received: {name!r}")
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "run folder not found")
    preprocessing_path = os.path.join(os.fspath(run_dir), PREPROCESSING_FILE)
    try:
        with open(preprocessing_path) as f:
            preprocessing = json.load(f)
    except FileNotFoundError:
        raise InputError(preprocessing_path, "missing: the run has no preprocessing record") from None
    g_ct, g_mr, config, step = load_run_generators(run_dir)

    model_dir = os.path.join(os.fspath(out_dir), name)
    versions = existing_versions(model_dir)
    if version is None:
        version = (versions[-1] + 1) if versions else 1
    elif versions and version <= versions[-1]:
        raise Mr2ctError(
            f"{model_dir}: version {version} is not above the latest existing version {versions[-1]}"
        )
    size = config.data.image_size
    hu_min, hu_max = preprocessing["ct_intensity"]["hu_min"], preprocessing["ct_intensity"]["hu_max"]
    mr_to_ct = mr_to_ct_hu_model(g_ct, size, hu_min, hu_max)
    ct_to_mr = ct_hu_to_mr_model(g_mr, size, hu_min, hu_max)
    target = os.path.join(model_dir, str(version))

    with atomic_directory(target) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(mr_to_ct)
        archive.track(ct_to_mr)
        spec = lambda key: tf.TensorSpec((None, size, size, 1), tf.float32, name=key)  # noqa: E731
        archive.add_endpoint(
            "serving_default", lambda mr: {"ct_hu": mr_to_ct(mr, training=False)}, input_signature=[spec("mr")]
        )
        archive.add_endpoint(
            "ct_to_mr", lambda ct_hu: {"mr": ct_to_mr(ct_hu, training=False)}, input_signature=[spec("ct_hu")]
        )
        archive.write_out(tmp, verbose=False)
        mr_to_ct.save(os.path.join(tmp, "mr_to_ct.keras"))
        ct_to_mr.save(os.path.join(tmp, "ct_to_mr.keras"))
        info = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "source_run": os.path.abspath(os.fspath(run_dir)),
            "step": step,
            "image_size": size,
            "signatures": {
                "serving_default": {
                    "inputs": {"mr": {"dtype": "float32", "shape": [-1, size, size, 1],
                                      "units": "MR preprocessed as in training, [-1, 1]"}},
                    "outputs": {"ct_hu": {"dtype": "float32", "shape": [-1, size, size, 1], "units": "HU"}},
                },
                "ct_to_mr": {
                    "inputs": {"ct_hu": {"dtype": "float32", "shape": [-1, size, size, 1], "units": "HU"}},
                    "outputs": {"mr": {"dtype": "float32", "shape": [-1, size, size, 1], "units": "[-1, 1]"}},
                },
            },
            "keras_models": {"mr_to_ct": "mr_to_ct.keras", "ct_to_mr": "ct_to_mr.keras"},
            "preprocessing": preprocessing,
            "config": config.to_dict(),
        }
        with open(os.path.join(tmp, EXPORT_FILE), "w") as f:
            json.dump(info, f, indent=2)
    return ExportResult(path=target, version=version, step=step)


def resolve_export(model_path, version: int | None = None) -> tuple[str, dict]:
    """The version folder of an export and its ``mr2ct_export.json``.

    ``model_path`` is ``saved_models/<name>`` (latest version, or ``version``)
    or ``saved_models/<name>/<version>``.
    """
    model_path = os.fspath(model_path)
    if not os.path.isdir(model_path):
        raise InputError(model_path, "model folder not found")
    if not os.path.exists(os.path.join(model_path, EXPORT_FILE)):
        versions = existing_versions(model_path)
        if not versions:
            raise InputError(model_path, f"no exported version here (expected <version>/{EXPORT_FILE})")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise InputError(model_path, f"version {version} not found; available: {versions}")
        model_path = os.path.join(model_path, str(version))
    info_path = os.path.join(model_path, EXPORT_FILE)
    try:
        with open(info_path) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise InputError(model_path, f"not an mr2ct export (no {EXPORT_FILE})") from None
    except json.JSONDecodeError as exc:
        raise InputError(info_path, f"corrupt export description ({exc})") from None
    return model_path, info
