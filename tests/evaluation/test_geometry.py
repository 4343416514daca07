"""Body shape and slice agreement of a synthesized CT against the true CT."""

import numpy as np
import pytest

from mr2ct.evaluation.geometry import body_outline, geometry_columns, in_plane_axes

SLICES, ROWS, COLS = 6, 40, 60


def body(half_rows=12, half_cols=20, hu=40.0, air=-1000.0):
    """An elliptic body of soft tissue in air, the same in every slice, with a bowel gas bubble."""
    y, x = np.mgrid[:ROWS, :COLS]
    inside = ((y - 20) / half_rows) ** 2 + ((x - 30) / half_cols) ** 2 <= 1
    image = np.where(inside, hu, air)
    image[18:22, 28:32] = air  # gas inside the body: still body
    return np.repeat(image[None], SLICES, axis=0)


def test_a_perfect_synthesis_scores_one_and_zero():
    ct = body()
    row = geometry_columns(ct, ct)
    assert row == {"body_dice": 1.0, "extent_ratio_lr": 1.0, "extent_ratio_ap": 1.0, "mae_through_plane_hu": 0.0,
                   "mae_in_plane_hu": 0.0}
    assert body_outline(ct)[:, 20, 30].all()  # holes filled


def test_a_wider_body_is_measured_left_right_and_a_shorter_one_front_back():
    ct = body(half_rows=12, half_cols=20)
    sct = body(half_rows=10, half_cols=24)
    row = geometry_columns(sct, ct)
    assert row["extent_ratio_lr"] == pytest.approx(49 / 41)  # columns 6..54 against 10..50
    assert row["extent_ratio_ap"] == pytest.approx(21 / 25)
    assert 0.8 < row["body_dice"] < 0.95
    # with columns running front-back (a direction whose i axis is y), the names swap
    swapped = geometry_columns(sct, ct, direction=[[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert swapped["extent_ratio_lr"] == row["extent_ratio_ap"]
    assert swapped["extent_ratio_ap"] == row["extent_ratio_lr"]


def test_slices_that_disagree_show_in_the_through_plane_measure_only():
    ct = body()
    striped = ct + np.where(body_outline(ct), np.array([0, 80, 0, 80, 0, 80])[:, None, None], 0)
    row = geometry_columns(striped, ct)
    assert row["mae_through_plane_hu"] == pytest.approx(80.0)
    assert row["mae_in_plane_hu"] < 5.0  # only at the outline, where a row steps into the body
    assert row["body_dice"] == 1.0


def test_in_plane_axes_follow_the_direction():
    assert in_plane_axes() == {"lr": 2, "ap": 1}
    assert in_plane_axes(np.diag([-1, -1, 1])) == {"lr": 2, "ap": 1}  # RAS-stored volumes: same axes
    assert in_plane_axes([[0, 1, 0], [1, 0, 0], [0, 0, 1]]) == {"lr": 1, "ap": 2}


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="differs"):
        geometry_columns(body()[:3], body())
