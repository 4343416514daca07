"""TensorBoard scalars read back from real event files, and the training-curve figure drawn from them."""

import glob

import matplotlib.image
import numpy as np
import tensorflow as tf

from mr2ct.evaluation.plots import training_curves
from mr2ct.evaluation.scalars import read_scalars


def _write(logdir, steps, scale=1.0, image=False):
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step in steps:
            tf.summary.scalar("loss/cycle", scale * step, step=step)
            tf.summary.scalar("learning_rate", 2e-4, step=step)
            if image:
                tf.summary.image("mr_to_ct", tf.zeros((1, 4, 4, 1)), step=step)
    writer.close()


def test_scalars_come_back_by_tag_and_step(tmp_path):
    _write(tmp_path, [10, 20, 30], image=True)
    scalars = read_scalars(tmp_path)
    assert set(scalars) == {"loss/cycle", "learning_rate"}  # images are not scalars
    steps, values = scalars["loss/cycle"]
    np.testing.assert_array_equal(steps, [10, 20, 30])
    np.testing.assert_allclose(values, [10, 20, 30])
    np.testing.assert_allclose(scalars["learning_rate"][1], 2e-4, rtol=1e-6)


def test_a_resumed_run_keeps_the_last_value_of_a_step(tmp_path):
    import time

    _write(tmp_path, [10, 20, 30])
    time.sleep(1.1)  # a second event file (the name holds the time)
    _write(tmp_path, [20, 30, 40], scale=2.0)
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 2
    steps, values = read_scalars(tmp_path)["loss/cycle"]
    np.testing.assert_array_equal(steps, [10, 20, 30, 40])
    np.testing.assert_allclose(values, [10, 40, 60, 80])


def test_a_truncated_file_is_read_up_to_its_last_whole_record(tmp_path):
    _write(tmp_path, list(range(1, 51)))
    (path,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) - 30])  # a killed run: the last record cut short
    scalars = read_scalars(tmp_path)
    steps, values = scalars["loss/cycle"]
    np.testing.assert_array_equal(steps, np.arange(1, 51))
    np.testing.assert_allclose(values, steps)
    np.testing.assert_array_equal(scalars["learning_rate"][0], np.arange(1, 50))  # step 50's record was cut


def test_no_event_files_no_scalars(tmp_path):
    assert read_scalars(tmp_path) == {}
    assert read_scalars(tmp_path / "missing") == {}


def test_training_curves_figure(tmp_path):
    steps = np.arange(0, 200, 10)
    runs = {"GC": {"loss/gc": (steps, np.linspace(0.9, 0.5, steps.size)), "loss/cycle": (steps, np.exp(-steps / 50))},
            "no GC": {"loss/cycle": (steps, np.exp(-steps / 80))}, "empty": {}}
    path = tmp_path / "curves.png"
    training_curves(runs, path, [("loss/cycle", "cycle"), ("loss/gc", "GC")])
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > 2 * image.shape[0] > 300
    assert np.ptp(image[..., :3]) > 0.5  # lines drawn, not a blank canvas
