"""Does the validation signal of `mr2ct train --val-mr` rank checkpoints as the error against the true CT does?

For every checkpoint of the given CycleGAN runs (the latest ones and a kept
best one), on a finished demo's held-out subjects:

* the three signals `mr2ct train --val-mr <demo>/split/test_mr` computes,
  from the MR alone (:mod:`mr2ct.training.validation`);
* the MAE in HU against the true CT on each MR's grid, inside the body (as
  ``mr2ct evaluate``), which a user without paired data cannot compute.

Prints one row per checkpoint, then for each signal the Spearman rank
correlation with the MAE (signed so that +1 means "ranks checkpoints exactly
as the MAE does") and the MAE of the checkpoint the signal would keep,
against the best MAE among them. Runs must share the demo's preprocessing.

    python benchmarks/validation_signal.py --demo demo --runs demo/runs/gc_cyclegan runs/other
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", help="a finished `mr2ct demo` folder (held-out subjects)")
    parser.add_argument("--runs", nargs="+", required=True, help="CycleGAN run folders")
    parser.add_argument("--slices", type=int, default=None,
                        help="validation slices (default: the first run's train.validation_slices)")
    args = parser.parse_args()

    from mr2ct.data.io import list_volumes, read_volume, subject_id
    from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr
    from mr2ct.evaluation.evaluate import BODY_HU, body_mask_from_mr
    from mr2ct.export.exporter import load_run_generators
    from mr2ct.metrics import mean_absolute_error
    from mr2ct.serving.predict import Synthesizer
    from mr2ct.training.best_checkpoint import available_steps
    from mr2ct.training.trainer import resolve_run_config
    from mr2ct.training.validation import SIGNALS, load_validation_slices, validation_signal
    from mr2ct._atomic import read_json

    split = os.path.join(args.demo, "split")
    preprocessing = read_json(os.path.join(args.runs[0], "preprocessing.json"), "missing preprocessing record")
    config = PreprocessConfig.from_dict(preprocessing["config"])
    count = args.slices or resolve_run_config(args.runs[0], None).train.validation_slices
    data = load_validation_slices(os.path.join(split, "test_mr"), config, count)
    subjects = []
    for path in list_volumes(os.path.join(split, "test_mr")):
        mr = read_volume(path)
        ct = read_volume(os.path.join(split, "test_ct_on_mr_grid", f"{subject_id(path)}.nii.gz"))
        body = body_mask_from_mr(mr.array.astype(np.float64)) | (ct.array > BODY_HU)
        subjects.append((mr, ct.array.astype(np.float64), body, preprocess_mr(mr, config)))
    print(f"{len(data.slices)} validation slices of {len(subjects)} held-out subjects in {split}")

    rows = []
    header = f"{'run':<40}{'step':>6}{'MAE [HU]':>10}" + "".join(f"{k:>15}" for k in SIGNALS)
    print(header)
    for run in args.runs:
        for step in available_steps(run):
            g_ct, g_mr, _, _ = load_run_generators(run, step=step)
            values = validation_signal(g_ct, g_mr, data)
            synthesizer = Synthesizer.from_generator(g_ct, preprocessing)
            mae = np.mean([mean_absolute_error(synthesizer.volume(mr, prepared=prepared).array, ct, body)
                           for mr, ct, body, prepared in subjects])
            rows.append({"run": run, "step": step, "mae": float(mae), **values})
            print(f"{run[-40:]:<40}{step:>6}{mae:>10.1f}" + "".join(f"{values[k]:>15.4f}" for k in SIGNALS),
                  flush=True)

    mae = np.array([r["mae"] for r in rows])
    runs = [run for run in args.runs if sum(r["run"] == run for r in rows) >= 3]
    print(f"\n{len(rows)} checkpoints; lowest MAE {mae.min():.1f} HU. Rank correlation with -MAE over all "
          f"checkpoints, and within each run of 3 or more ({len(runs)}: mean and each); MAE of the checkpoint "
          "the signal keeps, over all and within each run (the best MAE of the run in brackets)")
    for key, higher_is_better in SIGNALS.items():
        oriented = np.array([r[key] if higher_is_better else -r[key] for r in rows])
        within, kept = [], []
        for run in runs:
            mine = [i for i, r in enumerate(rows) if r["run"] == run]
            within.append(spearman(oriented[mine], -mae[mine]))
            kept.append(f"{mae[mine][int(np.argmax(oriented[mine]))]:.1f} ({mae[mine].min():.1f})")
        print(f"{key:<16} all {spearman(oriented, -mae):+.2f}, within runs {np.mean(within):+.2f} "
              f"({', '.join(f'{w:+.2f}' for w in within)}); keeps {mae[int(np.argmax(oriented))]:.1f} HU over all, "
              f"within runs {', '.join(kept)} HU")


if __name__ == "__main__":
    main()
