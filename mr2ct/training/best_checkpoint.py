"""The checkpoint a run keeps beside its latest ones, and how export finds any checkpoint of a run.

A run trained with a validation signal (``mr2ct train --val-mr``) copies the
checkpoint with the best signal into ``<run>/best_checkpoint/`` (its files,
a ``checkpoint`` state file so ``tf.train.latest_checkpoint`` reads the
folder, and ``best.json`` with the step and the signals). The copy is made
in a temporary folder and swapped in by renames, so a crash leaves the
previous best, never half of one. ``checkpoints/`` keeps the latest
``train.keep_checkpoints`` as before; the best one survives their rotation.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from mr2ct._atomic import atomic_write_json, read_json
from mr2ct.errors import InputError

BEST_DIR = "best_checkpoint"
BEST_FILE = "best.json"
CHECKPOINTS_DIR = "checkpoints"


def _checkpoint_files(checkpoint_path: str) -> list[str]:
    return sorted(glob.glob(glob.escape(checkpoint_path) + ".index")
                  + glob.glob(glob.escape(checkpoint_path) + ".data-*"))


def keep_best_checkpoint(run_dir, checkpoint_path: str, step: int, info: dict) -> str:
    """Copy ``checkpoint_path`` (e.g. ``run/checkpoints/ckpt-1500``) to ``run/best_checkpoint/``; returns it."""
    run_dir = os.fspath(run_dir)
    files = _checkpoint_files(checkpoint_path)
    if not files:
        raise InputError(checkpoint_path, "checkpoint files not found")
    target = os.path.join(run_dir, BEST_DIR)
    tmp = tempfile.mkdtemp(dir=run_dir, prefix=f".{BEST_DIR}.", suffix=".partial")
    try:
        for f in files:
            shutil.copy2(f, tmp)
        name = os.path.basename(checkpoint_path)
        with open(os.path.join(tmp, "checkpoint"), "w", encoding="utf-8") as f:
            f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
        atomic_write_json(os.path.join(tmp, BEST_FILE), {"step": int(step), "checkpoint": name, **info})
        old = None
        if os.path.exists(target):
            old = tempfile.mkdtemp(dir=run_dir, prefix=f".{BEST_DIR}.", suffix=".old")
            os.rename(target, os.path.join(old, BEST_DIR))
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(target, os.path.basename(checkpoint_path))


def best_checkpoint(run_dir) -> tuple[str, dict] | None:
    """``(checkpoint path, best.json)`` of a run's kept best checkpoint, or `None` if it has none."""
    folder = os.path.join(os.fspath(run_dir), BEST_DIR)
    path = os.path.join(folder, BEST_FILE)
    if not os.path.exists(path):
        return None
    info = read_json(path, "missing", "corrupt best-checkpoint record")
    checkpoint = os.path.join(folder, info["checkpoint"])
    if not _checkpoint_files(checkpoint):
        raise InputError(folder, f"best.json names {info['checkpoint']} but its files are missing")
    return checkpoint, info


def available_steps(run_dir) -> list[int]:
    """The steps of every checkpoint a run holds, latest ones and the best one."""
    steps = set()
    for folder in (CHECKPOINTS_DIR, BEST_DIR):
        for index in glob.glob(os.path.join(glob.escape(os.fspath(run_dir)), folder, "ckpt-*.index")):
            match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
            if match:
                steps.add(int(match.group(1)))
    return sorted(steps)


def find_checkpoint(run_dir, step: int | None = None, best: bool = False) -> str | None:
    """The checkpoint path of a run: its latest (default), the one at ``step``, or the kept best one.

    Returns `None` for the latest of a run without checkpoints.

    Raises:
        InputError: ``best`` and the run kept none (it was trained without
            ``--val-mr``), or no checkpoint of the run is at ``step`` (the
            message lists the steps there are).
    """
    import tensorflow as tf

    run_dir = os.fspath(run_dir)
    if best and step is not None:
        raise ValueError("give step or best, not both")
    if best:
        found = best_checkpoint(run_dir)
        if found is None:
            raise InputError(run_dir, f"no {BEST_DIR}/ in this run: it keeps a best checkpoint only when trained "
                                      "with --val-mr")
        return found[0]
    if step is None:
        return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS_DIR))
    for folder in (CHECKPOINTS_DIR, BEST_DIR):
        path = os.path.join(run_dir, folder, f"ckpt-{int(step)}")
        if _checkpoint_files(path):
            return path
    steps = available_steps(run_dir)
    raise InputError(run_dir, f"no checkpoint at step {step}; this run holds steps {steps or 'none'}")
