"""The paper's experiment on phantoms: plan, paired t-tests, the tiny preset end to end, reuse."""

import glob
import json
import math
import os
import time

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.errors import ConfigError, Mr2ctError
from mr2ct.evaluation.experiment import (
    COMPARISONS,
    CONDITIONS,
    Condition,
    EXPERIMENT_PRESETS,
    TESTED_METRICS,
    TrainingSet,
    compare_conditions,
    paired_t_test,
    plan,
    render_report,
    run_experiment,
)
from mr2ct_cli.main import cli


def rows(values, metric="m", subjects=None):
    subjects = subjects or [f"s{i}" for i in range(len(values))]
    return [{"subject": s, metric: float(v)} for s, v in zip(subjects, values)]


def test_paired_t_test_known_answers():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt(3)) with 2 degrees of freedom
    result = paired_t_test(rows([11, 12, 13]), rows([10, 10, 10]), "m")
    assert result["t"] == pytest.approx(2 * math.sqrt(3))
    assert result["p"] == pytest.approx(0.07418, abs=5e-5)  # two-sided, t-table
    assert result["n"] == 3 and result["mean_difference"] == pytest.approx(2.0)
    assert result["mean_a"] == pytest.approx(12.0) and result["sd_a"] == pytest.approx(1.0)
    assert result["mean_b"] == pytest.approx(10.0) and result["sd_b"] == pytest.approx(0.0)
    # paired by subject, whatever the order; pairs with an undefined value left out
    shuffled = rows([13, float("nan"), 11, 12], subjects=["s2", "s9", "s0", "s1"])
    assert paired_t_test(shuffled, rows([10, 10, 10]), "m")["t"] == pytest.approx(result["t"])
    assert paired_t_test(shuffled, rows([10, 10, 10]), "m")["n"] == 3
    # undefined: one pair, or identical differences
    for a, b in [([1.0], [2.0]), ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])]:
        undefined = paired_t_test(rows(a), rows(b), "m")
        assert np.isnan(undefined["t"]) and np.isnan(undefined["p"]) and undefined["n"] == len(a)


def test_compare_conditions_runs_every_comparison_on_every_metric():
    data = {c.name: [{"subject": f"s{i}", **{m: float(i + k) for m in TESTED_METRICS}} for i in range(3)]
            for k, c in enumerate(CONDITIONS)}
    tests = compare_conditions(data)
    assert len(tests) == len(COMPARISONS) * len(TESTED_METRICS) == 5 * 8
    assert {(t["factor"], t["at"]) for t in tests} == {(f, at) for f, at, _, _ in COMPARISONS}
    assert {(t["a"], t["b"]) for t in tests if t["factor"] == "GC form"} == {("large_gc", "large_gc_signed")}
    assert all(np.isnan(t["p"]) for t in tests)  # every difference is a constant here


def test_plans_of_the_presets():
    assert set(EXPERIMENT_PRESETS) == {"paper", "cpu", "tiny"}
    paper = plan("paper")
    assert (paper.small_mr, paper.small_ct, paper.mr_pool, paper.ct_pool, paper.test) == (20, 20, 302, 613, 10)
    for name in EXPERIMENT_PRESETS:
        p = plan(name, seed=3)
        groups = p.groups()
        assert set(groups["train_mr_small"]) <= set(groups["train_mr_large"])
        assert set(groups["train_ct_small"]) <= set(groups["train_ct_large"])
        everyone = groups["train_mr_large"] + groups["train_ct_large"] + groups["test"]
        assert len(set(everyone)) == len(everyone) == p.subjects  # unpaired, and tested on unseen subjects
        assert p.config.runtime.seed == 3 and p.config.data.seed == 3
        gc = {c.gc: p.condition_config(c).loss.lambda_gc for c in CONDITIONS}
        assert gc[False] == 0.0 and gc[True] == p.config.loss.lambda_gc > 0
        # the authors' absolute GC in every GC condition but the fifth, which has the signed Eq. 4
        forms = {c.name: (p.condition_config(c).loss.gc_absolute, p.condition_config(c).loss.lambda_gc)
                 for c in CONDITIONS}
        assert forms == {"small_no_gc": (True, 0.0), "small_gc": (True, 0.3), "large_no_gc": (True, 0.0),
                         "large_gc": (True, 0.3), "large_gc_signed": (False, 0.3)}
        assert p.condition_config(CONDITIONS[3]).to_dict() == p.config.to_dict()
        signed = p.condition_config(CONDITIONS[4])
        assert signed.override(["loss.gc_absolute=true"]).to_dict() == p.config.to_dict()  # only the form differs
        assert p.training_volumes(TrainingSet.LARGE) == (p.mr_pool, p.ct_pool)
    tiny = plan("tiny")
    assert tiny.config.train.total_steps == 8 and tiny.config.segmentation.steps == 6
    assert tiny.phantom_size == "small"
    with pytest.raises(ConfigError, match="unknown experiment preset 'huge'"):
        plan("huge")


