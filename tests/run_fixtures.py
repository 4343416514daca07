"""Shared test helpers: prepared phantoms, a run folder as training leaves it, `mr2ct` as a process."""

import json
import os
import sys

import keras
import tensorflow as tf

from mr2ct.config import preset
from mr2ct.training import builders
from mr2ct.training.tracking import checkpoint_items
from mr2ct.training.trainer import CONFIG_FILE, PREPROCESSING_FILE

CT_WINDOW = {"hu_min": -1024.0, "hu_max": 2048.0}


def preprocessing_record(config):
    """What `mr2ct prepare` records for the data of ``config`` (small phantoms: no N4 shrink)."""
    from mr2ct.data.preprocess import PreprocessConfig

    pre = PreprocessConfig(image_size=config.data.image_size, n4_shrink_factor=1,
                           ct_hu_min=CT_WINDOW["hu_min"], ct_hu_max=CT_WINDOW["hu_max"])
    return {"image_size": config.data.image_size, "config": pre.to_dict(), "ct_intensity": dict(CT_WINDOW)}


def make_run(run_dir, step=7, seed=0):
    """A run folder as training leaves it: config, preprocessing record, a checkpoint."""
    config = preset("tiny")
    os.makedirs(run_dir, exist_ok=True)
    config.to_yaml(os.path.join(run_dir, CONFIG_FILE))
    with open(os.path.join(run_dir, PREPROCESSING_FILE), "w") as f:
        json.dump(preprocessing_record(config), f)
    keras.utils.set_random_seed(seed)
    model = builders.build_cyclegan(config)
    checkpoint = tf.train.Checkpoint(step=tf.Variable(step, dtype=tf.int64), **checkpoint_items(model=model))
    tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 3).save(step)
    return model, config




def prepare_phantoms(root, subjects=3):
    """``root/prepared``: ``subjects`` small MR and CT phantoms prepared for the tiny preset."""
    from mr2ct.data.phantom import write_phantom_dataset
    from mr2ct.data.prepare import prepare_dataset
    from mr2ct.training.builders import build_preprocess_config

    write_phantom_dataset(root / "phantom", subjects, seed=3, size="small")
    prepare_dataset(root / "prepared", mr_dir=root / "phantom" / "mr", ct_dir=root / "phantom" / "ct",
                    config=build_preprocess_config(preset("tiny")), workers=1)
    return root / "prepared"


def mr2ct_command(*args):
    """The ``mr2ct`` command line as a process runs it (this interpreter, the installed package)."""
    return [sys.executable, "-c", "from mr2ct_cli.main import cli; cli()", *map(str, args)]


def checkpoint_step(run_dir):
    """``(step, path)`` of a run folder's latest checkpoint, ``(0, None)`` without one."""
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return (int(latest.rsplit("-", 1)[1]), latest) if latest else (0, None)


def checkpoint_values(path):
    """The model variables of a checkpoint, by name."""
    reader = tf.train.load_checkpoint(path)
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model/"))
    assert names, "no model variables in the checkpoint"
    return {n: reader.get_tensor(n) for n in names}
