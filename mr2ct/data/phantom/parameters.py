"""The random choices that make one phantom subject, and drawing them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from mr2ct.data.phantom.grids import _CT_CENTRE, _MR_CENTRE
from mr2ct.data.phantom.shapes import _floats
from mr2ct.labels import LABELS


@dataclasses.dataclass
class SubjectParameters:
    """The random choices that make one phantom subject.

    Lengths in mm, angles in degrees, pairs are ``(left, right)``. Bone,
    pelvis-width and muscle-bulk factors scale the anatomy (around 1);
    ``flexion``, ``abduction`` and ``external_rotation`` pose each hip about
    its femoral head centre; ``body_rotation`` and ``body_position`` place the
    body in the world; ``mr_centre`` and ``ct_centre`` are the world centres of
    the two fields of view; ``ct_hu`` and ``mr_signal`` are per-tissue
    intensities, ``mr_bias`` the bias field's coefficients.
    """

    bone_scale: float
    pelvis_width: float
    body_aspect: float
    fat_mm: float
    buttock_fat: float
    muscle_bulk: float
    muscle_jitter: list
    flexion: tuple
    abduction: tuple
    external_rotation: tuple
    body_rotation: tuple  # about the body's z (yaw), x (tilt), y (roll)
    body_position: tuple  # world position of the midpoint between the femoral heads
    bladder_fill: float
    rectal_gas: bool
    bowel: list  # [x, y, z, radius, gas] per loop
    mr_centre: tuple
    ct_centre: tuple
    ct_hu: dict
    ct_noise: float
    mr_signal: dict
    mr_noise: float
    mr_bias: list  # polynomial coefficients and a coil hot spot

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def sample_parameters(rng: np.random.Generator) -> SubjectParameters:
    """Draw the parameters of one subject.

    Args:
        rng: the random generator.

    Returns:
        A :class:`SubjectParameters`.
    """
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    pair = lambda lo, hi: (u(lo, hi), u(lo, hi))  # noqa: E731
    body_position = (u(-8, 8), u(-14, 10), u(-6, 6))
    bowel = []
    for _ in range(int(rng.integers(5, 10))):
        bowel.append([u(-45, 45), u(-55, 25), u(45, 110), u(12, 22), bool(rng.random() < 0.4)])
    return SubjectParameters(
        bone_scale=u(0.82, 0.96),
        pelvis_width=u(0.95, 1.07),
        body_aspect=u(0.92, 1.06),
        fat_mm=u(4, 22),
        buttock_fat=u(0, 20),
        muscle_bulk=u(0.85, 1.15),
        muscle_jitter=[u(0.92, 1.08) for _ in LABELS],
        flexion=pair(-4, 18),
        abduction=pair(-4, 10),
        external_rotation=pair(-8, 22),
        body_rotation=(u(-6, 6), u(-7, 7), u(-3, 3)),
        body_position=body_position,
        bladder_fill=u(0.35, 1.4),
        rectal_gas=bool(rng.random() < 0.5),
        bowel=bowel,
        mr_centre=_floats(np.add(body_position, _MR_CENTRE) + rng.uniform([-5, -8, -5], [5, 8, 5])),
        ct_centre=_floats(np.add(body_position, _CT_CENTRE) + rng.uniform([-8, -8, -6], [8, 8, 6])),
        ct_hu={
            "air": -1000.0,
            "fat": u(-110, -85),
            "muscle": u(42, 60),
            "cortical_bone": u(1250, 1750),
            "cancellous_bone": u(180, 380),
            "yellow_marrow": u(-40, 30),
            "urine": u(0, 15),
            "soft_tissue": u(30, 55),
            "blood": u(35, 50),
        },
        ct_noise=u(10, 20),
        mr_signal={
            "air": 0.0,
            "fat": 1.0,
            "muscle": u(0.27, 0.38),
            "cortical_bone": u(0.02, 0.06),
            "cancellous_bone": u(0.55, 0.78),
            "yellow_marrow": u(0.85, 0.95),
            "urine": u(0.05, 0.12),
            "soft_tissue": u(0.38, 0.48),
            "blood": u(0.15, 0.35),
        },
        mr_noise=u(0.01, 0.03),
        mr_bias=[*(float(c) for c in rng.normal(0, 1, size=9)), u(0.6, 1.0), u(0, 0.25),
                 u(-120, 120), u(-100, 100), u(60, 120)],
    )
