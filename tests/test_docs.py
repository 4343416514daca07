"""The results shipped in docs/ and the numbers quoted in the README and the docs agree with each other."""

import importlib.util
import json
import os
import re

import pytest

from mr2ct.evaluation.experiment import COMPARISONS, CONDITIONS, TESTED_METRICS, plan, render_report
from mr2ct.evaluation.experiment.report import METRIC_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "experiment_cpu")
CPU_STUDY_PAGE = os.path.join(ROOT, "docs", "results", "cpu_study.md")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _linked_images(path):
    """The files a markdown page shows with ``![...](...)``, as paths from the repository root."""
    folder = os.path.dirname(path)
    return [os.path.normpath(os.path.join(folder, image))
            for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", _read(path))]


@pytest.fixture(scope="module")
def results():
    with open(os.path.join(DOCS, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def test_shipped_report_is_rendered_from_shipped_results(results):
    with open(os.path.join(DOCS, "REPORT.md"), encoding="utf-8") as f:
        assert render_report(results) == f.read()
    for name in ("fig3", "fig4", "fig5"):
        assert os.path.getsize(os.path.join(DOCS, results["files"][name])) > 10_000


def test_shipped_study_runs_the_presets_that_ship(results):
    """docs/experiment_cpu/ is what `mr2ct experiment --preset cpu` does today: the same plan and config.

    A change to the `cpu` preset (or the experiment's sizes) fails here until the study is rerun."""
    described = plan("cpu", seed=results["seed"]).to_dict()
    assert results["preset"] == "cpu"
    assert results["plan"] == {k: v for k, v in described.items() if k != "config"}
    assert results["config"] == described["config"]
    assert results["source"]["commit"] and results["source"]["modified"] is False


def _pages():
    pages = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CHANGELOG.md")]
    for folder, _, files in os.walk(os.path.join(ROOT, "docs")):
        pages += [os.path.join(folder, name) for name in files if name.endswith(".md")]
    return pages


def test_readme_shows_the_demo_montage():
    assert os.path.join(ROOT, "docs", "demo", "montage.png") in _linked_images(os.path.join(ROOT, "README.md"))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_linked_images_and_files_exist(page):
    for image in _linked_images(page):
        assert os.path.isfile(image), image
    folder = os.path.dirname(page)
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", _read(page)):
        assert os.path.exists(os.path.normpath(os.path.join(folder, target))), target


def _demo_table_script():
    spec = importlib.util.spec_from_file_location("demo_table", os.path.join(ROOT, "docs", "demo", "table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["table", "segmentation_table"])
def test_readme_demo_tables_quote_the_shipped_metrics(name):
    """The README's demo tables are what docs/demo/table.py prints from docs/demo/*.csv."""
    expected = getattr(_demo_table_script(), name)()
    lines = _read(os.path.join(ROOT, "README.md")).splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected


@pytest.mark.parametrize("name, csv_name, columns", [
    ("table", "metrics.csv", "COLUMNS"),
    ("segmentation_table", "segmentation_metrics.csv", "SEGMENTATION_COLUMNS"),
])
def test_demo_table_means_are_the_metrics_means(name, csv_name, columns):
    import csv
    import statistics

    with open(os.path.join(ROOT, "docs", "demo", csv_name), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    script = _demo_table_script()
    table = getattr(script, name)()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    means = [c.strip() for c in table[2].strip("|").split("|")]
    assert means[0] == f"mean of {len(rows)}"
    for column, label, digits in getattr(script, columns):
        cell = means[header.index(label)]
        assert cell == f"{statistics.mean(float(row[column]) for row in rows):.{digits}f}", column


def test_readme_shows_the_segmentation_montage():
    readme = os.path.join(ROOT, "README.md")
    assert os.path.join(ROOT, "docs", "demo", "segmentation_montage.png") in _linked_images(readme)


def test_no_history_in_the_docs():
    for page in _pages():
        if page.endswith("CHANGELOG.md"):
            continue
        text = _read(page).lower()
        for phrase in ("not adopted", "taken out again", "earlier machine"):
            assert phrase not in text, (page, phrase)


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
def test_cpu_study_results_table_matches_results(results, metric, label, digits):
    with open(CPU_STUDY_PAGE, encoding="utf-8") as f:
        row = next(line for line in f if line.startswith(f"| {label} |"))
    cells = [c.strip() for c in row.strip().strip("|").split("|")[1:]]
    expected = []
    for condition in CONDITIONS:
        summary = results["conditions"][condition.name]["summary"][metric]
        expected.append(f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}")
    assert cells == expected


# The cpu study page's t-test table: a column per comparison of COMPARISONS, in order.
README_COMPARISONS = ("large vs small, GC", "large vs small, no GC", "GC vs no GC, small", "GC vs no GC, large",
                      "absolute vs signed GC, large")


def _p(value):
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def test_cpu_study_t_tests_match_results(results):
    assert len(README_COMPARISONS) == len(COMPARISONS)
    lines = _read(CPU_STUDY_PAGE).splitlines()
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


def test_readme_compares_the_shipped_study_with_the_paper(results):
    """The README's paper-against-ours tables are what the report renders from results.json."""
    from mr2ct.evaluation.experiment.paper import CLAIMS, paper_tables

    expected = paper_tables(results)
    lines = _read(os.path.join(ROOT, "README.md")).splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
    assert sum(line.startswith("| more training data raises") or line.startswith("| the GC loss raises")
               for line in expected) == 2 * len(CLAIMS)  # every claim at both levels of the other factor
    assert "\n".join(expected) in _read(os.path.join(DOCS, "REPORT.md"))


def _cpu_study_tables_script():
    spec = importlib.util.spec_from_file_location(
        "cpu_study_tables", os.path.join(ROOT, "docs", "results", "cpu_study_tables.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["results_table", "t_test_table"])
def test_cpu_study_page_holds_the_tables_its_script_prints(results, name):
    expected = getattr(_cpu_study_tables_script(), name)(results)
    lines = _read(CPU_STUDY_PAGE).splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
