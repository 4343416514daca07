"""Image and segmentation metrics (NumPy), on 2D images and 3D volumes."""

from mr2ct.metrics.gradient_correlation import gradient_correlation_2d, mean_slice_gradient_correlation
from mr2ct.metrics.intensity import DEFAULT_DATA_RANGE, mean_absolute_error, mean_error, psnr, ssim, ssim_map
from mr2ct.metrics.mutual_information import (
    DEFAULT_BINS,
    joint_histogram,
    mean_slice_mutual_information,
    mutual_information,
)
from mr2ct.metrics.overlap import dice, dice_coefficient

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_DATA_RANGE",
    "dice",
    "dice_coefficient",
    "gradient_correlation_2d",
    "joint_histogram",
    "mean_absolute_error",
    "mean_error",
    "mean_slice_gradient_correlation",
    "mean_slice_mutual_information",
    "mutual_information",
    "psnr",
    "ssim",
    "ssim_map",
]
