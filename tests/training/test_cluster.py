"""Who is the chief, what a lost worker's error says, and what the batch means on several replicas."""

import pytest
import tensorflow as tf

from mr2ct.errors import ClusterError, ConfigError
from mr2ct.training.cluster import WorkerRole, lost_worker_error, worker_role
from mr2ct.training.trainer import global_batch

WORKERS = {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]}

# (role, is_chief, num_workers)
ROLE_CASES = [
    (WorkerRole(), True, 1),
    (WorkerRole("worker", 0, WORKERS), True, 2),
    (WorkerRole("worker", 1, WORKERS), False, 2),
    (WorkerRole("worker", 0, {"chief": ["h0:1"], **WORKERS}), False, 3),
    (WorkerRole("chief", 0, {"chief": ["h0:1"], **WORKERS}), True, 3),
]

# What TensorFlow 2.21 reported in the tests with real processes.
HEARTBEAT_LOST = (
    "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent call last):\n"
    "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are "
    "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed. "
    "Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) to debug further.\n"
    "The error could be from a previous operation. Restart your program to reset."
)
CHIEF_LOST = (
    "Graph execution error:\n\nCollective ops is aborted by: recvmsg:Connection reset by peer\n"
    "Additional GRPC error information from remote target /job:worker/replica:0/task:0 while calling "
    "/tensorflow.WorkerService/CompleteInstance:\n:UNKNOWN:Error received from peer"
)


@pytest.mark.parametrize("role, is_chief, num_workers", ROLE_CASES)
def test_the_chief_is_the_chief_task_or_else_worker_0(role, is_chief, num_workers):
    assert role.is_chief is is_chief
    assert role.num_workers == num_workers


def test_a_single_process_is_its_own_chief(two_cpu_strategy):
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        assert worker_role(strategy) == WorkerRole()


@pytest.mark.parametrize("me, message, lost", [
    (WorkerRole("worker", 0, WORKERS), HEARTBEAT_LOST, "worker 1 (127.0.0.1:2222)"),
    (WorkerRole("worker", 1, WORKERS), CHIEF_LOST, "worker 0 (127.0.0.1:1111)"),
    (WorkerRole("worker", 1, WORKERS), "Socket closed", "another worker"),
])
def test_a_lost_worker_is_named_with_how_to_resume(me, message, lost):
    error = lost_worker_error(me, tf.errors.UnavailableError(None, None, message), step=7, checkpoint_step=6)
    assert isinstance(error, ClusterError)
    text = str(error)
    assert text.startswith(f"lost {lost} after step 7; {me.describe()} stopped (UnavailableError: ")
    assert "Graph execution error" not in text
    assert text.endswith("Start every worker again with the same command to resume from the chief's last "
                         "checkpoint (step 6).")
    no_checkpoint = lost_worker_error(me, tf.errors.UnavailableError(None, None, message), 1, 0)
    assert str(no_checkpoint).endswith("resume from the start (no checkpoint yet).")


def test_the_batch_is_per_replica_unless_the_config_says_global(two_cpu_strategy):
    # per replica (every preset): any batch on any number of replicas, N replicas take N times it
    assert global_batch(1, two_cpu_strategy, "data.batch_size") == 2
    assert global_batch(3, two_cpu_strategy, "data.batch_size") == 6
    assert global_batch(1, tf.distribute.get_strategy(), "data.batch_size") == 1
    # global (runtime.batch_per_replica false, and runs written before the setting): split evenly or refused
    assert global_batch(4, two_cpu_strategy, "data.batch_size", per_replica=False) == 4
    assert global_batch(1, tf.distribute.get_strategy(), "data.batch_size", per_replica=False) == 1
    for batch, suggested in ((1, 2), (3, 2)):
        with pytest.raises(ConfigError, match=rf"split over 2 replicas.*Received: {batch}.*batch_size={suggested}"):
            global_batch(batch, two_cpu_strategy, "data.batch_size", per_replica=False)
