"""Worker pools end with the process that started them: a killed parent leaves no worker behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from mr2ct._workers import process_pool

PARENT = """
import os, sys, time
from mr2ct._workers import process_pool

if __name__ == "__main__":
    pool = process_pool(2)
    pids = {pool.submit(time.sleep, 0.2) and pool.submit(os.getpid).result() for _ in range(4)}
    sleeping = [pool.submit(time.sleep, 120) for _ in range(6)]  # more work queued than workers
    print(" ".join(map(str, sorted(pids))), flush=True)
    sleeping[0].result()
"""


def _ended(pid) -> bool:
    """True once ``pid`` has exited (a zombie left for the init process counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_pool_works():
    with process_pool(2) as pool:
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
        assert pool.submit(os.getpid).result() != os.getpid()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_their_parent_is_killed(sig):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert workers and all(not _ended(p) for p in workers), line
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while not all(_ended(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_ended(p) for p in workers), f"workers {workers} still running after their parent was killed"
    finally:
        parent.kill()
        parent.wait()
        for pid in [int(p) for p in (line.split() if "line" in locals() else [])]:
            if not _ended(pid):
                os.kill(pid, signal.SIGKILL)
