import keras
import numpy as np
import pytest

from mr2ct.models import ResnetGenerator, ValidConv2D

# The reference PyTorch CycleGAN's resnet_9blocks generator, 1-channel in and out.
PAPER_GENERATOR_PARAMS = 11_365_633

SHAPE_CASES = [
    # kwargs, input shape, output shape
    (dict(filters=8, num_blocks=1), (2, 32, 32, 1), (2, 32, 32, 1)),
    (dict(filters=8, num_blocks=2, output_channels=3), (1, 16, 24, 1), (1, 16, 24, 3)),
    (dict(filters=4, num_blocks=0, input_channels=2, num_downsampling=3), (1, 24, 16, 2), (1, 24, 16, 1)),
]


def test_paper_generator_has_reference_parameter_count():
    assert ResnetGenerator().count_params() == PAPER_GENERATOR_PARAMS


def test_paper_generator_layer_layout():
    g = ResnetGenerator()
    convs = [
        l for l in g._flatten_layers()
        if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
    ]
    kernels = [tuple(c.kernel.shape) for c in convs]
    assert kernels[0] == (7, 7, 1, 64)
    assert kernels[1:3] == [(3, 3, 64, 128), (3, 3, 128, 256)]
    assert kernels[3:21] == [(3, 3, 256, 256)] * 18  # 9 blocks x 2 convs
    assert kernels[21:23] == [(3, 3, 128, 256), (3, 3, 64, 128)]  # transposed: (k, k, out, in)
    assert kernels[23] == (7, 7, 64, 1)
    assert all(c.use_bias for c in convs)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", SHAPE_CASES)
def test_output_shape_range_and_dtype(kwargs, in_shape, out_shape):
    g = ResnetGenerator(**kwargs)
    y = g(np.random.default_rng(0).uniform(-1, 1, in_shape).astype("float32"))
    assert tuple(y.shape) == out_shape
    assert y.dtype == "float32"
    assert np.all(np.abs(y.numpy()) <= 1.0)


def test_transposed_conv_matches_pytorch_alignment():
    """A single impulse through up-sampling lands where PyTorch's padding=1, output_padding=1 puts it."""
    g = ResnetGenerator(filters=1, num_blocks=0, num_downsampling=1, norm="none")
    up = g.get_layer("up0_conv")
    crop = g.get_layer("up0_crop")
    kernel = np.zeros((3, 3, 1, 2), "float32")  # (k, k, out, in)
    kernel[:, :, 0, 0] = np.arange(9, dtype="float32").reshape(3, 3)
    up.kernel.assign(kernel)
    up.bias.assign(np.zeros(1, "float32"))
    x = np.zeros((1, 4, 4, 2), "float32")
    x[0, 1, 2, 0] = 1.0
    y = crop(up(x)).numpy()[0, :, :, 0]
    # PyTorch: out[2*i - 1 + ki, 2*j - 1 + kj] += w[ki, kj] (w spatially as given), 8x8 output
    expected = np.zeros((8, 8), "float32")
    w = np.arange(9, dtype="float32").reshape(3, 3)
    for ki in range(3):
        for kj in range(3):
            r, c = 2 * 1 - 1 + ki, 2 * 2 - 1 + kj
            if 0 <= r < 8 and 0 <= c < 8:
                expected[r, c] += w[ki, kj]
    np.testing.assert_array_equal(y, expected)


def test_keras_file_round_trip(tmp_path):
    g = ResnetGenerator(filters=8, num_blocks=2, input_channels=2, output_channels=2)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 16, 16, 2)).astype("float32")
    y = g(x)
    g.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    assert isinstance(loaded, ResnetGenerator)
    assert loaded.get_config() == g.get_config()
    np.testing.assert_array_equal(loaded(x).numpy(), y.numpy())


@pytest.mark.parametrize("form", ["auto", "tensorflow", "forward"])
def test_conv_gradient_reaches_every_stride_1_convolution_and_round_trips(form):
    g = ResnetGenerator(filters=4, num_blocks=2, conv_gradient=form)
    convs = [layer for layer in g._flatten_layers() if isinstance(layer, ValidConv2D)]
    assert len(convs) == 2 + 2 * 2  # stem, head and two per residual block
    assert {str(layer.gradient) for layer in convs} == {form}
    assert g.get_config()["conv_gradient"] == form
    assert ResnetGenerator.from_config(g.get_config()).get_config() == g.get_config()


def test_conv_gradient_comes_from_the_config():
    from mr2ct.config import preset
    from mr2ct.training.builders import build_generator

    g = build_generator(preset("tiny").override(["model.conv_gradient=tensorflow"]), "g")
    assert g.conv_gradient == "tensorflow"
    assert build_generator(preset("tiny"), "g").conv_gradient == "auto"


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_returns_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        g = ResnetGenerator(filters=4, num_blocks=1)
        assert g.get_layer("stem_conv").compute_dtype != "float32"
        y = g(np.zeros((1, 8, 8, 1), "float32"))
        assert y.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=0), "filters"),
        (dict(num_blocks=-1), "num_blocks"),
        (dict(norm="layer"), "layer"),
        (dict(input_channels=1.5), "input_channels"),
        (dict(conv_gradient="fast"), "gradient must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResnetGenerator(**kwargs)


@pytest.mark.parametrize("shape", [(1, 30, 32, 1), (1, 32, 32, 2), (32, 32, 1)])
def test_bad_input_shape(shape):
    g = ResnetGenerator(filters=4, num_blocks=1)
    with pytest.raises(ValueError):
        g(np.zeros(shape, "float32"))
