import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import PatchDiscriminator

# The reference PyTorch CycleGAN's n_layers=3 PatchGAN on 1-channel images.
PAPER_DISCRIMINATOR_PARAMS = 2_762_689


def test_paper_discriminator_has_reference_parameter_count():
    assert PatchDiscriminator().count_params() == PAPER_DISCRIMINATOR_PARAMS


@pytest.mark.parametrize("size, out", [(256, 30), (128, 14), (70, 6)])
def test_output_map_size(size, out):
    d = PatchDiscriminator(filters=4)
    y = d(np.zeros((1, size, size, 1), "float32"))
    assert tuple(y.shape) == (1, out, out, 1)
    assert y.dtype == "float32"


def test_receptive_field_is_70x70():
    """An interior output depends on exactly a 70x70 window of the input.

    Instance normalization couples every pixel through its statistics, so the
    window is measured on the same architecture without normalization.
    """
    d = PatchDiscriminator(filters=4, norm="none")
    assert d.receptive_field == 70
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 128, 128, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = d(x)[0, 7, 7, 0]
    grad = tape.gradient(y, x).numpy()[0, :, :, 0]
    rows, cols = np.nonzero(grad)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70
    assert len(rows) == 70 * 70  # the whole window, not just its bounding box
    # output (7, 7) sees input rows 8*7 - 7 - 1 - 1 - 1 ... : stride 8 between neighbouring outputs
    with tf.GradientTape() as tape:
        tape.watch(x)
        y2 = d(x)[0, 8, 8, 0]
    rows2, cols2 = np.nonzero(tape.gradient(y2, x).numpy()[0, :, :, 0])
    assert rows2.min() - rows.min() == 8 and cols2.min() - cols.min() == 8


def test_keras_file_round_trip(tmp_path):
    d = PatchDiscriminator(filters=8, input_channels=2)
    x = np.random.default_rng(1).normal(size=(2, 64, 64, 2)).astype("float32")
    y = d(x)
    d.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    assert loaded.get_config() == d.get_config()
    np.testing.assert_array_equal(loaded(x).numpy(), y.numpy())


def test_mixed_precision_returns_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        d = PatchDiscriminator(filters=4)
        assert d(np.zeros((1, 32, 32, 1), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        PatchDiscriminator(num_layers=0)
    with pytest.raises(ValueError, match="channel"):
        PatchDiscriminator(filters=4)(np.zeros((1, 32, 32, 3), "float32"))


def test_output_size_formula_and_too_small_input():
    d = PatchDiscriminator(filters=4)
    assert d.output_size(256) == 30 and d.output_size(128) == 14
    assert d.min_input_size == 24
    with pytest.raises(ValueError, match="at least 24"):
        d(np.zeros((1, 16, 16, 1), "float32"))
