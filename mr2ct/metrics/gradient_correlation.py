"""Gradient correlation (NumPy), per 2D image and as a mean over axial slices.

The same two forms as the GC loss (:func:`mr2ct.losses.gradient_correlation`):
``absolute=True``, the NCC of the absolute central-difference gradients with
the edge pixel repeated at the border (the paper's first author's public code),
and ``absolute=False``, the signed Eq. 4 with reflect-padded borders. Used by
``mr2ct evaluate`` for the columns ``gc_abs_*`` and ``gc_*``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mr2ct.metrics._checks import as_pair

_KERNELS_X = {
    "central": np.array([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], float) / 2,
    "sobel": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float),
}
# scipy.ndimage border modes: "nearest" repeats the edge pixel, "mirror" reflects about it.
_BORDER = {True: "nearest", False: "mirror"}


def _ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def gradient_correlation_2d(a, b, operator="central", absolute=True) -> float:
    """Gradient correlation of two 2D images, in [-1, 1] (0 where either is constant).

    Args:
        a: 2D image.
        b: 2D image of the same shape.
        operator: ``"central"`` or ``"sobel"``. Defaults to `"central"`.
        absolute: correlate absolute gradients (the authors' form); `False`
            for the signed Eq. 4. Defaults to `True`.
    """
    a, b = as_pair(a, b, "gradient_correlation_2d")
    if a.ndim != 2:
        raise ValueError(f"gradient_correlation_2d expects 2D images. Received: shape={a.shape}")
    if operator not in _KERNELS_X:
        raise ValueError(f"operator must be one of {sorted(_KERNELS_X)}. Received: operator={operator!r}")
    kernel, mode = _KERNELS_X[operator], _BORDER[bool(absolute)]
    parts = []
    for k in (kernel, kernel.T):
        ga = ndimage.correlate(a.astype(np.float64), k, mode=mode)
        gb = ndimage.correlate(b.astype(np.float64), k, mode=mode)
        if absolute:
            ga, gb = np.abs(ga), np.abs(gb)
        parts.append(_ncc(ga, gb))
    return float(np.mean(parts))


def mean_slice_gradient_correlation(a, b, operator="central", absolute=True) -> float:
    """Mean over axial slices (axis 0) of :func:`gradient_correlation_2d` of two volumes."""
    a, b = as_pair(a, b, "mean_slice_gradient_correlation")
    if a.ndim != 3:
        raise ValueError(f"mean_slice_gradient_correlation expects 3D volumes. Received: shape={a.shape}")
    return float(np.mean([gradient_correlation_2d(sa, sb, operator, absolute) for sa, sb in zip(a, b)]))
