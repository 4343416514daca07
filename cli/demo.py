"""``mr2ct demo``: the main job end to end on the built-in phantom."""

from __future__ import annotations

import click

from .main import friendly_errors


@click.command()
@click.option("--out", "out_dir", default="demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Small phantoms and short training runs (a few minutes).")
@click.option("--seed", default=0, show_default=True, help="Phantom seed.")
@friendly_errors
def demo(out_dir, quick, seed):
    """Generate phantoms, prepare, train, export, predict and evaluate; then segment through synthesis.

    Without --quick this trains with the cpu preset: about 20 to 65 minutes
    on two CPU cores, depending on the CPU (--quick: a few minutes).
    Rerunning continues where an interrupted demo stopped.
    """
    from mr2ct.demo import run_demo

    try:
        results = run_demo(out_dir, quick=quick, seed=seed, echo=click.echo)
    except KeyboardInterrupt:
        click.echo("\ninterrupted; run the same command to continue", err=True)
        raise SystemExit(130)
    click.echo(f"\ndone in {results['minutes']} min. Results:")
    for key in ("phantom_montage", "run", "segmentation_run", "export", "predictions", "metrics", "boxplots",
                "montage", "segmentation_metrics", "segmentation_boxplots", "segmentation_montage"):
        click.echo(f"  {key:<22} {results[key]}")
