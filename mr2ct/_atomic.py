"""Atomic file and folder writes (finished work is never replaced by a half-written copy), and JSON reads with clear errors."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def strict_json(data):
    """``data`` with NaN and infinities as None, so that it is standard JSON (``null``)."""
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def atomic_write_json(path, data) -> None:
    """Write ``data`` as standard JSON: a non-finite number (a Dice of an absent structure) becomes ``null``."""
    atomic_write_text(path, json.dumps(strict_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; on success it is renamed to ``path``.

    If the body raises, the temporary folder is removed and ``path`` is left
    untouched (it must not exist beforehand).
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise FileExistsError(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path, missing: str, corrupt: str = "corrupt JSON"):
    """The JSON in ``path``; an InputError naming it when it is missing (``missing``) or unreadable."""
    from mr2ct.errors import InputError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"{corrupt} ({exc})") from None
