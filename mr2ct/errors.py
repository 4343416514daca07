"""Exceptions raised by mr2ct for bad input.

Every error a user can cause (a missing, corrupt or malformed file, an empty
folder, a volume with NaN voxels, ...) is raised as a subclass of
:class:`Mr2ctError` whose message names the file and the problem. The command
line turns these into a one-line message and a non-zero exit code, without a
traceback.
"""

from __future__ import annotations

import os


class Mr2ctError(Exception):
    """Base class of every error mr2ct raises for bad input or state."""


class InputError(Mr2ctError, ValueError):
    """A file or folder given to mr2ct cannot be used.

    Args:
        path: the offending file or folder.
        problem: what is wrong with it, as a short sentence fragment.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


class ConfigError(Mr2ctError, ValueError):
    """A configuration value or override is invalid."""


class ClusterError(Mr2ctError):
    """A multi-worker run lost one of its workers, or its cluster does not fit the run."""
