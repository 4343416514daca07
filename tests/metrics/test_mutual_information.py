import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from mr2ct.metrics import joint_histogram, mean_slice_mutual_information, mutual_information


def binned(x, bins, lo, hi):
    """Bin indices exactly as np.histogram2d does (equal width, last edge inclusive)."""
    edges = np.linspace(lo, hi, bins + 1)
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)


CASES = [
    # bins, shape, seed, dependence
    (64, (40, 50), 0, 0.5),
    (16, (30, 30), 1, 2.0),
    (32, (8, 20, 20), 2, 0.0),
]


@pytest.mark.parametrize("bins, shape, seed, dependence", CASES)
def test_matches_scikit_learn_on_the_same_binning(bins, shape, seed, dependence):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape)
    b = dependence * a + rng.normal(size=shape)
    ours = mutual_information(a, b, bins=bins)
    la = binned(a.ravel(), bins, a.min(), a.max())
    lb = binned(b.ravel(), bins, b.min(), b.max())
    assert ours == pytest.approx(mutual_info_score(la, lb), rel=1e-9, abs=1e-12)


def test_self_information_is_the_entropy():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 8, size=(64, 64)).astype(float)
    p = np.bincount(a.ravel().astype(int)) / a.size
    entropy = -np.sum(p * np.log(p))
    assert mutual_information(a, a, bins=8) == pytest.approx(entropy, rel=1e-9)


def test_independent_images_have_small_mi_and_constant_images_zero():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 256, 256))
    assert mutual_information(a, b, bins=16) < 0.01
    assert mutual_information(np.ones((10, 10)), b[:10, :10]) == 0.0


def test_mask_and_fixed_range():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 30))
    mask = np.zeros_like(a, dtype=bool)
    mask[5:20, 5:25] = True
    assert mutual_information(a, a, mask=mask) == pytest.approx(mutual_information(a[mask], a[mask]))
    assert joint_histogram(a, a, bins=4, range_a=(-10, 10), range_b=(-10, 10)).sum() == a.size


def test_mean_over_slices():
    rng = np.random.default_rng(6)
    vol_a = rng.normal(size=(5, 20, 20))
    vol_b = vol_a + rng.normal(size=vol_a.shape)
    mean, per_slice = mean_slice_mutual_information(vol_a, vol_b, bins=16, return_per_slice=True)
    expected = [mutual_information(x, y, bins=16) for x, y in zip(vol_a, vol_b)]
    np.testing.assert_allclose(per_slice, expected)
    assert mean == pytest.approx(np.mean(expected))
    mask = np.zeros(vol_a.shape, bool)
    mask[1:3] = True  # only two slices have voxels
    _, some = mean_slice_mutual_information(vol_a, vol_b, bins=16, mask=mask, return_per_slice=True)
    assert len(some) == 2
    # the slice axis can be chosen
    assert mean_slice_mutual_information(np.moveaxis(vol_a, 0, 2), np.moveaxis(vol_b, 0, 2), bins=16, axis=2) == pytest.approx(mean)


@pytest.mark.parametrize(
    "a, b, match",
    [
        (np.zeros((3, 4)), np.zeros((4, 3)), "one shape"),
        (np.full((3, 3), np.nan), np.zeros((3, 3)), "NaN"),
        (np.zeros((0,)), np.zeros((0,)), "non-empty"),
    ],
)
def test_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        mutual_information(a, b)
    with pytest.raises(ValueError, match="3D"):
        mean_slice_mutual_information(np.zeros((4, 4)), np.zeros((4, 4)))
