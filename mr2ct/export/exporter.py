"""Export a trained run for TF Serving, Keras ``model.predict`` and ``mr2ct predict``.

Layout (TF Serving's): ``<out>/<name>/<version>/`` holds

* the SavedModel (``saved_model.pb``, ``variables/``) with signatures
  ``serving_default`` (= ``mr_to_ct``: input ``mr``, output ``ct_hu``) and
  ``ct_to_mr`` (input ``ct_hu``, output ``mr``);
* ``mr_to_ct.keras`` and ``ct_to_mr.keras`` for ``keras.models.load_model``
  (``import mr2ct.models`` first so its layers are registered);
* ``mr2ct_export.json``: the contract and every preprocessing parameter.

With a segmentation run (``segmentation=`` / ``mr2ct export --segmentation``,
or a segmentation run given as the run itself) the same SavedModel also has

* ``segment``: input ``mr``, output ``labels`` (int32 ``(n, S, S)``, the
  argmax of the U-Net's logits on ``concat([G_CT(mr), mr])``);
* ``segment_probabilities``: input ``mr``, outputs ``labels`` and
  ``probabilities`` (float32 ``(n, S, S, C)``, the softmax); a separate
  signature because REST answers carry every output, and the probabilities
  are C times the labels' size;

plus ``segmenter.keras`` (``predict`` gives ``{"labels", "probabilities"}``)
and, in ``mr2ct_export.json``, a ``segmentation`` section with the label
table (:data:`mr2ct.labels.LABELS`). A segmentation run stores the
generators it was trained behind; ``segment`` always uses those. When they
differ from the exported CycleGAN's (the CycleGAN trained on after the
segmentation run started, or another run), ``serving_default`` and
``segment`` synthesize with different generators, and the JSON says so
(``segmentation.shares_serving_default_generator``).

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

from mr2ct._atomic import atomic_directory, read_json
from mr2ct.config import Config
from mr2ct.errors import ConfigError, InputError, Mr2ctError
from mr2ct.models import LabelHead
from mr2ct.training import builders
from mr2ct.training.best_checkpoint import find_checkpoint
from mr2ct.training.segmentation import CYCLEGAN_FILE, load_segmentation_run
from mr2ct.training.tracking import checkpoint_items
from mr2ct.training.trainer import PREPROCESSING_FILE, resolve_run_config

EXPORT_FILE = "mr2ct_export.json"
FORMAT_VERSION = 1
SEGMENT_SIGNATURE = "segment"
SEGMENT_PROBABILITIES_SIGNATURE = "segment_probabilities"
SEGMENTER_FILE = "segmenter.keras"


@dataclasses.dataclass
class ExportResult:
    """Where an export went.

    Attributes:
        path: the version folder.
        version: its version number.
        step: checkpoint step of the exported run.
        segmentation_step: checkpoint step of the segmentation run, or
            `None` for an export without segmentation.
        shares_generator: whether ``segment`` synthesizes with the same
            G_CT as ``serving_default`` (`None` without segmentation).
    """

    path: str
    version: int
    step: int
    segmentation_step: int | None = None
    shares_generator: bool | None = None


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


def segmenter_model(generator_mr_to_ct, unet, image_size: int) -> keras.Model:
    """A Keras model: preprocessed MR slices in, ``{"labels", "probabilities"}`` out.

    The U-Net sees ``concat([G_CT(mr), mr])`` (channel 0 CT-like, channel 1
    MR-like), as :class:`~mr2ct.models.SynthesisSegmenter` does at test time.
    """
    mr = keras.Input((image_size, image_size, 1), name="mr")
    x = keras.layers.Concatenate(axis=-1, name="synthesized_ct_and_mr")([generator_mr_to_ct(mr), mr])
    labels, probabilities = LabelHead(name="label_head")(unet(x))
    return keras.Model(mr, {"labels": labels, "probabilities": probabilities}, name="segmenter")


def is_segmentation_run(run_dir) -> bool:
    """Whether ``run_dir`` is a segmentation run folder (it records its CycleGAN run)."""
    return os.path.exists(os.path.join(os.fspath(run_dir), CYCLEGAN_FILE))


def _same_weights(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and (x == y).all() for x, y in zip(wa, wb))


def check_segmentation_fits(seg_dir, image_size: int, preprocessing: dict) -> None:
    """Refuse a segmentation run whose slices or MR preprocessing differ from the export's.

    Reads only the run folder's small files, so it fails before any network is built.
    """
    seg_dir = os.fspath(seg_dir)
    if not os.path.isdir(seg_dir):
        raise InputError(seg_dir, "segmentation run folder not found")
    if not is_segmentation_run(seg_dir):
        raise InputError(
            seg_dir, f"not a segmentation run folder (no {CYCLEGAN_FILE}; train one with `mr2ct train-seg`)"
        )
    seg_size = resolve_run_config(seg_dir, None).data.image_size
    if seg_size != image_size:
        raise ConfigError(
            f"{seg_dir}: the segmentation run works on {seg_size}x{seg_size} slices but the CycleGAN run on "
            f"{image_size}x{image_size}; export it with the CycleGAN run it was trained behind"
        )
    seg_preprocessing = read_json(os.path.join(seg_dir, PREPROCESSING_FILE),
                                  "missing: the segmentation run has no preprocessing record",
                                  "corrupt preprocessing record")
    for key in ("config", "ct_intensity"):
        if seg_preprocessing.get(key) != preprocessing.get(key):
            raise ConfigError(
                f"{seg_dir}: the segmentation run's preprocessing record ({key}) differs from the CycleGAN "
                "run's, so one export cannot serve both; export it with the CycleGAN run it was trained behind"
            )


def _label_table(num_classes: int) -> dict:
    from mr2ct.labels import LABELS

    if num_classes != len(LABELS):
        raise Mr2ctError(f"the U-Net has {num_classes} classes but the label table {len(LABELS)}")
    return {str(value): name for value, name in sorted(LABELS.items())}


def load_run_generators(run_dir, step: int | None = None, best: bool = False):
    """The two generators of a run, restored from a checkpoint, and its step.

    The latest checkpoint, or the one at ``step``, or the kept best one
    (``best``; :func:`~mr2ct.training.best_checkpoint.find_checkpoint`).
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "run folder not found")
    config = resolve_run_config(run_dir, None)
    latest = find_checkpoint(run_dir, step=step, best=best)
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


