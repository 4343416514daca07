"""Distribution strategy and numeric precision for a run."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from mr2ct.config import MixedPrecision, StrategyKind
from mr2ct.errors import ConfigError


def make_strategy(kind: StrategyKind | str = StrategyKind.AUTO, devices=None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for a run.

    Args:
        kind: ``"auto"`` (MirroredStrategy over the GPUs if there are two or
            more, else the default strategy), ``"default"``, ``"mirrored"``
            (all GPUs, or the CPU), or ``"multi_worker"``
            (MultiWorkerMirroredStrategy; the cluster comes from the
            ``TF_CONFIG`` environment variable). Defaults to `"auto"`.
        devices: device names for ``"mirrored"``, e.g. ``["CPU:0", "CPU:1"]``.
            Defaults to `None` (all visible GPUs).

    A process gets one strategy per kind and device list: strategies made one
    after another (several runs in one process, as ``mr2ct experiment`` does)
    would number their collective all-reduces from the same start, and
    TensorFlow would match an all-reduce with an earlier one of another shape.
    """
    kind = StrategyKind(kind)
    if kind is StrategyKind.AUTO:
        kind = StrategyKind.MIRRORED if len(tf.config.list_logical_devices("GPU")) > 1 else StrategyKind.DEFAULT
    if kind is StrategyKind.DEFAULT:
        return tf.distribute.get_strategy()
    key = (kind, tuple(devices) if devices else None)
    if key not in _STRATEGIES:
        if kind is StrategyKind.MIRRORED:
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices)
        else:
            if "TF_CONFIG" in os.environ:
                try:
                    json.loads(os.environ["TF_CONFIG"])
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


_STRATEGIES: dict = {}


def resolve_precision(mode: MixedPrecision | str) -> str:
    """The Keras dtype policy name for ``mode`` on this machine.

    ``"auto"`` is ``mixed_float16`` where a GPU is visible (with loss
    scaling) and ``mixed_bfloat16`` on CPU; ``"off"`` is ``float32``.
    """
    mode = MixedPrecision(mode)
    if mode is MixedPrecision.AUTO:
        mode = MixedPrecision.FLOAT16 if tf.config.list_logical_devices("GPU") else MixedPrecision.BFLOAT16
    return {
        MixedPrecision.OFF: "float32",
        MixedPrecision.FLOAT16: "mixed_float16",
        MixedPrecision.BFLOAT16: "mixed_bfloat16",
    }[mode]


def set_precision(mode: MixedPrecision | str) -> str:
    """Set the global Keras dtype policy for ``mode``; returns the policy name."""
    policy = resolve_precision(mode)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def wrap_optimizer(optimizer, policy: str):
    """``optimizer`` with dynamic loss scaling when ``policy`` is ``mixed_float16``."""
    if policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
