"""Segment whole MR volumes through synthesis with a trained segmentation run.

Each MR goes through the preprocessing of the CycleGAN run the segmentation
run was trained behind (N4, resampling to S x S slices, percentile scaling to
[-1, 1]; the same steps as ``mr2ct predict``). Per batch of slices, G_CT
synthesizes CT, the U-Net takes ``concat([synthesized CT, MR])`` (channel 0
CT-like, channel 1 MR-like, as in training) and the argmax of its logits is
the label. The label slices go back onto the MR's own grid (shape, spacing,
origin and direction of the input) with nearest-neighbour resampling and are
written as uint8, one label per structure (:data:`mr2ct.data.phantom.LABELS`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from mr2ct.data.io import list_volumes, read_volume, subject_id, write_volume
from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr, resample_to_reference, volume_from_geometry
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError
from mr2ct.serving.predict import _is_dicom_folder, output_path_for


@dataclasses.dataclass
class VolumeSegmenter:
    """MR volumes to label volumes with a segmentation run's networks.

    Build with :meth:`from_run`.

    Args:
        run: a :class:`~mr2ct.training.segmentation.SegmentationRun`.
        batch_size: slices per network call. Defaults to `8`.
    """

    run: object
    batch_size: int = 8

    def __post_init__(self):
        import tensorflow as tf

        size = self.run.config.data.image_size
        if self.preprocess_config.image_size != size:
            raise InputError(None, "segmentation run is inconsistent (image sizes of config and preprocessing differ)")
        model = self.run.model

        @tf.function(input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)])
        def labels(mr):
            return tf.cast(tf.argmax(model(mr, training=False), axis=-1), tf.uint8)

        self._labels = labels

    @classmethod
    def from_run(cls, run_dir, batch_size=8) -> "VolumeSegmenter":
        """The segmenter of a segmentation run folder's latest checkpoint."""
        from mr2ct.training.segmentation import load_segmentation_run

        return cls(load_segmentation_run(run_dir), batch_size)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.run.preprocessing["config"])

    def slices(self, mr_slices: np.ndarray, progress=None) -> np.ndarray:
        """``[K, S, S]`` preprocessed MR in [-1, 1] to ``[K, S, S]`` uint8 labels."""
        out = np.empty(mr_slices.shape, np.uint8)
        for start in range(0, len(mr_slices), self.batch_size):
            batch = mr_slices[start:start + self.batch_size, ..., None].astype(np.float32)
            out[start:start + len(batch)] = self._labels(batch).numpy()
            if progress:
                progress(len(batch))
        return out

    def volume(self, mr: Volume, progress=None) -> Volume:
        """Labels (uint8) on ``mr``'s own grid."""
        mr_slices, record = preprocess_mr(mr, self.preprocess_config)
        labels = self.slices(mr_slices, progress)
        on_slices = volume_from_geometry(labels, record["output_geometry"], mr.path)
        return resample_to_reference(on_slices, mr, order=0, default_value=0)


def segment_paths(segmenter: VolumeSegmenter, input_path, output, progress_factory=None) -> list[str]:
    """Segment a volume or every volume of a folder; returns the written paths.

    Args:
        segmenter: a :class:`VolumeSegmenter`.
        input_path: an MR volume (NIfTI, NRRD, MHA, a DICOM series folder) or
            a folder of volumes.
        output: the label file, or for a folder input the output folder
            (``<subject>.nii.gz`` each).
        progress_factory: callable ``(subject, slices) -> progress(n)`` or
            `None`. Defaults to `None`.
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
        labels = segmenter.volume(mr, progress)
        target = output_path_for(path, output, many)
        write_volume(labels, target, dtype="uint8")
        written.append(target)
    return written
