import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from run_fixtures import make_run  # noqa: E402

from mr2ct.errors import InputError  # noqa: E402
from mr2ct.export import export_run  # noqa: E402
from mr2ct.serving import client  # noqa: E402
from mr2ct.serving.server import ModelRepository, ModelServer  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    _, config = make_run(root / "run")
    export_run(root / "run", root / "saved_models", name="hips")
    export_run(root / "run", root / "saved_models", name="hips")
    repository = ModelRepository(root / "saved_models" / "hips")
    server = ModelServer(repository, port=0, max_bytes=2_000_000).start()
    yield server, config.data.image_size, root
    server.stop()


def post(url, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def slices(size, n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)).astype("float32")


def test_status_and_metadata(served):
    server, size, _ = served
    code, answer = get(f"{server.url}/v1/models/hips")
    assert code == 200 and [v["version"] for v in answer["model_version_status"]] == ["2", "1"]
    code, answer = get(f"{server.url}/v1/models/hips/versions/1/metadata")
    assert code == 200 and answer["model_spec"]["version"] == "1"
    sig = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["mr"]["tensor_shape"]["dim"][1]["size"] == str(size)
    assert "ct_hu" in sig["outputs"]
    assert sig["inputs"]["mr"]["dtype"] == sig["outputs"]["ct_hu"]["dtype"] == "DT_FLOAT"  # TF Serving's names


def test_row_and_columnar_formats_agree_with_the_model(served):
    server, size, root = served
    x = slices(size, 2, 0)
    import tensorflow as tf

    expected = tf.saved_model.load(str(root / "saved_models" / "hips" / "2")).signatures["serving_default"](
        mr=tf.constant(x))["ct_hu"].numpy()
    code, rows = post(f"{server.url}/v1/models/hips:predict", json.dumps({"instances": x.tolist()}).encode())
    assert code == 200
    np.testing.assert_allclose(np.array(rows["predictions"]), expected, atol=1e-3)
    out = client.predict(server.url, "hips", {"mr": x}, version=1)
    np.testing.assert_allclose(out["output"], expected, atol=1e-3)
    code, keyed = post(f"{server.url}/v1/models/hips/versions/2:predict",
                       json.dumps({"instances": [{"mr": s.tolist()} for s in x]}).encode())
    assert code == 200 and np.allclose(np.array(keyed["predictions"]), expected, atol=1e-3)
    back = client.predict(server.url, "hips", {"ct_hu": expected}, signature_name="ct_to_mr")
    assert back["output"].shape == x.shape


@pytest.mark.parametrize(
    "path, body, code, fragment",
    [
        ("/v1/models/hips:predict", b"{not json", 400, "JSON Parse error"),
        ("/v1/models/hips:predict", b"[1, 2]", 400, "JSON object"),
        ("/v1/models/hips:predict", json.dumps({"instances": [[[1.0]]]}).encode(), 400, "shape"),
        ("/v1/models/hips:predict", json.dumps({"inputs": {"mr": "abc"}}).encode(), 400, "float32"),
        ("/v1/models/hips:predict", json.dumps({"instances": [], "inputs": []}).encode(), 400, "exactly one"),
        ("/v1/models/hips:predict", json.dumps({"inputs": {"ct": [1.0]}}).encode(), 400, "missing input 'mr'"),
        ("/v1/models/hips:predict", json.dumps({"signature_name": "nope", "inputs": [1.0]}).encode(), 400, "nope"),
        ("/v1/models/other:predict", json.dumps({"inputs": [1.0]}).encode(), 404, "other"),
        ("/v1/models/hips/versions/9:predict", json.dumps({"inputs": [1.0]}).encode(), 404, "9"),
        ("/v2/whatever", b"{}", 404, "Malformed"),
        # deeper than the JSON parser recurses, and a tensor of 40 dimensions
        ("/v1/models/hips:predict", b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
        ("/v1/models/hips:predict", b'{"inputs": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", 400, "has shape [1, 1, 1"),
    ],
)
def test_errors_are_json_4xx_and_server_keeps_serving(served, path, body, code, fragment):
    server, size, _ = served
    status, answer = post(server.url + path, body)
    assert status == code and fragment in answer["error"]
    assert get(f"{server.url}/v1/models/hips")[0] == 200  # still up


def test_nan_and_oversized_payloads(served):
    server, size, _ = served
    x = slices(size, 1, 1)
    x[0, 0, 0, 0] = np.nan
    status, answer = post(f"{server.url}/v1/models/hips:predict",
                          json.dumps({"inputs": {"mr": x.tolist()}}).replace("NaN", "NaN").encode())
    assert status == 400 and "NaN" in answer["error"]
    big = json.dumps({"instances": slices(size, 200, 2).tolist()}).encode()
    assert len(big) > 2_000_000
    status, answer = post(f"{server.url}/v1/models/hips:predict", big)
    assert status == 413 and "exceeds" in answer["error"]
    assert get(f"{server.url}/v1/models/hips")[0] == 200


def test_concurrent_requests_each_get_their_own_answer(served):
    server, size, root = served
    inputs = [slices(size, 1, seed) for seed in range(16)]
    import tensorflow as tf

    fn = tf.saved_model.load(str(root / "saved_models" / "hips" / "2")).signatures["serving_default"]
    expected = [fn(mr=tf.constant(x))["ct_hu"].numpy() for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda x: client.predict(server.url, "hips", {"mr": x})["output"], inputs))
    for got, want in zip(answers, expected):
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_repository_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ModelRepository(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no exported version"):
        ModelRepository(tmp_path / "empty")


def test_client_reports_unreachable_server():
    with pytest.raises(client.ServingError, match="cannot reach"):
        client.status("http://127.0.0.1:9", "hips")
