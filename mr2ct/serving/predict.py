"""Synthesize CT from whole MR volumes with an export, locally or through a REST server.

The MR goes through the preprocessing recorded in the export (N4, resampling
to S x S slices, percentile scaling to [-1, 1]), the slices through the
network in batches, and the synthesized CT, in HU, back onto the MR's own
grid (shape, spacing, origin and direction of the input), written as int16.
The network's memory is bounded by the batch; the preprocessing is not:
N4 works on the whole volume (about 40 bytes a voxel at its peak, some 2 GB
for a 512x512x200 MR), and resampling back holds the volume at both
resolutions.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from mr2ct.data.io import DICOM_EXTENSIONS, list_volumes, read_volume, subject_id, write_volume
from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr, resample_to_reference, volume_from_geometry
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError
from mr2ct.export.exporter import resolve_export

AIR_HU = -1000.0


def run_in_batches(run_batch, slices: np.ndarray, batch_size: int, dtype=np.float32, progress=None) -> np.ndarray:
    """``[K, S, S]`` slices through ``run_batch`` (``(n, S, S, 1)`` float32 in), ``batch_size`` at a time.

    ``run_batch`` may return ``(n, S, S)`` or ``(n, S, S, 1)``; the result is
    ``[K, S, S]`` of ``dtype``. ``progress(n)`` is called after each batch.
    """
    out = np.empty(slices.shape, dtype)
    for start in range(0, len(slices), batch_size):
        batch = slices[start:start + batch_size, ..., None].astype(np.float32)
        out[start:start + len(batch)] = np.asarray(run_batch(batch)).reshape(batch.shape[:-1])
        if progress:
            progress(len(batch))
    return out


@dataclasses.dataclass
class Synthesizer:
    """MR slices (preprocessed, [-1, 1]) to CT slices in HU, in batches.

    Build with :meth:`local` (a SavedModel loaded here) or :meth:`remote`
    (TF Serving's REST API, or ``mr2ct serve``).
    """

    info: dict
    run_batch: callable
    batch_size: int = 8

    @classmethod
    def local(cls, model_path, version=None, batch_size=8) -> "Synthesizer":
        import tensorflow as tf

        path, info = resolve_export(model_path, version)
        function = tf.saved_model.load(path).signatures["serving_default"]

        def run(batch):
            return function(mr=tf.constant(batch))["ct_hu"].numpy()

        return cls(info, run, batch_size)

    @classmethod
    def remote(cls, server, model_path, version=None, batch_size=8) -> "Synthesizer":
        """A server, with the preprocessing read from the local export description."""
        from mr2ct.serving import client

        _, info = resolve_export(model_path, version)
        name = info["name"]

        def run(batch):
            return client.predict(server, name, {"mr": batch}, version=version)["output"]

        return cls(info, run, batch_size)

    @classmethod
    def from_generator(cls, generator, preprocessing: dict, batch_size=8) -> "Synthesizer":
        """An MR-to-CT generator in memory (e.g. of a training run), with the run's preprocessing record.

        Its output in [-1, 1] is mapped to HU by the record's CT window, as an
        export does inside the model.
        """
        from mr2ct.data.intensity import CTIntensity

        window = CTIntensity.from_config(preprocessing["ct_intensity"])

        def run(batch):
            return window.inverse(np.asarray(generator(batch, training=False), np.float32))

        info = {"name": getattr(generator, "name", "generator"), "image_size": preprocessing["image_size"],
                "preprocessing": preprocessing}
        return cls(info, run, batch_size)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.info["preprocessing"]["config"])

    def slices(self, mr_slices: np.ndarray, progress=None) -> np.ndarray:
        """``[K, S, S]`` in [-1, 1] to ``[K, S, S]`` HU, ``batch_size`` slices at a time."""
        return run_in_batches(self.run_batch, mr_slices, self.batch_size, progress=progress)

    def volume(self, mr: Volume, progress=None, prepared=None) -> Volume:
        """Synthesized CT in HU on ``mr``'s own grid (float32).

        ``prepared``: the ``(slices, record)`` of ``preprocess_mr(mr,
        self.preprocess_config)`` if already computed (skips N4 and
        resampling). Defaults to `None`.
        """
        config = self.preprocess_config
        if config.image_size != self.info["image_size"]:
            raise InputError(None, "export description is inconsistent (image sizes differ)")
        mr_slices, record = prepared if prepared is not None else preprocess_mr(mr, config)
        sct = self.slices(mr_slices, progress)
        on_slices = volume_from_geometry(sct, record["output_geometry"], mr.path)
        return resample_to_reference(on_slices, mr, order=1, default_value=AIR_HU)


def output_path_for(input_path, output, many: bool, dicom: bool = False) -> str:
    """Where the result for ``input_path`` goes: ``output`` itself, or inside it for a folder input
    (``<subject>.nii.gz``, or the series folder ``<subject>`` for DICOM)."""
    if not many:
        return os.fspath(output)
    return os.path.join(os.fspath(output), subject_id(input_path) if dicom else f"{subject_id(input_path)}.nii.gz")


def write_dicom_ct(sct: Volume, source_path, folder) -> list[str]:
    """A synthesized CT as a CT DICOM series in HU on its MR's grid.

    When the MR was itself a DICOM series, the new series keeps its patient and study identifiers and frame of
    reference (so a planning system places it on the MR), with new series and instance UIDs.
    """
    from mr2ct.data.dicom import read_identifiers, write_dicom_series

    source = os.fspath(source_path)
    from_dicom = os.path.isdir(source) or source.lower().endswith(DICOM_EXTENSIONS)
    return write_dicom_series(sct, folder, modality="CT", series_description="mr2ct synthesized CT",
                              identifiers=read_identifiers(source) if from_dicom else None)


def map_volumes(input_path, output, function, progress_factory=None, writer=None) -> list[str]:
    """Apply ``function(mr, progress) -> Volume`` to a volume or every volume of a folder.

    Each result is written to ``output`` (a file, or for a folder input a
    folder of ``<subject>.nii.gz``) with the input's geometry and the
    result's dtype; returns the written paths. ``writer(volume, input path,
    target)``, if given, writes instead (to a series folder ``<subject>`` for
    a folder input). Defaults to `None` (:func:`write_volume`).
    """
    input_path = os.fspath(input_path)
    if not os.path.exists(input_path):
        raise InputError(input_path, "input not found")
    many = os.path.isdir(input_path) and not _is_dicom_folder(input_path)
    inputs = list_volumes(input_path) if many else [input_path]
    written = []
    for path in inputs:
        mr = read_volume(path)
        progress = progress_factory(subject_id(path), mr.shape[0]) if progress_factory else None
        target = output_path_for(path, output, many, dicom=writer is not None)
        if writer is None:
            write_volume(function(mr, progress), target)
        else:
            writer(function(mr, progress), path, target)
        written.append(target)
    return written


def predict_paths(synthesizer: Synthesizer, input_path, output, progress_factory=None,
                  output_format="auto") -> list[str]:
    """Synthesize CT for a volume or every volume of a folder (int16 HU); returns the written paths.

    ``output_format``: ``"auto"`` (NIfTI, NRRD or MetaImage by the output's
    extension; ``<subject>.nii.gz`` in an output folder) or ``"dicom"`` (a
    CT DICOM series folder per volume, :func:`write_dicom_ct`). Defaults to `"auto"`.
    """
    if output_format not in ("auto", "dicom"):
        raise ValueError(f"output_format must be 'auto' or 'dicom'. Received: {output_format!r}")

    def synthesize(mr, progress):
        sct = synthesizer.volume(mr, progress)
        return sct.with_array(np.clip(np.round(sct.array), -32768, 32767).astype(np.int16))

    writer = write_dicom_ct if output_format == "dicom" else None
    return map_volumes(input_path, output, synthesize, progress_factory, writer=writer)


def _is_dicom_folder(path) -> bool:
    """A folder that is itself one DICOM series (no volume files of other formats inside)."""
    entries = os.listdir(path)
    return bool(entries) and all(
        os.path.isfile(os.path.join(path, e)) and not e.endswith((".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"))
        for e in entries
    )
