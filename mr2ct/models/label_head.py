"""Class logits to labels and probabilities, as a layer that saves with the model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mr2ct")
class LabelHead(keras.layers.Layer):
    """Per-pixel class logits to integer labels and class probabilities.

    Returns ``(labels, probabilities)``: ``labels`` is the argmax over the
    last axis as int32 ``(..., )`` (the logits' shape without the class
    axis), ``probabilities`` the softmax over it as float32 ``(..., classes)``.
    The argmax of the logits and of the probabilities agree, so a model ending
    in this layer gives the same labels as ``argmax(logits)``.

    It has no weights and no arguments besides the base layer's; it exists so
    that a model with integer outputs saves to and loads from ``.keras``
    files (a ``Lambda`` layer would not load in safe mode).
    """

    def call(self, logits):
        logits = ops.cast(logits, "float32")
        return ops.cast(ops.argmax(logits, axis=-1), "int32"), ops.softmax(logits, axis=-1)

    def compute_output_spec(self, logits):
        return (
            keras.KerasTensor(tuple(logits.shape[:-1]), dtype="int32"),
            keras.KerasTensor(tuple(logits.shape), dtype="float32"),
        )
