"""Click options shared by the commands that take a run configuration."""

from __future__ import annotations

import os

import click

from mr2ct.config import PRESETS, Config, MixedPrecision, StrategyKind, preset


def config_options(func):
    """Add ``--preset``, ``--config``, ``--set``, ``--mixed-precision``, ``--xla``, ``--strategy``."""
    options = [
        click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="Settings preset for a new run (default: paper; train-seg: the CycleGAN run's)."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML config file (instead of a preset)."),
        click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                     help="Override one setting, e.g. --set loss.lambda_gc=0. Repeatable."),
        click.option("--mixed-precision", type=click.Choice([m.value for m in MixedPrecision]),
                     default=None, help="'auto': float16 with loss scaling on GPU, bfloat16 on CPUs with AMX, else float32."),
        click.option("--xla/--no-xla", default=None, help="XLA-compile the training step."),
        click.option("--strategy", type=click.Choice([s.value for s in StrategyKind]), default=None,
                     help="tf.distribute strategy (multi_worker reads TF_CONFIG)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_config(run_dir, preset_name, config_file, overrides, mixed_precision, xla, strategy, default=None):
    """The config the command line asks for, or ``None`` to resume with the run's own.

    Nothing given and a run folder with a saved config: resume as saved.
    ``default`` (a callable returning a :class:`Config`) is the starting point
    when neither a preset nor a config file is given; the paper preset if `None`.
    """
    runtime = []
    if mixed_precision is not None:
        runtime.append(f"runtime.mixed_precision={mixed_precision}")
    if xla is not None:
        runtime.append(f"runtime.xla={str(xla).lower()}")
    if strategy is not None:
        runtime.append(f"runtime.strategy={strategy}")
    nothing_given = not (preset_name or config_file or overrides or runtime)
    if nothing_given and os.path.exists(os.path.join(run_dir, "config.yaml")):
        return None
    if config_file:
        config = Config.from_yaml(config_file)
    elif preset_name or default is None:
        config = preset(preset_name or "paper")
    else:
        config = default()
    return config.override(list(overrides) + runtime)


