"""The demo's whole chain, on a tiny plan."""

import json
import os

import numpy as np
import pytest

from mr2ct.config import preset
from mr2ct.data.io import read_volume
from mr2ct.demo import DemoPlan, plan, run_demo
from mr2ct.errors import ConfigError
from mr2ct.evaluation.evaluate import read_table


def test_tiny_demo_runs_every_stage_and_reuses_them(tmp_path):
    sizes = DemoPlan("small", train_mr=1, train_ct=1, test=1, config=preset("tiny"))
    lines = []
    results = run_demo(tmp_path / "demo", sizes=sizes, echo=lines.append)
    assert json.loads((tmp_path / "demo" / "results.json").read_text()) == results
    for key in ("phantom_montage", "metrics", "boxplots", "montage", "reformats", "segmentation_metrics",
                "segmentation_boxplots", "segmentation_montage"):
        assert os.path.getsize(results[key]) > 0, key
    # unpaired: the MR and the CT used for training come from different subjects
    split = tmp_path / "demo" / "split"
    assert os.listdir(split / "train_mr") == ["subject_000.nii.gz"]
    assert os.listdir(split / "train_ct") == ["subject_001.nii.gz"]
    (row,) = read_table(results["metrics"])
    assert row["subject"] == "subject_002" and np.isfinite(row["mae_hu"])
    mr = read_volume(split / "test_mr" / "subject_002.nii.gz")
    sct = read_volume(os.path.join(results["predictions"], "subject_002.nii.gz"))
    assert sct.shape == mr.shape and sct.array.dtype == np.int16
    np.testing.assert_allclose(sct.affine_lps, mr.affine_lps)
    # segmentation through synthesis: the held-out MR segmented by the export, Dice of all 22 structures
    (seg_row,) = read_table(results["segmentation_metrics"])
    assert seg_row["subject"] == "subject_002"
    assert len([k for k in seg_row if k.startswith("dice_")]) == 23  # 22 structures and their mean
    labels = read_volume(tmp_path / "demo" / "evaluation" / "labels" / "subject_002.nii.gz")
    assert labels.shape == mr.shape
    assert any(line.startswith("subject_002: Dice pelvis") for line in lines)
    assert (tmp_path / "demo" / "runs" / "segmentation" / "synthesized_mr" / "cache.json").exists()

    # a second run finds every stage done
    again = []
    run_demo(tmp_path / "demo", sizes=sizes, echo=again.append)
    assert "already generated" in again and any(line.startswith("already exported") for line in again)
    assert sorted(os.listdir(tmp_path / "demo" / "saved_models" / "mr2ct")) == ["1"]
    assert not any(line.startswith("synthesized MR") for line in again)  # the U-Net is trained: nothing to cache

    # a demo folder of another plan (e.g. an earlier mr2ct's) is refused, naming the run and the way out
    other = DemoPlan("small", train_mr=1, train_ct=1, test=1,
                     config=preset("tiny").override(["model.init=glorot_uniform"]))
    refused = r"other settings \(model.init: 'normal' -> 'glorot_uniform'\).*remove .*gc_cyclegan.*--out"
    with pytest.raises(ConfigError, match=refused):
        run_demo(tmp_path / "demo", sizes=other, echo=lambda line: None)


def test_plans():
    quick, full = plan(True), plan(False)
    assert quick.subjects == 12 and quick.config.data.image_size == 64
    assert full.phantom_size == "paper" and full.config.train.total_steps == 3000
    assert full.config.train.learning_rate == 4e-4  # the cpu preset's (the paper: 2e-4)
    assert (full.config.data.image_size, full.config.data.batch_size) == (160, 1)