def test_conditions_names_and_labels():
    assert [c.name for c in CONDITIONS] == ["small_no_gc", "small_gc", "large_no_gc", "large_gc", "large_gc_signed"]
    assert [c.gc_form for c in CONDITIONS] == ["none", "absolute", "none", "absolute", "signed"]
    assert CONDITIONS[4].label == "large, signed GC" and len({c.label for c in CONDITIONS}) == 5
    with pytest.raises(ConfigError, match="no GC form"):
        Condition(TrainingSet.LARGE, False, gc_absolute=False)


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment") / "tiny"
    lines = []
    start = time.perf_counter()
    results = run_experiment(out, preset="tiny", echo=lines.append, progress=False)
    return out, results, lines, time.perf_counter() - start


def _refuse_nonstandard_json(token):
    raise AssertionError(f"{token} is not standard JSON")


def _checkpoint_mtimes(out):
    files = glob.glob(os.path.join(out, "runs", "*", "*", "checkpoints", "*"))
    return {f: os.stat(f).st_mtime_ns for f in files}


def test_tiny_experiment_end_to_end(tiny_experiment):
    out, results, lines, seconds = tiny_experiment
    print(f"tiny experiment: {seconds:.0f} s")
    assert [f"== {n}/7" in "".join(lines) for n in range(1, 8)] == [True] * 7  # progress per stage
    for condition in CONDITIONS:
        for kind in ("cyclegan", "segmentation"):
            run = out / "runs" / condition.name / kind
            status = json.loads((run / "status.json").read_text())
            assert status["state"] == "finished", run
            assert glob.glob(str(run / "checkpoints" / "ckpt-*.index"))
    reference = out / "runs" / "mr_supervised"
    assert json.loads((reference / "status.json").read_text())["state"] == "finished"
    assert "input_channels" not in (reference / "config.yaml").read_text()
    configs = {c.name: (out / "runs" / c.name / "cyclegan" / "config.yaml").read_text() for c in CONDITIONS}
    assert "lambda_gc: 0.0" in configs["small_no_gc"] and "lambda_gc: 0.3" in configs["large_gc"]
    assert "gc_absolute: true" in configs["large_gc"] and "gc_absolute: false" in configs["large_gc_signed"]

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    for condition in CONDITIONS:
        assert condition.label in report
    assert "n = 2 test subjects" in report
    for factor, at, _, _ in COMPARISONS:
        assert f"| {factor} | {at} | MI(CT, sMR) [nats] |" in report
        assert f"| {factor} | {at} | Dice gluteus minimus |" in report
    assert "| GC form | large training set | Dice pelvis | large, GC |" in report
    assert "| large, signed GC | 12 |" not in report and "| large, signed GC | 2 | 2 | 0.3 | signed |" in report
    for png in ("fig3_mutual_information.png", "fig4_examples.png", "fig5_dice.png", "synthesis_accuracy.png",
                "training_curves.png"):
        assert f"]({png})" in report
        image = matplotlib.image.imread(out / png)
        assert image.ndim == 3 and min(image.shape[:2]) > 100

    saved = json.loads((out / "results.json").read_text(), parse_constant=_refuse_nonstandard_json)
    assert len(saved["tests"]) == len(COMPARISONS) * len(TESTED_METRICS)
    for test in saved["tests"]:
        assert test["n"] == 2
        assert test["p"] is None or 0.0 <= test["p"] <= 1.0  # None: no variance in the differences
    for condition in CONDITIONS:
        entry = saved["conditions"][condition.name]
        assert [r["subject"] for r in entry["subjects"]] == saved["plan"]["groups"]["test"]
        for metric in ("mi_mr_sct", "mi_ct_smr", "mae_hu", "bone_dice", "gc_abs_mr_sct", "gc_mr_sct", "dice_pelvis",
                       "dice_femur", "dice_gluteus_medius", "dice_gluteus_minimus"):
            assert entry["summary"][metric]["n"] == 2
        for row in entry["subjects"]:
            assert row["mi_ct_smr"] > 0 and 0 <= row["dice_mean"] <= 1
    assert results["tests"][0]["metric"] == saved["tests"][0]["metric"]
    assert saved["source"]["version"] and saved["calls"][-1]["source"] == saved["source"]
    assert "Made with mr2ct " in report
    # the MR-supervised reference: trained on the small set's labelled MR, tested on the same subjects' MR
    entry = saved["reference"]
    assert entry["label"] == "MR-supervised (reference)" and entry["train_mr_volumes"] == 1
    assert [r["subject"] for r in entry["subjects"]] == saved["plan"]["groups"]["test"]
    assert entry["summary"]["dice_pelvis"]["n"] == 2 and 0 <= entry["summary"]["dice_mean"]["mean"] <= 1
    assert sorted(os.listdir(out / "evaluation" / "mr_supervised" / "labels")) == [
        f"{s}.nii.gz" for s in saved["plan"]["groups"]["test"]]
    assert "| MR-supervised (reference): a one-channel U-Net" in report
    assert "| metric | small, no GC | small, GC | large, no GC | large, GC | large, signed GC | MR-supervised" in report
    # the paper's numbers and claims beside ours
    assert "| pelvis | 0.808 ± 0.036 |" in report and "| 0.815 ± 0.046 |" in report
    assert "| the GC loss raises Dice of gluteus minimus | p < 0.01 | large training set |" in report
    # paths relative to the experiment folder, so that it can be moved
    assert saved["files"]["fig3"] == "fig3_mutual_information.png" and saved["files"]["report"] == "REPORT.md"
    for condition in CONDITIONS:
        entry = saved["conditions"][condition.name]
        for key in ("cyclegan_run", "segmentation_run"):
            assert not os.path.isabs(entry[key]) and (out / entry[key] / "status.json").is_file()
    assert render_report(saved) == report  # the report can be rendered again from results.json
    assert "For reference, the test MR against its *true* CT" in report
    assert "GC(MR, true CT), absolute gradients " in report and "GC(MR, true CT), signed (Sobel) " in report
    for reference in ("gc_mr_ct", "gc_abs_mr_ct", "mi_mr_ct"):
        values = {json.dumps(saved["conditions"][c.name]["summary"][reference]) for c in CONDITIONS}
        assert len(values) == 1, reference  # the test MR against its true CT: the same in every condition


