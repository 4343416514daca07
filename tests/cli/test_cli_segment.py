import shutil

import pytest
from click.testing import CliRunner

from seg_fixtures import cyclegan_run, mr_volume_path, prepared_folders, segmentation_run

from mr2ct.config import preset
from mr2ct.data.io import read_volume
from mr2ct.training import segmentation
from mr2ct.training.loop import LoopResult
from mr2ct_cli.main import cli


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    gan_dir, _ = cyclegan_run(tmp_path_factory)
    labelled, unlabelled = prepared_folders(tmp_path_factory)
    return gan_dir, labelled, unlabelled


# extra arguments of a new run, the config train_segmentation should get
NEW_RUN_CONFIGS = [
    ([], preset("tiny")),  # the CycleGAN run's own config
    (["--set", "segmentation.steps=9"], preset("tiny").override(["segmentation.steps=9"])),
    (["--preset", "cpu", "--no-xla"], preset("cpu").override(["runtime.xla=false"])),
]


@pytest.mark.parametrize("extra, expected", NEW_RUN_CONFIGS)
def test_train_seg_config_of_a_new_run(folders, tmp_path, monkeypatch, extra, expected):
    gan_dir, labelled, _ = folders
    calls = []

    def fake(cyclegan_run, data_dir, run_dir, config=None, max_steps=None, progress=True):
        calls.append((cyclegan_run, data_dir, run_dir, config, max_steps, progress))
        return LoopResult(step=1, total_steps=6)

    monkeypatch.setattr(segmentation, "train_segmentation", fake)
    result = run(["train-seg", "--cyclegan", gan_dir, "--data", labelled, "--out", tmp_path / "seg",
                  "--max-steps", 1, "--quiet", *extra])
    assert result.exit_code == 0, result.output
    assert "stopped at step 1/6" in result.output
    (cyclegan_arg, _, _, config, max_steps, progress), = calls
    assert cyclegan_arg == str(gan_dir) and max_steps == 1 and progress is False
    assert config.to_dict() == expected.to_dict()


def test_train_seg_resumes_and_segment_writes_labels(folders, tmp_path_factory, tmp_path):
    _, labelled, _ = folders
    seg_dir = tmp_path / "seg"
    shutil.copytree(segmentation_run(tmp_path_factory, steps=2), seg_dir)
    resumed = run(["train-seg", "--data", labelled, "--out", seg_dir, "--max-steps", 2, "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from step 2" in resumed.output and "stopped at step 2/6" in resumed.output

    out = tmp_path / "labels.nii.gz"
    segmented = run(["segment", "--model", seg_dir, "--input", mr_volume_path(tmp_path_factory),
                     "--output", out, "--quiet"])
    assert segmented.exit_code == 0, segmented.output
    assert f"wrote {out}" in segmented.output
    assert read_volume(out).shape == read_volume(mr_volume_path(tmp_path_factory)).shape


# arguments ({gan}, {labelled}, {unlabelled}, {tmp} filled in), words of the one-line error
ERRORS = [
    (["train-seg", "--cyclegan", "{gan}", "--data", "{unlabelled}", "--out", "{tmp}/seg"], "no labelled CT slices"),
    (["train-seg", "--cyclegan", "{tmp}/nope", "--data", "{labelled}", "--out", "{tmp}/seg"],
     "CycleGAN run folder not found"),
    (["train-seg", "--data", "{labelled}", "--out", "{tmp}/seg"], "give the CycleGAN run folder"),
    (["segment", "--model", "{tmp}/nope", "--input", "{tmp}/mr.nii.gz", "--output", "{tmp}/l.nii.gz"],
     "segmentation run folder not found"),
    (["segment", "--model", "{gan}", "--input", "{tmp}/mr.nii.gz", "--output", "{tmp}/l.nii.gz"],
     "not a segmentation run folder"),
]


@pytest.mark.parametrize("args, words", ERRORS)
def test_errors_are_one_line(folders, tmp_path, args, words):
    gan_dir, labelled, unlabelled = folders
    names = {"gan": gan_dir, "labelled": labelled, "unlabelled": unlabelled, "tmp": tmp_path}
    result = run([a.format(**names) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and words in result.output
    assert "Traceback" not in result.output
