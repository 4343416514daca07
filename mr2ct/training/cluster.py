"""Where a training process stands in a ``MultiWorkerMirroredStrategy`` cluster.

TensorFlow's multi-worker contract (the "Custom training loop with Keras and
MultiWorkerMirroredStrategy" tutorial): every worker runs the same program and
takes part in every collective operation, saving a checkpoint included; the
chief (task ``chief``, or ``worker`` 0 when the cluster has no ``chief`` job)
writes the real checkpoints and summaries, the other workers save into a
temporary folder of their own that they remove afterwards.
"""

from __future__ import annotations

import dataclasses
import re

import tensorflow as tf

from mr2ct.errors import ClusterError

# A task as TensorFlow names it in errors: /job:worker/replica:0/task:1 or /job:worker/task:1.
_TASK = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")
# Errors with which TensorFlow aborts the collectives when a peer is lost.
PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's task in the cluster; one process alone is its own chief.

    Args:
        task_type: ``"worker"`` or ``"chief"``, or `None` outside a cluster.
            Defaults to `None`.
        task_id: index of the task in its job. Defaults to `0`.
        cluster: the cluster spec, job name to list of addresses. Defaults
            to no cluster.
    """

    task_type: str | None = None
    task_id: int = 0
    cluster: dict = dataclasses.field(default_factory=dict)

    @property
    def is_chief(self) -> bool:
        return (
            self.task_type is None
            or self.task_type == "chief"
            or (self.task_type == "worker" and self.task_id == 0 and "chief" not in self.cluster)
        )

    @property
    def num_workers(self) -> int:
        return max(1, len(self.cluster.get("chief", [])) + len(self.cluster.get("worker", [])))

    def describe(self, task_type=None, task_id=None) -> str:
        """``worker 1 (127.0.0.1:23456)``: a task of the cluster, this one by default."""
        task_type = self.task_type if task_type is None else task_type
        task_id = self.task_id if task_id is None else int(task_id)
        addresses = self.cluster.get(task_type, [])
        address = f" ({addresses[task_id]})" if task_id < len(addresses) else ""
        return f"{task_type} {task_id}{address}"


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    """The :class:`WorkerRole` of this process under ``strategy`` (from its cluster resolver)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return WorkerRole()
    cluster = {job: list(tasks.values()) if isinstance(tasks, dict) else list(tasks) for job, tasks in cluster.items()}
    return WorkerRole(resolver.task_type, int(resolver.task_id), cluster)


def lost_worker_error(role: WorkerRole, exc: tf.errors.OpError, step: int, checkpoint_step: int) -> ClusterError:
    """The error to stop a multi-worker run with after TensorFlow aborted its collectives.

    Names the tasks other than this one that TensorFlow's message mentions
    (the unhealthy task the coordination service reported, or the remote
    target of the failed call) and tells the user how to resume.
    """
    tasks = []
    for job, index in _TASK.findall(exc.message or ""):
        if (job, int(index)) != (role.task_type, role.task_id) and (job, int(index)) not in tasks:
            tasks.append((job, int(index)))
    lost = ", ".join(role.describe(job, index) for job, index in tasks) or "another worker"
    reason = _reason(exc.message or "")
    resume = (f"the chief's last checkpoint (step {checkpoint_step})" if checkpoint_step
              else "the start (no checkpoint yet)")
    return ClusterError(
        f"lost {lost} after step {step}; {role.describe()} stopped "
        f"({type(exc).__name__}: {reason[:300]}). "
        f"Start every worker again with the same command to resume from {resume}."
    )


def _reason(message: str) -> str:
    """The line of a TensorFlow error that says why the collectives were aborted."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "aborted by:" in line:
            return line.split("aborted by:", 1)[1].strip()
    return lines[0] if lines else ""
