"""Print the README's demo results table from docs/demo/metrics.csv (the output of `mr2ct evaluate`).

    python docs/demo/table.py [docs/demo/metrics.csv]

Paste the output under "What the demo gives" in README.md; tests/test_docs.py checks the two agree.
"""

import csv
import os
import statistics
import sys

# (metrics.csv column, README header, decimals)
COLUMNS = (
    ("mae_hu", "MAE [HU]", 1),
    ("psnr_db", "PSNR [dB]", 1),
    ("ssim", "SSIM", 3),
    ("bone_dice", "bone Dice", 3),
    ("mae_bone_band_hu", "MAE near bone edges [HU]", 0),
)

DEFAULT_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics.csv")


def table(path=DEFAULT_CSV) -> list[str]:
    """The table's lines: header, rule, the mean and the range over the subjects of ``path``."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    values = {column: [float(row[column]) for row in rows] for column, _, _ in COLUMNS}
    mean = [f"{statistics.mean(values[c]):.{d}f}" for c, _, d in COLUMNS]
    span = [f"{min(values[c]):.{d}f} to {max(values[c]):.{d}f}" for c, _, d in COLUMNS]
    return [
        "| held-out subjects | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
        f"| mean of {len(rows)} | " + " | ".join(mean) + " |",
        "| range | " + " | ".join(span) + " |",
    ]


if __name__ == "__main__":
    print("\n".join(table(*sys.argv[1:])))
