"""One phantom subject: parameters drawn from its seed, its anatomy, and registered MR, CT and label volumes."""

from __future__ import annotations

import dataclasses

import numpy as np

from mr2ct.data.phantom.anatomy import build_anatomy
from mr2ct.data.phantom.grids import PhantomSize, scanner_grid
from mr2ct.data.phantom.parameters import SubjectParameters, sample_parameters
from mr2ct.data.phantom.rendering import render_ct, render_mr
from mr2ct.data.phantom.tissue_map import render_tissue
from mr2ct.data.volume import Volume


@dataclasses.dataclass
class PhantomSubject:
    """One phantom subject: registered MR, CT and labels.

    Args:
        subject_id: e.g. ``"subject_000"``.
        parameters: the :class:`SubjectParameters` it was made from.
        mr: T1-weighted MR on the MR grid (``float32``).
        ct: CT in HU on the CT grid (``float32``).
        ct_on_mr_grid: CT of the same anatomy rendered on the MR grid (paired truth).
        labels_mr: structure labels on the MR grid (``uint8``).
        labels_ct: structure labels on the CT grid (``uint8``).
    """

    subject_id: str
    parameters: SubjectParameters
    mr: Volume
    ct: Volume
    ct_on_mr_grid: Volume
    labels_mr: Volume
    labels_ct: Volume


def subject_name(index: int) -> str:
    """The identifier of subject ``index``: ``subject_000``, ``subject_001``, ..."""
    return f"subject_{int(index):03d}"


def _draw(index: int, seed: int):
    """The random generator, parameters and anatomy of subject ``index`` of data set ``seed``."""
    rng = np.random.default_rng([int(seed), int(index), 0x41C7])
    params = sample_parameters(rng)
    return rng, params, build_anatomy(params)


def subject_tissue_on_mr_grid(index: int, size: str = "small", seed: int = 0):
    """What subject ``index`` of data set ``seed`` is made of, on its MR grid.

    The anatomy :func:`generate_subject` renders its MR and paired CT from,
    without rendering them.

    Returns:
        ``(parameters, tissue_map)``: the :class:`SubjectParameters` and the
        :class:`TissueMap` on the MR grid.
    """
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"index and seed must be >= 0, received: index={index}, seed={seed}")
    _, params, anatomy = _draw(index, seed)
    return params, render_tissue(anatomy, scanner_grid("mr", PhantomSize(size), params.mr_centre))


def generate_subject(index: int, size: str = "small", seed: int = 0) -> PhantomSubject:
    """Make one phantom subject.

    The same ``(seed, index)`` always gives the same subject; different
    indices or seeds give different anatomy, pose and position.

    Args:
        index: the subject's number in the data set (``>= 0``).
        size: ``"small"`` (64x64x8 MR, 96x96x12 CT) or ``"paper"`` (256x256x38
            MR, 512x512x75 CT). Defaults to `"small"`.
        seed: seed of the data set. Defaults to `0`.

    Returns:
        A :class:`PhantomSubject`.
    """
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"index and seed must be >= 0, received: index={index}, seed={seed}")
    size = PhantomSize(size)
    rng, params, anatomy = _draw(index, seed)
    mr_grid = scanner_grid("mr", size, params.mr_centre)
    ct_grid = scanner_grid("ct", size, params.ct_centre)
    on_mr = render_tissue(anatomy, mr_grid)
    on_ct = render_tissue(anatomy, ct_grid)
    return PhantomSubject(
        subject_id=subject_name(index),
        parameters=params,
        mr=mr_grid.volume(render_mr(on_mr, params, rng)),
        ct=ct_grid.volume(render_ct(on_ct, params, rng)),
        ct_on_mr_grid=mr_grid.volume(render_ct(on_mr, params, rng)),
        labels_mr=mr_grid.volume(on_mr.labels),
        labels_ct=ct_grid.volume(on_ct.labels),
    )
