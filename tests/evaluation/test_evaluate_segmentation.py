"""Dice through a segmenter and MI between real CT and synthesized MR: known answers, folders, CLI."""

import json
import os

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.data.intensity import CTIntensity
from mr2ct.data.io import write_volume
from mr2ct.data.phantom import generate_subject
from mr2ct.data.preprocess import PreprocessConfig
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.evaluation.evaluate import (
    dice_scores,
    evaluate_ct_folder,
    evaluate_folders,
    evaluate_synthetic_mr,
    read_table,
)
from mr2ct.labels import FEMUR, GLUTEUS_MEDIUS, GLUTEUS_MINIMUS, PELVIS
from mr2ct.serving.mr_synthesizer import MRSynthesizer
from mr2ct_cli.main import cli

SIZE = 32
RECORD = {
    "image_size": SIZE,
    "config": PreprocessConfig(image_size=SIZE, n4=False).to_dict(),
    "ct_intensity": {"hu_min": -1024.0, "hu_max": 2048.0},
}


def entropy_of_bins(values, bins=64):
    """Shannon entropy (nats) of ``values`` in ``bins`` equal bins over their range."""
    counts, _ = np.histogram(values, bins=bins, range=(values.min(), values.max()))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.fixture(scope="module")
def subject():
    return generate_subject(1, size="small", seed=5)


# (structure, expected Dice) of the label maps built in test_dice_scores_known_answers
DICE_CASES = [
    (PELVIS, 1.0),  # identical
    (FEMUR, 0.5),  # 10 true, 10 predicted, 5 shared
    (GLUTEUS_MEDIUS, 0.0),  # predicted only
    (GLUTEUS_MINIMUS, float("nan")),  # in neither
]


def test_dice_scores_known_answers():
    truth = np.zeros((2, 10, 10), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 0, :] = PELVIS
    pred[0, 0, :] = PELVIS
    truth[0, 5, :] = FEMUR
    pred[0, 5, :5] = FEMUR
    pred[1, 5, :5] = FEMUR
    pred[1, 9, :4] = GLUTEUS_MEDIUS
    row = dice_scores(pred, truth, [label for label, _ in DICE_CASES])
    assert list(row) == ["dice_pelvis", "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus", "dice_mean"]
    for (label, expected), value in zip(DICE_CASES, row.values()):
        assert value == pytest.approx(expected, nan_ok=True), label
    assert row["dice_mean"] == pytest.approx(0.5)  # NaN left out: (1 + 0.5 + 0) / 3
    assert dice_scores(pred, truth, ["femur"]) == {"dice_femur": 0.5, "dice_mean": 0.5}
    with pytest.raises(Mr2ctError, match="unknown structure 'kneecap'"):
        dice_scores(pred, truth, ["kneecap"])


def test_mi_of_ct_and_synthesized_mr_known_answers():
    rng = np.random.default_rng(0)
    ct = np.full((3, 16, 16), -1000.0)
    ct[:, 4:12, 4:12] = rng.uniform(-200, 1500, (3, 8, 8))  # the body
    body = ct > -500
    # G_MR a scaling of the CT (by a power of two: the same bins): MI is the entropy of the CT
    # inside the body, per slice.
    expected = np.mean([entropy_of_bins(ct[k][body[k]]) for k in range(3)])
    assert evaluate_synthetic_mr(ct, ct / 1024)["mi_ct_smr"] == pytest.approx(expected, rel=1e-9)
    # whatever happens outside the body does not count
    outside = np.where(body, ct / 1024, rng.uniform(-1, 1, ct.shape))
    assert evaluate_synthetic_mr(ct, outside)["mi_ct_smr"] == pytest.approx(expected, rel=1e-9)
    # a constant synthesized MR carries no information about the CT
    assert evaluate_synthetic_mr(ct, np.zeros_like(ct))["mi_ct_smr"] == pytest.approx(0.0, abs=1e-12)


def test_mr_synthesizer_prepares_ct_and_feeds_the_window_to_the_generator(subject):
    seen = []

    def generator(x, training=False):
        seen.append(np.asarray(x))
        return -np.asarray(x)

    synthesizer = MRSynthesizer.from_generator(generator, RECORD, batch_size=4)
    ct_hu, smr = synthesizer.prepared(subject.ct)
    assert ct_hu.shape[1:] == (SIZE, SIZE) and smr.shape == ct_hu.shape
    assert 1 < len(ct_hu) < subject.ct.shape[0]  # cropped to the MR-like slab
    assert ct_hu.min() >= -1024 and ct_hu.max() <= 2048  # clipped to the window
    window = CTIntensity(-1024.0, 2048.0)
    np.testing.assert_allclose(smr, -window.forward(ct_hu), atol=1e-6)
    assert max(len(batch) for batch in seen) == 4


