import io

import pytest

from mr2ct.training import progress as progress_module
from mr2ct.training.progress import Progress, format_duration


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    return fake


def test_eta_ignores_the_slow_first_step(clock):
    out = io.StringIO()
    bar = Progress(total=111, stream=out, interval=0.0)
    clock.now = 100.0          # step 1 pays for tracing and compilation
    bar.update(1, {"loss": 2.0})
    clock.now = 110.0          # then 1 s per step
    bar.update(11, {"loss": 1.5})
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("step 11/111")
    assert "1.000 s/step" in last
    assert "ETA 1m40s" in last
    assert "loss=1.5" in last


def test_resumed_run_counts_from_its_start(clock):
    out = io.StringIO()
    bar = Progress(total=1000, start=900, stream=out, interval=0.0)
    clock.now = 5.0
    bar.update(901)
    clock.now = 14.0
    bar.update(910)
    assert "ETA 1m30s" in out.getvalue().splitlines()[-1]


def test_not_a_terminal_prints_at_most_every_interval(clock):
    out = io.StringIO()
    bar = Progress(total=100, stream=out, interval=10.0)
    for step in range(1, 51):
        clock.now = step * 0.5
        bar.update(step)
    bar.close(50)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4
    assert lines[-1].startswith("step 50/100")


def test_disabled_prints_nothing(clock):
    out = io.StringIO()
    bar = Progress(total=10, stream=out, enabled=False)
    bar.update(5)
    bar.close(10)
    assert out.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0, "0m00s"), (59.9, "0m59s"), (61, "1m01s"), (3725, "1h02m05s"), (-3, "0m00s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_after_a_change_of_step_cost_the_eta_follows_the_new_rate(clock):
    """Coarse-to-fine: cheap half-resolution steps, then steps twice as dear; the ETA must not average them."""
    out = io.StringIO()
    bar = Progress(total=200, stream=out, interval=0.0)
    clock.now = 5.0
    bar.update(1)
    clock.now = 54.5           # 0.5 s per coarse step
    bar.update(100)
    assert "0.500 s/step" in out.getvalue().splitlines()[-1]
    bar.restart_rate(100)
    bar.update(100)            # no step since the change: no rate yet
    assert "s/step" not in out.getvalue().splitlines()[-1]
    clock.now = 110.0          # the first full-resolution step pays for a new trace
    bar.update(101)
    clock.now = 120.0          # then 1 s per step
    bar.update(111)
    last = out.getvalue().splitlines()[-1]
    assert "1.000 s/step" in last and "ETA 1m29s" in last
