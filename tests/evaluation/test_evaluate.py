import json

import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.data.io import write_volume
from mr2ct.data.phantom import generate_subject
from mr2ct.evaluation.evaluate import bone_band, evaluate_folders, evaluate_volume, read_table
from mr2ct.errors import InputError
from mr2ct_cli.main import cli


@pytest.fixture(scope="module")
def subject():
    return generate_subject(1, size="small", seed=5)


def test_perfect_and_degraded_synthesis(subject):
    mr, ct = subject.mr.array, subject.ct_on_mr_grid.array
    perfect = evaluate_volume(mr, ct, ct)
    assert perfect["mae_hu"] == 0 and perfect["me_hu"] == 0 and perfect["psnr_db"] == float("inf")
    assert perfect["ssim"] == pytest.approx(1.0)
    noisy = ct + np.random.default_rng(0).normal(0, 100, ct.shape)
    worse = evaluate_volume(mr, noisy, ct)
    assert 60 < worse["mae_hu"] < 100  # E|N(0, 100)| = 79.8
    assert abs(worse["me_hu"]) < 10
    blurred = evaluate_volume(mr, np.full_like(ct, ct.mean()), ct)
    assert blurred["mi_mr_sct"] == pytest.approx(0.0, abs=1e-9) and perfect["mi_mr_sct"] > 0.3
    # the reference columns are what a perfect synthesis scores against the MR
    for row in (perfect, worse, blurred):
        assert row["mi_mr_ct"] == pytest.approx(perfect["mi_mr_sct"])
        assert row["gc_mr_ct"] == pytest.approx(perfect["gc_mr_sct"])


def test_bone_band_surrounds_bone():
    ct = np.full((3, 20, 20), 0.0)
    ct[:, 5:15, 5:15] = 1000.0
    band = bone_band(ct, width=2)
    assert band[1, 10, 3] and band[1, 10, 6] and not band[1, 10, 10] and not band[1, 10, 0]


def test_folders_cli_and_files(subject, tmp_path):
    for name in ("a", "b"):
        write_volume(subject.mr, tmp_path / "mr" / f"{name}.nii.gz")
        write_volume(subject.ct_on_mr_grid, tmp_path / "ct" / f"{name}.nii.gz")
        write_volume(subject.ct_on_mr_grid.with_array(subject.ct_on_mr_grid.array + 20), tmp_path / "sct" / f"{name}.nii.gz")
    result = CliRunner().invoke(cli, ["evaluate", "--mr", str(tmp_path / "mr"), "--sct", str(tmp_path / "sct"),
                                      "--ct-on-mr-grid", str(tmp_path / "ct"), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    rows = read_table(tmp_path / "eval" / "metrics.csv")
    assert [r["subject"] for r in rows] == ["a", "b"]
    assert rows[0]["me_hu"] == pytest.approx(20, abs=0.5)
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())["summary"]
    assert summary["mae_hu"]["mean"] == pytest.approx(20, abs=0.5)
    for png in ("boxplots.png", "montage.png", "reformats.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the shape is kept (+20 HU moves the -500 HU outline only through partial-volume voxels at the skin), and the
    # slices agree with each other as the truth's
    assert rows[0]["body_dice"] == pytest.approx(1.0, abs=5e-3)
    assert rows[0]["extent_ratio_lr"] == pytest.approx(1.0, abs=0.01)
    assert rows[0]["extent_ratio_ap"] == pytest.approx(1.0, abs=0.01)
    assert rows[0]["mae_through_plane_hu"] < 5 and rows[0]["mae_in_plane_hu"] < 5


def test_errors(subject, tmp_path):
    write_volume(subject.ct_on_mr_grid, tmp_path / "sct" / "x.nii.gz")
    write_volume(subject.mr, tmp_path / "mr" / "y.nii.gz")
    with pytest.raises(InputError, match="no MR volume of subject 'x'"):
        evaluate_folders(tmp_path / "mr", tmp_path / "sct", tmp_path / "out")
    result = CliRunner().invoke(cli, ["evaluate", "--mr", str(tmp_path / "mr"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "exactly one of --model and --sct" in result.output
