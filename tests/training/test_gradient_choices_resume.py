"""A run keeps the convolution gradients it chose: recorded beside its checkpoints, installed on resume."""

import json

import pytest
from run_fixtures import prepare_phantoms

from mr2ct.config import preset
from mr2ct.errors import ConfigError
from mr2ct.models import convolution
from mr2ct.training.trainer import CONV_GRADIENTS_FILE, train_cyclegan

# a checkpoint at every step; image summaries only at the end of a call
CONFIG = ["train.checkpoint_every=1", "train.image_summary_every=1000", "train.constant_steps=4",
          "train.decay_steps=4"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_phantoms(tmp_path_factory.mktemp("gradient_choices"), subjects=2)


def test_the_choices_are_recorded_and_reused_on_resume(prepared, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(convolution, "_CHOICES", {})
    train_cyclegan(prepared, run_dir, config=preset("tiny").override(CONFIG), max_steps=1, progress=False)
    recorded = json.loads((run_dir / CONV_GRADIENTS_FILE).read_text())
    assert recorded == convolution.gradient_choices() and recorded
    assert all(r["milliseconds"] is not None for r in recorded)  # timed, in eager CPU float32

    # Change every recorded choice to its other form: a resume must take the file's, not time again.
    other = {"tensorflow": "forward", "forward": "tensorflow", "matmul": "tensorflow"}
    for record in recorded:
        record["input_gradient"] = other[record["input_gradient"]]
        record["kernel_gradient"] = "matmul" if record["kernel_gradient"] == "tensorflow" else "tensorflow"
        record["milliseconds"] = None
        record["reason"] = "written by the test"
    (run_dir / CONV_GRADIENTS_FILE).write_text(json.dumps(recorded))
    monkeypatch.setattr(convolution, "_CHOICES", {})
    timed = []
    monkeypatch.setattr(convolution, "_measure", lambda *args: timed.append(args))
    result = train_cyclegan(prepared, run_dir, max_steps=2, progress=False)
    assert result.resumed_from == 1 and result.step == 2
    assert timed == []
    assert convolution.gradient_choices() == recorded
    assert json.loads((run_dir / CONV_GRADIENTS_FILE).read_text()) == recorded


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the run's convolution gradient choices"),
    ('[{"input_shape": [1, 8, 8, 1]}]', "entry 0 is not a gradient choice"),
])
def test_an_unreadable_choices_file_is_named(prepared, tmp_path, content, message):
    run_dir = tmp_path / "run"
    train_cyclegan(prepared, run_dir, config=preset("tiny").override(CONFIG), max_steps=1, progress=False)
    (run_dir / CONV_GRADIENTS_FILE).write_text(content)
    with pytest.raises(ConfigError, match=message) as raised:
        train_cyclegan(prepared, run_dir, max_steps=2, progress=False)
    assert str(run_dir / CONV_GRADIENTS_FILE) in str(raised.value)
    assert "delete the file to time them again" in str(raised.value)
