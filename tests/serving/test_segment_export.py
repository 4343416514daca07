"""Segmenting through an export: the REST server's ``segment`` signature and ``mr2ct segment --server``."""

import json
import os
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from seg_fixtures import SIZE, mr_volume_path, segmentation_export, segmentation_run

from mr2ct.data.io import read_volume
from mr2ct.data.preprocess import preprocess_mr
from mr2ct.errors import InputError
from mr2ct.serving import client
from mr2ct.serving.segment import VolumeSegmenter
from mr2ct.serving.server import ModelRepository, ModelServer
from mr2ct_cli.main import cli


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The export served on a free port, and the segmentation run's own segmenter."""
    model_dir = os.path.dirname(segmentation_export(tmp_path_factory).path)
    server = ModelServer(ModelRepository(model_dir), port=0).start()
    local = VolumeSegmenter.from_run(segmentation_run(tmp_path_factory, steps=2), batch_size=4)
    yield server, model_dir, local
    server.stop()


def slices(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 1)).astype("float32")


def test_rest_segment_answers_the_local_labels(served):
    server, _, local = served
    x = slices(3, 0)
    expected = local.run_batch(x)
    assert len(np.unique(expected)) > 1
    out = client.predict(server.url, "hips", {"mr": x}, signature_name="segment")
    assert out["output"].dtype == np.int32
    np.testing.assert_array_equal(out["output"], expected)

    body = json.dumps({"signature_name": "segment", "instances": x[:2].tolist()}).encode()
    request = urllib.request.Request(f"{server.url}/v1/models/hips/versions/1:predict", data=body)
    with urllib.request.urlopen(request, timeout=60) as r:
        rows = json.loads(r.read())["predictions"]
    assert isinstance(rows[0][0][0], int)  # JSON integers, not floats
    np.testing.assert_array_equal(np.array(rows), expected[:2])

    both = client.predict(server.url, "hips", {"mr": x}, signature_name="segment_probabilities")
    assert both["labels"].dtype == np.int32 and both["probabilities"].dtype == np.float32
    np.testing.assert_array_equal(both["labels"], expected)

    with urllib.request.urlopen(f"{server.url}/v1/models/hips/metadata", timeout=60) as r:
        signatures = json.loads(r.read())["metadata"]["signature_def"]["signature_def"]
    segment = signatures["segment"]
    assert segment["outputs"]["labels"]["dtype"] == "DT_INT32"
    assert [d["size"] for d in segment["outputs"]["labels"]["tensor_shape"]["dim"]] == ["-1", str(SIZE), str(SIZE)]
    assert segment["inputs"]["mr"]["name"] == "segment_mr:0"


def test_volume_segmenter_from_an_export_locally_and_through_the_server(served, tmp_path_factory, tmp_path):
    server, model_dir, local = served
    mr_path = mr_volume_path(tmp_path_factory)
    mr_slices, _ = preprocess_mr(read_volume(mr_path), local.preprocess_config)
    expected = local.slices(mr_slices)
    from_export = VolumeSegmenter.from_path(model_dir, batch_size=4)
    assert from_export.preprocessing == local.preprocessing and from_export.run is None
    np.testing.assert_array_equal(from_export.slices(mr_slices), expected)

    out = tmp_path / "labels.nii.gz"
    result = CliRunner().invoke(cli, ["segment", "--model", model_dir, "--server", server.url,
                                      "--input", mr_path, "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_volume(out).array, local.volume(read_volume(mr_path)).array)


def test_exports_without_segmentation_and_runs_with_a_server_are_refused(served, tmp_path):
    _, _, local = served
    bare = tmp_path / "bare" / "1"
    bare.mkdir(parents=True)
    (bare / "mr2ct_export.json").write_text(json.dumps({"name": "bare", "version": 1, "segmentation": None,
                                                         "signatures": {"serving_default": {}}}))
    with pytest.raises(InputError, match="no segmentation"):
        VolumeSegmenter.from_path(tmp_path / "bare")
    with pytest.raises(InputError, match="need an export folder"):
        VolumeSegmenter.from_path(tmp_path / "some_run", server="http://127.0.0.1:9")