def test_tiny_experiment_is_reused(tiny_experiment):
    out, _, _, first = tiny_experiment
    before = _checkpoint_mtimes(out)
    assert len(before) >= 10 * 3  # index, data and checkpoint file of 5 CycleGANs and 5 U-Nets
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["experiment", "--preset", "tiny", "--out", str(out), "--no-progress"])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert result.output.count("already trained") == 11 and result.output.count("already evaluated") == 6
    assert _checkpoint_mtimes(out) == before
    saved = json.loads((out / "results.json").read_text())
    assert all(saved["reused"].values())
    # the report still says what the first call took
    assert [c["all_reused"] for c in saved["calls"]] == [False, True]
    assert saved["calls"][0]["seconds"] > saved["calls"][1]["seconds"] == saved["seconds"]
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "2 calls of `mr2ct experiment` on this folder took" in report and "every step reused" in report
    assert seconds < max(30.0, first / 3), seconds


def test_another_preset_in_the_same_folder_is_refused(tiny_experiment):
    out = tiny_experiment[0]
    with pytest.raises(Mr2ctError, match="other settings"):
        run_experiment(out, preset="tiny", seed=1, echo=lambda line: None)
    result = CliRunner().invoke(cli, ["experiment", "--preset", "cpu", "--out", str(out)])
    assert result.exit_code != 0 and "other settings" in result.output


def test_a_folder_made_before_a_setting_existed_is_judged_by_its_old_value(tiny_experiment):
    """experiment.json without model.init (added later): it was trained Glorot-uniform, today's plan is normal."""
    out = tiny_experiment[0]
    plan_file = out / "experiment.json"
    original = plan_file.read_text()
    saved = json.loads(original)
    assert saved["config"]["model"]["init"] == "normal"
    del saved["config"]["model"]["init"]
    plan_file.write_text(json.dumps(saved))
    with pytest.raises(Mr2ctError, match="other settings"):
        run_experiment(out, preset="tiny", echo=lambda line: None)
    saved["config"]["model"]["init"] = "bogus"
    plan_file.write_text(json.dumps(saved))
    with pytest.raises(Mr2ctError, match="experiment.json: holds a config that is not valid today"):
        run_experiment(out, preset="tiny", echo=lambda line: None)
    plan_file.write_text(original)
    lines = []
    run_experiment(out, preset="tiny", echo=lines.append, progress=False)
    # five CycleGANs, five U-Nets and the MR-supervised U-Net
    assert sum("already trained" in line for line in lines) == 11
