import json

import numpy as np
import pytest

from mr2ct.data.intensity import CTIntensity, CTIntensityd, MRIntensity, MRIntensityd

# [kwargs, input HU, expected network value]
CT_FORWARD_CASES = [
    [{}, [-1024.0, 512.0, 2048.0], [-1.0, 0.0, 1.0]],
    [{}, [-3000.0, 5000.0], [-1.0, 1.0]],  # clipped to the window
    [{"hu_min": -1000.0, "hu_max": 1000.0}, [-1000.0, 0.0, 500.0], [-1.0, 0.0, 0.5]],
    [{"hu_min": -200.0, "hu_max": 400.0}, [-500.0, 100.0, 1000.0], [-1.0, 0.0, 1.0]],
]

CT_WINDOWS = [
    {},
    {"hu_min": -1000.0, "hu_max": 3000.0},
    {"hu_min": -200.0, "hu_max": 400.0},
    {"hu_min": -1024.0, "hu_max": 3071.0},
]


@pytest.mark.parametrize("kwargs, hu, expected", CT_FORWARD_CASES)
def test_ct_forward(kwargs, hu, expected):
    out = CTIntensity(**kwargs).forward(np.array(hu))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("kwargs", CT_WINDOWS)
def test_ct_round_trip_within_one_hu(kwargs):
    mapping = CTIntensity(**kwargs)
    rng = np.random.default_rng(0)
    hu = rng.uniform(mapping.hu_min, mapping.hu_max, size=(4, 32, 32))
    hu = np.concatenate([hu.ravel(), [mapping.hu_min, mapping.hu_max]])
    back = mapping.inverse(mapping.forward(hu))
    assert back.dtype == np.float32
    assert np.abs(back - hu).max() < 1.0
    assert np.abs(back - hu).max() < 0.01  # in fact far below 1 HU


@pytest.mark.parametrize("kwargs", [{"hu_min": 100.0, "hu_max": 100.0}, {"hu_min": 500.0, "hu_max": -500.0},
                                    {"hu_min": float("nan")}])
def test_ct_rejects_bad_window(kwargs):
    with pytest.raises(ValueError, match="Received"):
        CTIntensity(**kwargs)


@pytest.mark.parametrize("kwargs", CT_WINDOWS)
def test_ct_config_round_trip(kwargs):
    mapping = CTIntensity(**kwargs)
    config = json.loads(json.dumps(mapping.get_config()))
    rebuilt = CTIntensity.from_config(config)
    assert rebuilt.get_config() == mapping.get_config()
    assert set(config) == {"hu_min", "hu_max"}


def _mr_volume(seed=0, shape=(6, 40, 40)):
    rng = np.random.default_rng(seed)
    return rng.gamma(3.0, 150.0, size=shape).astype(np.float32)


MR_CASES = [
    {},
    {"lower_percentile": 0.0, "upper_percentile": 100.0},
    {"lower_percentile": 2.0, "upper_percentile": 98.0},
    {"lower_percentile": 10.0, "upper_percentile": 90.0},
]


@pytest.mark.parametrize("kwargs", MR_CASES)
def test_mr_fit_forward_inverse(kwargs):
    array = _mr_volume()
    mapping = MRIntensity(**kwargs).fit(array)
    lo, hi = np.percentile(array, [mapping.lower_percentile, mapping.upper_percentile])
    assert mapping.lower_value == pytest.approx(lo) and mapping.upper_value == pytest.approx(hi)
    out = mapping.forward(array)
    assert out.dtype == np.float32 and out.min() >= -1.0 and out.max() <= 1.0
    np.testing.assert_allclose(mapping.forward([lo, hi]), [-1.0, 1.0], atol=1e-6)
    back = mapping.inverse(out)
    np.testing.assert_allclose(back, np.clip(array, lo, hi), rtol=1e-5, atol=1e-3)


