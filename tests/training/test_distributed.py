"""One step under MirroredStrategy over two (logical CPU) replicas equals one single-device step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.models import CycleGAN, PatchDiscriminator, ResnetGenerator
from mr2ct.training.strategy import make_strategy, resolve_precision

SIZE = 32


def build(strategy, optimizer):
    with strategy.scope():
        keras.utils.set_random_seed(7)
        model = CycleGAN(
            ResnetGenerator(filters=4, num_blocks=1, name="g_ct"),
            ResnetGenerator(filters=4, num_blocks=1, name="g_mr"),
            PatchDiscriminator(filters=4, name="d_ct"),
            PatchDiscriminator(filters=4, name="d_mr"),
            image_shape=(SIZE, SIZE, 1),
            pool_size=8,  # not full after one step: the pool returns its input
        )
        model.compile(optimizer(), optimizer())
    return model


def one_step(strategy, model, data):
    ds = tf.data.Dataset.from_tensors(data)
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step(it):
        return strategy.run(model.train_step, args=(next(it),))

    step(iterator)
    return {m.name: float(m.result()) for m in model.metrics}


def test_mirrored_step_equals_single_device_step(two_cpu_strategy):
    """SGD makes the update proportional to the gradient, so a wrong loss scale
    (e.g. dividing by the per-replica instead of the global batch) shows at once;
    Adam's first step, about lr * sign(g), would hide it."""
    optimizer = lambda: keras.optimizers.SGD(0.5)  # noqa: E731
    rng = np.random.default_rng(0)
    data = {
        "mr": rng.uniform(-1, 1, (4, SIZE, SIZE, 1)).astype("float32"),
        "ct": rng.uniform(-1, 1, (4, SIZE, SIZE, 1)).astype("float32"),
    }
    single = build(tf.distribute.OneDeviceStrategy("CPU:0"), optimizer)
    mirrored_strategy = make_strategy("mirrored", devices=["CPU:0", "CPU:1"])
    assert isinstance(mirrored_strategy, tf.distribute.MirroredStrategy)
    assert mirrored_strategy.num_replicas_in_sync == 2
    assert mirrored_strategy is two_cpu_strategy  # one per process and device list
    mirrored = build(mirrored_strategy, optimizer)
    for a, b in zip(single.trainable_variables, mirrored.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    before = [v.numpy().copy() for v in single.trainable_variables]
    logs_single = one_step(tf.distribute.OneDeviceStrategy("CPU:0"), single, data)
    logs_mirrored = one_step(mirrored_strategy, mirrored, data)

    moved = []
    for a, b, start in zip(single.trainable_variables, mirrored.trainable_variables, before):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5, rtol=1e-4)
        moved.append(np.abs(a.numpy() - start).max())
    # The update is far larger than the tolerance (biases in front of an
    # instance norm get no gradient, so not every variable moves).
    assert sorted(moved)[len(moved) // 2] > 1e-3
    for name, value in logs_single.items():  # metrics are global-batch means on both
        assert logs_mirrored[name] == pytest.approx(value, rel=1e-4), name


def test_precision_resolution_on_cpu():
    # "auto" on a CPU: bfloat16 with AMX, float32 without (tests/training/test_precision_auto.py: every branch)
    assert resolve_precision("auto", gpus=[], cpu_flags=["avx2", "amx_bf16"]) == "mixed_bfloat16"
    assert resolve_precision("auto", gpus=[], cpu_flags=["avx2", "avx512f"]) == "float32"
    assert resolve_precision("off") == "float32"
    assert resolve_precision("float16") == "mixed_float16"
    with pytest.raises(ValueError):
        resolve_precision("int8")


def test_auto_mirrors_over_two_devices_and_the_paper_batch_of_one_starts_on_them(tmp_path):
    """``--preset paper`` on two devices: auto picks MirroredStrategy and batch 1 per replica trains, 2 a step.

    Two logical CPUs stand in for two GPUs: ``make_strategy("auto", devices)`` chooses over them as it
    chooses over the visible GPUs. The networks are shrunk (never train a paper-size network in a test);
    the batch settings are the paper preset's.
    """
    from mr2ct.config import preset
    from mr2ct.training.trainer import global_batch, train_cyclegan
    from run_fixtures import prepare_phantoms

    strategy = make_strategy("auto", devices=["CPU:0", "CPU:1"])
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 2
    assert isinstance(make_strategy("auto", devices=["CPU:0"]), type(tf.distribute.get_strategy()))
    paper = preset("paper")
    assert (paper.data.batch_size, paper.runtime.batch_per_replica) == (1, True)
    assert global_batch(paper.data.batch_size, strategy, "data.batch_size") == 2

    prepared = prepare_phantoms(tmp_path)
    config = paper.override([
        "data.image_size=32", "model.generator_filters=4", "model.generator_blocks=1",
        "model.discriminator_filters=4", "loss.pool_size=4", "train.constant_steps=1", "train.decay_steps=1",
        "train.checkpoint_every=2",
    ])
    result = train_cyclegan(prepared, tmp_path / "run", config=config, progress=False, strategy=strategy)
    assert result.finished and result.step == 2
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")
