"""``mr2ct export``: a trained run as a TF Serving SavedModel and .keras files."""

from __future__ import annotations

import click

from .main import friendly_errors


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Training run folder (its latest checkpoint is exported).")
@click.option("--name", default="mr2ct", show_default=True, help="Model name (TF Serving's).")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="Version number (default: one above the highest existing).")
@click.option("--out", "out_dir", default="saved_models", show_default=True,
              type=click.Path(file_okay=False), help="Folder TF Serving serves.")
@friendly_errors
def export(run_dir, name, version, out_dir):
    """Export the generators of a run as saved_models/<name>/<version>/.

    The folder holds a SavedModel (signature serving_default: MR slices in,
    synthesized CT in HU out; and ct_to_mr), mr_to_ct.keras / ct_to_mr.keras
    for keras.models.load_model, and mr2ct_export.json with the preprocessing.
    """
    from mr2ct.export import export_run

    result = export_run(run_dir, out_dir, name=name, version=version)
    click.echo(f"exported step {result.step} of {run_dir} to {result.path}")
