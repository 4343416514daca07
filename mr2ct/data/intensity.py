"""Reversible intensity mappings to the networks' range ``[-1, 1]``.

Two mappings, each a small class with ``forward`` / ``inverse`` and a
JSON-serialisable ``get_config`` (``from_config`` rebuilds it exactly), in the
array and dictionary forms MONAI uses for ``ScaleIntensityRange`` /
``ScaleIntensityRanged``:

* :class:`CTIntensity` / :class:`CTIntensityd`: a fixed Hounsfield window,
  ``[-1024, 2048]`` HU by default, clipped and scaled linearly to ``[-1, 1]``.
  The window starts at the scanners' air value and reaches above the densest
  cortical bone of the hip (about 1800 HU), so nothing anatomical is clipped.
  One HU is ``2 / 3072`` network units, far above float32 resolution, so a
  round trip of in-window values is exact to well below 1 HU.
* :class:`MRIntensity` / :class:`MRIntensityd`: MR signal has no absolute unit,
  so each volume is scaled between two of its own percentiles (0.5 and 99.5 by
  default): robust to a few very dark or very bright voxels. ``fit`` measures
  the percentiles and records them in the config, so the mapping of a volume
  can be inverted later.

Values outside the window (CT) or outside the fitted percentile range (MR) are
clipped by ``forward``; ``inverse`` is the exact linear inverse on ``[-1, 1]``
and does not clip, so it can be applied to network outputs as they come.

Reference:
    Hiasa et al., "Cross-modality image synthesis from unpaired data using
    CycleGAN: effects of gradient consistency loss and training data size",
    SASHIMI 2018 (section 2.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

DEFAULT_HU_MIN = -1024.0
DEFAULT_HU_MAX = 2048.0


def _to_unit(array, low: float, high: float) -> np.ndarray:
    """``[low, high]`` -> ``[-1, 1]``, values outside clipped, float32 out."""
    array = np.asarray(array, dtype=np.float64)
    scaled = (np.clip(array, low, high) - low) * (2.0 / (high - low)) - 1.0
    return scaled.astype(np.float32)


def _from_unit(array, low: float, high: float, dtype) -> np.ndarray:
    """``[-1, 1]`` -> ``[low, high]`` (linear, no clipping)."""
    array = np.asarray(array, dtype=np.float64)
    return ((array + 1.0) * (0.5 * (high - low)) + low).astype(dtype)


class CTIntensity:
    """Clip CT to a Hounsfield window and scale it linearly to ``[-1, 1]``.

    ``forward`` maps ``hu_min`` to -1 and ``hu_max`` to 1 (values outside are
    clipped); ``inverse`` maps network units back to HU. The default window
    ``[-1024, 2048]`` HU covers air up to the densest cortical bone (about
    1800 HU); a round trip of in-window values is exact to well below 1 HU.

    Args:
        hu_min: lower end of the window, in HU. Defaults to `-1024.0`.
        hu_max: upper end of the window, in HU. Defaults to `2048.0`.

    Example:

    >>> mapping = CTIntensity()
    >>> mapping.forward([-1024.0, 512.0, 2048.0])
    array([-1.,  0.,  1.], dtype=float32)
    >>> mapping.inverse([0.0])
    array([512.], dtype=float32)
    """

    def __init__(self, hu_min: float = DEFAULT_HU_MIN, hu_max: float = DEFAULT_HU_MAX):
        hu_min, hu_max = float(hu_min), float(hu_max)
        if not (np.isfinite(hu_min) and np.isfinite(hu_max) and hu_max > hu_min):
            raise ValueError(
                f"CTIntensity needs finite hu_min < hu_max. Received: hu_min={hu_min}, hu_max={hu_max}"
            )
        self.hu_min = hu_min
        self.hu_max = hu_max

    def forward(self, array) -> np.ndarray:
        """HU -> ``[-1, 1]`` (``float32``), values outside the window clipped."""
        return _to_unit(array, self.hu_min, self.hu_max)

    __call__ = forward

    def inverse(self, array) -> np.ndarray:
        """``[-1, 1]`` -> HU (``float32``), linear and not clipped."""
        return _from_unit(array, self.hu_min, self.hu_max, np.float32)

    def get_config(self) -> dict:
        """Every constructor argument, JSON-serialisable."""
        return {"hu_min": self.hu_min, "hu_max": self.hu_max}

    @classmethod
    def from_config(cls, config: Mapping) -> "CTIntensity":
        """The mapping :meth:`get_config` describes."""
        return cls(**config)

    def __repr__(self):
        return f"CTIntensity(hu_min={self.hu_min}, hu_max={self.hu_max})"


class MRIntensity:
    """Scale an MR volume between two of its percentiles to ``[-1, 1]``.

    ``fit(array)`` measures the ``lower_percentile`` and ``upper_percentile``
    of the volume (optionally only inside a mask) and stores them as
    ``lower_value`` and ``upper_value``; ``forward`` then maps ``lower_value``
    to -1 and ``upper_value`` to 1 (values outside clipped) and ``inverse``
    maps back. The fitted values are part of :meth:`get_config`, so a mapping
    rebuilt with :meth:`from_config` inverts the same volume's scaling.

    Args:
        lower_percentile: percentile (0-100) mapped to -1. Defaults to `0.5`.
        upper_percentile: percentile (0-100) mapped to 1. Defaults to `99.5`.
        lower_value: a fitted (or chosen) signal value for -1. Defaults to
            `None` (set by :meth:`fit`).
        upper_value: a fitted (or chosen) signal value for 1. Defaults to
            `None` (set by :meth:`fit`).
    """

    def __init__(
        self,
        lower_percentile: float = 0.5,
        upper_percentile: float = 99.5,
        lower_value: float | None = None,
        upper_value: float | None = None,
    ):
        lower_percentile, upper_percentile = float(lower_percentile), float(upper_percentile)
        if not 0.0 <= lower_percentile < upper_percentile <= 100.0:
            raise ValueError(
                "MRIntensity needs 0 <= lower_percentile < upper_percentile <= 100. "
                f"Received: lower_percentile={lower_percentile}, upper_percentile={upper_percentile}"
            )
        if (lower_value is None) != (upper_value is None):
            raise ValueError(
                "MRIntensity needs both lower_value and upper_value, or neither. "
                f"Received: lower_value={lower_value}, upper_value={upper_value}"
            )
        self.lower_percentile = lower_percentile
        self.upper_percentile = upper_percentile
        self.lower_value = None
        self.upper_value = None
        if lower_value is not None:
            self._set_values(lower_value, upper_value)

    def _set_values(self, lower_value, upper_value):
        lower_value, upper_value = float(lower_value), float(upper_value)
        if not (np.isfinite(lower_value) and np.isfinite(upper_value) and upper_value > lower_value):
            raise ValueError(
                "MRIntensity needs finite lower_value < upper_value (is the volume constant?). "
                f"Received: lower_value={lower_value}, upper_value={upper_value}"
            )
        self.lower_value, self.upper_value = lower_value, upper_value

    @property
    def fitted(self) -> bool:
        """Whether the signal values of -1 and 1 are known."""
        return self.lower_value is not None

    def fit(self, array, mask=None) -> "MRIntensity":
        """Measure the percentiles of ``array`` (inside ``mask`` if given).

        Args:
            array: the MR volume (any shape).
            mask: boolean array of the same shape; only voxels where it is
                true are counted. Defaults to `None` (every voxel).

        Returns:
            ``self``, fitted.
        """
        values = np.asarray(array)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != values.shape:
                raise ValueError(
                    f"mask must have the array's shape {values.shape}. Received: {mask.shape}"
                )
            values = values[mask]
        if values.size == 0:
            raise ValueError("MRIntensity.fit needs at least one voxel (is the mask empty?)")
        lower, upper = np.percentile(values, [self.lower_percentile, self.upper_percentile])
        self._set_values(lower, upper)
        return self

    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError("MRIntensity is not fitted: call fit(array) first")

    def forward(self, array) -> np.ndarray:
        """Signal -> ``[-1, 1]`` (``float32``), values outside the fitted range clipped."""
        self._check_fitted()
        return _to_unit(array, self.lower_value, self.upper_value)

    __call__ = forward

    def inverse(self, array) -> np.ndarray:
        """``[-1, 1]`` -> signal (``float32``), linear and not clipped."""
        self._check_fitted()
        return _from_unit(array, self.lower_value, self.upper_value, np.float32)

    def get_config(self) -> dict:
        """Every constructor argument, fitted values included; JSON-serialisable."""
        return {
            "lower_percentile": self.lower_percentile,
            "upper_percentile": self.upper_percentile,
            "lower_value": self.lower_value,
            "upper_value": self.upper_value,
        }

    @classmethod
    def from_config(cls, config: Mapping) -> "MRIntensity":
        """The mapping :meth:`get_config` describes (fitted if it was)."""
        return cls(**config)

    def __repr__(self):
        return (
            f"MRIntensity(lower_percentile={self.lower_percentile}, upper_percentile={self.upper_percentile}, "
            f"lower_value={self.lower_value}, upper_value={self.upper_value})"
        )


class _Dictionary:
    """Shared part of the dictionary forms: which keys, where the config goes."""

    def __init__(self, keys, config_key_postfix: str, allow_missing_keys: bool):
        self.keys = tuple(keys) if isinstance(keys, (list, tuple)) else (keys,)
        if not self.keys:
            raise ValueError(f"keys must name at least one entry. Received: keys={keys!r}")
        self.config_key_postfix = str(config_key_postfix)
        self.allow_missing_keys = bool(allow_missing_keys)

    def config_key(self, key) -> str:
        """Where the mapping of ``key`` is recorded: ``f"{key}_{config_key_postfix}"``."""
        return f"{key}_{self.config_key_postfix}"

    def _present(self, data: Mapping) -> Iterable:
        for key in self.keys:
            if key in data:
                yield key
            elif not self.allow_missing_keys:
                raise KeyError(f"key {key!r} is not in the data. Present: {sorted(map(str, data))}")


class CTIntensityd(_Dictionary):
    """Dictionary form of :class:`CTIntensity`.

    ``__call__`` maps every array under ``keys`` to ``[-1, 1]`` and records the
    window at ``f"{key}_{config_key_postfix}"``; ``inverse`` maps back to HU
    using the recorded window (or this transform's, if none is recorded).

    Args:
        keys: key or keys of the CT arrays.
        hu_min: lower end of the window, in HU. Defaults to `-1024.0`.
        hu_max: upper end of the window, in HU. Defaults to `2048.0`.
        config_key_postfix: suffix of the key the window is recorded under.
            Defaults to `"intensity"`.
        allow_missing_keys: skip absent keys instead of raising `KeyError`.
            Defaults to `False`.
    """

    def __init__(
        self,
        keys,
        hu_min: float = DEFAULT_HU_MIN,
        hu_max: float = DEFAULT_HU_MAX,
        config_key_postfix: str = "intensity",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, config_key_postfix, allow_missing_keys)
        self.mapping = CTIntensity(hu_min, hu_max)

    def __call__(self, data: Mapping) -> dict:
        out = dict(data)
        for key in self._present(data):
            out[key] = self.mapping.forward(data[key])
            out[self.config_key(key)] = self.mapping.get_config()
        return out

    def inverse(self, data: Mapping) -> dict:
        out = dict(data)
        for key in self._present(data):
            config = data.get(self.config_key(key))
            mapping = CTIntensity.from_config(config) if config else self.mapping
            out[key] = mapping.inverse(data[key])
        return out


class MRIntensityd(_Dictionary):
    """Dictionary form of :class:`MRIntensity`: fitted per array, recorded per key.

    ``__call__`` fits a fresh :class:`MRIntensity` to every array under
    ``keys`` (inside ``data[mask_key]`` if given), maps it to ``[-1, 1]`` and
    records the fitted config at ``f"{key}_{config_key_postfix}"``; ``inverse``
    rebuilds each mapping from its record and maps back.

    Args:
        keys: key or keys of the MR arrays.
        lower_percentile: percentile mapped to -1. Defaults to `0.5`.
        upper_percentile: percentile mapped to 1. Defaults to `99.5`.
        mask_key: key of a boolean mask restricting the fit. Defaults to
            `None` (every voxel).
        config_key_postfix: suffix of the key the fitted mapping is recorded
            under. Defaults to `"intensity"`.
        allow_missing_keys: skip absent keys instead of raising `KeyError`.
            Defaults to `False`.
    """

    def __init__(
        self,
        keys,
        lower_percentile: float = 0.5,
        upper_percentile: float = 99.5,
        mask_key=None,
        config_key_postfix: str = "intensity",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, config_key_postfix, allow_missing_keys)
        MRIntensity(lower_percentile, upper_percentile)  # validates
        self.lower_percentile = float(lower_percentile)
        self.upper_percentile = float(upper_percentile)
        self.mask_key = mask_key

    def __call__(self, data: Mapping) -> dict:
        out = dict(data)
        mask = None if self.mask_key is None else data[self.mask_key]
        for key in self._present(data):
            mapping = MRIntensity(self.lower_percentile, self.upper_percentile).fit(data[key], mask)
            out[key] = mapping.forward(data[key])
            out[self.config_key(key)] = mapping.get_config()
        return out

    def inverse(self, data: Mapping) -> dict:
        out = dict(data)
        for key in self._present(data):
            config_key = self.config_key(key)
            if config_key not in data:
                raise KeyError(f"no fitted MR mapping recorded for {key!r} (expected key {config_key!r})")
            out[key] = MRIntensity.from_config(data[config_key]).inverse(data[key])
        return out
