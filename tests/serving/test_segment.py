import os
import shutil

import numpy as np
import pytest

from seg_fixtures import mr_volume_path, segmentation_run

from mr2ct.data.io import read_volume
from mr2ct.data.preprocess import preprocess_mr
from mr2ct.errors import InputError
from mr2ct.labels import NUM_CLASSES
from mr2ct.serving.segment import VolumeSegmenter, segment_paths


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return VolumeSegmenter.from_run(segmentation_run(tmp_path_factory, steps=2), batch_size=3)


def test_labels_on_the_mr_grid(segmenter, tmp_path_factory, tmp_path):
    mr_path = mr_volume_path(tmp_path_factory)
    written = segment_paths(segmenter, mr_path, tmp_path / "labels.nii.gz")
    assert written == [str(tmp_path / "labels.nii.gz")]
    labels, mr = read_volume(written[0]), read_volume(mr_path)
    assert labels.shape == mr.shape
    np.testing.assert_allclose(labels.affine_lps, mr.affine_lps, atol=1e-4)
    assert labels.array.dtype == np.uint8
    assert 0 <= labels.array.min() and labels.array.max() < NUM_CLASSES


def test_volume_is_the_argmax_of_the_model_on_preprocessed_slices(segmenter, tmp_path_factory):
    mr = read_volume(mr_volume_path(tmp_path_factory))
    slices, _ = preprocess_mr(mr, segmenter.preprocess_config)
    logits = segmenter.run.model(slices[..., None]).numpy()
    np.testing.assert_array_equal(segmenter.slices(slices), np.argmax(logits, axis=-1))


def test_folder_in_folder_out_and_errors(segmenter, tmp_path_factory, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(mr_volume_path(tmp_path_factory), inputs / "hip_a.nii.gz")
    written = segment_paths(segmenter, inputs, tmp_path / "out")
    assert [os.path.basename(p) for p in written] == ["hip_a.nii.gz"]
    with pytest.raises(InputError, match="input not found"):
        segment_paths(segmenter, tmp_path / "nope.nii.gz", tmp_path / "x.nii.gz")
