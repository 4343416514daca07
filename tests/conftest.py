"""Test session set-up: quiet TensorFlow and two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initialises, so
distribution tests can run ``MirroredStrategy(["CPU:0", "CPU:1"])`` on this
machine; everything else keeps running on ``CPU:0`` as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised by an earlier import
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """The ``MirroredStrategy`` over the two logical CPUs, one for the whole session.

    Strategies made one after another in a process number their collective
    operations from the same start, and TensorFlow's collective executor then
    takes a new all-reduce for an earlier one of another shape; so
    ``make_strategy`` gives one strategy per device list, as here.
    """
    from mr2ct.training.strategy import make_strategy

    return make_strategy("mirrored", devices=["CPU:0", "CPU:1"])
