import keras
import numpy as np

from mr2ct.models import LabelHead


def test_labels_are_the_argmax_and_probabilities_the_softmax():
    logits = np.random.default_rng(0).normal(size=(2, 4, 4, 5)).astype("float32")
    labels, probabilities = LabelHead()(logits)
    assert labels.dtype == "int32" and tuple(labels.shape) == (2, 4, 4)
    np.testing.assert_array_equal(np.asarray(labels), logits.argmax(-1))
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(probabilities), expected, atol=1e-6)


def test_symbolic_outputs_and_config_round_trip():
    labels, probabilities = LabelHead(name="head")(keras.KerasTensor((None, 8, 8, 3)))
    assert (labels.dtype, labels.shape) == ("int32", (None, 8, 8))
    assert (probabilities.dtype, probabilities.shape) == ("float32", (None, 8, 8, 3))
    layer = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(LabelHead(name="head")))
    assert isinstance(layer, LabelHead) and layer.name == "head"
