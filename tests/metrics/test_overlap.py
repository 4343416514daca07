import numpy as np
import pytest

from mr2ct.metrics import dice, dice_coefficient

CASES = [
    # box a, box b (slices), expected Dice computed by hand
    ((slice(0, 10), slice(0, 10)), (slice(0, 10), slice(0, 10)), 1.0),
    ((slice(0, 10), slice(0, 10)), (slice(0, 10), slice(5, 15)), 2 * 50 / 200),
    ((slice(0, 4), slice(0, 4)), (slice(10, 12), slice(10, 12)), 0.0),
    ((slice(0, 10), slice(0, 10)), (slice(2, 4), slice(2, 4)), 2 * 4 / 104),
]


@pytest.mark.parametrize("box_a, box_b, expected", CASES)
def test_boxes(box_a, box_b, expected):
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[box_a] = True
    b[box_b] = True
    assert dice_coefficient(a, b) == pytest.approx(expected)


def test_per_structure():
    true = np.zeros((3, 10, 10), int)
    pred = np.zeros_like(true)
    true[:, :5] = 1
    pred[:, :5] = 1  # label 1 perfect
    true[:, 5:, :5] = 2
    pred[:, 5:, :4] = 2  # label 2: |A|=75 |B|=60 overlap 60
    pred[0, 9, 9] = 3  # label 3 only predicted
    scores = dice(pred, true)
    assert scores[1] == 1.0
    assert scores[2] == pytest.approx(2 * 60 / 135)
    assert scores[3] == 0.0
    assert np.isnan(dice(pred, true, labels=[7])[7])
    assert set(scores) == {1, 2, 3}


def test_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        dice(np.zeros((2, 2)), np.zeros((3, 3)))
    assert np.isnan(dice_coefficient(np.zeros(4), np.zeros(4)))
