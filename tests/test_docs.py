"""The experiment results shipped in docs/ and shown in the README agree with each other."""

import json
import os
import re

import pytest

from mr2ct.evaluation.experiment import CONDITIONS, render_report

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
