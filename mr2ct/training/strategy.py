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
        devices: device names for ``"mirrored"``, e.g. ``["CPU:0", "CPU:1"]``,
            and the devices ``"auto"`` chooses among (it mirrors over them if
            there are two or more). Defaults to `None` (all visible GPUs).

    A process gets one strategy per kind and device list: strategies made one
    after another (several runs in one process, as ``mr2ct experiment`` does)
    would number their collective all-reduces from the same start, and
    TensorFlow would match an all-reduce with an earlier one of another shape.
    """
    kind = StrategyKind(kind)
    if kind is StrategyKind.AUTO:
        if devices is None:
            devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        kind = StrategyKind.MIRRORED if len(devices) > 1 else StrategyKind.DEFAULT
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


# CPU flags that decide the precision (amx_bf16) or explain a benchmark's numbers.
CPU_FLAGS_THAT_MATTER = ("avx512f", "avx512_bf16", "amx_bf16")


def cpu_info(path="/proc/cpuinfo") -> dict:
    """The CPU's ``vendor``, ``model`` name and all its ``flags`` (a sorted list), from ``path``.

    Reads the first processor of a Linux ``/proc/cpuinfo``; where there is no
    such file the three are empty. ``important_flags`` lists those of
    ``CPU_FLAGS_THAT_MATTER`` the CPU has.
    """
    fields = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break  # the first processor only
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = sorted(set(fields.get("flags", "").split()))
    return {
        "vendor": fields.get("vendor_id", ""),
        "model": fields.get("model name", ""),
        "flags": flags,
        "important_flags": [flag for flag in CPU_FLAGS_THAT_MATTER if flag in flags],
    }


def resolve_precision(mode: MixedPrecision | str, gpus=None, cpu_flags=None) -> str:
    """The Keras dtype policy name for ``mode`` on this machine.

    ``"auto"`` is ``mixed_float16`` (with loss scaling, see
    :func:`wrap_optimizer`) where a GPU is visible, ``mixed_bfloat16`` on a
    CPU with AMX (``amx_bf16`` among its flags: there bfloat16 steps took a
    third of the float32 time), and ``float32`` on other CPUs (without AMX
    bfloat16 was slower than float32); ``"off"`` is ``float32``.

    Args:
        mode: a :class:`~mr2ct.config.MixedPrecision` value.
        gpus: the visible GPUs. Defaults to `None` (the logical GPU devices
            TensorFlow sees).
        cpu_flags: the CPU's flags. Defaults to `None` (read from
            ``/proc/cpuinfo``, see :func:`cpu_info`).
    """
    mode = MixedPrecision(mode)
    if mode is MixedPrecision.AUTO:
        if gpus is None:
            gpus = tf.config.list_logical_devices("GPU")
        if cpu_flags is None and not gpus:
            cpu_flags = cpu_info()["flags"]
        if gpus:
            mode = MixedPrecision.FLOAT16
        elif "amx_bf16" in set(cpu_flags):
            mode = MixedPrecision.BFLOAT16
        else:
            mode = MixedPrecision.OFF
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
