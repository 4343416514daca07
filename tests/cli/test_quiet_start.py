"""`mr2ct` commands print their own output, not TensorFlow's start-up logs, unless asked to."""

import os
import subprocess
import sys

import pytest

from mr2ct.config import preset
from mr2ct_cli import quiet
from mr2ct_cli.common import warn_if_no_gpu

# Lines TensorFlow writes to stderr while it starts (which appear depends on the machine and the build).
TF_START_UP_MARKERS = ("oneDNN custom operations", "Could not find cuda drivers", "cpu_feature_guard",
                       "absl::InitializeLog", "cuInit", "This TensorFlow binary is optimized")


def run_mr2ct(*args, **env):
    """`mr2ct ARGS` in a fresh process; TensorFlow's own log settings removed from its environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.VERBOSE_ENV)}
    environ.update(env)
    code = "import sys; from mr2ct_cli.main import cli; sys.argv[0] = 'mr2ct'; cli()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env=environ)


def test_help_offers_verbose():
    proc = run_mr2ct("--help")
    assert proc.returncode == 0 and "--verbose" in proc.stdout and quiet.VERBOSE_ENV in proc.stdout
    assert proc.stderr == ""


@pytest.fixture(scope="module")
def missing_run(tmp_path_factory):
    # `mr2ct export` imports TensorFlow, then stops on the missing run folder: a cheap command that starts TF.
    return str(tmp_path_factory.mktemp("quiet") / "no_such_run")


def test_a_command_that_imports_tensorflow_prints_only_its_own_lines(missing_run):
    proc = run_mr2ct("export", "--run", missing_run)
    assert proc.returncode == 1
    assert not any(marker in proc.stderr for marker in TF_START_UP_MARKERS), proc.stderr
    assert proc.stderr.splitlines() == [f"Error: {missing_run}: run folder not found"], proc.stderr


@pytest.mark.parametrize("args, env", [(("--verbose",), {}), ((), {quiet.VERBOSE_ENV: "1"})])
def test_verbose_lets_tensorflow_speak(missing_run, args, env):
    proc = run_mr2ct(*args, "export", "--run", missing_run, **env)
    assert proc.returncode == 1
    assert f"Error: {missing_run}: run folder not found" in proc.stderr
    # Which start-up lines TensorFlow writes depends on the machine and the build; with the opt-out they may
    # appear (a CPU-only Linux wheel writes at least the CUDA one), without it they must not (test above).


def test_quiet_tensorflow_leaves_the_log_level_to_a_verbose_user(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    quiet.quiet_tensorflow()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")
    quiet.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == quiet.QUIET_TF_CPP_MIN_LOG_LEVEL


def test_user_setting_of_the_log_level_wins(monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_mirrored_without_a_gpu_is_reported(capsys):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    warn_if_no_gpu(preset("tiny").override(["runtime.strategy=mirrored"]))
    assert "sees no GPU" in capsys.readouterr().err
    warn_if_no_gpu(preset("tiny"))
    assert capsys.readouterr().err == ""
