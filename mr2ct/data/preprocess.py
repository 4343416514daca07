"""Preprocessing of MR and CT volumes into network slices (section 2.1 of the paper).

Each step is a function ``step(volume, ...) -> (volume, info)`` that keeps the
package's orientation convention (:mod:`mr2ct.data.volume`: array ``[k, j, i]``,
geometry in ``(i, j, k)`` order, LPS world) and returns, next to the new
:class:`~mr2ct.data.volume.Volume`, a JSON-serialisable ``info`` dict with
every parameter it used and what it measured, so a step can be repeated or
inverted later:

1. :func:`n4_bias_correction` (MR only): N4ITK on a shrunk copy, then the
   full-resolution bias field divides the original.
2. :func:`crop_ct_to_mr_fov` (CT only): the paper crops its CTs (360 mm, long
   craniocaudal range) "so that the FOV resembles that of MRI volumes" (320 mm,
   76 mm slab over the hips). The rule used here, from the CT alone:

   * body = voxels above ``body_threshold_hu`` (-500 HU), opened in-plane by
     one voxel (cuts thin bridges to the table), largest 3D connected component;
   * craniocaudal: a slab of ``round(slab_mm / spacing_k)`` slices centred on a
     landmark chosen by :class:`SlabCenter`. By default (``"bone"``) the
     landmark is the slice of largest bone cross-section: the area of body
     voxels above ``bone_threshold_hu`` (200 HU) per slice, smoothed along
     ``k`` with a Gaussian of ``BONE_PROFILE_SIGMA_MM`` (10 mm), at its peak.
     In a hip CT that is the level of the femoral heads, necks and greater
     trochanters together with the acetabula, the MR's target (on the
     phantom of :mod:`mr2ct.data.phantom` it lands 0-13 mm below the MR slab
     centre). It is a heuristic: a CT reaching far up the lumbar spine or
     holding another bulky bone may fool it, so ``center_mm`` (world ``z``,
     LPS superior) overrides it. The slab is shifted to stay inside the
     image; a CT shorter than the slab is kept whole;
   * in-plane: a square of ``round(fov_mm / spacing)`` voxels per axis centred
     on the centre of the body's bounding box (within the slab), padded with
     air (``pad_value``, -1000 HU) where it reaches beyond the image.

   Cropping copies voxels (no interpolation); the origin moves to the first
   kept voxel, so every voxel keeps its world position. Voxel counts and
   start indices are rounded half up.
3. :func:`resample_slices`: each axial slice to ``size`` pixels over the same
   physical extent (``N`` pixels of spacing ``s`` become ``M`` pixels of
   spacing ``N * s / M``; the origin moves by ``(s_new - s_old) / 2`` along
   the ``i`` and ``j`` direction columns, so the outer pixel edges stay put).
   :func:`resample_to_reference` maps a volume onto any other grid by world
   coordinates, e.g. synthesized CT back onto the MR's own grid.
4. Intensities to ``[-1, 1]`` with the reversible mappings of
   :mod:`mr2ct.data.intensity` (:class:`~mr2ct.data.intensity.CTIntensity`,
   :class:`~mr2ct.data.intensity.MRIntensity`).

:func:`preprocess_mr` and :func:`preprocess_ct` chain the steps under a
:class:`PreprocessConfig` and return ``float32`` slices ``[K, H, W]`` in
``[-1, 1]`` and a record (JSON-serialisable) holding the config, each step's
info, and the input and output geometries. To put network output back on the
MR's grid::

    hu = CTIntensity.from_config(ct_record["ct_intensity"]).inverse(slices)
    sct = resample_to_reference(
        volume_from_geometry(hu, mr_record["output_geometry"]),
        mr_record["input_geometry"], default_value=-1000.0)

The steps live in their own modules, re-exported here: :mod:`mr2ct.data.geometry`
(checks and geometry records), :mod:`mr2ct.data.n4`, :mod:`mr2ct.data.ct_crop`
(with the shared in-plane framing of :mod:`mr2ct.data.framing`) and
:mod:`mr2ct.data.resampling`; this module holds the config and the two drivers.

Bad input (not 3D, empty, NaN or infinite voxels, non-positive spacing, a
singular direction, two volumes that should share a grid and do not) raises
:class:`~mr2ct.errors.InputError` naming the volume's file.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1).
    Tustison et al., "N4ITK: improved N3 bias correction", IEEE TMI 29(6), 2010.
"""


