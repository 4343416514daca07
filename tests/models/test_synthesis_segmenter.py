import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import ResnetGenerator, SynthesisSegmenter, UNet
from mr2ct.models.image_segmenter import mean_dice_per_image

SIZE = 32
CLASSES = 5


def make_segmenter(dice_weight=0.0, optimizer=None, norm="batch", seed=0, dice_classes="present"):
    keras.utils.set_random_seed(seed)
    model = SynthesisSegmenter(
        UNet(num_classes=CLASSES, depth=2, filters=4, norm=norm, name="unet"),
        generator_ct_to_mr=ResnetGenerator(filters=4, num_blocks=1, name="g_mr"),
        generator_mr_to_ct=ResnetGenerator(filters=4, num_blocks=1, name="g_ct"),
        dice_weight=dice_weight,
        dice_classes=dice_classes,
    )
    model.compile(optimizer or keras.optimizers.Adam(1e-2))
    return model


def batch(n=2, seed=0):
    """CT slices in [-1, 1] and labels that follow the CT intensity (learnable)."""
    rng = np.random.default_rng(seed)
    ct = rng.uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32")
    labels = np.clip(((ct[..., 0] + 1) / 2 * CLASSES).astype("int32"), 0, CLASSES - 1)
    return ct, labels


def values(variables):
    return [v.numpy().copy() for v in variables]


def test_train_step_lowers_the_loss_and_trains_only_the_unet():
    model = make_segmenter()
    generators = model.generator_ct_to_mr.weights + model.generator_mr_to_ct.weights
    generators_before = values(generators)
    unet_before = values(model.unet.trainable_variables)
    assert {v.path.split("/")[0] for v in model.trainable_variables} == {"unet"}

    data = batch()
    step = tf.function(model.train_step)
    losses = []
    for _ in range(6):
        losses.append(float(step(data)["loss"]))
        for metric in model.metrics:
            metric.reset_state()
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    for before, variable in zip(generators_before, generators):
        np.testing.assert_array_equal(before, variable.numpy())
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(unet_before, model.unet.trainable_variables)]
    assert all(changed)


def test_channel_convention():
    model = make_segmenter()
    ct, _ = batch()
    inputs = model.training_inputs(ct).numpy()
    np.testing.assert_array_equal(inputs[..., 0:1], ct)  # channel 0: CT-like
    np.testing.assert_allclose(inputs[..., 1:2], model.generator_ct_to_mr(ct).numpy(), atol=1e-6)  # 1: MR-like
    mr = ct
    expected = model.unet(np.concatenate([model.generator_mr_to_ct(mr).numpy(), mr], axis=-1))
    np.testing.assert_allclose(model(mr).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("dice_weight, names", [
    (0.0, {"loss", "cross_entropy", "dice"}),
    (0.5, {"loss", "cross_entropy", "soft_dice", "dice"}),
])
def test_loss_is_cross_entropy_plus_weighted_soft_dice(dice_weight, names):
    model = make_segmenter(dice_weight=dice_weight, optimizer=keras.optimizers.SGD(0.0))
    logs = {k: float(v) for k, v in model.train_step(batch()).items()}
    assert set(logs) == names
    expected = logs["cross_entropy"] + dice_weight * logs.get("soft_dice", 0.0)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert 0.0 <= logs["dice"] <= 1.0


@pytest.mark.parametrize("dice_classes", ["present", "all"])
def test_the_soft_dice_term_averages_over_the_classes_asked_for(dice_classes):
    from mr2ct.losses import soft_dice_loss_per_image

    model = make_segmenter(dice_weight=1.0, optimizer=keras.optimizers.SGD(0.0), dice_classes=dice_classes)
    ct, labels = batch()
    labels[labels == 3] = 0  # a structure absent from both images
    logs = model.train_step((ct, labels))
    logits = model.unet(model.training_inputs(ct), training=True)
    expected = np.mean(soft_dice_loss_per_image(labels, logits, classes=dice_classes))
    assert float(logs["soft_dice"]) == pytest.approx(float(expected), rel=1e-5)


# labels, predictions, expected mean Dice per image
DICE_CASES = [
    ([[1, 1], [2, 0]], [[1, 1], [2, 0]], 1.0),
    ([[1, 1], [0, 0]], [[1, 0], [0, 0]], 2 * 1 / 3),
    ([[1, 1], [0, 0]], [[2, 2], [0, 0]], 0.0),  # classes 1 and 2 both scored 0
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0),  # no foreground anywhere
    ([[1, 0], [0, 3]], [[1, 0], [0, 0]], 0.5),  # class 3 missed
]


