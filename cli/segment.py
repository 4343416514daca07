"""``mr2ct segment``: label volumes for MR volumes, through synthesized CT."""

from __future__ import annotations

import click

from .common import volume_progress
from .main import friendly_errors


@click.command()
@click.option("--model", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Segmentation run folder written by `mr2ct train-seg`, or an export with segmentation "
                   "(saved_models/<name>[/<version>], `mr2ct export --segmentation`).")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="An MR volume (NIfTI, NRRD, MHA, DICOM series folder) or a folder of volumes.")
@click.option("--output", "output_path", required=True, type=click.Path(),
              help="Output label file (.nii.gz, .nrrd, .mha), or a folder when --input is a folder.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--server", default=None,
              help="TF Serving REST address (e.g. http://localhost:8501) serving the export given as --model; "
                   "its segment signature does the network part.")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="Export version (default: the latest); only with an export.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def segment(run_dir, input_path, output_path, batch_size, server, version, quiet):
    """Segment MR volumes (uint8 labels on each input MR's own grid).

    Each slice is segmented by the U-Net from the MR and its synthesized CT.
    """
    from mr2ct.serving.segment import VolumeSegmenter, segment_paths

    segmenter = VolumeSegmenter.from_path(run_dir, batch_size, version=version, server=server)
    with volume_progress(quiet) as progress_factory:
        written = segment_paths(segmenter, input_path, output_path, progress_factory)
    for path in written:
        click.echo(f"wrote {path}")
