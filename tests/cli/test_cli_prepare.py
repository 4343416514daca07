import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.data import records
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct_cli.main import cli


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(root, 1, seed=4, size="small")
    return root


@pytest.fixture
def inputs(phantoms, tmp_path):
    """A copy of the phantom's MR, CT and CT labels, free to spoil."""
    for folder in ("mr", "ct", "labels_ct"):
        shutil.copytree(phantoms / folder, tmp_path / folder)
    return tmp_path


def run(args):
    return CliRunner().invoke(cli, ["prepare", *(str(a) for a in args)])


def test_prepares_slices_and_a_manifest(inputs):
    out = inputs / "out"
    result = run(["--mr", inputs / "mr", "--ct", inputs / "ct", "--labels", inputs / "labels_ct",
                  "--out", out, "--preset", "tiny", "--workers", 1])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert manifest["image_size"] == 32 and manifest["preprocessing"]["config"]["n4_shrink_factor"] == 1
    assert (counts["mr_volumes"], counts["ct_volumes"]) == (1, 1)
    assert counts["ct_labelled"] == counts["ct"] > 0
    for modality in ("mr", "ct"):
        assert records.validate_shard(out / "records" / modality / "subject_000.tfrecord") == counts[modality]
    assert result.output.strip().splitlines()[-1] == (
        f"prepared 1 MR volumes ({counts['mr']} slices) and 1 CT volumes ({counts['ct']} slices, "
        f"{counts['ct']} labelled) at 32x32 in {out}"
    )


OPTIONS = [
    # options, what the manifest's config holds
    (["--image-size", 16], {"image_size": 16}),
    (["--no-crop"], {"crop_ct": False}),
    (["--set", "prepare.fov_mm=300", "--set", "prepare.slab_mm=40", "--set", "prepare.slab_center=body"],
     {"fov_mm": 300.0, "slab_mm": 40.0, "slab_center": "body"}),
    (["--set", "prepare.ct_hu_min=-1000", "--set", "prepare.ct_hu_max=1500", "--set", "data.image_size=48"],
     {"ct_hu_min": -1000.0, "ct_hu_max": 1500.0, "image_size": 48}),
]


@pytest.mark.parametrize("options, expected", OPTIONS)
def test_options_reach_the_preprocessing(inputs, options, expected):
    out = inputs / "out"
    result = run(["--ct", inputs / "ct", "--out", out, "--preset", "tiny", "--workers", 1, *options])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "manifest.json").read_text())["preprocessing"]["config"]
    assert {key: config[key] for key in expected} == expected
    (item, *_) = records.read_slices(out / "records" / "ct" / "subject_000.tfrecord")
    assert item["image"].shape == (config["image_size"],) * 2


def test_a_config_file_and_set_reach_every_preprocessing_setting(inputs):
    from mr2ct.config import preset

    config_file = inputs / "prepare.yaml"
    preset("tiny").override(["prepare.n4_iterations=[3, 2]", "prepare.mr_upper_percentile=99",
                             "prepare.frame_mr=false"]).to_yaml(config_file)
    out = inputs / "out"
    result = run(["--mr", inputs / "mr", "--out", out, "--config", config_file, "--set", "prepare.n4_shrink_factor=2",
                  "--workers", 1])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "manifest.json").read_text())["preprocessing"]["config"]
    assert config["n4_iterations"] == [3, 2] and config["mr_upper_percentile"] == 99.0
    assert config["frame_mr"] is False and config["n4_shrink_factor"] == 2 and config["image_size"] == 32
    bad = run(["--mr", inputs / "mr", "--out", inputs / "o2", "--set", "prepare.slab_center=knee"])
    assert bad.exit_code == 1 and "prepare.slab_center must be one of" in bad.output and "Traceback" not in bad.output


def test_a_body_wider_than_the_field_of_view_is_reported(inputs):
    out = inputs / "out"
    result = run(["--ct", inputs / "ct", "--out", out, "--preset", "tiny", "--workers", 1,
                  "--set", "prepare.fov_mm=150"])
    assert result.exit_code == 0, result.output
    ct = inputs / "ct" / "subject_000.nii.gz"
    assert f"warning: {ct}: the body is" in result.output
    assert "mm wider left-right than the 150 mm field of view; that much is cut off (prepare.fov_mm)" in result.output
    record = json.loads((out / "volumes" / "ct" / "subject_000.json").read_text())
    assert record["fov_cut_mm"]["left-right"] > 0
    # at the default field of view nothing is cut, nothing is said
    quiet = run(["--ct", inputs / "ct", "--out", inputs / "out2", "--preset", "tiny", "--workers", 1])
    assert quiet.exit_code == 0 and "field of view" not in quiet.output


def spoil(path):
    """Replace a volume with random bytes."""
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    return path


def test_a_bad_volume_is_an_error_without_traceback(inputs):
    bad = spoil(inputs / "ct" / "subject_000.nii.gz")
    out = inputs / "out"
    result = run(["--mr", inputs / "mr", "--ct", inputs / "ct", "--out", out, "--preset", "tiny"])
    assert result.exit_code == 1
    assert f"Error: {bad}: cannot be read as NIfTI" in result.output
    assert "--skip-bad" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not out.exists()


BAD_ARGUMENTS = [
    # arguments ({in} is the inputs folder), exit code, words in the output
    (["--ct", "{in}/nowhere", "--out", "{in}/out"], 1, "Error: {in}/nowhere: does not exist"),
    (["--ct", "{in}/ct", "--labels", "{in}/mr", "--out", "{in}/out"], 1,
     "Error: {in}/ct/subject_000.nii.gz: is not on the same voxel grid as {in}/mr/subject_000.nii.gz"),
    (["--out", "{in}/out"], 1, "Error: give at least one of an MR folder and a CT folder"),
    (["--ct", "{in}/ct"], 2, "Missing option '--out'"),
    (["--ct", "{in}/ct", "--out", "{in}/out", "--image-size", 8], 2, "Invalid value for '--image-size'"),
]


@pytest.mark.parametrize("args, code, words", BAD_ARGUMENTS)
def test_bad_arguments_exit_without_traceback(inputs, args, code, words):
    result = run([str(a).format(**{"in": inputs}) for a in args])
    assert result.exit_code == code
    assert words.format(**{"in": inputs}) in result.output
    assert "Traceback" not in result.output
    assert not (inputs / "out").exists()


def test_skip_bad_prepares_the_rest(inputs):
    shutil.copy(inputs / "ct" / "subject_000.nii.gz", inputs / "ct" / "subject_001.nii.gz")
    bad = spoil(inputs / "ct" / "subject_000.nii.gz")
    out = inputs / "out"
    result = run(["--ct", inputs / "ct", "--out", out, "--preset", "tiny", "--workers", 1, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert f"warning: skipping {bad}: cannot be read as NIfTI" in result.output
    assert result.output.strip().splitlines()[-1].endswith("; skipped 1")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["subject"], s["path"]) for s in manifest["skipped"]] == [("subject_000", str(bad))]
    assert [v["subject"] for v in manifest["volumes"]["ct"]] == ["subject_001"]
    assert os.listdir(out / "records" / "ct") == ["subject_001.tfrecord"]
