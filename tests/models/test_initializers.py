"""Initial kernels of the CycleGAN's networks: Keras' Glorot uniform or the reference CycleGAN's N(0, 0.02)."""

import keras
import numpy as np
import pytest

from mr2ct.config import NormName, WeightInitName, preset
from mr2ct.errors import ConfigError
from mr2ct.models import REFERENCE_INIT_STD, Norm, PatchDiscriminator, ResnetGenerator, WeightInit
from mr2ct.training import builders


def _kernels(model):
    return [w.numpy() for w in model.weights if w.name == "kernel" or w.path.endswith("/kernel")]


def _glorot_std(kernel):
    *window, fan_in_channels, fan_out_channels = kernel.shape
    receptive = int(np.prod(window))
    return np.sqrt(2.0 / (receptive * fan_in_channels + receptive * fan_out_channels))


@pytest.mark.parametrize("build", [
    lambda init: ResnetGenerator(filters=16, num_blocks=2, init=init),
    lambda init: PatchDiscriminator(filters=16, init=init),
])
def test_kernels_follow_the_chosen_distribution(build):
    keras.utils.set_random_seed(0)
    normal, glorot = _kernels(build("normal")), _kernels(build("glorot_uniform"))
    assert len(normal) == len(glorot) >= 5
    for kernel in normal:
        if kernel.size >= 2000:  # enough values for a sample sd within a few percent
            assert abs(kernel.std() - REFERENCE_INIT_STD) < 0.1 * REFERENCE_INIT_STD, kernel.shape
            assert abs(kernel.mean()) < 0.1 * REFERENCE_INIT_STD
    for kernel in glorot:
        if kernel.size >= 2000:
            expected = _glorot_std(kernel)
            assert abs(kernel.std() - expected) < 0.1 * expected, kernel.shape
            assert np.abs(kernel).max() <= np.sqrt(3.0) * expected * 1.0001  # uniform within the Glorot limit
    # every layer draws its own values
    same_shape = [k for k in normal if k.shape == normal[-2].shape]
    assert all(not np.array_equal(a, b) for i, a in enumerate(same_shape) for b in same_shape[i + 1:])
    biases = [w.numpy() for m in (build("normal"),) for w in m.weights if w.path.endswith("/bias")]
    assert biases and all(not b.any() for b in biases)


def test_init_round_trips_and_old_configs_mean_glorot():
    g = ResnetGenerator(filters=4, num_blocks=1, init="normal")
    config = g.get_config()
    assert config["init"] == "normal" and ResnetGenerator.from_config(config).init == WeightInit.NORMAL
    d = PatchDiscriminator(filters=4, init=WeightInit.NORMAL)
    assert PatchDiscriminator.from_config(d.get_config()).get_config() == d.get_config()
    old = {k: v for k, v in config.items() if k != "init"}  # saved before the argument existed
    assert ResnetGenerator.from_config(old).init == WeightInit.GLOROT
    block = g.stages[[s.name for s in g.stages].index("block0")]
    assert block.get_config()["init"] == "normal"
    with pytest.raises(ValueError, match="uniform"):
        ResnetGenerator(filters=4, num_blocks=1, init="uniform")


def test_config_key_builds_the_networks_and_is_checked():
    config = preset("tiny").override(["model.init=normal"])
    generator = builders.build_generator(config, "g")
    discriminator = builders.build_discriminator(config, "d")
    assert generator.init == discriminator.init == WeightInit.NORMAL
    assert all(preset(name).model.init == "normal" for name in ("paper", "cpu", "tiny"))
    with pytest.raises(ConfigError, match="model.init must be one of"):
        preset("tiny").override(["model.init=he"])
    with pytest.raises(ConfigError, match="model.norm must be one of"):
        preset("tiny").override(["model.norm=layer"])


def test_config_names_match_the_model_enums():
    assert [k.value for k in WeightInitName] == [k.value for k in WeightInit]
    assert [k.value for k in NormName] == [k.value for k in Norm]
