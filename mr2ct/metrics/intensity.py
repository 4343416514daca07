"""Intensity agreement in Hounsfield units: MAE, mean error, PSNR, SSIM (inside an optional mask)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mr2ct.metrics._checks import as_mask, as_pair

# The CT window of mr2ct's preprocessing, [-1024, 2048] HU: the dynamic range of
# PSNR and SSIM unless given.
DEFAULT_DATA_RANGE = 3072.0


def mean_absolute_error(pred, target, mask=None):
    """Mean of ``|pred - target|`` inside ``mask`` (HU for CT)."""
    pred, target = as_pair(pred, target, "mean_absolute_error")
    mask = as_mask(mask, pred.shape, "mean_absolute_error")
    return float(np.abs(pred - target)[mask].mean()) if mask.any() else float("nan")


def mean_error(pred, target, mask=None):
    """Mean signed error ``pred - target`` inside ``mask``: the bias of a synthesis."""
    pred, target = as_pair(pred, target, "mean_error")
    mask = as_mask(mask, pred.shape, "mean_error")
    return float((pred - target)[mask].mean()) if mask.any() else float("nan")


def psnr(pred, target, data_range=DEFAULT_DATA_RANGE, mask=None):
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)`` inside ``mask``.

    Args:
        pred: image or volume.
        target: reference of the same shape.
        data_range: the peak value range. Defaults to `3072` (the CT window
            [-1024, 2048] HU).
        mask: voxels to use. Defaults to all.
    """
    pred, target = as_pair(pred, target, "psnr")
    mask = as_mask(mask, pred.shape, "psnr")
    if not mask.any():
        return float("nan")
    mse = float(np.mean((pred - target)[mask] ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim_map(pred, target, data_range=DEFAULT_DATA_RANGE, win_size=7, k1=0.01, k2=0.03):
    """The SSIM map of two 2D images (Wang et al. 2004, uniform ``win_size`` window).

    Local means, variances and covariance use a ``win_size`` x ``win_size``
    uniform window with sample (n - 1) normalisation, as scikit-image's
    ``structural_similarity(gaussian_weights=False)``.
    """
    pred, target = as_pair(pred, target, "ssim")
    if pred.ndim != 2:
        raise ValueError(f"ssim_map expects 2D images. Received: shape={pred.shape}")
    n = win_size**2
    filt = lambda x: ndimage.uniform_filter(x, size=win_size, mode="reflect")  # noqa: E731
    ux, uy = filt(pred), filt(target)
    cov = n / (n - 1)
    vx = cov * (filt(pred * pred) - ux * ux)
    vy = cov * (filt(target * target) - uy * uy)
    vxy = cov * (filt(pred * target) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim(pred, target, data_range=DEFAULT_DATA_RANGE, mask=None, win_size=7):
    """Structural similarity, averaged over pixels (inside ``mask``).

    For a 2D image the SSIM map is averaged, leaving out a border of
    ``(win_size - 1) / 2`` pixels where the window leaves the image (as
    scikit-image does); for a 3D volume ``[slices, rows, cols]`` the maps of
    the slices are averaged. With a mask, the map is averaged inside it.

    Args:
        pred: image or volume.
        target: reference of the same shape.
        data_range: the value range. Defaults to `3072` (the CT window).
        mask: voxels to use. Defaults to all.
        win_size: odd window side. Defaults to `7`.
    """
    pred, target = as_pair(pred, target, "ssim")
    if pred.ndim not in (2, 3):
        raise ValueError(f"ssim expects a 2D image or a 3D volume. Received: shape={pred.shape}")
    mask = as_mask(mask, pred.shape, "ssim")
    if pred.ndim == 2:
        pred, target, mask = pred[None], target[None], mask[None]
    maps = np.stack([ssim_map(p, t, data_range, win_size) for p, t in zip(pred, target)])
    pad = (win_size - 1) // 2
    inside = np.zeros(maps.shape, dtype=bool)
    inside[:, pad:maps.shape[1] - pad, pad:maps.shape[2] - pad] = True
    use = inside & mask
    return float(maps[use].mean()) if use.any() else float("nan")