from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from mr2ct.data.ct_crop import AIR_HU, BONE_PROFILE_SIGMA_MM, SlabCenter, body_mask, crop_ct_to_mr_fov
from mr2ct.data.framing import frame_mr
from mr2ct.data.geometry import (
    check_same_grid,
    check_volume,
    geometry_record,
    volume_from_geometry,
)
from mr2ct.data.intensity import DEFAULT_HU_MAX, DEFAULT_HU_MIN, CTIntensity, MRIntensity
from mr2ct.data.n4 import n4_bias_correction
from mr2ct.data.resampling import resample_slices, resample_to_reference
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError

__all__ = [
    "AIR_HU",
    "BONE_PROFILE_SIGMA_MM",
    "PreprocessConfig",
    "RECORD_LEGACY_VALUES",
    "SlabCenter",
    "body_mask",
    "check_same_grid",
    "check_volume",
    "crop_ct_to_mr_fov",
    "geometry_record",
    "n4_bias_correction",
    "preprocess_ct",
    "preprocess_mr",
    "resample_slices",
    "resample_to_reference",
    "volume_from_geometry",
]


@dataclasses.dataclass
class PreprocessConfig:
    """Every setting of :func:`preprocess_mr` and :func:`preprocess_ct`.

    Args:
        image_size: slices are resampled to ``image_size x image_size``.
            Defaults to `256` (the paper).
        n4: N4 bias correction of MR. Defaults to `True` (the paper).
        n4_shrink_factor: N4's in-plane shrink. Defaults to `4`.
        n4_iterations: N4's iterations per level. Defaults to `(50, 50, 30)`.
        crop_ct: crop CT to the MR-like field of view. Defaults to `True`.
        frame_mr: crop MR in plane to the same ``fov_mm`` square centred on
            its body (:func:`mr2ct.data.framing.frame_mr`), so both domains
            show the body at the same place. Defaults to `True`.
        fov_mm: in-plane field of view of the CT crop and the MR framing.
            Defaults to `320.0`.
        slab_mm: craniocaudal slab of the CT crop. Defaults to `76.0`.
        slab_center: landmark of the slab (:class:`SlabCenter`).
            Defaults to `"bone"`.
        ct_hu_min: lower end of the CT window. Defaults to `-1024.0`.
        ct_hu_max: upper end of the CT window. Defaults to `2048.0`.
        mr_lower_percentile: MR percentile mapped to -1. Defaults to `0.5`.
        mr_upper_percentile: MR percentile mapped to 1. Defaults to `99.5`.
    """

    image_size: int = 256
    n4: bool = True
    n4_shrink_factor: int = 4
    n4_iterations: tuple = (50, 50, 30)
    crop_ct: bool = True
    frame_mr: bool = True
    fov_mm: float = 320.0
    slab_mm: float = 76.0
    slab_center: SlabCenter = SlabCenter.BONE
    ct_hu_min: float = DEFAULT_HU_MIN
    ct_hu_max: float = DEFAULT_HU_MAX
    mr_lower_percentile: float = 0.5
    mr_upper_percentile: float = 99.5

    def __post_init__(self):
        self.image_size = int(self.image_size)
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive. Received: image_size={self.image_size}")
        self.n4_iterations = tuple(int(n) for n in np.atleast_1d(self.n4_iterations))
        self.slab_center = SlabCenter(self.slab_center)
        for name in ("fov_mm", "slab_mm", "ct_hu_min", "ct_hu_max", "mr_lower_percentile", "mr_upper_percentile"):
            setattr(self, name, float(getattr(self, name)))
        CTIntensity(self.ct_hu_min, self.ct_hu_max)  # validate
        MRIntensity(self.mr_lower_percentile, self.mr_upper_percentile)

    def to_dict(self) -> dict:
        """JSON-ready dict (enums as strings, tuples as lists)."""
        out = dataclasses.asdict(self)
        out["n4_iterations"] = list(self.n4_iterations)
        out["slab_center"] = self.slab_center.value
        return out

    @classmethod
    def from_dict(cls, values: Mapping) -> "PreprocessConfig":
        """The config :meth:`to_dict` wrote.

        A record written before a setting existed lacks its key; it takes the
        value that reproduces what was done then (:data:`RECORD_LEGACY_VALUES`),
        not today's default, so an old export preprocesses as it was trained.
        """
        return cls(**{**RECORD_LEGACY_VALUES, **values})


