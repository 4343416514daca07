"""Input checks shared by the metrics."""

from __future__ import annotations

import numpy as np


def as_pair(a, b, name, allow_nan=False):
    """Two float64 arrays of one shape, or a ValueError naming the metric and the values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name} needs arrays of one shape. Received: shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError(f"{name} needs non-empty arrays. Received: shape={a.shape}")
    if not allow_nan and not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"{name} received NaN or Inf values")
    return a, b


def as_mask(mask, shape, name):
    """A boolean mask of ``shape`` (all True for ``None``)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask).astype(bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name}: mask shape {mask.shape} differs from the image shape {tuple(shape)}")
    return mask
