"""How good can a synthesized CT be at a given slice size? And are MR and CT slices framed alike?

For held-out paper-size phantom subjects, two CTs are sent through exactly
the path a synthesized CT takes (the MR's framing crop, resampling to S x S
slices, the HU window, and back onto the MR grid by world coordinates) and
scored against the true CT:

* ``true CT``: the registered CT itself. Its scores are the best any
  generator working on S x S slices can reach (a perfect translation still
  loses the detail the S x S grid cannot hold): the *ceiling*.
* ``anatomy-only CT``: the CT the subject's anatomy gives with every
  tissue at the population's median HU and without texture or noise
  (:func:`mr2ct.data.phantom.expected_ct`). The phantom draws each
  subject's tissue HU (cortical bone 1250-1750, cancellous bone 180-380,
  ...), its bone texture and its CT noise independently of its MR, so no
  MR-based synthesis can know them: even a perfect reading of the anatomy
  scores about this. A good synthesis can approach this row, not the first.

Also prints the mean body centroid of prepared MR and CT slices (framing:
they should agree).

    python benchmarks/synthesis_ceiling.py --sizes 96 128 160 192 256 --subjects 4

prints a table; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _paired import true_ct_slices


def body_centroid(slices: np.ndarray, threshold: float = -0.9) -> np.ndarray:
    """Mean (row, column) of the body (pixels above ``threshold`` in [-1, 1]) over slices."""
    centroids = []
    for image in slices:
        rows, cols = np.nonzero(image > threshold)
        if rows.size:
            centroids.append((rows.mean(), cols.mean()))
    return np.mean(centroids, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 192, 256])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--first", type=int, default=20, help="index of the first subject (the demo tests 20-23)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from mr2ct.data.intensity import CTIntensity
    from mr2ct.data.phantom import expected_ct, generate_subject, sample_parameters, subject_tissue_on_mr_grid
    from mr2ct.data.preprocess import (
        PreprocessConfig,
        preprocess_ct,
        preprocess_mr,
        resample_to_reference,
        volume_from_geometry,
    )
    from mr2ct.evaluation.evaluate import evaluate_volume

    t0 = time.perf_counter()
    subjects = [generate_subject(args.first + i, "paper", seed=args.seed) for i in range(args.subjects)]
    hu_median = population_median_hu(sample_parameters)
    anatomy_only = [
        s.mr.with_array(expected_ct(subject_tissue_on_mr_grid(args.first + i, "paper", args.seed)[1], hu_median))
        for i, s in enumerate(subjects)
    ]
    print(f"{len(subjects)} paper-size subjects in {time.perf_counter() - t0:.0f} s; population median HU: "
          + ", ".join(f"{k} {v:.0f}" for k, v in hu_median.items()))

    rows = []
    keys = ("mae_hu", "ssim", "bone_dice", "mae_bone_band_hu")
    for size in args.sizes:
        config = PreprocessConfig(image_size=size, n4=False)
        window = CTIntensity(config.ct_hu_min, config.ct_hu_max)
        scores = {"true CT": [], "anatomy-only CT": []}
        mr_c, ct_c = [], []
        for s, guess in zip(subjects, anatomy_only):
            mr_slices, mr_record = preprocess_mr(s.mr, config)
            ct_slices, _ = preprocess_ct(s.ct, config)
            mr_c.append(body_centroid(mr_slices) / size)
            ct_c.append(body_centroid(ct_slices) / size)
            for name, sent in (("true CT", s.ct_on_mr_grid), ("anatomy-only CT", guess)):
                # through the synthesized CT's path, scored against the truth
                hu = window.inverse(true_ct_slices(sent, mr_record, config))
                back = resample_to_reference(volume_from_geometry(hu, mr_record["output_geometry"]), s.mr,
                                             order=1, default_value=-1000.0)
                scores[name].append(evaluate_volume(s.mr.array, back.array, s.ct_on_mr_grid.array))
        shift = (np.mean(mr_c, axis=0) - np.mean(ct_c, axis=0)) * size
        for name, per_subject in scores.items():
            rows.append((size, name, {k: float(np.nanmean([r[k] for r in per_subject])) for k in keys}, shift))
    print()
    print("| slices | pixel [mm] | sent | MAE [HU] | SSIM | bone Dice | bone-edge MAE [HU] "
          "| MR - CT body centroid (rows, cols) [px] |")
    print("|---|---|---|---|---|---|---|---|")
    for size, name, m, shift in rows:
        print(f"| {size}x{size} | {320.0 / size:.2f} | {name} | {m['mae_hu']:.1f} | {m['ssim']:.3f} | "
              f"{m['bone_dice']:.3f} | {m['mae_bone_band_hu']:.0f} | {shift[0]:+.2f}, {shift[1]:+.2f} |")


def population_median_hu(sample_parameters, draws: int = 2001) -> dict:
    """Tissue -> median HU over ``draws`` subjects' parameters (the L1-best guess of an unseen subject's)."""
    drawn = [sample_parameters(np.random.default_rng([7, i])).ct_hu for i in range(draws)]
    return {tissue: float(np.median([d[tissue] for d in drawn])) for tissue in drawn[0]}


if __name__ == "__main__":
    main()
