import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mr2ct.errors import Mr2ctError
from mr2ct.models import CycleGAN, PatchDiscriminator, ResnetGenerator
from mr2ct.training.loop import TrainingLoop

SIZE = 32


def dataset():
    rng = np.random.default_rng(0)
    data = {
        "mr": rng.uniform(-1, 1, (8, SIZE, SIZE, 1)).astype("float32"),
        "ct": rng.uniform(-1, 1, (8, SIZE, SIZE, 1)).astype("float32"),
    }
    return tf.data.Dataset.from_tensor_slices(data).repeat().batch(2, drop_remainder=True)


def make_loop(run_dir, total=6, filters=4, seed=0, data=None, **kwargs):
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    model = CycleGAN(
        ResnetGenerator(filters=filters, num_blocks=1, name="g_ct"),
        ResnetGenerator(filters=filters, num_blocks=1, name="g_mr"),
        PatchDiscriminator(filters=filters, name="d_ct"),
        PatchDiscriminator(filters=filters, name="d_mr"),
        image_shape=(SIZE, SIZE, 1), pool_size=3,
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    loop = TrainingLoop(
        model, strategy, dataset() if data is None else data, run_dir, total_steps=total,
        checkpoint_objects={"g_opt": model.generator_optimizer, "d_opt": model.discriminator_optimizer,
                            "pool_ct": model.pool_ct},
        checkpoint_every=2, summary_every=2, progress=False, **kwargs,
    )
    return model, loop


def test_runs_checkpoints_and_resumes_exactly(tmp_path):
    model, loop = make_loop(tmp_path, total=6)
    result = loop.run(max_steps=4)
    assert (result.step, result.finished, result.interrupted) == (4, False, False)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["step"] == 4 and status["state"] == "stopped"
    weights_at_4 = [v.numpy().copy() for v in model.weights]
    pool_at_4 = model.pool_ct.images.numpy().copy()
    assert int(model.generator_optimizer.iterations.numpy()) == 4

    model2, loop2 = make_loop(tmp_path, total=6, seed=1)  # other initial weights
    assert loop2.restore() == 4
    for a, b in zip(weights_at_4, model2.weights):
        np.testing.assert_array_equal(a, b.numpy())
    for a, b in zip(model.generator_optimizer.variables, model2.generator_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # Adam moments too
    np.testing.assert_array_equal(pool_at_4, model2.pool_ct.images.numpy())
    assert int(model2.generator_optimizer.iterations.numpy()) == 4
    result = loop2.run()
    assert (result.step, result.finished, result.resumed_from) == (6, True, 4)
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "finished"
    # a third run has nothing left to do
    _, loop3 = make_loop(tmp_path, total=6)
    assert loop3.run().step == 6
    assert tf.io.gfile.glob(str(tmp_path / "logs" / "*"))


def test_stop_request_saves_a_checkpoint(tmp_path):
    model, loop = make_loop(tmp_path, total=100)
    loop.on_summary = lambda step, samples: loop._request_stop(None, None)  # as SIGINT would, mid-run
    loop.image_every = 1
    result = loop.run()
    assert result.interrupted and result.step == 1  # stops after the step it was in
    assert loop.manager.latest_checkpoint.endswith("ckpt-1")
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "interrupted"


def test_restore_into_a_different_model_is_a_clear_error(tmp_path):
    _, loop = make_loop(tmp_path, total=2)
    loop.run()
    _, other = make_loop(tmp_path, total=2, filters=8)
    with pytest.raises(Mr2ctError, match="cannot restore"):
        other.restore()


def test_no_half_written_checkpoint_is_used(tmp_path):
    _, loop = make_loop(tmp_path, total=4)
    loop.run(max_steps=2)
    # A save killed midway leaves temporary files but never updates the index.
    (tmp_path / "checkpoints" / "ckpt-4_temp").mkdir()
    (tmp_path / "checkpoints" / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 10)
    _, loop2 = make_loop(tmp_path, total=4)
    assert loop2.restore() == 2


def test_a_worker_removes_the_temporary_checkpoints_its_killed_predecessors_left(tmp_path, monkeypatch):
    """A non-chief worker's throw-away checkpoint folder carries its process id; the next one made removes
    the folders of the same role whose process is gone, and no other."""
    import subprocess
    import sys
    import tempfile
    import types

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    stale = tmp_path / f"mr2ct-worker1-checkpoint-{dead_pid}-abc"
    alive = tmp_path / f"mr2ct-worker1-checkpoint-{os.getppid()}-def"  # a running process: kept
    other_role = tmp_path / f"mr2ct-worker2-checkpoint-{dead_pid}-ghi"  # another worker's: kept
    for folder in (stale, alive, other_role):
        (folder / "checkpoints").mkdir(parents=True)
    loop = types.SimpleNamespace(role=types.SimpleNamespace(task_type="worker", task_id=1))
    made = TrainingLoop._temporary_checkpoint_folder(loop)
    assert os.path.basename(made).startswith(f"mr2ct-worker1-checkpoint-{os.getpid()}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other_role.name, os.path.basename(made)])


def test_data_phases_call_the_dataset_factory_again_at_their_step(tmp_path):
    """Coarse-to-fine: smaller batches (which bypass the full-size pools) up to step 4, then full size."""
    calls = []

    def factory(start):
        calls.append(start)
        side = 24 if start < 4 else SIZE  # smaller than the pools hold (24: the discriminators' smallest)
        rng = np.random.default_rng(start)
        data = {k: rng.uniform(-1, 1, (8, side, side, 1)).astype("float32") for k in ("mr", "ct")}
        return tf.data.Dataset.from_tensor_slices(data).repeat().batch(2, drop_remainder=True)

    model, loop = make_loop(tmp_path, total=6, data=factory, data_phases=(4,))
    assert loop.run(max_steps=4).step == 4
    assert calls == [0] and int(model.pool_ct.count.numpy()) == 0  # the coarse steps left the pool empty
    model, loop = make_loop(tmp_path, total=6, data=factory, data_phases=(4,))
    assert loop.run().step == 6
    assert calls == [0, 4] and int(model.pool_ct.count.numpy()) == 3  # two full-size steps of 2 images, pool 3
    # uninterrupted, the factory is called at the start and at the phase's step
    calls.clear()
    model, loop = make_loop(tmp_path / "again", total=6, data=factory, data_phases=(4,))
    assert loop.run().step == 6 and calls == [0, 4]
    with pytest.raises(ValueError, match="callable"):
        make_loop(tmp_path / "bad", data_phases=(2,))
