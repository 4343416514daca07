"""Overlap of segmentations: Dice per structure."""

from __future__ import annotations

import numpy as np


def dice_coefficient(a, b):
    """Dice of two binary masks, ``2 |A and B| / (|A| + |B|)``; NaN when both are empty."""
    a = np.asarray(a).astype(bool)
    b = np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"dice_coefficient needs masks of one shape. Received: {a.shape} and {b.shape}")
    total = a.sum() + b.sum()
    return float("nan") if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def dice(pred_labels, true_labels, labels=None):
    """Dice of each structure of two label maps.

    Args:
        pred_labels: integer label map.
        true_labels: integer label map of the same shape.
        labels: the labels to score. Defaults to every non-zero label present
            in either map.

    Returns:
        ``{label: dice}``: 0.0 for a structure present in only one map, NaN for
        one absent from both.
    """
    pred = np.asarray(pred_labels)
    true = np.asarray(true_labels)
    if pred.shape != true.shape:
        raise ValueError(f"dice needs label maps of one shape. Received: {pred.shape} and {true.shape}")
    if labels is None:
        labels = sorted(int(v) for v in np.union1d(np.unique(pred), np.unique(true)) if v != 0)
    return {int(label): dice_coefficient(pred == label, true == label) for label in labels}
