import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mr2ct.metrics import mean_absolute_error, mean_error, psnr, ssim

RNG = np.random.default_rng(0)
TARGET = RNG.uniform(-1000, 1500, size=(4, 40, 48))
PRED = TARGET + RNG.normal(0, 50, size=TARGET.shape)


def test_mae_and_mean_error_known_values():
    target = np.zeros((10, 10))
    pred = np.full((10, 10), 3.0)
    pred[:5] = -1.0
    assert mean_absolute_error(pred, target) == pytest.approx(2.0)
    assert mean_error(pred, target) == pytest.approx(1.0)
    mask = np.zeros((10, 10), bool)
    mask[5:] = True
    assert mean_absolute_error(pred, target, mask) == pytest.approx(3.0)
    assert np.isnan(mean_error(pred, target, np.zeros((10, 10), bool)))


@pytest.mark.parametrize("data_range", [3072.0, 1000.0])
def test_psnr_matches_scikit_image(data_range):
    ours = psnr(PRED, TARGET, data_range=data_range)
    assert ours == pytest.approx(peak_signal_noise_ratio(TARGET, PRED, data_range=data_range), rel=1e-9)
    # constant error e: 10 log10(R^2 / e^2)
    assert psnr(TARGET + 10, TARGET, data_range=1000) == pytest.approx(40.0)
    assert psnr(TARGET, TARGET) == float("inf")


@pytest.mark.parametrize("data_range, win_size", [(3072.0, 7), (500.0, 7), (3072.0, 5)])
def test_ssim_matches_scikit_image_per_slice(data_range, win_size):
    for p, t in zip(PRED, TARGET):
        expected = structural_similarity(t, p, data_range=data_range, gaussian_weights=False, win_size=win_size)
        assert ssim(p, t, data_range=data_range, win_size=win_size) == pytest.approx(expected, rel=1e-7)
    assert ssim(TARGET, TARGET) == pytest.approx(1.0)
    assert ssim(PRED, TARGET) < ssim(TARGET + RNG.normal(0, 5, TARGET.shape), TARGET)


def test_ssim_with_mask_averages_inside():
    mask = np.zeros(TARGET.shape, bool)
    mask[:, 10:30, 10:30] = True
    value = ssim(PRED, TARGET, mask=mask)
    assert 0 < value < 1 and value != pytest.approx(ssim(PRED, TARGET), abs=1e-12)


@pytest.mark.parametrize("fn", [mean_absolute_error, mean_error, psnr, ssim])
def test_bad_input(fn):
    with pytest.raises(ValueError, match="one shape"):
        fn(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((8, 8), np.nan), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="mask"):
        fn(np.zeros((8, 8)), np.zeros((8, 8)), mask=np.ones((3, 3)))
