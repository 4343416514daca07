import keras
import numpy as np
import pytest

from mr2ct.models import UNet

CASES = [
    # kwargs, input shape, output shape
    (dict(filters=4, depth=2), (2, 32, 32, 2), (2, 32, 32, 23)),
    (dict(filters=4, depth=3, num_classes=5, input_channels=1), (1, 16, 24, 1), (1, 16, 24, 5)),
    (dict(filters=4, depth=1, norm="none"), (1, 8, 8, 2), (1, 8, 8, 23)),
]


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_logits_shape_and_dtype(kwargs, in_shape, out_shape):
    y = UNet(**kwargs)(np.random.default_rng(0).normal(size=in_shape).astype("float32"))
    assert tuple(y.shape) == out_shape
    assert y.dtype == "float32"
    # logits, not probabilities
    assert y.numpy().min() < 0 or y.numpy().max() > 1


def test_default_is_two_channels_23_classes():
    u = UNet()
    assert u.input_channels == 2 and u.num_classes == 23
    assert u.count_params() > 30_000_000  # depth 4, 64 base filters


def test_keras_file_round_trip(tmp_path):
    u = UNet(filters=4, depth=2)
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 2)).astype("float32")
    y = u(x)
    u.save(tmp_path / "u.keras")
    loaded = keras.models.load_model(tmp_path / "u.keras")
    assert loaded.get_config() == u.get_config()
    np.testing.assert_allclose(loaded(x).numpy(), y.numpy(), atol=1e-6)


def test_learns_a_trivial_segmentation():
    """Two steps of training lower the loss: gradients reach every stage."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 16, 16, 2)).astype("float32")
    labels = (x[..., 0] > 0).astype("int32")
    u = UNet(filters=4, depth=2, num_classes=2)
    u.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = u.fit(x, labels, epochs=8, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(depth=0), dict(norm="group")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        UNet(**kwargs)


def test_size_not_divisible():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(filters=4, depth=2)(np.zeros((1, 18, 16, 2), "float32"))
