"""Training on random crops, translating whole slices: the CycleGAN sees crops, the export whole slices."""

import json
import os

import numpy as np
import pytest

from mr2ct.config import preset
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.data.prepare import prepare_dataset
from mr2ct.errors import ConfigError
from mr2ct.export import export_run
from mr2ct.training.builders import build_cyclegan, build_preprocess_config
from mr2ct.training.trainer import train_cyclegan


def test_crop_size_is_checked_and_sizes_the_pools():
    config = preset("tiny").override(["data.crop_size=16"])
    assert (config.data.image_size, config.data.train_size) == (32, 16)
    assert build_cyclegan(config).pool_ct.image_shape == (16, 16, 1)
    assert preset("tiny").data.train_size == 32
    for bad in ("data.crop_size=24", "data.crop_size=48", "data.crop_size=-16"):
        with pytest.raises(ConfigError, match="data.crop_size"):
            preset("tiny").override([bad])


def test_a_run_on_crops_exports_a_whole_slice_translator(tmp_path):
    config = preset("tiny").override(["data.image_size=64", "data.crop_size=32"])
    write_phantom_dataset(tmp_path / "phantom", 2, seed=4, size="small")
    prepare_dataset(tmp_path / "prepared", mr_dir=tmp_path / "phantom" / "mr", ct_dir=tmp_path / "phantom" / "ct",
                    config=build_preprocess_config(config), workers=1)
    result = train_cyclegan(tmp_path / "prepared", tmp_path / "run", config=config, progress=False)
    assert result.step == config.train.total_steps
    exported = export_run(tmp_path / "run", tmp_path / "models", name="m")
    with open(os.path.join(exported.path, "mr2ct_export.json")) as f:
        assert json.load(f)["image_size"] == 64

    import tensorflow as tf

    serve = tf.saved_model.load(exported.path).signatures["serving_default"]
    out = serve(mr=tf.zeros((2, 64, 64, 1)))["ct_hu"].numpy()
    assert out.shape == (2, 64, 64, 1) and np.isfinite(out).all()
