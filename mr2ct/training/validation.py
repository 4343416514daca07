"""A validation signal without ground truth: how a CycleGAN translates held-out MR, judged from the MR alone.

Unpaired data has no true CT for a held-out MR, so which checkpoint is good
cannot be read off an error in HU. What can be computed from the MR alone, on
a fixed set of held-out slices (``mr2ct train --val-mr FOLDER``):

* ``mi_mr_sct``: mutual information of MR and synthesized CT inside the body
  (mean over slices; the paper's similarity), higher is better;
* ``gc_abs_mr_sct``: gradient correlation of MR and synthesized CT in the
  authors' form (absolute central differences, the GC loss's own measure),
  higher is better;
* ``cycle_l1_mr``: mean absolute error of the reconstructed MR
  ``G_MR(G_CT(mr))`` against the MR inside the body, in [-1, 1] units, lower
  is better.

:class:`CheckpointValidation` computes them at every checkpoint of a run,
writes ``validation.csv`` and TensorBoard scalars (``logs/validation``), and
keeps the checkpoint with the best value of the chosen signal as
``best_checkpoint/`` (:mod:`mr2ct.training.best_checkpoint`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import numpy as np

from mr2ct._atomic import atomic_write_json, atomic_write_text, read_json
from mr2ct.errors import ConfigError, InputError
from mr2ct.training.best_checkpoint import keep_best_checkpoint

# signal name -> whether higher is better
SIGNALS = {"gc_abs_mr_sct": True, "mi_mr_sct": True, "cycle_l1_mr": False}
# what train.validation_signal may say, and the column it means
SIGNAL_NAMES = {"gc": "gc_abs_mr_sct", "mi": "mi_mr_sct", "cycle": "cycle_l1_mr"}
VALIDATION_CSV = "validation.csv"
VALIDATION_RECORD = "validation.json"


@dataclasses.dataclass
class ValidationSlices:
    """Fixed held-out MR slices, preprocessed as training MR is.

    Attributes:
        slices: float32 ``[K, S, S]`` in [-1, 1].
        body: bool ``[K, S, S]``, the body in each slice.
        sources: the volume each slice comes from.
        folder: the folder they were read from (absolute).
    """

    slices: np.ndarray
    body: np.ndarray
    sources: list[str]
    folder: str


def body_of_slices(mr_slices: np.ndarray) -> np.ndarray:
    """The body in MR slices in [-1, 1]: above a tenth of the robust maximum, holes filled (as ``mr2ct evaluate``)."""
    from mr2ct.evaluation.evaluate import body_mask_from_mr

    return body_mask_from_mr(np.asarray(mr_slices, np.float64) + 1.0)


def load_validation_slices(mr_dir, preprocess_config, count: int = 32) -> ValidationSlices:
    """``count`` slices spread evenly over the body-holding slices of every MR volume in ``mr_dir``.

    Raises:
        InputError: the folder is missing, holds no volume, or a volume cannot be read or preprocessed.
    """
    from mr2ct.data.io import list_volumes, read_volume
    from mr2ct.data.preprocess import preprocess_mr

    mr_dir = os.path.abspath(os.fspath(mr_dir))
    if not os.path.isdir(mr_dir):
        raise InputError(mr_dir, "validation MR folder not found")
    paths = list_volumes(mr_dir)  # an InputError naming the folder when it holds none
    slices, bodies, sources = [], [], []
    for path in paths:
        volume_slices, _ = preprocess_mr(read_volume(path), preprocess_config)
        body = body_of_slices(volume_slices)
        keep = body.reshape(len(body), -1).any(axis=1)
        slices.append(volume_slices[keep])
        bodies.append(body[keep])
        sources += [os.fspath(path)] * int(keep.sum())
    slices, bodies = np.concatenate(slices), np.concatenate(bodies)
    if not len(slices):
        raise InputError(mr_dir, "no slice of the validation MR holds a body")
    chosen = np.unique(np.linspace(0, len(slices) - 1, min(count, len(slices))).round().astype(int))
    return ValidationSlices(slices[chosen].astype(np.float32), bodies[chosen], [sources[i] for i in chosen], mr_dir)


def validation_signal(generator_mr_to_ct, generator_ct_to_mr, data: ValidationSlices) -> dict[str, float]:
    """The three signals (:data:`SIGNALS`) of a pair of generators on ``data``."""
    from mr2ct.metrics import gradient_correlation_2d, mutual_information
    from mr2ct.serving.predict import run_in_batches  # here: mr2ct.serving imports the training package

    sct = run_in_batches(lambda batch: generator_mr_to_ct(batch, training=False), data.slices, 8)
    reconstructed = run_in_batches(lambda batch: generator_ct_to_mr(batch, training=False), sct, 8)
    mr = data.slices
    return {
        "mi_mr_sct": float(np.mean([mutual_information(m, s, mask=b) for m, s, b in zip(mr, sct, data.body)])),
        "gc_abs_mr_sct": float(np.mean([gradient_correlation_2d(m, s, "central", absolute=True)
                                        for m, s in zip(mr, sct)])),
        "cycle_l1_mr": float(np.abs(reconstructed - mr)[data.body].mean()),
    }


def signal_column(name: str) -> str:
    """The column of ``train.validation_signal`` (``gc``, ``mi`` or ``cycle``)."""
    if name not in SIGNAL_NAMES:
        raise ConfigError(f"train.validation_signal must be one of {sorted(SIGNAL_NAMES)}. Received: {name!r}")
    return SIGNAL_NAMES[name]


def is_better(column: str, value: float, best: float | None) -> bool:
    if best is None or not np.isfinite(best):
        return bool(np.isfinite(value))
    return value > best if SIGNALS[column] else value < best


def read_validation_rows(run_dir) -> list[dict]:
    """The rows of a run's ``validation.csv`` (``step`` int, signals float); ``[]`` if there is none."""
    path = os.path.join(os.fspath(run_dir), VALIDATION_CSV)
    if not os.path.exists(path):
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{"step": int(row["step"]), **{k: float(row[k]) for k in SIGNALS}} for row in csv.DictReader(f)]
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(path, f"corrupt validation table ({type(exc).__name__}: {exc}); delete it to start "
                               "the table again") from None


