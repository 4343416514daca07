"""``mr2ct train``: train or resume the GC-CycleGAN."""

from __future__ import annotations

import click

from .common import report_training, warn_if_no_gpu
from .config_options import config_options, resolve_config
from .main import friendly_errors


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Folder written by `mr2ct prepare`.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: config, checkpoints, TensorBoard logs. Rerun to resume.")
@config_options
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop at this global step (resume later with the same command).")
@click.option("--val-mr", type=click.Path(file_okay=False), default=None,
              help="Held-out MR volumes (no CT needed): validate every checkpoint on them and keep the best "
                   "as best_checkpoint/ (validation.csv; `mr2ct export --best`).")
@click.option("--quiet", is_flag=True, help="No progress line.")
@friendly_errors
def train(data_dir, run_dir, preset, config_file, overrides, mixed_precision, xla, strategy, max_steps, val_mr,
          quiet):
    """Train the CycleGAN with the gradient-consistency loss (or resume it).

    Running the same command again resumes from the latest checkpoint. Ctrl-C
    (SIGINT) or SIGTERM saves a checkpoint before exiting.

    With --val-mr, every checkpoint is scored on held-out MR slices by signals
    that need no CT: MI and gradient correlation of MR and synthesized CT, and
    the MR cycle error (validation.csv, TensorBoard). The checkpoint with the
    best train.validation_signal is kept in best_checkpoint/.
    """
    from mr2ct.training.trainer import train_cyclegan

    config = resolve_config(run_dir, preset, config_file, overrides, mixed_precision, xla, strategy)
    warn_if_no_gpu(config)
    echo = None if quiet else (lambda line: click.echo(line, err=True))
    result = train_cyclegan(data_dir, run_dir, config=config, max_steps=max_steps, progress=not quiet,
                            val_mr=val_mr, echo=echo)
    report_training(result, run_dir)
