import json
import math

import numpy as np
import pytest

from mr2ct._atomic import atomic_write_json, read_json, strict_json
from mr2ct.errors import InputError


def _strict(token):
    raise AssertionError(f"{token} is not standard JSON")


def test_non_finite_numbers_are_written_as_null(tmp_path):
    data = {"dice": [0.5, float("nan"), np.float64("nan")], "p": math.inf, "t": -math.inf, "n": 3, "ok": True}
    path = tmp_path / "results.json"
    atomic_write_json(path, data)
    saved = json.loads(path.read_text(), parse_constant=_strict)
    assert saved == {"dice": [0.5, None, None], "p": None, "t": None, "n": 3, "ok": True}
    assert strict_json((1.0, {"a": float("nan")})) == [1.0, {"a": None}]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"step": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"step": object()})
    assert read_json(path, "no status") == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_read_json_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="no status"):
        read_json(tmp_path / "absent.json", "no status")
    (tmp_path / "cut.json").write_text('{"step": ')
    with pytest.raises(InputError, match="cut.json.*corrupt JSON"):
        read_json(tmp_path / "cut.json", "no status")
