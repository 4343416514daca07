import keras
import pytest

from mr2ct.training.schedules import ConstantThenLinearDecay

CASES = [
    # constant, decay, step, expected fraction of the initial rate
    (100, 100, 0, 1.0),
    (100, 100, 99, 1.0),
    (100, 100, 100, 1.0),
    (100, 100, 150, 0.5),
    (100, 100, 175, 0.25),
    (100, 100, 200, 0.0),
    (100, 100, 10_000, 0.0),
    (0, 10, 5, 0.5),
    (10, 0, 9, 1.0),
    (10, 0, 10, 0.0),
]


@pytest.mark.parametrize("constant, decay, step, fraction", CASES)
def test_schedule_values(constant, decay, step, fraction):
    schedule = ConstantThenLinearDecay(2e-4, constant, decay)
    assert float(schedule(step)) == pytest.approx(2e-4 * fraction, rel=1e-6, abs=1e-12)


def test_paper_schedule_and_config_round_trip():
    schedule = ConstantThenLinearDecay()
    assert float(schedule(100_000)) == pytest.approx(2e-4)
    assert float(schedule(150_000)) == pytest.approx(1e-4)
    clone = ConstantThenLinearDecay.from_config(schedule.get_config())
    assert clone.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam(schedule)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert float(restored.learning_rate) == pytest.approx(2e-4)


@pytest.mark.parametrize("kwargs", [dict(initial_learning_rate=0), dict(constant_steps=-1)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ConstantThenLinearDecay(**kwargs)