def resolve_validation_folder(run_dir, mr_dir) -> str | None:
    """The validation MR folder of a run: ``mr_dir``, or the one the run recorded; refuses a different one.

    A run validates on one folder from start to end, so that its signals
    (and its best checkpoint) stay comparable.
    """
    path = os.path.join(os.fspath(run_dir), VALIDATION_RECORD)
    recorded = read_json(path, "missing", "corrupt validation record")["mr_dir"] if os.path.exists(path) else None
    if mr_dir is None:
        return recorded
    mr_dir = os.path.abspath(os.fspath(mr_dir))
    if recorded is not None and os.path.normpath(recorded) != os.path.normpath(mr_dir):
        raise ConfigError(f"{path}: this run validates on {recorded}, not {mr_dir}; resume with the same "
                          "--val-mr (or none), or use a new run folder")
    return mr_dir


class CheckpointValidation:
    """The validation signal at every checkpoint of a CycleGAN run, and the best checkpoint kept.

    Call :meth:`after_save` on the chief after each checkpoint (the
    ``after_save`` hook of :class:`~mr2ct.training.loop.TrainingLoop`).

    Args:
        run_dir: the run folder.
        model: the :class:`~mr2ct.models.CycleGAN`.
        data: the held-out slices (:func:`load_validation_slices`).
        signal: which signal picks the best checkpoint: ``"gc"``, ``"mi"`` or ``"cycle"``.
        echo: where to print one line per validation. Defaults to `None` (silent).
    """

    def __init__(self, run_dir, model, data: ValidationSlices, signal: str = "gc", echo=None):
        self.run_dir = os.fspath(run_dir)
        self.model = model
        self.data = data
        self.column = signal_column(signal)
        self.echo = echo
        self._writer = None
        atomic_write_json(os.path.join(self.run_dir, VALIDATION_RECORD), {
            "mr_dir": data.folder, "slices": len(data.slices), "volumes": sorted(set(data.sources)),
            "signal": self.column})

    def after_save(self, step: int, checkpoint_path: str) -> dict[str, float]:
        """Validate the generators at ``step`` (just saved as ``checkpoint_path``); returns the signals."""
        import tensorflow as tf

        values = validation_signal(self.model.generator_mr_to_ct, self.model.generator_ct_to_mr, self.data)
        rows = [r for r in read_validation_rows(self.run_dir) if r["step"] < step]  # a resume drops later rows
        best = None
        for row in rows:
            if is_better(self.column, row[self.column], best):
                best = row[self.column]
        rows.append({"step": step, **values})
        self._write_rows(rows)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "logs", "validation"))
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"validation/{name}", value)
        self._writer.flush()
        improved = is_better(self.column, values[self.column], best)
        if improved:
            keep_best_checkpoint(self.run_dir, checkpoint_path, step, {"signal": self.column, **values})
        if self.echo is not None:
            self.echo(f"validation at step {step}: MI(MR, sCT) {values['mi_mr_sct']:.4f}, "
                      f"GC {values['gc_abs_mr_sct']:.4f}, MR cycle L1 {values['cycle_l1_mr']:.4f}"
                      + ("  (best so far)" if improved else ""))
        return values

    def _write_rows(self, rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["step", *SIGNALS], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({"step": row["step"], **{k: f"{row[k]:.6f}" for k in SIGNALS}})
        atomic_write_text(os.path.join(self.run_dir, VALIDATION_CSV), text.getvalue())
