"""Which mr2ct made a result: its version and, in a git checkout, the commit and whether the code differs."""

from __future__ import annotations

import os
import subprocess

import mr2ct

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mr2ct.__file__)))


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", "-C", _ROOT, *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def source() -> dict:
    """``{"version", "commit", "modified"}``: the package version; the commit of the checkout it runs from and
    whether its code (``mr2ct/``, ``cli/``) differs from that commit, or `None` for both outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--", "mr2ct", "cli") if commit else None
    return {"version": mr2ct.__version__, "commit": commit or None,
            "modified": None if changes is None else bool(changes)}


def describe(record: dict | None) -> str:
    """``mr2ct 0.1.0, commit 1a2b3c4`` (``, with changes`` when modified) from a :func:`source` record."""
    if not record:
        return "mr2ct (version not recorded)"
    text = f"mr2ct {record['version']}"
    if record.get("commit"):
        text += f", commit {record['commit'][:7]}" + (" with uncommitted changes" if record.get("modified") else "")
    return text
