import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.data.io import list_volumes, read_volume
from mr2ct.data.phantom import DATASET_FOLDERS, generate_subject
from mr2ct_cli import main as cli_main
from mr2ct_cli.phantom import phantom


def run(args):
    return CliRunner().invoke(phantom, [str(a) for a in args])


def test_writes_the_documented_layout(tmp_path):
    out = tmp_path / "ds"
    result = run(["--subjects", 2, "--out", out, "--seed", 5])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert str(out) in last and "2 small subjects" in last
    assert sorted(os.listdir(out)) == sorted([*DATASET_FOLDERS, "phantom.json"])
    for folder in DATASET_FOLDERS:
        paths = list_volumes(out / folder)
        assert [os.path.basename(p) for p in paths] == ["subject_000.nii.gz", "subject_001.nii.gz"]
        for path in paths:
            assert read_volume(path).shape in {(8, 64, 64), (12, 96, 96)}
    manifest = json.loads((out / "phantom.json").read_text())
    assert manifest["seed"] == 5 and manifest["size"] == "small"
    labels = read_volume(out / "labels_ct" / "subject_001.nii.gz")
    np.testing.assert_array_equal(labels.array, generate_subject(1, seed=5).labels_ct.array)


def test_montage(tmp_path):
    result = run(["-n", 1, "-o", tmp_path, "--montage"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "montage.png").stat().st_size > 10_000
    assert "montage.png" in result.output


BAD_ARGUMENTS = [
    # arguments ({file} is an existing file), exit code, words in the output
    (["--subjects", 1, "--out", "{file}/ds"], 1, "Error: "),
    (["--subjects", 0, "--out", "ds"], 2, "Invalid value"),
    (["--subjects", 1, "--out", "ds", "--size", "huge"], 2, "Invalid value"),
    (["--subjects", 1, "--out", "ds", "--seed", -1], 2, "Invalid value"),
    (["--out", "ds"], 2, "Missing option"),
]


@pytest.mark.parametrize("args, code, words", BAD_ARGUMENTS)
def test_bad_arguments_exit_without_traceback(tmp_path, args, code, words):
    file = tmp_path / "file"
    file.write_text("x")
    result = run([str(a).format(file=file) for a in args])
    assert result.exit_code == code
    assert words in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.skipif("phantom" not in cli_main._COMMANDS, reason="phantom is not registered in cli/main.py yet")
def test_registered_in_the_mr2ct_group(tmp_path):
    result = CliRunner().invoke(cli_main.cli, ["phantom", "-n", 1, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ct" / "subject_000.nii.gz").exists()
