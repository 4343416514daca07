"""Pieces several commands share: the end of a training run, per-volume progress bars, a missing GPU."""

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


def warn_if_no_gpu(config) -> None:
    """Say so on stderr when ``config`` asks for ``mirrored`` (GPUs) and TensorFlow sees none.

    TensorFlow's own start-up lines about CUDA are hidden by default (see
    :mod:`mr2ct_cli.quiet`), so this is how a run that falls back to the CPU
    tells the user.
    """
    if config is None or str(config.runtime.strategy) != "mirrored":
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        click.echo("warning: --strategy mirrored, but TensorFlow sees no GPU: training runs on the CPU "
                   "(`mr2ct --verbose ...` shows TensorFlow's CUDA messages)", err=True)
