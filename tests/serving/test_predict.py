import os

import numpy as np
import pytest
from click.testing import CliRunner

from run_fixtures import make_run

from mr2ct.data.io import read_volume, write_dicom_series, write_volume
from mr2ct.data.phantom import generate_subject
from mr2ct.errors import InputError
from mr2ct.export import export_run
from mr2ct.serving.predict import Synthesizer, predict_paths
from mr2ct.serving.server import ModelRepository, ModelServer
from mr2ct_cli.main import cli


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    make_run(root / "run")
    result = export_run(root / "run", root / "saved_models", name="hips")
    subject = generate_subject(0, size="small", seed=3)
    write_volume(subject.mr, root / "mr.nii.gz")
    return root, result


def assert_same_grid(a, b):
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-4)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-4)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


def test_predict_nifti_keeps_geometry_and_gives_hu(exported, tmp_path):
    root, result = exported
    synthesizer = Synthesizer.local(root / "saved_models" / "hips", batch_size=3)
    written = predict_paths(synthesizer, root / "mr.nii.gz", tmp_path / "sct.nii.gz")
    sct = read_volume(written[0])
    mr = read_volume(root / "mr.nii.gz")
    assert_same_grid(sct, mr)
    assert sct.array.dtype == np.int16
    assert -1024 <= sct.array.min() and sct.array.max() <= 2048  # the window of the export


def test_predict_dicom_series_and_folder(exported, tmp_path):
    root, _ = exported
    mr = read_volume(root / "mr.nii.gz")
    write_dicom_series(mr.with_array(np.round(mr.array).astype(np.int16)), tmp_path / "inputs" / "dicom_mr", modality="MR")
    write_volume(mr, tmp_path / "inputs" / "second.nii.gz")
    synthesizer = Synthesizer.local(root / "saved_models" / "hips")
    written = predict_paths(synthesizer, tmp_path / "inputs", tmp_path / "out")
    assert sorted(os.path.basename(p) for p in written) == ["dicom_mr.nii.gz", "second.nii.gz"]
    dicom_in = read_volume(tmp_path / "inputs" / "dicom_mr")
    assert_same_grid(read_volume(tmp_path / "out" / "dicom_mr.nii.gz"), dicom_in)


def test_server_and_local_give_the_same_volume(exported, tmp_path):
    root, _ = exported
    model_dir = root / "saved_models" / "hips"
    server = ModelServer(ModelRepository(model_dir), port=0).start()
    try:
        local = predict_paths(Synthesizer.local(model_dir), root / "mr.nii.gz", tmp_path / "a.nii.gz")
        remote = predict_paths(Synthesizer.remote(server.url, model_dir), root / "mr.nii.gz", tmp_path / "b.nii.gz")
    finally:
        server.stop()
    np.testing.assert_allclose(read_volume(local[0]).array, read_volume(remote[0]).array, atol=1)


def test_cli_predict_and_errors(exported, tmp_path):
    root, _ = exported
    runner = CliRunner()
    ok = runner.invoke(cli, ["predict", "--model", str(root / "saved_models" / "hips"), "--input",
                             str(root / "mr.nii.gz"), "--output", str(tmp_path / "s.nii.gz"), "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "s.nii.gz").exists()
    cases = [
        (["--model", str(tmp_path / "nope")], "model folder not found"),
        (["--model", str(root / "saved_models" / "hips"), "--version", "7"], "version 7 not found"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, ["predict", *args, "--input", str(root / "mr.nii.gz"),
                                     "--output", str(tmp_path / "x.nii.gz")])
        assert result.exit_code != 0 and message in result.output
        assert "Traceback" not in result.output
    (tmp_path / "notes.txt").write_text("not a volume")
    result = runner.invoke(cli, ["predict", "--model", str(root / "saved_models" / "hips"), "--input",
                                 str(tmp_path / "notes.txt"), "--output", str(tmp_path / "y.nii.gz")])
    assert result.exit_code != 0 and "notes.txt" in result.output
    assert not (tmp_path / "y.nii.gz").exists()


def test_missing_input(exported, tmp_path):
    root, _ = exported
    with pytest.raises(InputError, match="input not found"):
        predict_paths(Synthesizer.local(root / "saved_models" / "hips"), tmp_path / "none.nii.gz", tmp_path / "o.nii.gz")
