"""``mr2ct train-seg``: train or resume the U-Net for segmentation through synthesis."""

from __future__ import annotations

import os

import click

from .common import report_training, warn_if_no_gpu
from .config_options import config_options, resolve_config
from .main import friendly_errors


@click.command("train-seg")
@click.option("--cyclegan", "cyclegan_run", default=None, type=click.Path(file_okay=False),
              help="Trained CycleGAN run folder (its latest checkpoint). Optional when resuming.")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Folder written by `mr2ct prepare` with labelled CT (--labels).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Segmentation run folder: config, checkpoints, TensorBoard logs. Rerun to resume.")
@config_options
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop at this global step (resume later with the same command).")
@click.option("--quiet", is_flag=True, help="No progress line.")
@friendly_errors
def train_seg(cyclegan_run, data_dir, run_dir, preset, config_file, overrides, mixed_precision, xla, strategy,
              max_steps, quiet):
    """Train the two-channel U-Net on labelled CT and its synthesized MR (or resume it).

    The CycleGAN's generators are frozen; only the U-Net learns (section 3.2
    of the paper). Without --preset or --config a new run starts from the
    CycleGAN run's own config (its `segmentation` section). Running the same
    command again resumes from the latest checkpoint; Ctrl-C saves one first.
    """
    from mr2ct.config import Config
    from mr2ct.training.segmentation import read_cyclegan_run, train_segmentation

    saved = os.path.join(run_dir, "config.yaml")

    def default():
        if os.path.exists(saved):
            return Config.from_yaml(saved, run=True)
        return read_cyclegan_run(cyclegan_run).config

    config = resolve_config(run_dir, preset, config_file, overrides, mixed_precision, xla, strategy, default)
    warn_if_no_gpu(config)
    result = train_segmentation(cyclegan_run, data_dir, run_dir, config=config, max_steps=max_steps,
                                progress=not quiet)
    report_training(result, run_dir)
