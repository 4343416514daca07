"""The validation signal without ground truth, the best checkpoint it keeps, and export of a chosen checkpoint."""

import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.config import preset
from mr2ct.errors import ConfigError, InputError
from mr2ct.export import export_run, resolve_export
from mr2ct.metrics import gradient_correlation_2d, mutual_information
from mr2ct.training.best_checkpoint import BEST_DIR, best_checkpoint, find_checkpoint, keep_best_checkpoint
from mr2ct.training.trainer import train_cyclegan
from mr2ct.training.validation import (
    VALIDATION_CSV,
    ValidationSlices,
    body_of_slices,
    load_validation_slices,
    read_validation_rows,
    validation_signal,
)
from mr2ct_cli.main import cli
from run_fixtures import prepare_phantoms

CONFIG = ["train.constant_steps=4", "train.decay_steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=2",
          "train.validation_slices=6"]


def slices_with_a_body(count=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(count):
        body = (yy - size / 2) ** 2 / 100 + (xx - size / 2) ** 2 / 140 < 1
        images.append(np.where(body, 0.3 + 0.4 * rng.random((size, size)), -1.0))
    images = np.asarray(images, np.float32)
    return ValidationSlices(images, body_of_slices(images), ["a"] * count, "/nowhere")


def test_the_signals_are_the_metrics_of_the_translations():
    data = slices_with_a_body()

    def negate(x, training=False):
        return -np.asarray(x)

    def brighten(x, training=False):
        return np.asarray(x) + 0.5

    # MR -> -MR -> MR: a perfect cycle; absolute gradients ignore the sign, so GC is 1
    values = validation_signal(negate, negate, data)
    assert values["cycle_l1_mr"] == 0.0
    assert values["gc_abs_mr_sct"] == pytest.approx(1.0)
    expected_mi = np.mean([mutual_information(m, -m, mask=b) for m, b in zip(data.slices, data.body)])
    assert values["mi_mr_sct"] == pytest.approx(expected_mi) and values["mi_mr_sct"] > 0.5

    # MR -> MR + 0.5 -> MR + 1: the cycle error is 1 inside the body; a blurred CT loses gradient correlation
    values = validation_signal(brighten, brighten, data)
    assert values["cycle_l1_mr"] == pytest.approx(1.0)

    def blur(x, training=False):
        from scipy import ndimage

        return ndimage.uniform_filter(np.asarray(x), size=(1, 5, 5, 1))

    blurred = validation_signal(blur, blur, data)["gc_abs_mr_sct"]
    assert blurred < 0.9
    assert blurred == pytest.approx(np.mean([gradient_correlation_2d(m, blur(m[None, ..., None])[0, ..., 0])
                                             for m in data.slices]))


def test_best_checkpoint_is_swapped_in_whole(tmp_path):
    import tensorflow as tf

    step = tf.Variable(3, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), 5)
    first = manager.save(3)
    keep_best_checkpoint(tmp_path, first, 3, {"signal": "gc_abs_mr_sct"})
    assert best_checkpoint(tmp_path)[1]["step"] == 3
    assert tf.train.latest_checkpoint(str(tmp_path / BEST_DIR)).endswith("ckpt-3")
    # a checkpoint whose files are gone: refused, the previous best stays whole
    with pytest.raises(InputError, match="checkpoint files not found"):
        keep_best_checkpoint(tmp_path, str(tmp_path / "checkpoints" / "ckpt-99"), 99, {})
    assert best_checkpoint(tmp_path)[1]["step"] == 3
    step.assign(5)
    keep_best_checkpoint(tmp_path, manager.save(5), 5, {"signal": "gc_abs_mr_sct"})
    path, info = best_checkpoint(tmp_path)
    assert info["step"] == 5 and path.endswith("ckpt-5")
    assert sorted(os.listdir(tmp_path)) == [BEST_DIR, "checkpoints"]  # no temporary folder left
    assert find_checkpoint(tmp_path, step=3).endswith(os.path.join("checkpoints", "ckpt-3"))
    with pytest.raises(InputError, match=r"no checkpoint at step 4; this run holds steps \[3, 5\]"):
        find_checkpoint(tmp_path, step=4)


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    prepared = prepare_phantoms(root)
    val_mr = root / "phantom" / "mr"  # held-out MR in a real run; here the training subjects' MR
    run = root / "run"
    lines = []
    result = train_cyclegan(prepared, run, config=preset("tiny").override(CONFIG), progress=False,
                            val_mr=val_mr, echo=lines.append)
    assert result.finished
    return prepared, val_mr, run, lines


