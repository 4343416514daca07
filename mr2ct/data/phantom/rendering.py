"""Intensities from a tissue map: CT in HU, T1-weighted MR, the MR bias field, tissue texture and noise."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from mr2ct.data.phantom.grids import Grid
from mr2ct.data.phantom.parameters import SubjectParameters
from mr2ct.data.phantom.tissue_map import TissueMap
from mr2ct.data.phantom.tissues import Tissue


def _table(values: dict) -> np.ndarray:
    return np.array([values[t.name.lower()] for t in Tissue], dtype=np.float32)


_CT_TEXTURE = {  # HU standard deviation of the smooth tissue texture
    "air": 0.0, "fat": 8.0, "muscle": 6.0, "cortical_bone": 90.0, "cancellous_bone": 70.0,
    "yellow_marrow": 15.0, "urine": 2.0, "soft_tissue": 8.0, "blood": 3.0,
}
_MR_TEXTURE = {  # relative standard deviation of the MR tissue texture
    "air": 0.0, "fat": 0.03, "muscle": 0.05, "cortical_bone": 0.0, "cancellous_bone": 0.10,
    "yellow_marrow": 0.04, "urine": 0.02, "soft_tissue": 0.06, "blood": 0.05,
}


def _smooth_noise(shape, spacing, sigma_mm, rng) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed with ``sigma_mm``."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    sigma = [max(sigma_mm / s, 0.0) for s in (spacing[2], spacing[1], spacing[0])]
    smooth = ndimage.gaussian_filter(noise, sigma, mode="wrap", truncate=3.0)
    std = float(smooth.std())
    return smooth / std if std > 0 else smooth


def _psf(image: np.ndarray, tissue_map: TissueMap) -> np.ndarray:
    """Blur of a voxel's worth where the sub-voxel averaging did not do it."""
    fk, fj, fi = tissue_map.factor
    sigma = [0.0 if f > 1 else 0.45 for f in (fk, fj, fi)]
    if not any(sigma):
        return image
    return ndimage.gaussian_filter(image, sigma, mode="nearest", truncate=2.5)


def expected_ct(tissue_map: TissueMap, ct_hu: dict) -> np.ndarray:
    """The CT a tissue map gives with no texture and no noise: per-tissue HU, partial volume, blur.

    This is :func:`render_ct` without its random parts: with a subject's own
    ``ct_hu`` it is the mean of that subject's CT; with HU values typical of
    the population it is the best guess of a CT from the anatomy alone.

    Args:
        tissue_map: from :func:`render_tissue`.
        ct_hu: tissue name -> HU (the keys of ``SubjectParameters.ct_hu``).

    Returns:
        ``float32`` array on the tissue map's grid.
    """
    return _psf(tissue_map.average(_table(ct_hu)), tissue_map)


def render_ct(tissue_map: TissueMap, params: SubjectParameters, rng: np.random.Generator) -> np.ndarray:
    """CT in Hounsfield units from a tissue map.

    Per-tissue HU of the subject (``params.ct_hu``), averaged over each voxel
    (partial volume), a smooth per-tissue texture, and Gaussian noise of
    ``params.ct_noise`` HU with a little spatial correlation; clipped to
    [-1024, 3071].

    Args:
        tissue_map: from :func:`render_tissue`.
        params: the subject's parameters.
        rng: random generator for texture and noise.

    Returns:
        ``float32`` array on the tissue map's grid.
    """
    grid = tissue_map.grid
    hu = expected_ct(tissue_map, params.ct_hu)
    amplitude = tissue_map.average(_table(_CT_TEXTURE))
    hu += amplitude * _smooth_noise(grid.shape, grid.spacing, 1.5, rng)
    noise = _smooth_noise(grid.shape, grid.spacing, 0.4 * min(grid.spacing), rng)
    hu += float(params.ct_noise) * noise
    return np.clip(hu, -1024.0, 3071.0).astype(np.float32)


def bias_field(grid: Grid, params: SubjectParameters) -> np.ndarray:
    """The smooth multiplicative MR bias field of a subject on a grid (about 0.7 to 1.3).

    A second-order polynomial in world coordinates around the MR field of view
    (exponentiated, so the field is positive), times a Gaussian hot spot near
    one surface coil.
    """
    c = params.mr_bias
    k, j, i = (np.arange(n, dtype=np.float32) for n in grid.shape)
    m = grid.matrix
    centre = np.asarray(params.mr_centre)
    o = np.asarray(grid.origin) - centre
    x = (float(m[0, 0]) * i[None, None, :] + float(m[0, 1]) * j[None, :, None]
         + float(m[0, 2]) * k[:, None, None] + float(o[0])) / 160.0
    y = (float(m[1, 0]) * i[None, None, :] + float(m[1, 1]) * j[None, :, None]
         + float(m[1, 2]) * k[:, None, None] + float(o[1])) / 160.0
    z = (float(m[2, 0]) * i[None, None, :] + float(m[2, 1]) * j[None, :, None]
         + float(m[2, 2]) * k[:, None, None] + float(o[2])) / 160.0
    terms = [x, y, z, x * x, y * y, z * z, x * y, y * z, z * x]
    log_field = sum(float(ci) * t for ci, t in zip(c[:9], terms))
    log_field = np.broadcast_to(log_field, grid.shape).astype(np.float32)
    peak = float(np.abs(log_field).max()) or 1.0
    log_field = log_field * (math.log(1.3) * float(c[9]) / peak)
    spot = np.exp(-((x * 160 - c[11]) ** 2 + (y * 160 - c[12]) ** 2 + (z * 160) ** 2) / (2 * float(c[13]) ** 2))
    field = np.exp(log_field) * (1.0 + float(c[10]) * spot)
    return np.clip(field, 0.6, 1.5).astype(np.float32)


def render_mr(tissue_map: TissueMap, params: SubjectParameters, rng: np.random.Generator) -> np.ndarray:
    """T1-weighted (SPGR-like) MR from a tissue map.

    Per-tissue signal (fat 1.0, muscle about 0.3, cortical bone, air and urine
    near 0) averaged over each voxel, a smooth texture, the subject's
    multiplicative :func:`bias_field`, then Rician noise (magnitude of complex
    Gaussian noise); scaled so fat is about 1000.

    Args:
        tissue_map: from :func:`render_tissue`.
        params: the subject's parameters.
        rng: random generator for texture and noise.

    Returns:
        Positive ``float32`` array on the tissue map's grid.
    """
    grid = tissue_map.grid
    signal = _psf(tissue_map.average(_table(params.mr_signal)), tissue_map)
    texture = tissue_map.average(_table(_MR_TEXTURE))
    signal *= 1.0 + texture * _smooth_noise(grid.shape, grid.spacing, 2.0, rng)
    signal *= bias_field(grid, params)
    sigma = float(params.mr_noise)
    real = signal + sigma * rng.standard_normal(grid.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(grid.shape, dtype=np.float32)
    return (1000.0 * np.sqrt(real * real + imag * imag)).astype(np.float32)
