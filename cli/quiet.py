"""Quiet start: an ``mr2ct`` command prints its own output, not TensorFlow's start-up logs.

Importing TensorFlow writes lines nobody asked for to standard error: the
oneDNN notice, "Could not find cuda drivers on your machine", the
cpu_feature_guard lines and absl's "All log messages before
absl::InitializeLog() is called" warning. Some of them come from C++ code
that runs while the libraries load, before any logging setting applies, so
:func:`quiet_tensorflow` does two things: it sets ``TF_CPP_MIN_LOG_LEVEL``
(unless the environment already sets it) and it points the process's
standard-error file descriptor at the null device while ``tensorflow`` is
imported. Python warnings and Python log records after the import are not
touched.

``mr2ct --verbose ...`` or ``MR2CT_VERBOSE=1`` keeps everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys

VERBOSE_ENV = "MR2CT_VERBOSE"

# 3 hides TensorFlow's C++ INFO, WARNING and ERROR lines. Errors that stop a computation still reach
# the user as Python exceptions; the ERROR lines of a CPU-only machine ("failed call to cuInit") are noise.
QUIET_TF_CPP_MIN_LOG_LEVEL = "3"


def verbose_requested() -> bool:
    """Whether ``MR2CT_VERBOSE`` asks for TensorFlow's logs (any value but empty, ``0``, ``false``, ``no``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def stderr_fd_silenced():
    """Point file descriptor 2 at the null device for the duration; Python's ``sys.stderr`` object is kept."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (e.g. a detached process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w", encoding="utf-8") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """Executes the real ``tensorflow`` package with standard error silenced."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with stderr_fd_silenced():
            self._loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as usual, once, and wraps its loader in :class:`_QuietLoader`."""

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True  # the real finders do the finding
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up logs out of this process's output (see the module docstring).

    Call it before TensorFlow is imported; afterwards it only sets the log
    level. Does nothing when :func:`verbose_requested`.
    """
    if verbose_requested():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_CPP_MIN_LOG_LEVEL)
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