@pytest.mark.parametrize("labels, predictions, expected", DICE_CASES)
def test_mean_dice_per_image(labels, predictions, expected):
    got = mean_dice_per_image(np.array([labels]), np.array([predictions]), CLASSES)
    np.testing.assert_allclose(np.asarray(got), [expected], atol=1e-6)


def test_rejects_bad_arguments():
    generator = ResnetGenerator(filters=4, num_blocks=1, name="g")
    with pytest.raises(ValueError, match="input_channels=1"):
        SynthesisSegmenter(UNet(input_channels=1, depth=1, filters=2), generator)
    with pytest.raises(ValueError, match="dice_weight=-1"):
        SynthesisSegmenter(UNet(depth=1, filters=2), generator, dice_weight=-1)
    with pytest.raises(ValueError, match="dice_classes='absent'"):
        SynthesisSegmenter(UNet(depth=1, filters=2), generator, dice_classes="absent")
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"ct_dropout={bad}"):
            SynthesisSegmenter(UNet(depth=1, filters=2), generator, ct_dropout=bad)
    model = SynthesisSegmenter(UNet(depth=1, filters=2), generator)
    with pytest.raises(ValueError, match="generator_mr_to_ct"):
        model(np.zeros((1, SIZE, SIZE, 1), "float32"))


@pytest.mark.parametrize("norm", ["none", "instance"])
def test_two_replicas_equal_one_device(norm, two_cpu_strategy):
    # (batch normalization takes its statistics per replica, so it is left out)
    data = batch(n=4, seed=2)
    single = make_segmenter(norm=norm, optimizer=keras.optimizers.SGD(0.1), seed=4)
    single.train_step(data)
    strategy = two_cpu_strategy
    with strategy.scope():
        mirrored = make_segmenter(norm=norm, optimizer=keras.optimizers.SGD(0.1), seed=4)
    iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(data)))
    tf.function(lambda it: strategy.run(mirrored.train_step, args=(next(it),)))(iterator)
    for a, b in zip(single.metrics, mirrored.metrics):
        assert float(a.result()) == pytest.approx(float(b.result()), rel=1e-5), a.name
    for a, b in zip(single.unet.variables, mirrored.unet.variables):  # moving statistics too
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)


def test_ct_dropout_blanks_the_ct_channel_of_some_images_only():
    generator = ResnetGenerator(filters=4, num_blocks=1, name="g")
    model = SynthesisSegmenter(UNet(depth=1, filters=2), generator, ct_dropout=0.5, seed=3)
    inputs = np.concatenate([np.full((200, 4, 4, 1), 0.7), np.full((200, 4, 4, 1), -0.3)], -1).astype("float32")
    out = np.asarray(model._drop_ct(inputs))
    np.testing.assert_array_equal(out[..., 1], np.float32(-0.3))  # the MR-like channel is never touched
    blanked = np.all(out[..., 0] == 0, axis=(1, 2))
    assert np.all(out[~blanked, ..., 0] == np.float32(0.7))  # a whole image's CT channel, or none of it
    assert 0.35 < blanked.mean() < 0.65
    # without dropout the step's inputs are the two channels as they are
    assert SynthesisSegmenter(UNet(depth=1, filters=2), generator).seed_generator is None
