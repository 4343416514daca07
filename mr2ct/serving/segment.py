"""Segment whole MR volumes through synthesis with a segmentation run or an export of one.

Each MR goes through the preprocessing of the CycleGAN run the segmentation
run was trained behind (N4, resampling to S x S slices, percentile scaling to
[-1, 1]; the same steps as ``mr2ct predict``). Per batch of slices, G_CT
synthesizes CT, the U-Net takes ``concat([synthesized CT, MR])`` (channel 0
CT-like, channel 1 MR-like, as in training) and the argmax of its logits is
the label. The label slices go back onto the MR's own grid (shape, spacing,
origin and direction of the input) with nearest-neighbour resampling and are
written as uint8, one label per structure (:data:`mr2ct.labels.LABELS`).

An export with segmentation (``mr2ct export --segmentation``) does the
network part in its ``segment`` signature, so the same volumes can be
segmented with a SavedModel loaded here or served over TF Serving's REST API.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr, resample_to_reference, volume_from_geometry
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError
from mr2ct.serving.predict import map_volumes, run_in_batches


@dataclasses.dataclass
class VolumeSegmenter:
    """MR volumes to label volumes, with a segmentation run or an export.

    Build with :meth:`from_run` or ``VolumeSegmenter(run)`` (a segmentation
    run's networks), :meth:`from_export` (the ``segment`` signature of an
    export, loaded here or served by TF Serving / ``mr2ct serve``) or
    :meth:`from_path` (either, by what the folder holds).

    Args:
        run: a :class:`~mr2ct.training.segmentation.SegmentationRun`; gives
            the preprocessing, the slice size and the network. Defaults to
            `None` (then give the three below).
        batch_size: slices per network call. Defaults to `8`.
        preprocessing: the preprocessing record of the CycleGAN run (how MR
            is prepared for the generators). Defaults to the run's.
        run_batch: ``(n, S, S, 1)`` float32 MR slices to ``(n, S, S)``
            integer labels. Defaults to the argmax of the run's model.
        image_size: ``S``. Defaults to the run's.
    """

    run: object = None
    batch_size: int = 8
    preprocessing: dict | None = None
    run_batch: Callable[[np.ndarray], np.ndarray] | None = None
    image_size: int | None = None

    def __post_init__(self):
        if self.run is not None:
            self.preprocessing = self.preprocessing or self.run.preprocessing
            self.image_size = self.image_size or self.run.config.data.image_size
            self.run_batch = self.run_batch or _argmax_function(self.run.model, self.image_size)
        elif self.preprocessing is None or self.run_batch is None or self.image_size is None:
            raise ValueError("give a segmentation run, or preprocessing, run_batch and image_size")
        if self.preprocess_config.image_size != self.image_size:
            raise InputError(
                None, "segmentation model is inconsistent (image sizes of network and preprocessing differ)"
            )

    @classmethod
    def from_run(cls, run_dir, batch_size=8) -> "VolumeSegmenter":
        """The segmenter of a segmentation run folder's latest checkpoint."""
        from mr2ct.training.segmentation import load_segmentation_run

        return cls(load_segmentation_run(run_dir), batch_size)

    @classmethod
    def from_export(cls, model_path, version=None, batch_size=8, server=None) -> "VolumeSegmenter":
        """The ``segment`` signature of an export with segmentation (``mr2ct export --segmentation``).

        Args:
            model_path: ``saved_models/<name>`` or ``saved_models/<name>/<version>``.
            version: version number. Defaults to the latest.
            batch_size: slices per request. Defaults to `8`.
            server: a TF Serving REST address (``http://host:8501``) serving
                the export; the preprocessing is read from the local export
                description. Defaults to `None` (load the SavedModel here).
        """
        from mr2ct.export.exporter import SEGMENT_SIGNATURE, resolve_export

        path, info = resolve_export(model_path, version)
        if not info.get("segmentation") or SEGMENT_SIGNATURE not in info.get("signatures", {}):
            raise InputError(path, "this export has no segmentation (export with `mr2ct export --segmentation`)")
        if server is not None:
            from mr2ct.serving import client

            name, served_version = info["name"], info["version"]  # the version the description is of

            def run(batch):
                return client.predict(server, name, {"mr": batch}, version=served_version,
                                      signature_name=SEGMENT_SIGNATURE)["output"]
        else:
            import tensorflow as tf

            function = tf.saved_model.load(path).signatures[SEGMENT_SIGNATURE]

            def run(batch):
                return function(mr=tf.constant(batch))["labels"].numpy()

        return cls(None, batch_size, info["preprocessing"], run, info["image_size"])

    @classmethod
    def from_path(cls, path, batch_size=8, version=None, server=None) -> "VolumeSegmenter":
        """:meth:`from_export` for an export folder, :meth:`from_run` for anything else."""
        from mr2ct.export.exporter import EXPORT_FILE, existing_versions

        path = os.fspath(path)
        is_export = os.path.exists(os.path.join(path, EXPORT_FILE)) or any(
            os.path.exists(os.path.join(path, str(v), EXPORT_FILE)) for v in existing_versions(path)
        )
        if is_export:
            return cls.from_export(path, version, batch_size, server)
        if server is not None or version is not None:
            raise InputError(path, "--server and --version need an export folder (mr2ct export), not a run folder")
        return cls.from_run(path, batch_size)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.preprocessing["config"])

    def slices(self, mr_slices: np.ndarray, progress=None) -> np.ndarray:
        """``[K, S, S]`` preprocessed MR in [-1, 1] to ``[K, S, S]`` uint8 labels."""
        return run_in_batches(self.run_batch, mr_slices, self.batch_size, np.uint8, progress)

    def volume(self, mr: Volume, progress=None, prepared=None) -> Volume:
        """Labels (uint8) on ``mr``'s own grid.

        ``prepared``: the ``(slices, record)`` of ``preprocess_mr(mr,
        self.preprocess_config)`` if already computed. Defaults to `None`.
        """
        mr_slices, record = prepared if prepared is not None else preprocess_mr(mr, self.preprocess_config)
        labels = self.slices(mr_slices, progress)
        on_slices = volume_from_geometry(labels, record["output_geometry"], mr.path)
        return resample_to_reference(on_slices, mr, order=0, default_value=0)


def _argmax_function(model, size: int):
    """``(n, S, S, 1)`` MR slices to int32 labels with a :class:`~mr2ct.models.SynthesisSegmenter`."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)])
    def labels(mr):
        return tf.cast(tf.argmax(model(mr, training=False), axis=-1), tf.int32)

    return lambda batch: labels(batch).numpy()


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

    def segment(mr, progress):
        labels = segmenter.volume(mr, progress)
        return labels.with_array(labels.array.astype(np.uint8))

    return map_volumes(input_path, output, segment, progress_factory)
