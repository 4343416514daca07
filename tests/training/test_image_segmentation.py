"""The MR-supervised reference: a one-channel U-Net trained on labelled MR, segmenting MR alone."""

import os

import numpy as np
import pytest

from mr2ct.config import preset
from mr2ct.data.io import read_volume
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.data.prepare import prepare_dataset
from mr2ct.errors import ConfigError, InputError
from mr2ct.training.builders import build_preprocess_config
from mr2ct.training.image_segmentation import load_image_segmenter, train_image_segmentation


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mr_supervised")
    write_phantom_dataset(root / "phantom", 2, seed=5, size="small")
    config = preset("tiny")
    prepare_dataset(root / "labelled", mr_dir=root / "phantom" / "mr", mr_labels_dir=root / "phantom" / "labels_mr",
                    config=build_preprocess_config(config), workers=1)
    prepare_dataset(root / "unlabelled", mr_dir=root / "phantom" / "mr", config=build_preprocess_config(config),
                    workers=1)
    return root


def test_trains_resumes_and_segments_mr_volumes_on_their_own_grid(folders, tmp_path):
    config = preset("tiny")
    steps = config.segmentation.steps
    assert train_image_segmentation(folders / "labelled", tmp_path / "run", config=config, max_steps=3,
                                    progress=False).step == 3
    result = train_image_segmentation(folders / "labelled", tmp_path / "run", progress=False)
    assert (result.step, result.resumed_from) == (steps, 3)
    with pytest.raises(ConfigError, match="other settings"):
        train_image_segmentation(folders / "labelled", tmp_path / "run",
                                 config=config.override(["segmentation.learning_rate=0.5"]), progress=False)
    segmenter = load_image_segmenter(tmp_path / "run")
    mr = read_volume(os.path.join(folders, "phantom", "mr", "subject_000.nii.gz"))
    labels = segmenter.volume(mr)
    assert labels.array.shape == mr.array.shape
    assert labels.array.dtype == np.uint8 and labels.array.max() < 32


def test_data_without_mr_labels_and_missing_runs_are_clear_errors(folders, tmp_path):
    with pytest.raises(InputError, match="no labelled MR slices"):
        train_image_segmentation(folders / "unlabelled", tmp_path / "run", config=preset("tiny"), progress=False)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
    with pytest.raises(InputError, match="not found"):
        load_image_segmenter(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="32x32"):
        train_image_segmentation(folders / "labelled", tmp_path / "other", progress=False,
                                 config=preset("tiny").override(["data.image_size=64"]))