def test_a_run_with_validation_writes_the_signal_and_keeps_the_best_checkpoint(validated_run):
    prepared, val_mr, run, lines = validated_run
    rows = read_validation_rows(run)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert all(np.isfinite([r["mi_mr_sct"], r["gc_abs_mr_sct"], r["cycle_l1_mr"]]).all() for r in rows)
    assert len(lines) == 4 and lines[0].startswith("validation at step 2: MI(MR, sCT) ")
    best_step = min(rows, key=lambda r: r["cycle_l1_mr"])["step"]  # picked by the MR cycle error (the default)
    path, info = best_checkpoint(run)
    assert info["step"] == best_step and info["signal"] == "cycle_l1_mr"
    assert sum("(best so far)" in line for line in lines) >= 1
    # TensorBoard scalars beside the losses
    from mr2ct.evaluation.scalars import read_scalars

    scalars = read_scalars(run / "logs" / "validation")
    assert list(scalars["validation/gc_abs_mr_sct"][0]) == [2, 4, 6, 8]
    # the best survives the rotation of the latest checkpoints (two kept)
    assert sorted(os.listdir(run / "checkpoints")) == [
        "checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index", "ckpt-8.data-00000-of-00001", "ckpt-8.index"]
    with open(run / VALIDATION_CSV) as f:
        assert next(csv.reader(f)) == ["step", "gc_abs_mr_sct", "mi_mr_sct", "cycle_l1_mr"]


def test_export_best_and_step_take_those_checkpoints(validated_run, tmp_path):
    _, _, run, _ = validated_run
    best_step = best_checkpoint(run)[1]["step"]
    best = export_run(run, tmp_path, name="hips", best=True)
    assert best.step == best_step and resolve_export(best.path)[1]["step"] == best_step
    assert export_run(run, tmp_path, name="hips", step=6).step == 6
    with pytest.raises(InputError, match=r"no checkpoint at step 5; this run holds steps \["):
        export_run(run, tmp_path, name="hips", step=5)
    result = CliRunner().invoke(cli, ["export", "--run", str(run), "--best", "--name", "cli", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"exported step {best_step} of" in result.output
    result = CliRunner().invoke(cli, ["export", "--run", str(run), "--best", "--step", "6", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--step or --best" in result.output


def test_export_best_of_a_run_without_validation_says_how_to_get_one(tmp_path):
    from run_fixtures import make_run

    make_run(tmp_path / "run")
    with pytest.raises(InputError, match="only when trained with --val-mr"):
        export_run(tmp_path / "run", tmp_path / "out", best=True)
    assert not (tmp_path / "out").exists()


def test_a_resume_validates_on_its_own_folder_only(validated_run, tmp_path):
    prepared, val_mr, run, _ = validated_run
    config = preset("tiny").override(CONFIG)
    with pytest.raises(ConfigError, match=r"this run validates on .*, not "):
        train_cyclegan(prepared, run, config=config, progress=False, val_mr=tmp_path)
    # without --val-mr the recorded folder is used again (a finished run: nothing to do)
    assert train_cyclegan(prepared, run, config=config, progress=False).finished


def test_a_bad_validation_folder_is_named_and_leaves_no_run(validated_run, tmp_path):
    prepared = validated_run[0]
    config = preset("tiny").override(CONFIG)
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "missing", "validation MR folder not found"),
                            (tmp_path / "empty", "contains no volumes")):
        with pytest.raises(InputError, match=message) as info:
            train_cyclegan(prepared, tmp_path / "run", config=config, progress=False, val_mr=folder)
        assert str(folder) in str(info.value)
        assert not (tmp_path / "run" / "config.yaml").exists()


def test_validation_slices_are_spread_over_the_volumes(validated_run):
    from mr2ct.data.preprocess import PreprocessConfig

    _, val_mr, run, _ = validated_run
    import json

    preprocessing = json.loads((run / "preprocessing.json").read_text())
    data = load_validation_slices(val_mr, PreprocessConfig.from_dict(preprocessing["config"]), count=6)
    assert data.slices.shape[0] == 6 and data.slices.dtype == np.float32
    assert len(set(data.sources)) == 3  # all three volumes contribute
    assert data.body.any(axis=(1, 2)).all()


def test_better_is_higher_for_mi_and_gc_and_lower_for_the_cycle_error():
    from mr2ct.training.validation import is_better, signal_column

    assert is_better("gc_abs_mr_sct", 0.5, 0.4) and not is_better("gc_abs_mr_sct", 0.3, 0.4)
    assert is_better("mi_mr_sct", 0.7, 0.6)
    assert is_better("cycle_l1_mr", 0.1, 0.2) and not is_better("cycle_l1_mr", 0.3, 0.2)
    assert is_better("cycle_l1_mr", 0.3, None) and not is_better("cycle_l1_mr", float("nan"), None)
    assert [signal_column(n) for n in ("gc", "mi", "cycle")] == ["gc_abs_mr_sct", "mi_mr_sct", "cycle_l1_mr"]
    with pytest.raises(ConfigError, match="train.validation_signal must be one of"):
        preset("tiny").override(["train.validation_signal=mae"])


def test_the_command_line_names_a_bad_validation_folder_and_a_missing_step(validated_run, tmp_path):
    prepared, _, run, _ = validated_run
    missing = tmp_path / "missing"
    result = CliRunner().invoke(cli, ["train", "--data", str(prepared), "--out", str(tmp_path / "run"), "--preset",
                                      "tiny", "--val-mr", str(missing), "--quiet"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{missing}: validation MR folder not found" in result.output
    assert not (tmp_path / "run" / "config.yaml").exists()
    result = CliRunner().invoke(cli, ["export", "--run", str(run), "--step", "5", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "no checkpoint at step 5; this run holds steps [" in result.output
    assert not (tmp_path / "out").exists()
