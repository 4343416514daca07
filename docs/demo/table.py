"""Print the README's demo results tables from docs/demo/ (the files `mr2ct demo` writes into demo/evaluation/).

    python docs/demo/table.py [docs/demo]

The first table is the synthesis (metrics.csv), the second the segmentation
through synthesis (segmentation_metrics.csv). Paste the output under "What
the demo gives" in README.md; tests/test_docs.py checks that they agree.
"""

import csv
import math
import os
import statistics
import sys

# (metrics.csv column, README header, decimals)
COLUMNS = (
    ("mae_hu", "MAE [HU]", 1),
    ("ssim", "SSIM", 3),
    ("bone_dice", "bone Dice", 3),
    ("mae_bone_band_hu", "MAE near bone edges [HU]", 0),
    ("body_dice", "body outline Dice", 3),
    ("extent_ratio_lr", "width ratio (left-right)", 3),
)
# (segmentation_metrics.csv column, README header, decimals): the paper's four structures and the mean of all 22
SEGMENTATION_COLUMNS = (
    ("dice_pelvis", "pelvis", 2),
    ("dice_femur", "femur", 2),
    ("dice_gluteus_medius", "gluteus medius", 2),
    ("dice_gluteus_minimus", "gluteus minimus", 2),
    ("dice_mean", "mean of 22 structures", 2),
)

HERE = os.path.dirname(os.path.abspath(__file__))


def _rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _table(rows, columns, first_header):
    values = {c: [float(row[c]) for row in rows if not math.isnan(float(row[c]))] for c, _, _ in columns}
    mean = [f"{statistics.mean(values[c]):.{d}f}" for c, _, d in columns]
    span = [f"{min(values[c]):.{d}f} to {max(values[c]):.{d}f}" for c, _, d in columns]
    return [
        f"| {first_header} | " + " | ".join(header for _, header, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        f"| mean of {len(rows)} | " + " | ".join(mean) + " |",
        "| range | " + " | ".join(span) + " |",
    ]


def table(folder=HERE) -> list[str]:
    """The synthesis table's lines: header, rule, the mean and the range over the held-out subjects."""
    return _table(_rows(os.path.join(folder, "metrics.csv")), COLUMNS, "held-out subjects")


def segmentation_table(folder=HERE) -> list[str]:
    """The segmentation table's lines (Dice), as :func:`table`."""
    return _table(_rows(os.path.join(folder, "segmentation_metrics.csv")), SEGMENTATION_COLUMNS, "Dice")


if __name__ == "__main__":
    print("\n".join(table(*sys.argv[1:])))
    print()
    print("\n".join(segmentation_table(*sys.argv[1:])))
