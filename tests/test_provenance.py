"""Which mr2ct made a result."""

import re
import shutil
import subprocess

import pytest

import mr2ct
from mr2ct import _provenance
from mr2ct._provenance import describe, source


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_source_names_the_checkouts_commit():
    record = source()
    head = subprocess.run(["git", "-C", _provenance._ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    assert record["version"] == mr2ct.__version__
    assert record["commit"] == head.stdout.strip() and re.fullmatch(r"[0-9a-f]{40}", record["commit"])
    assert isinstance(record["modified"], bool)


def test_outside_a_checkout_only_the_version(monkeypatch, tmp_path):
    monkeypatch.setattr(_provenance, "_ROOT", str(tmp_path))
    assert source() == {"version": mr2ct.__version__, "commit": None, "modified": None}


def test_describe():
    assert describe({"version": "0.1.0", "commit": "1a2b3c4d5e" + "0" * 30, "modified": False}) == \
        "mr2ct 0.1.0, commit 1a2b3c4"
    assert describe({"version": "0.1.0", "commit": "1a2b3c4d5e" + "0" * 30, "modified": True}) == \
        "mr2ct 0.1.0, commit 1a2b3c4 with uncommitted changes"
    assert describe({"version": "0.1.0", "commit": None, "modified": None}) == "mr2ct 0.1.0"
    assert describe(None) == "mr2ct (version not recorded)"