def test_mr_fit_with_mask_uses_only_masked_voxels():
    array = _mr_volume()
    mask = np.zeros(array.shape, dtype=bool)
    mask[:, 10:30, 10:30] = True
    array[~mask] = 0.0  # background would pull the lower percentile to 0
    mapping = MRIntensity(5.0, 95.0).fit(array, mask=mask)
    assert mapping.lower_value == pytest.approx(np.percentile(array[mask], 5.0))
    assert mapping.lower_value > 0.0


@pytest.mark.parametrize("kwargs", MR_CASES)
def test_mr_config_round_trip_restores_fit(kwargs):
    array = _mr_volume(seed=1)
    mapping = MRIntensity(**kwargs).fit(array)
    rebuilt = MRIntensity.from_config(json.loads(json.dumps(mapping.get_config())))
    assert rebuilt.fitted
    np.testing.assert_array_equal(rebuilt.forward(array), mapping.forward(array))
    np.testing.assert_array_equal(rebuilt.inverse([-1.0, 0.3]), mapping.inverse([-1.0, 0.3]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lower_percentile": 50.0, "upper_percentile": 50.0},
        {"lower_percentile": -1.0},
        {"upper_percentile": 101.0},
        {"lower_value": 1.0},  # one without the other
        {"lower_value": 5.0, "upper_value": 5.0},
    ],
)
def test_mr_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        MRIntensity(**kwargs)


def test_mr_unfitted_and_constant():
    with pytest.raises(RuntimeError, match="not fitted"):
        MRIntensity().forward(np.ones(3))
    with pytest.raises(ValueError, match="constant"):
        MRIntensity().fit(np.full((2, 3, 3), 7.0))
    with pytest.raises(ValueError, match="mask empty"):
        MRIntensity().fit(np.ones((2, 3, 3)), mask=np.zeros((2, 3, 3), dtype=bool))


def test_ct_dictionary_form():
    hu = np.array([[-1024.0, 512.0, 2048.0]])
    transform = CTIntensityd(keys="ct")
    data = transform({"ct": hu, "label": np.array([1, 2, 3])})
    np.testing.assert_allclose(data["ct"], [[-1.0, 0.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(data["label"], [1, 2, 3])
    assert data["ct_intensity"] == {"hu_min": -1024.0, "hu_max": 2048.0}
    # inverse uses the recorded window, even from a transform with another window
    back = CTIntensityd(keys=["ct"], hu_min=-100.0, hu_max=100.0).inverse(data)
    np.testing.assert_allclose(back["ct"], hu, atol=1e-3)


def test_mr_dictionary_form_fits_each_key():
    a, b = _mr_volume(seed=2), 10.0 * _mr_volume(seed=3)
    transform = MRIntensityd(keys=("a", "b"))
    data = transform({"a": a, "b": b})
    assert data["b_intensity"]["upper_value"] > 5 * data["a_intensity"]["upper_value"]
    for key in ("a", "b"):
        assert data[key].min() == -1.0 and data[key].max() == 1.0
    back = transform.inverse(json.loads(json.dumps({k: v for k, v in data.items() if k.endswith("_intensity")}))
                             | {"a": data["a"], "b": data["b"]})
    hi = data["a_intensity"]["upper_value"]
    lo = data["a_intensity"]["lower_value"]
    np.testing.assert_allclose(back["a"], np.clip(a, lo, hi), rtol=1e-5, atol=1e-3)


def test_mr_dictionary_form_mask_and_missing_keys():
    array = _mr_volume()
    mask = np.zeros(array.shape, dtype=bool)
    mask[:, :20] = True
    data = MRIntensityd("mr", mask_key="mask")({"mr": array, "mask": mask})
    assert data["mr_intensity"]["lower_value"] == pytest.approx(np.percentile(array[mask], 0.5))
    with pytest.raises(KeyError, match="mr"):
        MRIntensityd("mr")({"ct": array})
    assert "mr" not in MRIntensityd("mr", allow_missing_keys=True)({"ct": array})
    with pytest.raises(KeyError, match="no fitted MR mapping"):
        MRIntensityd("mr").inverse({"mr": array})
