"""docs/your_data.md as a user runs it: its commands, read out of the markdown, on phantom volumes at tiny scale.

The layout is the guide's (``data/train_mr`` as DICOM series folders, ``data/train_ct`` and its labels as NIfTI,
``data/test_mr`` as DICOM, ``data/test_mr_labels``). Each ``mr2ct`` line of the guide's ``bash`` blocks runs as
written, with two substitutions that keep it small: ``--preset paper`` becomes ``--preset tiny`` and the port
8501 a free one. ``docker`` lines are skipped (no Docker here); ``curl`` lines are sent with urllib. When the
guide and the command line drift apart, this fails.
"""

import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from mr2ct.data.io import read_volume, write_dicom_series
from mr2ct.data.phantom import write_phantom_dataset
from mr2ct_cli.main import cli

GUIDE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "your_data.md"


def guide_commands() -> list[str]:
    """Every command line of the guide's ``bash`` blocks, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The guide's data/ layout from six small phantoms: MR as DICOM series, CT and labels as NIfTI."""
    root = tmp_path_factory.mktemp("guide")
    phantom = root / "phantom"
    write_phantom_dataset(phantom, 6, seed=5, size="small")
    data = root / "data"
    names = sorted(p.name for p in (phantom / "mr").iterdir())
    for i, name in enumerate(names):
        subject = name.removesuffix(".nii.gz")
        role = "train_mr" if i < 2 else ("train_ct" if i < 4 else "test_mr")
        if role in ("train_mr", "test_mr"):
            mr = read_volume(phantom / "mr" / name)
            write_dicom_series(mr.with_array(mr.array.astype(np.int16)), data / role / subject, modality="MR",
                               identifiers={"0010|0020": f"PID-{subject}"})
            if role == "test_mr":
                (data / "test_mr_labels").mkdir(parents=True, exist_ok=True)
                shutil.copy(phantom / "labels_mr" / name, data / "test_mr_labels" / name)
        else:
            for source, target in (("ct", "train_ct"), ("labels_ct", "train_ct_labels")):
                (data / target).mkdir(parents=True, exist_ok=True)
                shutil.copy(phantom / source / name, data / target / name)
    return root


def test_the_guide_holds_the_whole_chain():
    commands = " ".join(guide_commands())
    for step in ("mr2ct prepare", "mr2ct train ", "mr2ct train-seg", "mr2ct export", "mr2ct serve", "mr2ct predict",
                 "--format dicom", "mr2ct segment", "mr2ct evaluate"):
        assert step in commands, step


def test_every_command_of_the_guide_runs_as_written(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    port = free_port()
    server = None
    ran = []
    try:
        for line in guide_commands():
            line = line.replace("--preset paper", "--preset tiny").replace("8501", str(port))
            words = shlex.split(line)
            if words[0] == "docker":
                continue
            if words[0] == "curl":
                with urllib.request.urlopen(words[1], timeout=60) as answer:
                    assert answer.status == 200, line
                ran.append("curl")
                continue
            assert words[0] == "mr2ct", f"the guide runs something other than mr2ct: {line}"
            if words[-1] == "&":  # the server, in the background
                assert words[1] == "serve"
                server = subprocess.Popen([sys.executable, "-c", "from mr2ct_cli.main import cli; cli()",
                                           *words[1:-1]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                deadline = time.monotonic() + 120
                while True:
                    assert server.poll() is None, server.stdout.read().decode()
                    try:
                        urllib.request.urlopen(f"http://localhost:{port}/v1/models/mr2ct", timeout=5).close()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "the server did not answer within 2 minutes"
                        time.sleep(0.5)
                ran.append("serve")
                continue
            result = CliRunner().invoke(cli, words[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            ran.append(words[1])
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    assert {"prepare", "train", "train-seg", "export", "serve", "curl", "predict", "segment", "evaluate"} <= set(ran)

    # What the commands wrote: a synthesized CT per held-out MR, NIfTI and DICOM, on the MR's grid, labels, scores.
    tests = sorted(p.name for p in (workspace / "data" / "test_mr").iterdir())
    assert sorted(p.name for p in (workspace / "sct").iterdir()) == [f"{s}.nii.gz" for s in tests]
    for subject in tests:
        mr = read_volume(workspace / "data" / "test_mr" / subject)
        for path in (workspace / "sct" / f"{subject}.nii.gz", workspace / "sct_dicom" / subject,
                     workspace / "labels" / f"{subject}.nii.gz"):
            out = read_volume(path)
            assert out.shape == mr.shape, path
            np.testing.assert_allclose(out.origin, mr.origin, atol=1e-3)
        np.testing.assert_array_equal(read_volume(workspace / "sct_dicom" / subject).array,
                                      read_volume(workspace / "sct" / f"{subject}.nii.gz").array)
    metrics = (workspace / "eval" / "metrics.csv").read_text()
    assert all(s in metrics for s in tests) and "dice_mean" in metrics
    assert os.path.exists(workspace / "eval" / "segmentation_montage.png")
