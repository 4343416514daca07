import keras
import numpy as np
import pytest

from mr2ct.losses import cross_entropy_per_image, soft_dice_loss_per_image

CLASSES = 4


def labels_and_logits(seed=0, n=2, size=8):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, (n, size, size)).astype("int32")
    logits = rng.normal(size=(n, size, size, CLASSES)).astype("float32")
    return labels, logits


def confident(labels, margin=30.0):
    """Logits that put all probability on ``labels``."""
    return (np.eye(CLASSES, dtype="float32")[labels] * margin).astype("float32")


def test_cross_entropy_is_the_per_image_mean_of_keras_sparse_cross_entropy():
    labels, logits = labels_and_logits()
    got = np.asarray(cross_entropy_per_image(labels, logits))
    per_pixel = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(got, np.asarray(per_pixel).mean(axis=(1, 2)), rtol=1e-5)
    assert got.shape == (2,)


# labels, logits-maker, expected soft-Dice loss per image
SOFT_DICE_CASES = [
    ("perfect", lambda y: confident(y), 0.0),
    ("all background predicted", lambda y: confident(np.zeros_like(y)), None),
]


@pytest.mark.parametrize("name, make_logits, expected", SOFT_DICE_CASES)
def test_soft_dice(name, make_logits, expected):
    labels, _ = labels_and_logits(seed=1)
    loss = np.asarray(soft_dice_loss_per_image(labels, make_logits(labels)))
    assert loss.shape == (2,)
    if expected is not None:
        np.testing.assert_allclose(loss, expected, atol=1e-4)
    else:  # every foreground class missed: near 1
        assert np.all(loss > 0.9)


def test_losses_reject_wrong_ranks():
    labels, logits = labels_and_logits()
    with pytest.raises(ValueError, match="expected labels"):
        cross_entropy_per_image(labels[..., None], logits)
    with pytest.raises(ValueError, match="expected labels"):
        soft_dice_loss_per_image(labels, logits[0])


def numpy_ce_plus_dice(labels, logits, dice_weight=1.0, smooth=1.0, classes="present"):
    """Per-image cross-entropy + dice_weight * (1 - mean soft Dice over the foreground classes present in the
    image's labels, or over all of them), in NumPy."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    out = []
    for y, p in zip(labels, probabilities):
        ce = -np.mean(np.log(np.take_along_axis(p, y[..., None], axis=-1)))
        dices = []
        for c in range(1, p.shape[-1]):
            truth = (y == c).astype(np.float64)
            if classes == "present" and not truth.any():
                continue
            dices.append((2 * (p[..., c] * truth).sum() + smooth) / (p[..., c].sum() + truth.sum() + smooth))
        out.append(ce + dice_weight * ((1 - np.mean(dices)) if dices else 0.0))
    return np.array(out)


@pytest.mark.parametrize("classes", ["present", "all"])
def test_cross_entropy_plus_soft_dice_equals_a_numpy_reference_with_an_absent_class(classes):
    labels, logits = labels_and_logits(seed=2)
    labels[0][labels[0] == 2] = 0  # class 2 is absent from the first image
    assert 2 not in labels[0] and 2 in labels[1]
    got = np.asarray(cross_entropy_per_image(labels, logits)) + np.asarray(
        soft_dice_loss_per_image(labels, logits, classes=classes))
    np.testing.assert_allclose(got, numpy_ce_plus_dice(labels, logits.astype(np.float64), classes=classes),
                               rtol=1e-5)
    # the absent class, predicted nowhere, adds almost nothing to the loss
    loss = np.asarray(soft_dice_loss_per_image(labels, confident(labels), classes=classes))
    np.testing.assert_allclose(loss, 0.0, atol=1e-4)


def test_an_absent_class_predicted_somewhere_costs_only_in_the_all_form():
    """Probability on a structure the image lacks: "all" charges its soft Dice, "present" leaves it to the
    cross-entropy, and the structures the image has score the same in both."""
    labels, _ = labels_and_logits(seed=3)
    labels[0][labels[0] == 3] = 0
    logits = confident(labels, margin=5.0)
    logits[0, :2, :2, 3] = 8.0  # class 3, absent from image 0, predicted on four pixels
    present = np.asarray(soft_dice_loss_per_image(labels, logits, classes="present"))
    every = np.asarray(soft_dice_loss_per_image(labels, logits, classes="all"))
    assert every[0] > present[0] + 0.2  # the absent class's soft Dice fell to about 1/5 of the 3 classes' mean
    assert present[0] < 0.1
    np.testing.assert_allclose(present[1], every[1], rtol=1e-6)  # every class is present in image 1


def test_an_image_without_foreground_adds_no_dice_loss_in_the_present_form():
    labels, logits = labels_and_logits(seed=4)
    labels[0] = 0
    loss = np.asarray(soft_dice_loss_per_image(labels, logits, classes="present"))
    assert loss[0] == 0.0 and loss[1] > 0.5
    with pytest.raises(ValueError, match="classes must be one of"):
        soft_dice_loss_per_image(labels, logits, classes="some")
