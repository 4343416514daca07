"""Mutual information from a joint histogram, per image and as the paper's mean over slices."""

from __future__ import annotations

import numpy as np

from mr2ct.metrics._checks import as_mask, as_pair

DEFAULT_BINS = 64


def joint_histogram(a, b, bins=DEFAULT_BINS, range_a=None, range_b=None, mask=None):
    """Counts of the joint histogram of ``a`` and ``b`` (equal-width bins)."""
    a, b = as_pair(a, b, "joint_histogram")
    mask = as_mask(mask, a.shape, "joint_histogram")
    a, b = a[mask], b[mask]
    if a.size == 0:
        return np.zeros((bins, bins))
    range_a = _range(a) if range_a is None else range_a
    range_b = _range(b) if range_b is None else range_b
    counts, _, _ = np.histogram2d(a, b, bins=bins, range=[range_a, range_b])
    return counts


def _range(x):
    lo, hi = float(x.min()), float(x.max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def mutual_information(a, b, bins=DEFAULT_BINS, range_a=None, range_b=None, mask=None):
    """Mutual information (nats) of two images from their joint histogram.

    ``MI = sum p(i, j) log(p(i, j) / (p(i) p(j)))`` over a ``bins`` x ``bins``
    joint histogram. By default each image is binned into ``bins`` equal-width
    bins between its own minimum and maximum (inside ``mask``); give
    ``range_a``/``range_b`` to bin several images identically (e.g. a fixed HU
    window). A constant image has MI 0.

    Args:
        a: image (any shape).
        b: image of the same shape.
        bins: bins per image. Defaults to `64`.
        range_a: ``(low, high)`` binning range of ``a``. Defaults to its range.
        range_b: ``(low, high)`` binning range of ``b``. Defaults to its range.
        mask: voxels to use. Defaults to all.

    Returns:
        float, >= 0.

    Reference:
        Viola and Wells, "Alignment by maximization of mutual information", 1997.
    """
    counts = joint_histogram(a, b, bins, range_a, range_b, mask)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    px = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(max(np.sum(p[nz] * np.log(p[nz] / (px @ py)[nz])), 0.0))


def mean_slice_mutual_information(
    volume_a, volume_b, bins=DEFAULT_BINS, axis=0, mask=None, range_a=None, range_b=None,
    skip_empty=True, return_per_slice=False,
):
    """The paper's similarity: MI of each axial slice, averaged over slices.

    Args:
        volume_a: volume ``[slices, rows, cols]`` (slices along ``axis``).
        volume_b: volume of the same shape.
        bins: bins per image. Defaults to `64`.
        axis: the slice axis. Defaults to `0`.
        mask: voxels to use; slices where it is empty are skipped when
            ``skip_empty``. Defaults to all.
        range_a: fixed binning range of ``volume_a``. Defaults to each slice's range.
        range_b: fixed binning range of ``volume_b``. Defaults to each slice's range.
        skip_empty: leave out slices with no voxel in the mask. Defaults to `True`.
        return_per_slice: also return the per-slice values. Defaults to `False`.

    Returns:
        The mean MI (nats), or ``(mean, per_slice)``.
    """
    a, b = as_pair(volume_a, volume_b, "mean_slice_mutual_information")
    if a.ndim != 3:
        raise ValueError(f"mean_slice_mutual_information expects 3D volumes. Received: shape={a.shape}")
    mask = as_mask(mask, a.shape, "mean_slice_mutual_information")
    a, b, mask = (np.moveaxis(x, axis, 0) for x in (a, b, mask))
    values = [
        mutual_information(sa, sb, bins, range_a, range_b, sm)
        for sa, sb, sm in zip(a, b, mask)
        if not (skip_empty and not sm.any())
    ]
    per_slice = np.asarray(values)
    mean = float(per_slice.mean()) if per_slice.size else float("nan")
    return (mean, per_slice) if return_per_slice else mean
