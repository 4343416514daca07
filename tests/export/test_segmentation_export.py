"""Exports with segmentation: the ``segment`` signatures, segmenter.keras and their contract."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import mr2ct.models  # noqa: F401  (registers the layers for load_model)
from mr2ct.errors import InputError
from mr2ct.export import EXPORT_FILE, SEGMENTER_FILE, export_run
from mr2ct.labels import LABELS, NUM_CLASSES
from mr2ct.training.segmentation import load_segmentation_run

from run_fixtures import make_run
from seg_fixtures import SIZE, segmentation_export, segmentation_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The export, its description, and the segmentation run's model restored in this process."""
    result = segmentation_export(tmp_path_factory)
    info = json.loads(open(os.path.join(result.path, EXPORT_FILE)).read())
    return result, info, load_segmentation_run(segmentation_run(tmp_path_factory, steps=2)).model


def slices(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32")


def reference(model, x):
    """Labels and probabilities of the segmentation run's own model, in this process."""
    logits = model(x).numpy()
    return np.argmax(logits, axis=-1), tf.nn.softmax(logits).numpy()


def test_description_records_the_segmentation(exported):
    result, info, _ = exported
    assert (result.step, result.segmentation_step, result.shares_generator) == (7, 2, True)
    assert os.path.exists(os.path.join(result.path, SEGMENTER_FILE))
    seg = info["segmentation"]
    assert seg["labels"] == {str(k): v for k, v in LABELS.items()} and seg["num_classes"] == NUM_CLASSES
    assert seg["shares_serving_default_generator"] is True and seg["step"] == 2
    assert seg["cyclegan"]["run"] == info["source_run"] and seg["cyclegan"]["step"] == 7
    assert info["keras_models"]["segmenter"] == SEGMENTER_FILE
    assert info["signatures"]["segment"]["outputs"] == {
        "labels": {"dtype": "int32", "shape": [-1, SIZE, SIZE], "units": "label (segmentation.labels)"}}
    probabilities = info["signatures"]["segment_probabilities"]["outputs"]["probabilities"]
    assert probabilities["shape"] == [-1, SIZE, SIZE, NUM_CLASSES]


def test_fresh_process_saved_model_keras_file_and_saved_model_cli(exported, tmp_path):
    result, _, model = exported
    x = slices(seed=1)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({result.path!r})
        x = tf.constant(np.load({str(tmp_path / 'x.npy')!r}))
        labels = loaded.signatures["segment"](mr=x)
        both = loaded.signatures["segment_probabilities"](mr=x)
        import keras, mr2ct.models  # a fresh process: mr2ct.models registers the layers
        keras_labels = keras.models.load_model({os.path.join(result.path, SEGMENTER_FILE)!r}).predict(
            x.numpy(), verbose=0)["labels"]
        np.savez({str(tmp_path / 'y.npz')!r}, labels=labels["labels"].numpy(), keras_labels=keras_labels,
                 labels2=both["labels"].numpy(), probabilities=both["probabilities"].numpy())
        print(sorted(loaded.signatures.keys()), sorted(labels), labels["labels"].dtype.name)
        """
    )
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    # Both processes at once: each pays for importing TensorFlow.
    python = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    show = subprocess.run([cli, "show", "--dir", result.path, "--all"], capture_output=True, text=True, timeout=300)
    out, err = python.communicate(timeout=300)
    assert python.returncode == 0, err[-2000:]
    assert "['ct_to_mr', 'segment', 'segment_probabilities', 'serving_default'] ['labels'] int32" in out
    served = np.load(tmp_path / "y.npz")
    labels, probabilities = reference(model, x)
    assert len(np.unique(labels)) > 1  # not a constant map, so equality means something
    np.testing.assert_array_equal(served["labels"], labels)
    np.testing.assert_array_equal(served["labels2"], labels)
    np.testing.assert_array_equal(served["keras_labels"], labels)
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-5)

    assert show.returncode == 0, show.stderr[-2000:]
    text = show.stdout
    segment = text[text.index("signature_def['segment']"):text.index("signature_def['segment_probabilities']")]
    assert "inputs['mr']" in segment and f"(-1, {SIZE}, {SIZE}, 1)" in segment
    assert "outputs['labels']" in segment and "DT_INT32" in segment and f"(-1, {SIZE}, {SIZE})\n" in segment
    assert "outputs['probabilities']" in text and f"(-1, {SIZE}, {SIZE}, {NUM_CLASSES})" in text


def test_segmenter_keras_file_predicts_the_same(exported):
    result, _, model = exported
    loaded = keras.models.load_model(os.path.join(result.path, SEGMENTER_FILE))
    x = slices(seed=2)
    out = loaded.predict(x, verbose=0)
    labels, probabilities = reference(model, x)
    assert out["labels"].dtype == np.int32 and out["labels"].shape == (3, SIZE, SIZE)
    np.testing.assert_array_equal(out["labels"], labels)
    np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)


def test_segment_uses_the_segmentation_runs_own_generator(exported, tmp_path):
    """Another CycleGAN run (other weights): serving_default uses it, segment the seg run's generator."""
    _, _, model = exported
    other_dir = tmp_path / "other_gan"
    other, _ = make_run(other_dir, step=3, seed=99)
    seg_dir = exported[1]["segmentation"]["source_run"]
    result = export_run(other_dir, tmp_path / "saved_models", name="m", segmentation=seg_dir)
    info = json.loads(open(os.path.join(result.path, EXPORT_FILE)).read())
    assert result.shares_generator is False and info["step"] == 3
    assert info["segmentation"]["shares_serving_default_generator"] is False
    assert "own stored generator" in info["segmentation"]["note"]
    loaded = tf.saved_model.load(result.path)
    x = slices(n=2, seed=3)
    _, probabilities = reference(model, x)
    got = loaded.signatures["segment_probabilities"](mr=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(got, probabilities, atol=1e-5)
    hu = loaded.signatures["serving_default"](mr=tf.constant(x))["ct_hu"].numpy()
    expected = other.generator_mr_to_ct(x, training=False).numpy()
    np.testing.assert_allclose((hu - 512.0) / 1536.0, expected, atol=1e-5)  # the CT window [-1024, 2048]


def test_refusals(exported, tmp_path):
    result, info, _ = exported
    gan_dir, seg_dir = info["source_run"], info["segmentation"]["source_run"]
    with pytest.raises(InputError, match="not a segmentation run folder"):
        export_run(gan_dir, tmp_path, segmentation=gan_dir)
    with pytest.raises(InputError, match="is a segmentation run"):
        export_run(seg_dir, tmp_path, segmentation=seg_dir)
    with pytest.raises(InputError, match="segmentation run folder not found"):
        export_run(gan_dir, tmp_path, segmentation=tmp_path / "nope")
    assert not os.path.exists(tmp_path / "mr2ct")  # nothing written
