"""Shared test helpers: a run folder as training leaves it."""

import json
import os

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


