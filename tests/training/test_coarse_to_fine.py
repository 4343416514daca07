"""Coarse-to-fine CycleGAN training (train.coarse_steps): half-resolution steps first, then full resolution."""

import pytest
import tensorflow as tf

from mr2ct.config import preset
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.data.prepare import prepare_dataset
from mr2ct.errors import ConfigError
from mr2ct.training.builders import build_preprocess_config
from mr2ct.training.trainer import train_cyclegan


def test_coarse_steps_are_checked():
    assert preset("paper").train.coarse_steps == 0
    config = preset("tiny").override(["train.coarse_steps=4"])
    assert config.train.coarse_steps == 4
    total = config.train.total_steps
    for bad, words in ((f"train.coarse_steps={total}", "below"), ("train.coarse_steps=-1", "at least 0")):
        with pytest.raises(ConfigError, match=words):
            preset("tiny").override([bad])
    with pytest.raises(ConfigError, match="multiple of 32"):  # 48 / 2 = 24 is no multiple of 16
        preset("tiny").override(["data.image_size=48", "train.coarse_steps=2"])
    preset("tiny").override(["data.image_size=64", "data.crop_size=32", "train.coarse_steps=2"])


def test_coarse_images_smaller_than_the_discriminators_take_are_refused(tmp_path):
    write_phantom_dataset(tmp_path / "phantom", 1, seed=4, size="small")
    config = preset("tiny").override(["train.coarse_steps=4"])  # 16 x 16: the discriminators need 24
    prepare_dataset(tmp_path / "prepared", mr_dir=tmp_path / "phantom" / "mr", ct_dir=tmp_path / "phantom" / "ct",
                    config=build_preprocess_config(config), workers=1)
    with pytest.raises(ConfigError, match="16x16.*smallest input"):
        train_cyclegan(tmp_path / "prepared", tmp_path / "run", config=config, progress=False)


def test_a_coarse_to_fine_run_trains_at_half_size_then_full_size_and_resumes_at_the_change(tmp_path):
    write_phantom_dataset(tmp_path / "phantom", 2, seed=4, size="small")
    config = preset("tiny").override(["data.image_size=64", "train.coarse_steps=4", "train.checkpoint_every=2",
                                      "train.image_summary_every=2"])
    prepare_dataset(tmp_path / "prepared", mr_dir=tmp_path / "phantom" / "mr", ct_dir=tmp_path / "phantom" / "ct",
                    config=build_preprocess_config(config), workers=1)
    total = config.train.total_steps
    run = tmp_path / "run"
    assert train_cyclegan(tmp_path / "prepared", run, config=config, progress=False, max_steps=4).step == 4

    def pool_count():
        reader = tf.train.load_checkpoint(str(run / "checkpoints"))
        names = [n for n in reader.get_variable_to_shape_map() if "pool_ct" in n and "count" in n]
        assert len(names) == 1
        return int(reader.get_tensor(names[0]))

    assert pool_count() == 0  # the coarse steps bypass the full-size pools
    assert image_sides(run) == {32}
    assert train_cyclegan(tmp_path / "prepared", run, progress=False).step == total
    assert pool_count() == min(config.loss.pool_size, (total - 4) * config.data.batch_size)
    assert image_sides(run) == {32, 64}


def image_sides(run):
    """Heights of the translation image summaries a run wrote (real | translated | reconstructed strips)."""
    sides = set()
    for path in tf.io.gfile.glob(str(run / "logs" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "mr_to_ct":
                    sides.add(int(tf.make_ndarray(value.tensor)[0]) // 3)  # width of three images
    return sides
