"""Synthesize MR from CT volumes with G_MR, on the CT's prepared grid (for evaluation).

The paper scores the CT-to-MR direction by the mutual information between a
real CT and its synthesized MR (Fig. 3a, left). There is no MR grid to go back
to here, so the synthesized MR stays where the network made it: the CT goes
through the CT preprocessing recorded with the model (crop to the MR-like
field of view, resampling to S x S slices, the HU window), the slices in HU
through G_MR in batches, and :meth:`MRSynthesizer.prepared` returns both the
prepared CT (HU) and the synthesized MR ([-1, 1]) on that grid.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from mr2ct._atomic import read_json
from mr2ct.data.intensity import CTIntensity
from mr2ct.data.preprocess import PreprocessConfig, preprocess_ct
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError
from mr2ct.serving.predict import run_in_batches


@dataclasses.dataclass
class MRSynthesizer:
    """CT slices in HU to synthesized MR slices in [-1, 1] (the CycleGAN's G_MR), in batches.

    Build with :meth:`local` (the ``ct_to_mr`` signature of an export),
    :meth:`from_generator` (a generator in memory) or :meth:`from_path`.

    Args:
        preprocessing: the preprocessing record the model was trained with
            (``preprocessing.json`` of a run, ``preprocessing`` of an export
            description): its ``config`` prepares the CT, its
            ``ct_intensity`` is the HU window.
        run_batch: callable, float32 ``[n, S, S, 1]`` CT in HU to
            ``[n, S, S, 1]`` MR in [-1, 1].
        batch_size: slices per network call. Defaults to `8`.
    """

    preprocessing: dict
    run_batch: callable
    batch_size: int = 8

    @classmethod
    def local(cls, model_path, version=None, batch_size=8) -> "MRSynthesizer":
        """The ``ct_to_mr`` signature of an export (``saved_models/<name>[/<version>]``)."""
        import tensorflow as tf

        from mr2ct.export.exporter import resolve_export

        path, info = resolve_export(model_path, version)
        signatures = tf.saved_model.load(path).signatures
        if "ct_to_mr" not in signatures:
            raise InputError(path, f"this export has no ct_to_mr signature (has {sorted(signatures)})")
        function = signatures["ct_to_mr"]

        def run(batch):
            return function(ct_hu=tf.constant(batch))["mr"].numpy()

        return cls(info["preprocessing"], run, batch_size)

    @classmethod
    def from_generator(cls, generator, preprocessing: dict, batch_size=8) -> "MRSynthesizer":
        """A CT-to-MR generator (input CT scaled to [-1, 1] by the record's HU window)."""
        window = CTIntensity.from_config(preprocessing["ct_intensity"])

        def run(batch):
            return np.asarray(generator(window.forward(batch), training=False), np.float32)

        return cls(preprocessing, run, batch_size)

    @classmethod
    def from_path(cls, path, batch_size=8) -> "MRSynthesizer":
        """An export, a CycleGAN run folder or a segmentation run folder (its frozen G_MR)."""
        from mr2ct.training.segmentation import CYCLEGAN_FILE
        from mr2ct.training.trainer import CONFIG_FILE, PREPROCESSING_FILE

        path = os.fspath(path)
        if not os.path.isdir(path):
            raise InputError(path, "model or run folder not found")
        if os.path.exists(os.path.join(path, CYCLEGAN_FILE)):
            from mr2ct.training.segmentation import load_segmentation_run

            run = load_segmentation_run(path)
            return cls.from_generator(run.model.generator_ct_to_mr, run.preprocessing, batch_size)
        if os.path.exists(os.path.join(path, CONFIG_FILE)):
            from mr2ct.export.exporter import load_run_generators

            preprocessing = read_json(os.path.join(path, PREPROCESSING_FILE),
                                      "missing: the run has no preprocessing record", "corrupt preprocessing record")
            _, generator_ct_to_mr, _, _ = load_run_generators(path)
            return cls.from_generator(generator_ct_to_mr, preprocessing, batch_size)
        return cls.local(path, batch_size=batch_size)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.preprocessing["config"])

    def prepare_ct(self, ct: Volume) -> np.ndarray:
        """The CT's prepared slices ``[K, S, S]`` in HU (cropped, resampled, clipped to the window)."""
        slices, record = preprocess_ct(ct, self.preprocess_config)
        return CTIntensity.from_config(record["ct_intensity"]).inverse(slices)

    def slices(self, ct_hu_slices: np.ndarray, progress=None) -> np.ndarray:
        """``[K, S, S]`` CT in HU to ``[K, S, S]`` synthesized MR in [-1, 1]."""
        return run_in_batches(self.run_batch, ct_hu_slices, self.batch_size, progress=progress)

    def prepared(self, ct: Volume, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """``(ct_hu, synthesized_mr)``, both ``[K, S, S]`` on the CT's prepared grid."""
        ct_hu = self.prepare_ct(ct)
        return ct_hu, self.slices(ct_hu, progress)
