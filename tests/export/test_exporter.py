import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import mr2ct  # noqa: F401  (registers the layers for load_model)
from mr2ct.errors import InputError, Mr2ctError
from mr2ct.export import EXPORT_FILE, export_run, resolve_export

from run_fixtures import CT_WINDOW


def slices(size, n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)).astype("float32")


def expected_hu(model, x):
    g = model.generator_mr_to_ct(x, training=False).numpy()
    lo, hi = CT_WINDOW["hu_min"], CT_WINDOW["hu_max"]
    return (g + 1) / 2 * (hi - lo) + lo


def test_layout_versions_and_contract(tiny_run, tmp_path):
    run_dir, model, config = tiny_run
    out = tmp_path / "saved_models"
    first = export_run(run_dir, out, name="hips")
    second = export_run(run_dir, out, name="hips")
    assert (first.version, second.version, first.step) == (1, 2, 7)
    version_dir = out / "hips" / "1"
    for name in ["saved_model.pb", "variables", "mr_to_ct.keras", "ct_to_mr.keras", EXPORT_FILE]:
        assert (version_dir / name).exists(), name
    info = json.loads((version_dir / EXPORT_FILE).read_text())
    assert info["signatures"]["serving_default"]["outputs"]["ct_hu"]["units"] == "HU"
    assert info["preprocessing"]["ct_intensity"] == CT_WINDOW
    assert sorted(os.listdir(out / "hips")) == ["1", "2"]  # no leftovers
    with pytest.raises(Mr2ctError, match="not above"):
        export_run(run_dir, out, name="hips", version=2)
    assert export_run(run_dir, out, name="hips", version=10).version == 10
    assert resolve_export(out / "hips")[0].endswith("10")
    assert resolve_export(out / "hips", version=2)[1]["version"] == 2


def test_keras_file_predicts_hu(tiny_run, tmp_path):
    run_dir, model, config = tiny_run
    result = export_run(run_dir, tmp_path, name="m")
    loaded = keras.models.load_model(os.path.join(result.path, "mr_to_ct.keras"))
    x = slices(config.data.image_size)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected_hu(model, x), atol=1e-3)
    back = keras.models.load_model(os.path.join(result.path, "ct_to_mr.keras"))
    hu = np.full((1, config.data.image_size, config.data.image_size, 1), 5000.0, "float32")
    clipped = model.generator_ct_to_mr(np.ones_like(hu), training=False).numpy()
    np.testing.assert_allclose(back.predict(hu, verbose=0), clipped, atol=1e-5)  # clipped to the window


def test_saved_model_in_a_fresh_process_matches_keras(tiny_run, tmp_path):
    run_dir, model, config = tiny_run
    result = export_run(run_dir, tmp_path, name="m")
    x = slices(config.data.image_size, seed=3)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({result.path!r})
        fn = loaded.signatures["serving_default"]
        out = fn(mr=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'y.npy')!r}, out["ct_hu"].numpy())
        print(sorted(loaded.signatures.keys()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "['ct_to_mr', 'serving_default']" in proc.stdout
    served = np.load(tmp_path / "y.npy")
    keras_model = keras.models.load_model(os.path.join(result.path, "mr_to_ct.keras"))
    # Within 1e-5 of the value range the network produces ([-1, 1] before the HU scale).
    scale = (CT_WINDOW["hu_max"] - CT_WINDOW["hu_min"]) / 2
    np.testing.assert_allclose(served / scale, keras_model.predict(x, verbose=0) / scale, atol=1e-5)


def test_saved_model_cli_lists_the_signature(tiny_run, tmp_path):
    run_dir, _, config = tiny_run
    result = export_run(run_dir, tmp_path, name="m")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", result.path, "--all"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['mr']" in text and "outputs['ct_hu']" in text
    assert f"(-1, {config.data.image_size}, {config.data.image_size}, 1)" in text


def test_failed_export_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    run_dir, _, _ = tiny_run
    import mr2ct.export.exporter as exporter

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exporter.keras.Model, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        export_run(run_dir, tmp_path, name="m")
    assert os.listdir(tmp_path / "m") == []


def test_bad_inputs(tmp_path, tiny_run):
    with pytest.raises(InputError, match="run folder not found"):
        export_run(tmp_path / "nope", tmp_path)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(InputError, match="preprocessing"):
        export_run(tmp_path / "empty_run", tmp_path)
    with pytest.raises(Mr2ctError, match="model name"):
        export_run(tiny_run[0], tmp_path, name="a/b")
    with pytest.raises(InputError, match="model folder not found"):
        resolve_export(tmp_path / "missing")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="no exported version"):
        resolve_export(tmp_path / "nothing")
