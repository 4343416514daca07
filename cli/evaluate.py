"""``mr2ct evaluate``: metrics, tables and figures for synthesized CT (and MR, and segmentation)."""

from __future__ import annotations

import math
import os

import click

from .main import friendly_errors


@click.command()
@click.option("--mr", "mr_dir", required=True, type=click.Path(file_okay=False), help="Folder of real MR volumes.")
@click.option("--model", "model_path", type=click.Path(file_okay=False), default=None,
              help="An export to synthesize CT with first (into OUT/sct); also the CT-to-MR generator for --ct.")
@click.option("--sct", "sct_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of synthesized CT volumes (instead of --model).")
@click.option("--ct-on-mr-grid", "ct_dir", type=click.Path(file_okay=False), default=None,
              help="Ground-truth CT on each MR's grid (e.g. the phantom's ct_on_mr_grid/).")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Ground-truth labels on each MR's grid (e.g. the phantom's labels_mr/); needs --seg-model.")
@click.option("--seg-model", "seg_run", type=click.Path(file_okay=False), default=None,
              help="A segmentation run (mr2ct train-seg) or an export with segmentation: segments each MR "
                   "through synthesis for Dice.")
@click.option("--ct", "real_ct_dir", type=click.Path(file_okay=False), default=None,
              help="Real CT volumes (any subjects): MI between each CT and its synthesized MR, on the CT's "
                   "prepared grid; G_MR from --model, else from --seg-model.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@friendly_errors
def evaluate(mr_dir, model_path, sct_dir, ct_dir, labels_dir, seg_run, real_ct_dir, out_dir):
    """Score synthesized CT: MI with the MR; MAE, PSNR, SSIM in HU against a ground truth; Dice of segmentation."""
    from mr2ct.errors import Mr2ctError
    from mr2ct.evaluation.evaluate import evaluate_folders, read_table

    if (model_path is None) == (sct_dir is None):
        raise Mr2ctError("give exactly one of --model and --sct")
    if (labels_dir is None) != (seg_run is None):
        raise Mr2ctError("Dice needs both --labels and --seg-model")
    if real_ct_dir is not None and model_path is None and seg_run is None:
        raise Mr2ctError("--ct needs a CT-to-MR generator: give --model (an export) or --seg-model")
    if model_path is not None:
        from mr2ct.serving.predict import Synthesizer, predict_paths

        sct_dir = os.path.join(out_dir, "sct")
        predict_paths(Synthesizer.local(model_path), mr_dir, sct_dir)
    mr_synthesizer = None
    if real_ct_dir is not None and model_path is not None:
        from mr2ct.serving.mr_synthesizer import MRSynthesizer

        mr_synthesizer = MRSynthesizer.local(model_path)
    rows = evaluate_folders(mr_dir, sct_dir, out_dir, ct_on_mr_grid_dir=ct_dir, labels_dir=labels_dir,
                            segmenter=seg_run, ct_dir=real_ct_dir, mr_synthesizer=mr_synthesizer)
    keys = [k for k in rows[0] if k != "subject" and (k == "dice_mean" or not k.startswith("dice_"))]
    click.echo("subject      " + " ".join(f"{k:>16}" for k in keys))
    for row in rows:
        click.echo(f"{row['subject']:<12} " + " ".join(f"{row[k]:>16.4g}" for k in keys))
    structures = [k for k in rows[0] if k.startswith("dice_") and k != "dice_mean"]
    if structures:
        click.echo("Dice per structure (mean over subjects):")
        for key in structures:
            values = [r[key] for r in rows if math.isfinite(r[key])]
            mean = sum(values) / len(values) if values else float("nan")
            click.echo(f"  {key.removeprefix('dice_'):<28} {mean:.3f}  (n={len(values)})")
    written = ["metrics.csv", "metrics.json", "boxplots.png", "montage.png"]
    if labels_dir is not None:
        written += ["dice_boxplots.png", "labels/"]
    if real_ct_dir is not None:
        ct_rows = read_table(os.path.join(out_dir, "metrics_ct.csv"))
        click.echo("MI(real CT, synthesized MR) on the CT's prepared grid:")
        for row in ct_rows:
            click.echo(f"  {row['subject']:<12} {row['mi_ct_smr']:.4g}")
        written += ["metrics_ct.csv", "metrics_ct.json"]
    click.echo(f"wrote {os.path.join(out_dir, written[0])}, " + ", ".join(written[1:]))
