"""``mr2ct phantom``: write a synthetic hip data set (paired MR, CT and labels)."""

from __future__ import annotations

import os

import click

from .main import friendly_errors


@click.command("phantom")
@click.option("--subjects", "-n", type=click.IntRange(min=1), required=True, help="Number of subjects.")
@click.option(
    "--out", "-o", "out_dir", type=click.Path(file_okay=False, writable=True), required=True,
    help="Folder of the data set (created if needed).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the data set.")
@click.option(
    "--size", type=click.Choice(["small", "paper"]), default="small", show_default=True,
    help="small: 64x64x8 MR, 96x96x12 CT; paper: 256x256x38 MR, 512x512x75 CT (same fields of view).",
)
@click.option("--montage", is_flag=True, help="Also write montage.png with mid slices of the first subjects.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Subjects rendered in parallel (default: one per CPU core for paper size, 1 for small).")
@friendly_errors
def phantom(subjects, out_dir, seed, size, montage, workers):
    """Generate a phantom data set of registered MR, CT and label volumes.

    Writes OUT/mr, OUT/ct, OUT/ct_on_mr_grid, OUT/labels_mr and OUT/labels_ct,
    one <subject>.nii.gz per subject in each, and OUT/phantom.json with the
    seed, size, label table and every subject's parameters.
    """
    from mr2ct.data.phantom import DATASET_FOLDERS, write_phantom_dataset

    with click.progressbar(length=subjects, label="Generating subjects", show_pos=True) as bar:
        manifest = write_phantom_dataset(
            out_dir, subjects, seed=seed, size=size, montage=montage, progress=lambda _: bar.update(1),
            workers=workers or (None if size == "paper" else 1),
        )
    written = ", ".join(f"{name}/" for name in DATASET_FOLDERS) + ", phantom.json"
    if manifest.get("montage"):
        written += ", montage.png"
    click.echo(f"Wrote {len(manifest['subjects'])} {size} subjects to {os.path.abspath(out_dir)} ({written}).")
