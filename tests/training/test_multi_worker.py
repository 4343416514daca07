"""Two real ``mr2ct train`` processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

Each worker is a process of its own with ``TF_CONFIG`` naming both (free
loopback ports found at test time) and a ``TMPDIR`` of its own, so the test
sees the temporary checkpoint folders the non-chief worker makes. Every wait
is bounded and every process started is killed in a ``finally``.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from run_fixtures import checkpoint_step, checkpoint_values, mr2ct_command, prepare_phantoms
from seg_fixtures import cyclegan_run, prepared_folders

from mr2ct.config import preset
from mr2ct.data.pipeline import labelled_shards
from mr2ct.training.trainer import train_cyclegan

# The image pool never fills in these few steps (50 > 2 images x 4 steps), so a discriminator sees the
# same images whether one process or two replicas query it. One convolution-gradient form everywhere:
# under "auto" each process times the forms for itself, at its own batch shape, and where the two are
# about as fast (as on AVX-512 CPUs) the processes compute with different forms.
SETTINGS = ["--set", "loss.pool_size=50", "--set", "train.checkpoint_every=2",
            "--set", "model.conv_gradient=tensorflow"]
# Checkpoint names of the biases of convolutions that an instance normalization follows: the generators'
# stem, down, up and residual-block convolutions, the discriminators' convolutions after the first.
NORMALIZED_BIAS = re.compile(r"\.S(stem_conv|down\d+_conv|up\d+_conv|block\d+\.Sconv[12]|conv[1-9]\d*)\.Sbias/")
# Seconds for one run of a handful of tiny steps: 15 to 40 s on two idle cores, but several minutes when
# the processes (at nice 19) share the cores with other work.
RUN_TIMEOUT = 600
# TensorFlow's coordination service declares a peer dead after 10 s without heartbeats (2 to 16 s from
# the kill to the chief's exit measured here); the rest is slack for a loaded machine.
LOSS_TIMEOUT = 120


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_phantoms(tmp_path_factory.mktemp("multi_worker"))


def free_ports(count):
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def tf_config(ports, index):
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


class Worker:
    """One ``mr2ct`` worker process; its output goes to files (a full pipe would stall the cluster)."""

    def __init__(self, args, ports, index, folder):
        self.index = index
        self.tmp = folder / f"tmp_worker{index}"
        self.tmp.mkdir(exist_ok=True)
        self.out_path, self.err_path = folder / f"worker{index}.out", folder / f"worker{index}.err"
        env = dict(os.environ, TF_CONFIG=tf_config(ports, index), TMPDIR=str(self.tmp), TF_CPP_MIN_LOG_LEVEL="2")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(mr2ct_command(*args), env=env, stdout=out, stderr=err)

    def wait(self, timeout=RUN_TIMEOUT):
        """``(returncode, stdout, stderr)`` once the process ended, within ``timeout`` seconds."""
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.out_path.read_text(), self.err_path.read_text()


@contextlib.contextmanager
def workers(args, folder, count=2):
    """``count`` :class:`Worker` processes of ``mr2ct *args`` and their ports; killed on the way out."""
    ports = free_ports(count)
    started = []
    try:
        for index in range(count):
            started.append(Worker(args, ports, index, folder))
        yield started, ports
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(timeout=30)


def train_args(prepared, run_dir, *more):
    return ["train", "--data", prepared, "--out", run_dir, "--preset", "tiny", "--strategy", "multi_worker",
            *SETTINGS, *more]


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def temporary_checkpoints(worker_tmp):
    """The temporary checkpoint folders a non-chief worker left in its ``TMPDIR``."""
    return sorted(p.name for p in worker_tmp.iterdir() if p.name.startswith("mr2ct-"))


def progress_lines(text):
    return re.findall(r"^step \d+/\d+", text, flags=re.MULTILINE)


def assert_chief_files_only(run_dir, chief_pid, checkpoints, *files):
    """The run folder holds ``files``, the ``checkpoints`` steps, and one TensorBoard file, the chief's."""
    events = [f for f in files_in(run_dir) if f.startswith("logs/")]
    assert len(events) == 1 and f".{chief_pid}." in events[0], events
    expected = ["checkpoints/checkpoint", *files]
    for step in checkpoints:
        expected += [f"checkpoints/ckpt-{step}.data-00000-of-00001", f"checkpoints/ckpt-{step}.index"]
    assert [f for f in files_in(run_dir) if not f.startswith("logs/")] == sorted(expected)


