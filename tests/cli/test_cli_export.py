"""``mr2ct export`` with segmentation, and its one-line errors."""

import json
import os

import pytest
from click.testing import CliRunner

from seg_fixtures import cyclegan_run, segmentation_run

from mr2ct.config import preset
from mr2ct.export import EXPORT_FILE
from mr2ct.training.segmentation import CYCLEGAN_FILE
from mr2ct_cli.main import cli
from run_fixtures import preprocessing_record


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_export_a_segmentation_run_alone(tmp_path_factory, tmp_path):
    seg_dir = segmentation_run(tmp_path_factory, steps=2)
    result = run(["export", "--run", seg_dir, "--out", tmp_path, "--name", "seg"])
    assert result.exit_code == 0, result.output
    assert f"exported step 2 of {seg_dir}" in result.output and "signature 'segment'" in result.output
    info = json.loads((tmp_path / "seg" / "1" / EXPORT_FILE).read_text())
    assert info["source_run"] == str(seg_dir) and info["segmentation"]["source_run"] == str(seg_dir)
    assert info["segmentation"]["shares_serving_default_generator"] is True
    assert {"serving_default", "ct_to_mr", "segment", "segment_probabilities"} == set(info["signatures"])


@pytest.fixture
def seg_run_at_64(tmp_path):
    """The small files of a segmentation run on 64x64 slices (enough to be refused)."""
    config = preset("tiny").override(["data.image_size=64"])
    folder = tmp_path / "seg64"
    folder.mkdir()
    config.to_yaml(folder / "config.yaml")
    (folder / CYCLEGAN_FILE).write_text(json.dumps({"run": "elsewhere", "step": 1, "config": config.to_dict()}))
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing_record(config)))
    return folder


def test_errors_are_one_line(tmp_path_factory, tmp_path, seg_run_at_64):
    gan_dir, _ = cyclegan_run(tmp_path_factory)
    cases = [
        (["--run", gan_dir, "--segmentation", seg_run_at_64], "works on 64x64 slices but the CycleGAN run on 32x32"),
        (["--run", gan_dir, "--segmentation", gan_dir], "not a segmentation run folder"),
        (["--run", seg_run_at_64, "--segmentation", seg_run_at_64], "is a segmentation run"),
    ]
    for args, words in cases:
        result = run(["export", *args, "--out", tmp_path / "out"])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and words in result.output, result.output
        assert "Traceback" not in result.output
    assert not os.path.exists(tmp_path / "out")
