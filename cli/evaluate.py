"""``mr2ct evaluate``: metrics, tables and figures for synthesized CT."""

from __future__ import annotations

import os

import click

from .main import friendly_errors


@click.command()
@click.option("--mr", "mr_dir", required=True, type=click.Path(file_okay=False), help="Folder of real MR volumes.")
@click.option("--model", "model_path", type=click.Path(file_okay=False), default=None,
              help="An export to synthesize CT with first (into OUT/sct).")
@click.option("--sct", "sct_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of synthesized CT volumes (instead of --model).")
@click.option("--ct-on-mr-grid", "ct_dir", type=click.Path(file_okay=False), default=None,
              help="Ground-truth CT on each MR's grid (e.g. the phantom's ct_on_mr_grid/).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@friendly_errors
def evaluate(mr_dir, model_path, sct_dir, ct_dir, out_dir):
    """Score synthesized CT: MI with the MR; MAE, PSNR, SSIM in HU against a ground truth."""
    from mr2ct.errors import Mr2ctError
    from mr2ct.evaluation.evaluate import evaluate_folders

    if (model_path is None) == (sct_dir is None):
        raise Mr2ctError("give exactly one of --model and --sct")
    if model_path is not None:
        from mr2ct.serving.predict import Synthesizer, predict_paths

        sct_dir = os.path.join(out_dir, "sct")
        predict_paths(Synthesizer.local(model_path), mr_dir, sct_dir)
    rows = evaluate_folders(mr_dir, sct_dir, out_dir, ct_on_mr_grid_dir=ct_dir)
    keys = [k for k in rows[0] if k != "subject"]
    click.echo("subject      " + " ".join(f"{k:>16}" for k in keys))
    for row in rows:
        click.echo(f"{row['subject']:<12} " + " ".join(f"{row[k]:>16.4g}" for k in keys))
    click.echo(f"wrote {os.path.join(out_dir, 'metrics.csv')}, metrics.json, boxplots.png, montage.png")
