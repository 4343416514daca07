"""Entry point of the ``mr2ct`` command.

Each sub-command lives in its own module of this package and only parses
arguments, calls the library and reports; the work is done in :mod:`mr2ct`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

import click

import mr2ct
from mr2ct.errors import Mr2ctError

from .quiet import VERBOSE_ENV, quiet_tensorflow

# name -> (module in this package, attribute). Modules are imported only when
# the command runs, so ``mr2ct --help`` does not pay for importing TensorFlow.
_COMMANDS = {
    "demo": ("demo", "demo"),
    "evaluate": ("evaluate", "evaluate"),
    "experiment": ("experiment", "experiment"),
    "export": ("export", "export"),
    "phantom": ("phantom", "phantom"),
    "predict": ("predict", "predict"),
    "prepare": ("prepare", "prepare"),
    "segment": ("segment", "segment"),
    "serve": ("serve", "serve"),
    "train": ("train", "train"),
    "train-seg": ("train_seg", "train_seg"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        module_name, attr = _COMMANDS[name]
        module = importlib.import_module(f"{__package__}.{module_name}")
        return getattr(module, attr)


def friendly_errors(func):
    """Report :class:`Mr2ctError` as ``Error: <message>`` with exit code 1, no traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Mr2ctError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mr2ct.__version__, prog_name="mr2ct")
@click.option("--verbose", is_flag=True,
              help=f"Also show TensorFlow's start-up and C++ log lines (hidden by default; or set {VERBOSE_ENV}=1).")
def cli(verbose):
    """mr2ct: unpaired MR-to-CT synthesis with CycleGAN and gradient-consistency loss."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # also for the processes a command starts
    quiet_tensorflow()


def main():  # pragma: no cover - console entry
    sys.exit(cli())
