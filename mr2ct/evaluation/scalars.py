"""Scalars a training run wrote for TensorBoard, read back: ``{tag: (steps, values)}``."""

from __future__ import annotations

import glob
import os

import numpy as np


def read_scalars(logdir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar summary in the event files of ``logdir``, by tag, sorted by step.

    A step written twice (a run resumed from an earlier checkpoint writes the
    steps after it again) keeps its last value. An event file cut short (a
    killed run) is read up to its last whole record.

    Args:
        logdir: a run's ``logs`` folder (its event files, not subfolders).

    Returns:
        ``{tag: (steps, values)}``: int64 and float64 arrays. Empty when the
        folder has no event files.
    """
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    by_tag: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(os.fspath(logdir), "events.out.tfevents.*"))):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        number = float(value.simple_value)
                    elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name in ("", "scalars"):
                        array = tf.make_ndarray(value.tensor)
                        if array.size != 1 or not np.issubdtype(array.dtype, np.number):
                            continue
                        number = float(array.reshape(()))
                    else:
                        continue
                    by_tag.setdefault(value.tag, {})[int(event.step)] = number
        except tf.errors.DataLossError:
            continue  # truncated: keep what was read
    return {tag: (np.array(sorted(values), dtype=np.int64), np.array([values[s] for s in sorted(values)]))
            for tag, values in sorted(by_tag.items())}
