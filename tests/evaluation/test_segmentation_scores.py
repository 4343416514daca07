"""evaluate_segmentation: Dice of all 22 structures per subject, tables, figures, bad input."""

import dataclasses
import json
import os

import matplotlib.image
import numpy as np
import pytest

from mr2ct.data.io import read_volume, write_volume
from mr2ct.data.phantom import generate_subject
from mr2ct.errors import InputError
from mr2ct.evaluation.evaluate import read_table
from mr2ct.evaluation.segmentation import STRUCTURES, evaluate_segmentation, paper_dice_keys, summary_line
from mr2ct.labels import FEMUR, LABELS, PELVIS


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("segeval")
    truths = {}
    for name, seed in (("a", 5), ("b", 6)):
        subject = generate_subject(seed, size="small", seed=seed)
        write_volume(subject.mr, root / "mr" / f"{name}.nii.gz")
        write_volume(subject.labels_mr, root / "labels" / f"{name}.nii.gz", dtype="uint8")
        truths[name] = np.rint(subject.labels_mr.array).astype(np.int64)
    return root, truths


def test_scores_every_structure_against_known_answers(folders, tmp_path):
    root, truths = folders

    def segment(mr):
        # subject a: the truth; subject b: the truth with femur relabelled pelvis
        truth = read_volume(root / "labels" / os.path.basename(mr.path))
        array = np.rint(truth.array).astype(np.uint8)
        if "b.nii" in mr.path:
            array[array == FEMUR] = PELVIS
        return truth.with_array(array)

    rows = evaluate_segmentation(root / "mr", root / "labels", segment, tmp_path / "eval")
    assert [r["subject"] for r in rows] == ["a", "b"]
    assert len(STRUCTURES) == 22
    assert sorted(k for k in rows[0] if k.startswith("dice_")) == sorted(
        [f"dice_{LABELS[v]}" for v in STRUCTURES] + ["dice_mean"])
    present_a = {v for v in np.unique(truths["a"]) if v}
    for v in STRUCTURES:
        value = rows[0][f"dice_{LABELS[v]}"]
        assert value == 1.0 if v in present_a else np.isnan(value)
    assert rows[0]["dice_mean"] == 1.0
    b = truths["b"]
    assert rows[1]["dice_femur"] == 0.0
    expected_pelvis = 2 * (b == PELVIS).sum() / (2 * (b == PELVIS).sum() + (b == FEMUR).sum())
    assert rows[1]["dice_pelvis"] == pytest.approx(expected_pelvis)
    # the files
    table = read_table(tmp_path / "eval" / "segmentation_metrics.csv")
    assert table[1]["dice_femur"] == 0.0 and table[0]["subject"] == "a"
    summary = json.loads((tmp_path / "eval" / "segmentation_metrics.json").read_text())["summary"]
    assert summary["dice_femur"]["mean"] == 0.5
    for figure in ("segmentation_montage.png", "segmentation_boxplots.png"):
        image = matplotlib.image.imread(tmp_path / "eval" / figure)
        assert image.ndim == 3 and image.shape[0] > 100, figure
    written = read_volume(tmp_path / "eval" / "labels" / "b.nii.gz")
    assert written.array.dtype == np.uint8 and not (written.array == FEMUR).any()
    line = summary_line(rows[1])
    assert line.startswith("b: Dice pelvis") and "femur 0.000" in line and "mean of 22" in line
    assert paper_dice_keys() == ["dice_pelvis", "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus"]


def test_refuses_missing_or_misfitting_labels(folders, tmp_path):
    root, _ = folders
    (tmp_path / "labels").mkdir()
    with pytest.raises(InputError, match=r"labels: contains no volumes"):
        evaluate_segmentation(root / "mr", tmp_path / "labels", lambda mr: mr, tmp_path / "eval")
    write_volume(read_volume(root / "labels" / "b.nii.gz"), tmp_path / "labels" / "b.nii.gz", dtype="uint8")
    with pytest.raises(InputError, match=r"labels: no label volume of subject 'a'"):
        evaluate_segmentation(root / "mr", tmp_path / "labels", lambda mr: mr, tmp_path / "eval")
    small = read_volume(root / "labels" / "a.nii.gz")
    write_volume(dataclasses.replace(small, array=small.array[:-1]), tmp_path / "labels" / "a.nii.gz", dtype="uint8")
    with pytest.raises(InputError, match=r"a.nii.gz.*differs from its MR"):
        evaluate_segmentation(root / "mr", tmp_path / "labels", lambda mr: mr, tmp_path / "eval")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: contains no volumes"):
        evaluate_segmentation(tmp_path / "empty", root / "labels", lambda mr: mr, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()
