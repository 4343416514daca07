"""``mr2ct train`` as a user runs it: a real process, killed and resumed."""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from click.testing import CliRunner

from run_fixtures import checkpoint_step, checkpoint_values, mr2ct_command, prepare_phantoms

from mr2ct.training.trainer import train_cyclegan
from mr2ct_cli.train import train

# the tiny preset, long enough to be killed in the middle
TINY_RUN = ["--preset", "tiny", "--set", "train.constant_steps=200", "--set", "train.decay_steps=200",
            "--set", "train.checkpoint_every=3"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_phantoms(tmp_path_factory.mktemp("train_cli"))


def test_sigkill_then_rerun_resumes_from_the_last_checkpoint(prepared, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(mr2ct_command("train", "--data", prepared, "--out", run_dir, *TINY_RUN),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 240
        while checkpoint_step(run_dir)[0] < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no second checkpoint within 4 minutes"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)   # no chance to save anything
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    step, path = checkpoint_step(run_dir)
    assert step >= 6 and step % 3 == 0
    killed_weights = checkpoint_values(path)   # the checkpoint is complete and readable
    snapshot = tmp_path / "snapshot"
    shutil.copytree(run_dir, snapshot)

    # the same command again continues from that step
    rerun = subprocess.run(mr2ct_command("train", "--data", prepared, "--out", run_dir, "--max-steps", step + 1,
                                         "--quiet"), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed from step {step}" in rerun.stderr
    assert f"stopped at step {step + 1}/400" in rerun.stdout
    new_step, new_path = checkpoint_step(run_dir)
    assert new_step == step + 1
    status = json.loads((run_dir / "status.json").read_text())
    assert status["step"] == step + 1

    # ... with that checkpoint's weights: one step from the killed checkpoint,
    # computed here in-process from an untouched copy, gives the same weights
    # (a rerun that started afresh would not).
    train_cyclegan(prepared, snapshot, max_steps=step + 1, progress=False)
    expected = checkpoint_values(checkpoint_step(snapshot)[1])
    resumed = checkpoint_values(new_path)
    assert expected.keys() == resumed.keys() == killed_weights.keys()
    moved = 0
    for name in expected:
        np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
        moved += not np.array_equal(resumed[name], killed_weights[name])
    assert moved > len(expected) // 2, "the resumed step did not train"


def test_a_different_config_for_an_existing_run_is_refused(prepared, tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(train, ["--data", prepared, "--out", run_dir, "--preset", "tiny", "--max-steps", 2,
                                  "--quiet"])
    assert first.exit_code == 0, first.output
    assert "stopped at step 2/8" in first.output
    second = runner.invoke(train, ["--data", prepared, "--out", run_dir, "--preset", "tiny",
                                   "--set", "loss.lambda_gc=0", "--quiet"])
    assert second.exit_code == 1
    assert "Error:" in second.output and "lambda_gc" in second.output
    assert "Traceback" not in second.output
    # no options: resume with the saved config, to the end
    third = runner.invoke(train, ["--data", prepared, "--out", run_dir, "--quiet"])
    assert third.exit_code == 0, third.output
    assert "finished at step 8/8" in third.output


def test_missing_or_unprepared_data_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for data in (tmp_path / "missing", empty):
        result = CliRunner().invoke(train, ["--data", data, "--out", tmp_path / "run", "--preset", "tiny"])
        assert result.exit_code == 1, result.output
        assert "Error:" in result.output and str(data) in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()