def test_two_workers_train_as_one_process_does_and_resume(prepared, tmp_path):
    run_dir = tmp_path / "run"
    # The tiny preset's batch of 2 per replica: 4 a step over the two workers, as one process at batch 4.
    with workers(train_args(prepared, run_dir, "--max-steps", 4), tmp_path) as (started, _):
        # The same global batches in one process, meanwhile (DATA sharding splits every global batch).
        config = preset("tiny").override([*SETTINGS[1::2], "data.batch_size=4"])
        train_cyclegan(prepared, tmp_path / "single", config=config, max_steps=4, progress=False)
        (chief_rc, chief_out, chief_err), (rc, out, err) = [w.wait() for w in started]
        chief_pid = started[0].proc.pid
    assert chief_rc == 0, chief_err
    assert rc == 0, err
    assert "stopped at step 4/8" in chief_out and "stopped at step 4/8" in out
    assert progress_lines(chief_err) and not progress_lines(err)  # the progress line only on the chief

    # One run folder, written by the chief alone; the other worker's temporary checkpoints are gone.
    assert_chief_files_only(run_dir, chief_pid, (2, 4), "config.yaml", "preprocessing.json", "status.json",
                            "conv_gradients.json")
    assert json.loads((run_dir / "status.json").read_text())["step"] == 4
    assert temporary_checkpoints(tmp_path / "tmp_worker0") == temporary_checkpoints(tmp_path / "tmp_worker1") == []

    # The chief's weights are those of one process trained on the same global batches. Adam's first
    # steps move a weight by about +-lr whatever the size of its gradient, so the few gradients near
    # zero, whose sign the order of summation decides, differ by up to 2 lr; a wrong split of the
    # batches changes a quarter of the weights or more. The biases of convolutions followed by an
    # instance normalization have a gradient of exactly zero (the normalization removes any constant
    # per channel): what they receive is round-off alone, which Adam turns into +-lr steps of random
    # sign, so they say nothing about the split and are left out.
    two, one = checkpoint_values(run_dir / "checkpoints" / "ckpt-4"), checkpoint_values(
        tmp_path / "single" / "checkpoints" / "ckpt-4")
    assert two.keys() == one.keys()
    compared = [n for n in two if one[n].dtype.kind == "f" and not NORMALIZED_BIAS.search(n)]
    assert len(compared) > len(two) // 2
    diff = np.concatenate([np.abs(two[n] - one[n]).ravel() for n in compared])
    assert diff.mean() < 1e-6 and (diff > 1e-5).mean() < 0.01, (diff.mean(), (diff > 1e-5).mean())

    # Both again, to the end: each resumes from the chief's last checkpoint.
    with workers(train_args(prepared, run_dir), tmp_path) as (started, _):
        results = [w.wait() for w in started]
    for rc, out, err in results:
        assert rc == 0, err
        assert "resumed from step 4" in err and "finished at step 8/8" in out
    assert checkpoint_step(run_dir)[0] == 8
    assert not [p for p in run_dir.rglob("*") if "temp" in p.name]
    assert temporary_checkpoints(tmp_path / "tmp_worker1") == []


def wait_for_checkpoint(run_dir, beyond, started):
    """The chief's first checkpoint after step ``beyond``, while every worker is still running."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while checkpoint_step(run_dir)[0] <= beyond:
        assert all(w.proc.poll() is None for w in started), "a worker ended early"
        assert time.monotonic() < deadline, f"no checkpoint after step {beyond} in time"
        time.sleep(0.2)
    return checkpoint_step(run_dir)[0]


def test_a_killed_worker_stops_the_other_and_both_resume(prepared, tmp_path):
    run_dir = tmp_path / "run"
    args = train_args(prepared, run_dir, "--set", "train.constant_steps=200", "--set", "train.decay_steps=200")
    with workers(args, tmp_path) as (started, ports):
        wait_for_checkpoint(run_dir, 0, started)
        chief, worker = started
        worker.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        rc, _, err = chief.wait(timeout=LOSS_TIMEOUT)
        stopped_after = time.monotonic() - killed
    assert rc == 1, err
    assert f"Error: lost worker 1 (127.0.0.1:{ports[1]})" in err, err
    assert "Start every worker again with the same command" in err
    print(f"the chief stopped {stopped_after:.1f} s after worker 1 was killed")
    step = checkpoint_step(run_dir)[0]
    assert step >= 2 and step % 2 == 0
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"

    # Both again with the same command (on new ports): both resume from the chief's last checkpoint.
    # SIGTERM to the non-chief worker then stops both at one step, with a checkpoint by the chief.
    with workers(args, tmp_path) as (started, _):
        wait_for_checkpoint(run_dir, step, started)
        started[1].proc.send_signal(signal.SIGTERM)
        results = [w.wait() for w in started]
    stopped_at = checkpoint_step(run_dir)[0]
    for rc, out, err in results:
        assert rc == 130, err
        assert f"resumed from step {step}" in err
        assert f"interrupted at step {stopped_at}/400" in err
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert temporary_checkpoints(tmp_path / "tmp_worker1") == []


def test_two_workers_train_a_segmentation_run_written_by_the_chief(tmp_path_factory, tmp_path):
    gan_dir, _ = cyclegan_run(tmp_path_factory)
    labelled, _ = prepared_folders(tmp_path_factory)
    run_dir = tmp_path / "seg"
    args = ["train-seg", "--cyclegan", gan_dir, "--data", labelled, "--out", run_dir, "--strategy", "multi_worker"]
    with workers(args, tmp_path) as (started, _):
        results = [w.wait() for w in started]
        chief_pid = started[0].proc.pid
    for rc, out, err in results:
        assert rc == 0, err
        assert "finished at step 6/6" in out  # the tiny preset's segmentation: 6 steps, a checkpoint every 3
    assert progress_lines(results[0][2]) and not progress_lines(results[1][2])
    # the chief caches the synthesized MR in the run folder; the other worker in a temporary folder, removed
    cache = sorted(f"synthesized_mr/{os.path.basename(s)}" for s in labelled_shards(labelled))
    assert_chief_files_only(run_dir, chief_pid, (3, 6), "config.yaml", "cyclegan.json", "preprocessing.json",
                            "status.json", "synthesized_mr/cache.json", *cache)
    assert temporary_checkpoints(tmp_path / "tmp_worker1") == []
    assert not list((tmp_path / "tmp_worker1").glob("mr2ct-synthesized-mr-*"))