def _truth_without_femur(labels):
    def volume(mr):
        return labels.with_array(np.where(labels.array == FEMUR, 0, labels.array).astype(np.uint8))

    return volume


class FakeSegmenter:
    """Returns the truth with the femur missing: Dice 1 everywhere but 0 for the femur."""

    def __init__(self, labels):
        self.volume = _truth_without_femur(labels)


def test_folders_with_labels_and_real_ct(subject, tmp_path):
    for name in ("a", "b"):
        write_volume(subject.mr, tmp_path / "mr" / f"{name}.nii.gz")
        write_volume(subject.ct_on_mr_grid, tmp_path / "sct" / f"{name}.nii.gz")
        write_volume(subject.labels_mr, tmp_path / "labels" / f"{name}.nii.gz", dtype="uint8")
    for name in ("a", "c"):  # CT of other subjects too
        write_volume(subject.ct, tmp_path / "ct" / f"{name}.nii.gz")
    synthesizer = MRSynthesizer(RECORD, lambda batch: batch / 1024)  # G_MR a scaling: the same bins
    rows = evaluate_folders(tmp_path / "mr", tmp_path / "sct", tmp_path / "eval", montage=False,
                            labels_dir=tmp_path / "labels", segmenter=FakeSegmenter(subject.labels_mr),
                            ct_dir=tmp_path / "ct", mr_synthesizer=synthesizer)

    present = sorted(int(v) for v in np.unique(subject.labels_mr.array) if v)
    assert PELVIS in present and FEMUR in present and len(present) > 4
    for row in rows:
        assert row["dice_pelvis"] == 1.0 and row["dice_femur"] == 0.0
        assert row["dice_mean"] == pytest.approx((len(present) - 1) / len(present))
        assert "mi_mr_sct" in row and "mae_hu" not in row  # the existing columns stay
    # MI(CT, sMR) of a scaling G_MR is the entropy of the prepared CT in the body, per slice
    ct_hu = synthesizer.prepare_ct(subject.ct)
    expected = np.mean([entropy_of_bins(s[s > -500]) for s in ct_hu if (s > -500).any()])
    ct_rows = read_table(tmp_path / "eval" / "metrics_ct.csv")
    assert [r["subject"] for r in ct_rows] == ["a", "c"]
    assert ct_rows[0]["mi_ct_smr"] == pytest.approx(expected, rel=1e-4)
    assert rows[0]["mi_ct_smr"] == pytest.approx(expected, rel=1e-9)  # subject a has a CT
    assert np.isnan(rows[1]["mi_ct_smr"])  # subject b has none
    assert evaluate_ct_folder(tmp_path / "ct", synthesizer)[1]["mi_ct_smr"] == pytest.approx(expected, rel=1e-9)

    table = read_table(tmp_path / "eval" / "metrics.csv")
    assert table[0]["dice_femur"] == 0.0 and np.isnan(table[1]["mi_ct_smr"])
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())["summary"]
    assert summary["dice_pelvis"]["mean"] == 1.0
    assert sorted(os.listdir(tmp_path / "eval" / "labels")) == ["a.nii.gz", "b.nii.gz"]
    image = matplotlib.image.imread(tmp_path / "eval" / "dice_boxplots.png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert not (tmp_path / "eval" / "segmentation_montage.png").exists()  # montage=False

    # only the paper's structures
    rows = evaluate_folders(tmp_path / "mr", tmp_path / "sct", tmp_path / "eval4", montage=False,
                            labels_dir=tmp_path / "labels", segmenter=FakeSegmenter(subject.labels_mr),
                            structures=["pelvis", "femur", GLUTEUS_MEDIUS, GLUTEUS_MINIMUS])
    assert [k for k in rows[0] if k.startswith("dice_")] == [
        "dice_pelvis", "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus", "dice_mean"]
    assert rows[0]["dice_mean"] == pytest.approx(0.75)


def test_inputs_that_do_not_go_together(subject, tmp_path):
    write_volume(subject.mr, tmp_path / "mr" / "a.nii.gz")
    write_volume(subject.ct_on_mr_grid, tmp_path / "sct" / "a.nii.gz")
    write_volume(subject.ct, tmp_path / "ct" / "a.nii.gz")
    with pytest.raises(Mr2ctError, match="Dice needs both"):
        evaluate_folders(tmp_path / "mr", tmp_path / "sct", tmp_path / "out", labels_dir=tmp_path / "mr")
    with pytest.raises(Mr2ctError, match="needs a CT-to-MR generator"):
        evaluate_folders(tmp_path / "mr", tmp_path / "sct", tmp_path / "out", ct_dir=tmp_path / "ct")
    runner = CliRunner()
    base = ["evaluate", "--mr", str(tmp_path / "mr"), "--sct", str(tmp_path / "sct"), "--out", str(tmp_path / "o")]
    result = runner.invoke(cli, base + ["--labels", str(tmp_path / "mr")])
    assert result.exit_code != 0 and "needs both --labels and --seg-model" in result.output
    result = runner.invoke(cli, base + ["--ct", str(tmp_path / "ct")])
    assert result.exit_code != 0 and "--ct needs a CT-to-MR generator" in result.output


def test_cli_with_a_segmentation_run(subject, tmp_path_factory, tmp_path):
    """`--seg-model` segments through the run's generators and is also the G_MR for `--ct`."""
    from seg_fixtures import phantom_folders, segmentation_run

    seg_run = segmentation_run(tmp_path_factory)
    phantoms = phantom_folders(tmp_path_factory)
    result = CliRunner().invoke(cli, [
        "evaluate", "--mr", str(phantoms / "mr"), "--sct", str(phantoms / "ct_on_mr_grid"),
        "--labels", str(phantoms / "labels_mr"), "--seg-model", str(seg_run), "--ct", str(phantoms / "ct"),
        "--out", str(tmp_path / "eval"),
    ])
    assert result.exit_code == 0, result.output
    assert "Dice per structure" in result.output and "MI(real CT, synthesized MR)" in result.output
    rows = read_table(tmp_path / "eval" / "metrics.csv")
    assert [r["subject"] for r in rows] == ["subject_000", "subject_001"]
    for row in rows:
        assert 0 <= row["dice_mean"] <= 1 and 0 <= row["dice_pelvis"] <= 1
        assert row["mi_ct_smr"] > 0
    assert (tmp_path / "eval" / "labels" / "subject_000.nii.gz").exists()
    assert matplotlib.image.imread(tmp_path / "eval" / "dice_boxplots.png").ndim == 3
    montage = matplotlib.image.imread(tmp_path / "eval" / "segmentation_montage.png")
    assert montage.ndim == 3 and montage.shape[0] > 200  # two subjects, two slices each


def test_mr_synthesizer_of_an_export_matches_the_run(subject, tmp_path):
    """The export's ct_to_mr signature, the run folder and the generator in memory give one synthesized MR."""
    from run_fixtures import make_run

    from mr2ct.export import export_run

    model, _ = make_run(tmp_path / "run", step=3, seed=2)
    export = export_run(tmp_path / "run", tmp_path / "models", name="m")
    record = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    in_memory = MRSynthesizer.from_generator(model.generator_ct_to_mr, record)
    ct_hu, expected = in_memory.prepared(subject.ct)
    for synthesizer in (MRSynthesizer.local(tmp_path / "models" / "m"), MRSynthesizer.from_path(export.path),
                        MRSynthesizer.from_path(tmp_path / "run")):
        np.testing.assert_allclose(synthesizer.slices(ct_hu), expected, atol=1e-5)
    with pytest.raises(InputError, match="not found"):
        MRSynthesizer.from_path(tmp_path / "nowhere")

    # `mr2ct evaluate --model EXPORT --ct DIR`: G_MR from the export's ct_to_mr signature
    write_volume(subject.mr, tmp_path / "mr" / "a.nii.gz")
    write_volume(subject.ct, tmp_path / "ct" / "a.nii.gz")
    result = CliRunner().invoke(cli, ["evaluate", "--mr", str(tmp_path / "mr"), "--model",
                                      str(tmp_path / "models" / "m"), "--ct", str(tmp_path / "ct"),
                                      "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    (row,) = read_table(tmp_path / "eval" / "metrics.csv")
    assert row["mi_ct_smr"] == pytest.approx(evaluate_synthetic_mr(ct_hu, expected)["mi_ct_smr"], rel=1e-3)
