"""The scripts in examples/ run as users run them (real subprocesses) and agree with the library."""

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from run_fixtures import make_run

from mr2ct.data.phantom import write_phantom_dataset
from mr2ct.export import export_run
from mr2ct.serving.predict import Synthesizer, predict_paths
from mr2ct.serving.server import ModelRepository, ModelServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny export, a small phantom MR, and what Synthesizer.local makes of it."""
    root = tmp_path_factory.mktemp("examples")
    make_run(root / "run")
    export_run(root / "run", root / "saved_models", name="hips")
    write_phantom_dataset(root / "phantom", 1, size="small")
    mr_path = root / "phantom" / "mr" / "subject_000.nii.gz"
    model_dir = root / "saved_models" / "hips"
    expected = predict_paths(Synthesizer.local(model_dir), mr_path, root / "expected.nii.gz")[0]
    return model_dir, mr_path, nib.load(expected).get_fdata()


@pytest.fixture(scope="module")
def server(exported):
    model_dir, _, _ = exported
    server = ModelServer(ModelRepository(model_dir), port=0).start()
    yield server
    server.stop()


def run_example(script, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def assert_matches_input_and_library(output, mr_path, expected):
    sct, mr = nib.load(output), nib.load(mr_path)
    assert sct.shape == mr.shape
    np.testing.assert_allclose(sct.affine, mr.affine, atol=1e-5)
    assert sct.get_data_dtype() == np.int16
    np.testing.assert_allclose(sct.get_fdata(), expected, atol=1)


def test_predict_with_keras_matches_the_synthesizer(exported, tmp_path):
    model_dir, mr_path, expected = exported
    output = tmp_path / "sct.nii.gz"
    proc = run_example("predict_with_keras.py", "--model", model_dir, "--input", mr_path, "--output", output)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert output.exists() and "wrote" in proc.stdout
    assert_matches_input_and_library(output, mr_path, expected)


def test_query_tf_serving_matches_the_synthesizer(exported, server, tmp_path):
    model_dir, mr_path, expected = exported
    output = tmp_path / "sct.nii.gz"
    proc = run_example("query_tf_serving.py", "--server", server.url, "--export", model_dir / "1",
                       "--input", mr_path, "--output", output, "--batch-size", 3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_matches_input_and_library(output, mr_path, expected)


def test_query_tf_serving_reports_server_errors(exported, server, tmp_path):
    model_dir, mr_path, _ = exported
    proc = run_example("query_tf_serving.py", "--server", server.url, "--export", model_dir, "--name", "nope",
                       "--input", mr_path, "--output", tmp_path / "x.nii.gz")
    assert proc.returncode != 0 and "HTTP 404" in proc.stderr and "nope" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.nii.gz").exists()
