import os
import re

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


def dicom_tags(folder):
    """Tags of every file of a DICOM series folder, read with SimpleITK: [{tag: value}]."""
    import SimpleITK as sitk

    out = []
    for name in sorted(os.listdir(folder)):
        reader = sitk.ImageFileReader()
        reader.SetFileName(os.path.join(folder, name))
        reader.ReadImageInformation()
        out.append({k: reader.GetMetaData(k).strip() for k in reader.GetMetaDataKeys()})
    return out


UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_predict_writes_a_ct_dicom_series_that_keeps_the_mr_series_identifiers(exported, tmp_path):
    root, _ = exported
    mr = read_volume(root / "mr.nii.gz")
    source = {"0010|0010": "DOE^JANE", "0010|0020": "P-0042", "0020|000d": "1.2.826.0.1.3680043.2.1125.42",
              "0020|0052": "1.2.826.0.1.3680043.2.1125.43", "0008|0020": "20260101", "0008|0050": "ACC7"}
    write_dicom_series(mr.with_array(np.round(mr.array).astype(np.int16)), tmp_path / "inputs" / "dicom_mr",
                       modality="MR", identifiers=source)
    write_volume(mr, tmp_path / "inputs" / "second.nii.gz")
    synthesizer = Synthesizer.local(root / "saved_models" / "hips")
    nifti = predict_paths(synthesizer, tmp_path / "inputs", tmp_path / "nifti")
    written = predict_paths(synthesizer, tmp_path / "inputs", tmp_path / "dicom", output_format="dicom")
    assert sorted(os.path.basename(p) for p in written) == ["dicom_mr", "second"]
    mr_tags = dicom_tags(tmp_path / "inputs" / "dicom_mr")
    for subject in ("dicom_mr", "second"):
        series = read_volume(tmp_path / "dicom" / subject)
        assert_same_grid(series, read_volume(tmp_path / "inputs" / ("dicom_mr" if subject == "dicom_mr" else
                                                                     "second.nii.gz")))
        # HU equal to the NIfTI output's
        np.testing.assert_array_equal(series.array, read_volume(tmp_path / "nifti" / f"{subject}.nii.gz").array)
        tags = dicom_tags(tmp_path / "dicom" / subject)
        assert len(tags) == series.shape[0]
        assert {t["0008|0060"] for t in tags} == {"CT"} and {t["0028|1054"] for t in tags} == {"HU"}
        uids = [t[k] for t in tags for k in ("0008|0018", "0020|000e", "0020|000d", "0020|0052")]
        assert all(UID.match(u) and len(u) <= 64 for u in uids)
        assert len({t["0008|0018"] for t in tags}) == len(tags)  # an instance UID per slice
        assert len({t["0020|000e"] for t in tags}) == 1
    kept = dicom_tags(tmp_path / "dicom" / "dicom_mr")[0]
    for tag, value in source.items():  # the MR's patient, study and frame of reference
        assert kept[tag] == value, tag
    assert kept["0020|000e"] != mr_tags[0]["0020|000e"]  # a new series
    assert kept["0008|0018"] not in {t["0008|0018"] for t in mr_tags}
    other = dicom_tags(tmp_path / "dicom" / "second")[0]  # from NIfTI: nothing to keep, new identifiers
    assert other["0020|000d"] != source["0020|000d"] and other["0020|0052"] != source["0020|0052"]
    result = CliRunner().invoke(cli, ["predict", "--model", str(root / "saved_models" / "hips"), "--input",
                                      str(tmp_path / "inputs" / "dicom_mr"), "--output", str(tmp_path / "cli_series"),
                                      "--format", "dicom", "--quiet"])
    assert result.exit_code == 0, result.output
    assert dicom_tags(tmp_path / "cli_series")[0]["0010|0020"] == "P-0042"
    again = CliRunner().invoke(cli, ["predict", "--model", str(root / "saved_models" / "hips"), "--input",
                                     str(tmp_path / "inputs" / "dicom_mr"), "--output", str(tmp_path / "cli_series"),
                                     "--format", "dicom", "--quiet"])
    assert again.exit_code == 1 and "already exists and is not an empty folder" in again.output


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