def export_run(
    run_dir, out_dir="saved_models", name="mr2ct", version: int | None = None, segmentation=None,
    step: int | None = None, best: bool = False,
) -> ExportResult:
    """Export a checkpoint of ``run_dir`` (the latest by default) as ``out_dir/name/version``.

    Args:
        run_dir: a CycleGAN training run folder, or a segmentation run folder
            (then ``serving_default`` and ``ct_to_mr`` use the generators it
            stores, and ``segment`` is added).
        out_dir: the folder TF Serving serves. Defaults to `"saved_models"`.
        name: model name (the TF Serving model). Defaults to `"mr2ct"`.
        version: version number; must exceed every existing version.
            Defaults to one more than the highest existing version.
        segmentation: a segmentation run folder whose U-Net is added as the
            ``segment`` signature and ``segmenter.keras``; it must work on the
            CycleGAN run's slice size and MR preprocessing. Only with a
            CycleGAN ``run_dir``. Defaults to `None` (no segmentation).
        step: export the CycleGAN run's checkpoint at this step. Defaults to
            `None` (the latest).
        best: export the CycleGAN run's best checkpoint by its validation
            signal (a run trained with ``--val-mr``). Defaults to `False`.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise Mr2ctError(f"model name must be letters, digits, '_', '-' or '.'. Received: {name!r}")
    if not os.path.isdir(run_dir):
        raise InputError(run_dir, "run folder not found")
    from_segmentation_run = is_segmentation_run(run_dir)
    if from_segmentation_run and (step is not None or best):
        raise InputError(run_dir, "is a segmentation run, which exports its latest checkpoint; --step and --best "
                                  "choose among a CycleGAN run's checkpoints")
    if from_segmentation_run and segmentation is not None:
        raise InputError(
            run_dir, "is a segmentation run; export it alone, or give its CycleGAN run with --segmentation"
        )
    preprocessing = read_json(os.path.join(os.fspath(run_dir), PREPROCESSING_FILE),
                              "missing: the run has no preprocessing record", "corrupt preprocessing record")

    seg = None
    if from_segmentation_run:
        seg = load_segmentation_run(run_dir)
        g_ct, g_mr = seg.model.generator_mr_to_ct, seg.model.generator_ct_to_mr
        config = Config.from_dict(seg.cyclegan["config"])
        step = seg.step
        check_segmentation_fits(run_dir, config.data.image_size, preprocessing)
    else:
        if segmentation is not None:
            check_segmentation_fits(segmentation, resolve_run_config(run_dir, None).data.image_size, preprocessing)
        g_ct, g_mr, config, step = load_run_generators(run_dir, step=step, best=best)
        if segmentation is not None:
            seg = load_segmentation_run(segmentation)

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
    segmenter = shares_generator = None
    if seg is not None:
        _label_table(seg.model.unet.num_classes)  # refuse a U-Net the label table does not describe, early
        shares_generator = seg.model.generator_mr_to_ct is g_ct or _same_weights(seg.model.generator_mr_to_ct, g_ct)
        # Equal weights: one generator in the SavedModel, not two copies.
        seg_g_ct = g_ct if shares_generator else seg.model.generator_mr_to_ct
        segmenter = segmenter_model(seg_g_ct, seg.model.unet, size)
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
        if segmenter is not None:
            archive.track(segmenter)
            archive.add_endpoint(
                SEGMENT_SIGNATURE,
                lambda mr: {"labels": segmenter(mr, training=False)["labels"]},
                input_signature=[spec("mr")],
            )
            archive.add_endpoint(
                SEGMENT_PROBABILITIES_SIGNATURE,
                lambda mr: dict(segmenter(mr, training=False)),
                input_signature=[spec("mr")],
            )
        archive.write_out(tmp, verbose=False)
        mr_to_ct.save(os.path.join(tmp, "mr_to_ct.keras"))
        ct_to_mr.save(os.path.join(tmp, "ct_to_mr.keras"))
        mr_spec = {"dtype": "float32", "shape": [-1, size, size, 1], "units": "MR preprocessed as in training, [-1, 1]"}
        info = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "source_run": os.path.abspath(os.fspath(run_dir)),
            "step": step,
            "image_size": size,
            "signatures": {
                "serving_default": {
                    "inputs": {"mr": mr_spec},
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
            "segmentation": None,
        }
        if segmenter is not None:
            segmenter.save(os.path.join(tmp, SEGMENTER_FILE))
            info["segmentation"] = _segmentation_info(
                seg, shares_generator, size, run_dir if from_segmentation_run else segmentation)
            labels = {"dtype": "int32", "shape": [-1, size, size], "units": "label (segmentation.labels)"}
            probabilities = {"dtype": "float32", "shape": [-1, size, size, seg.model.unet.num_classes],
                             "units": "softmax over the labels"}
            info["signatures"][SEGMENT_SIGNATURE] = {"inputs": {"mr": mr_spec}, "outputs": {"labels": labels}}
            info["signatures"][SEGMENT_PROBABILITIES_SIGNATURE] = {
                "inputs": {"mr": mr_spec}, "outputs": {"labels": labels, "probabilities": probabilities}}
            info["keras_models"]["segmenter"] = SEGMENTER_FILE
        with open(os.path.join(tmp, EXPORT_FILE), "w") as f:
            json.dump(info, f, indent=2)
    return ExportResult(
        path=target,
        version=version,
        step=step,
        segmentation_step=None if seg is None else seg.step,
        shares_generator=shares_generator,
    )


def _segmentation_info(seg, shares_generator: bool, size: int, seg_dir) -> dict:
    """The ``segmentation`` section of ``mr2ct_export.json``."""
    if shares_generator:
        note = "segment synthesizes CT with the same generator as serving_default"
    else:
        note = (
            "segment synthesizes CT with the segmentation run's own stored generator (the one its U-Net was "
            f"trained behind: {seg.cyclegan['run']} at step {seg.cyclegan['step']}), which differs from "
            "serving_default's"
        )
    return {
        "signatures": [SEGMENT_SIGNATURE, SEGMENT_PROBABILITIES_SIGNATURE],
        "keras_model": SEGMENTER_FILE,
        "source_run": os.path.abspath(os.fspath(seg_dir)),
        "step": seg.step,
        "cyclegan": {"run": seg.cyclegan["run"], "step": seg.cyclegan["step"]},
        "shares_serving_default_generator": bool(shares_generator),
        "note": note,
        "image_size": size,
        "num_classes": seg.model.unet.num_classes,
        "labels": _label_table(seg.model.unet.num_classes),
        "config": seg.config.to_dict(),
    }


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
