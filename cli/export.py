"""``mr2ct export``: a trained run as a TF Serving SavedModel and .keras files."""

from __future__ import annotations

import click

from .main import friendly_errors


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Training run folder (its latest checkpoint, unless --step or --best): a CycleGAN run, or a "
                   "segmentation run (its stored generators, plus the segment signature).")
@click.option("--step", type=click.IntRange(min=1), default=None,
              help="Export the CycleGAN run's checkpoint at this step instead of the latest.")
@click.option("--best", is_flag=True,
              help="Export the CycleGAN run's best checkpoint by its validation signal (trained with --val-mr).")
@click.option("--segmentation", "segmentation_dir", default=None, type=click.Path(file_okay=False),
              help="Segmentation run folder (`mr2ct train-seg`) to add as the segment signature "
                   "and segmenter.keras; --run is then the CycleGAN run.")
@click.option("--name", default="mr2ct", show_default=True, help="Model name (TF Serving's).")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="Version number (default: one above the highest existing).")
@click.option("--out", "out_dir", default="saved_models", show_default=True,
              type=click.Path(file_okay=False), help="Folder TF Serving serves.")
@friendly_errors
def export(run_dir, step, best, segmentation_dir, name, version, out_dir):
    """Export the generators of a run as saved_models/<name>/<version>/.

    The folder holds a SavedModel (signature serving_default: MR slices in,
    synthesized CT in HU out; and ct_to_mr), mr_to_ct.keras / ct_to_mr.keras
    for keras.models.load_model, and mr2ct_export.json with the preprocessing.

    With a segmentation run (--segmentation, or as --run) the SavedModel also
    has the signatures segment (MR slices in, int32 labels out) and
    segment_probabilities (labels and softmax probabilities), and the folder
    segmenter.keras and the label table in mr2ct_export.json.
    """
    from mr2ct.export import export_run

    if step is not None and best:
        raise click.UsageError("give --step or --best, not both")
    result = export_run(run_dir, out_dir, name=name, version=version, segmentation=segmentation_dir, step=step,
                        best=best)
    click.echo(f"exported step {result.step} of {run_dir} to {result.path}")
    if result.segmentation_step is not None:
        source = segmentation_dir or run_dir
        click.echo(f"with segmentation: step {result.segmentation_step} of {source} (signature 'segment')")
        if not result.shares_generator:
            click.echo("note: 'segment' synthesizes CT with the segmentation run's own generator, which "
                       "differs from serving_default's (see mr2ct_export.json)")
