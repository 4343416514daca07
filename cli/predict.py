"""``mr2ct predict``: synthesized CT, in HU, for MR volumes."""

from __future__ import annotations

import click

from .common import volume_progress
from .main import friendly_errors


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(file_okay=False),
              help="saved_models/<name> (latest version) or saved_models/<name>/<version>.")
@click.option("--version", type=click.IntRange(min=1), default=None, help="Model version (default: latest).")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="An MR volume (NIfTI, NRRD, MHA, DICOM series folder) or a folder of volumes.")
@click.option("--output", "output_path", required=True, type=click.Path(),
              help="Output file (.nii.gz, .nrrd, .mha), or a folder when --input is a folder.")
@click.option("--server", default=None, help="TF Serving REST endpoint, e.g. http://127.0.0.1:8501.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--format", "output_format", type=click.Choice(["auto", "dicom"]), default="auto", show_default=True,
              help="auto: NIfTI/NRRD/MHA by the output's extension (a folder input gives <subject>.nii.gz); "
                   "dicom: a CT DICOM series folder per volume (for a DICOM MR, with its patient, study and "
                   "frame of reference).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def predict(model_path, version, input_path, output_path, server, batch_size, output_format, quiet):
    """Synthesize CT (HU, int16) on each input MR's own grid."""
    from mr2ct.serving.predict import Synthesizer, predict_paths

    if server:
        synthesizer = Synthesizer.remote(server, model_path, version, batch_size)
    else:
        synthesizer = Synthesizer.local(model_path, version, batch_size)
    with volume_progress(quiet) as progress_factory:
        written = predict_paths(synthesizer, input_path, output_path, progress_factory, output_format)
    for path in written:
        click.echo(f"wrote {path}")