# Settings added after preprocessing records were first written, with the behaviour before them:
# MR slices kept the scanner's field of view.
RECORD_LEGACY_VALUES = {"frame_mr": False}


def preprocess_mr(volume: Volume, config: PreprocessConfig | None = None) -> tuple[np.ndarray, dict]:
    """MR volume -> network slices: N4, framing on the body, resampling, percentile scaling.

    Args:
        volume: the MR volume, axial slices.
        config: settings. Defaults to `None` (``PreprocessConfig()``).

    Returns:
        ``(slices, record)``: ``float32`` array ``[K, H, W]`` in ``[-1, 1]`` and
        a JSON-serialisable record: ``modality``, ``source``, ``image_size``,
        ``config``, ``input_geometry``, ``n4`` (info or ``None``), ``framing``
        (info or ``None``), ``resample``, ``output_geometry`` and
        ``mr_intensity`` (the fitted mapping).

    Raises:
        InputError: the volume is invalid or its intensity is constant.
    """
    config = PreprocessConfig() if config is None else config
    check_volume(volume)
    record = {"modality": "mr", "source": volume.path, "image_size": config.image_size,
              "config": config.to_dict(), "input_geometry": geometry_record(volume), "n4": None,
              "framing": None}
    if config.n4:
        volume, record["n4"] = n4_bias_correction(
            volume, shrink_factor=config.n4_shrink_factor, iterations=config.n4_iterations
        )
    if config.frame_mr:
        volume, record["framing"] = frame_mr(volume, fov_mm=config.fov_mm)
    volume, record["resample"] = resample_slices(volume, config.image_size, order=1)
    record["output_geometry"] = geometry_record(volume)
    try:
        mapping = MRIntensity(config.mr_lower_percentile, config.mr_upper_percentile).fit(volume.array)
    except ValueError as error:
        raise InputError(volume.path, f"cannot be scaled to [-1, 1]: {error}") from None
    record["mr_intensity"] = mapping.get_config()
    return mapping.forward(volume.array), record


def preprocess_ct(volume: Volume, config: PreprocessConfig | None = None) -> tuple[np.ndarray, dict]:
    """CT volume -> network slices: MR-like crop, resampling, HU window.

    Args:
        volume: the CT volume in HU, axial slices.
        config: settings. Defaults to `None` (``PreprocessConfig()``).

    Returns:
        ``(slices, record)``: ``float32`` array ``[K, H, W]`` in ``[-1, 1]`` and
        a JSON-serialisable record: ``modality``, ``source``, ``image_size``,
        ``config``, ``input_geometry``, ``ct_crop`` (info or ``None``),
        ``resample``, ``output_geometry`` and ``ct_intensity`` (the window).

    Raises:
        InputError: the volume is invalid or holds no body to crop.
    """
    config = PreprocessConfig() if config is None else config
    check_volume(volume)
    record = {"modality": "ct", "source": volume.path, "image_size": config.image_size,
              "config": config.to_dict(), "input_geometry": geometry_record(volume), "ct_crop": None}
    if config.crop_ct:
        volume, record["ct_crop"] = crop_ct_to_mr_fov(
            volume, fov_mm=config.fov_mm, slab_mm=config.slab_mm, slab_center=config.slab_center
        )
    volume, record["resample"] = resample_slices(volume, config.image_size, order=1)
    record["output_geometry"] = geometry_record(volume)
    mapping = CTIntensity(config.ct_hu_min, config.ct_hu_max)
    record["ct_intensity"] = mapping.get_config()
    return mapping.forward(volume.array), record
