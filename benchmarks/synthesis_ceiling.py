"""How good can a synthesized CT be at a given slice size? And are MR and CT slices framed alike?

For held-out paper-size phantom subjects, the *true* CT (registered to the
MR) is sent through exactly the path a synthesized CT takes: the MR's
framing crop, resampling to S x S slices, the HU window, and back onto the
MR grid by world coordinates. Its scores against the truth are the best any
generator working on S x S slices can reach (a perfect translation still
loses the detail the S x S grid cannot hold). Also prints the mean body
centroid of prepared MR and CT slices (framing: they should agree).

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
    from mr2ct.data.phantom import generate_subject
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
    print(f"{len(subjects)} paper-size subjects in {time.perf_counter() - t0:.0f} s")

    rows = []
    for size in args.sizes:
        config = PreprocessConfig(image_size=size, n4=False)
        scores, mr_c, ct_c = [], [], []
        for s in subjects:
            mr_slices, mr_record = preprocess_mr(s.mr, config)
            ct_slices, _ = preprocess_ct(s.ct, config)
            mr_c.append(body_centroid(mr_slices) / size)
            ct_c.append(body_centroid(ct_slices) / size)
            # the true CT through the synthesized CT's path
            truth = s.ct_on_mr_grid
            window = CTIntensity(config.ct_hu_min, config.ct_hu_max)
            hu = window.inverse(true_ct_slices(truth, mr_record, config))
            back = resample_to_reference(volume_from_geometry(hu, mr_record["output_geometry"]), s.mr,
                                         order=1, default_value=-1000.0)
            scores.append(evaluate_volume(s.mr.array, back.array, truth.array))
        mean = {k: float(np.nanmean([r[k] for r in scores])) for k in ("mae_hu", "ssim", "bone_dice", "mae_bone_band_hu")}
        shift = np.mean(mr_c, axis=0) - np.mean(ct_c, axis=0)
        rows.append((size, 320.0 / size, mean, shift * size))
    print()
    print("| slices | pixel [mm] | MAE [HU] | SSIM | bone Dice | bone-edge MAE [HU] | MR - CT body centroid (rows, cols) [px] |")
    print("|---|---|---|---|---|---|---|")
    for size, pixel, m, shift in rows:
        print(f"| {size}x{size} | {pixel:.2f} | {m['mae_hu']:.1f} | {m['ssim']:.3f} | {m['bone_dice']:.3f} | "
              f"{m['mae_bone_band_hu']:.0f} | {shift[0]:+.2f}, {shift[1]:+.2f} |")


if __name__ == "__main__":
    main()
