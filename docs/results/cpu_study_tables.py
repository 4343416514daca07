"""Print the tables of docs/results/cpu_study.md and the README's "Against the paper" from a study's results.json.

    python docs/results/cpu_study_tables.py [docs/experiment_cpu/results.json]

Paste the output into docs/results/cpu_study.md (the results and t-test
tables) and README.md (the paper tables); tests/test_docs.py checks that
they agree with docs/experiment_cpu/results.json.
"""

import json
import os
import sys

from mr2ct.evaluation.experiment import COMPARISONS, CONDITIONS, TESTED_METRICS
from mr2ct.evaluation.experiment.paper import paper_tables
from mr2ct.evaluation.experiment.report import METRIC_NAMES

# (metric, row label, decimals): the rows of the results table, in order
RESULT_ROWS = (
    ("mi_mr_sct", "MI(MR, sCT) [nats]", 3),
    ("mi_ct_smr", "MI(CT, sMR) [nats]", 3),
    ("gc_abs_mr_sct", "GC(MR, sCT), absolute gradients", 3),
    ("gc_mr_sct", "GC(MR, sCT), signed (Eq. 4, Sobel)", 3),
    ("mae_hu", "MAE [HU] (against the true CT)", 1),
    ("ssim", "SSIM", 3),
    ("bone_dice", "bone Dice (> 250 HU)", 3),
    ("mae_bone_band_hu", "MAE within 2 voxels of bone edges [HU]", 1),
    ("dice_pelvis", "Dice pelvis", 3),
    ("dice_femur", "Dice femur", 3),
    ("dice_gluteus_medius", "Dice gluteus medius", 3),
    ("dice_gluteus_minimus", "Dice gluteus minimus", 3),
)
# The t-test table's columns, one per comparison of COMPARISONS, in order.
COMPARISON_LABELS = ("large vs small, GC", "large vs small, no GC", "GC vs no GC, small", "GC vs no GC, large",
                     "absolute vs signed GC, large")


def _p(value):
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def results_table(results) -> list[str]:
    lines = ["| metric | " + " | ".join(c.label for c in CONDITIONS) + " |", "|---|" + "---|" * len(CONDITIONS)]
    for metric, label, digits in RESULT_ROWS:
        cells = []
        for condition in CONDITIONS:
            summary = results["conditions"][condition.name]["summary"][metric]
            cells.append(f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def t_test_table(results) -> list[str]:
    lines = ["| metric | " + " | ".join(COMPARISON_LABELS) + " |", "|---|" + "---|" * len(COMPARISON_LABELS)]
    for metric in TESTED_METRICS:
        cells = []
        for factor, at, a, b in COMPARISONS:
            (test,) = [t for t in results["tests"]
                       if (t["factor"], t["at"], t["a"], t["b"], t["metric"]) == (factor, at, a, b, metric)]
            cells.append("n/a" if test["t"] is None else f"t {test['t']:.2f}, p {_p(test['p'])}")
        lines.append(f"| {METRIC_NAMES[metric]} | " + " | ".join(cells) + " |")
    return lines


def main(path):
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    for lines in (results_table(results), t_test_table(results), paper_tables(results)):
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiment_cpu", "results.json"))
