"""Pools of worker processes that end when the process that started them ends.

A ``ProcessPoolExecutor`` worker whose parent is killed (SIGKILL, a crash, a
closed terminal) keeps working through the tasks already handed to it, and
holds its CPU for minutes. Each worker of :func:`process_pool` watches its
parent and exits as soon as it is gone.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time

PARENT_POLL_SECONDS = 0.5


def _exit_with_parent(parent_pid: int, interval: float) -> None:
    """Pool initializer: a daemon thread that ends this worker once ``parent_pid`` is no longer its parent."""

    def watch():
        while True:
            if os.getppid() != parent_pid:  # re-parented: the process that started us is gone
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="mr2ct-parent-watch", daemon=True).start()


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (no fork of a process that may hold TensorFlow)
    that exit when this process ends."""
    return concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(), PARENT_POLL_SECONDS),
    )
