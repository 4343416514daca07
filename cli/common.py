"""Pieces several commands share: the end of a training run, per-volume progress bars."""

from __future__ import annotations

import contextlib
import sys

import click


def report_training(result, run_dir) -> None:
    """Tell how a training loop ended; exit 130 when it was interrupted."""
    if result.resumed_from:
        click.echo(f"resumed from step {result.resumed_from}", err=True)
    if result.interrupted:
        click.echo(
            f"interrupted at step {result.step}/{result.total_steps}; checkpoint saved. "
            "Run the same command to resume.",
            err=True,
        )
        sys.exit(130)
    state = "finished" if result.finished else "stopped"
    click.echo(f"{state} at step {result.step}/{result.total_steps}: {run_dir}")


@contextlib.contextmanager
def volume_progress(quiet: bool):
    """A ``progress_factory(subject, slices)`` giving one progress bar per volume (none if ``quiet``)."""
    with contextlib.ExitStack() as stack:

        def progress_factory(subject, slices):
            if quiet:
                return None
            bar = stack.enter_context(click.progressbar(length=slices, label=subject, show_pos=True, show_eta=True))
            return bar.update

        yield progress_factory
