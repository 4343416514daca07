"""``mr2ct experiment``: the paper's training-set-size and GC-loss experiment on phantoms."""

from __future__ import annotations

import os

import click

from .main import friendly_errors


@click.command()
@click.option("--preset", "preset_name", type=click.Choice(["paper", "cpu", "tiny"]), default="cpu", show_default=True,
              help="Sizes and settings: tiny (a couple of minutes), cpu (about two hours on 2 cores), paper (the paper's sizes).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="experiment", show_default=True,
              help="Experiment folder; run again to reuse what is finished.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the phantoms and the training runs.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress lines while training.")
@friendly_errors
def experiment(preset_name, out_dir, seed, progress):
    """Small vs large training set, with and without GC loss, and signed against absolute GC: MI, HU error, Dice, paired t-tests, REPORT.md."""
    from mr2ct.evaluation.experiment import run_experiment

    results = run_experiment(out_dir, preset=preset_name, seed=seed, echo=click.echo, progress=progress)
    click.echo(f"report: {os.path.join(out_dir, results['files']['report'])}")
