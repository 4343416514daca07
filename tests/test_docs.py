"""The experiment results shipped in docs/ and shown in the README agree with each other."""

import json
import os
import re

import pytest

from mr2ct.evaluation.experiment import COMPARISONS, CONDITIONS, TESTED_METRICS, render_report
from mr2ct.evaluation.experiment.report import METRIC_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "experiment_cpu")


@pytest.fixture(scope="module")
def results():
    with open(os.path.join(DOCS, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def test_shipped_report_is_rendered_from_shipped_results(results):
    with open(os.path.join(DOCS, "REPORT.md"), encoding="utf-8") as f:
        assert render_report(results) == f.read()
    for name in ("fig3", "fig4", "fig5"):
        assert os.path.getsize(os.path.join(DOCS, results["files"][name])) > 10_000


def test_readme_images_exist():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", f.read())
    assert images, "the README shows the experiment's figures"
    for image in images:
        assert os.path.isfile(os.path.join(ROOT, image)), image


@pytest.mark.parametrize("metric, label, digits", [
    ("mi_mr_sct", "MI(MR, sCT) [nats]", 3),
    ("mi_ct_smr", "MI(CT, sMR) [nats]", 3),
    ("mae_hu", "MAE [HU] (against the true CT)", 1),
    ("ssim", "SSIM", 3),
    ("bone_dice", "bone Dice (> 250 HU)", 3),
    ("gc_abs_mr_sct", "GC(MR, sCT), absolute gradients", 3),
    ("gc_mr_sct", "GC(MR, sCT), signed (Eq. 4, Sobel)", 3),
    ("dice_pelvis", "Dice pelvis", 3),
    ("dice_femur", "Dice femur", 3),
    ("dice_gluteus_minimus", "Dice gluteus minimus", 3),
])
def test_readme_results_table_matches_results(results, metric, label, digits):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        row = next(line for line in f if line.startswith(f"| {label} |"))
    cells = [c.strip() for c in row.strip().strip("|").split("|")[1:]]
    expected = []
    for condition in CONDITIONS:
        summary = results["conditions"][condition.name]["summary"][metric]
        expected.append(f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}")
    assert cells == expected


# The README's t-test table: a column per comparison of COMPARISONS, in order.
README_COMPARISONS = ("large vs small, GC", "large vs small, no GC", "GC vs no GC, small", "GC vs no GC, large",
                      "absolute vs signed GC, large")


def _p(value):
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def test_readme_t_tests_match_results(results):
    assert len(README_COMPARISONS) == len(COMPARISONS)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = "| metric | " + " | ".join(README_COMPARISONS) + " |"
    start = lines.index(header)
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert list(rows) == [METRIC_NAMES[m] for m in TESTED_METRICS]
    for metric in TESTED_METRICS:
        expected = []
        for factor, at, a, b in COMPARISONS:
            (test,) = [t for t in results["tests"]
                       if (t["factor"], t["at"], t["a"], t["b"], t["metric"]) == (factor, at, a, b, metric)]
            # t and p are undefined (null) when every difference is zero, e.g. a Dice of 0 in both conditions
            expected.append("n/a" if test["t"] is None else f"t {test['t']:.2f}, p {_p(test['p'])}")
        assert rows[METRIC_NAMES[metric]] == expected, metric
