"""A local HTTP endpoint speaking TF Serving's REST API for mr2ct exports.

For machines without TF Serving: ``mr2ct serve --model saved_models/<name>``
loads every version of the model (or the one given) and answers

* ``GET  /v1/models/<name>[/versions/<v>]``: version status;
* ``GET  /v1/models/<name>[/versions/<v>]/metadata``: the signatures;
* ``POST /v1/models/<name>[/versions/<v>]:predict``: with ``{"instances": [...]}``
  (row format; answer ``{"predictions": [...]}``) or ``{"inputs": ...}``
  (columnar format; answer ``{"outputs": ...}``), and an optional
  ``"signature_name"`` (default ``serving_default``; an export with
  segmentation also has ``segment``, whose int32 ``labels`` come back as
  JSON integers).

Errors are TF Serving-style JSON, ``{"error": "..."}``, with a 4xx code for
bad requests (bad JSON, wrong shape or dtype, unknown model, version or
signature, oversized payload); the server keeps serving. Requests are served
concurrently on threads; the SavedModel functions are thread-safe.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from mr2ct.errors import InputError
from mr2ct.export.exporter import EXPORT_FILE, existing_versions

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$")


class RequestError(Exception):
    """A request that gets a 4xx answer."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class LoadedVersion:
    version: int
    path: str
    signatures: dict  # name -> ConcreteFunction


class ModelRepository:
    """The versions of one exported model, loaded from ``saved_models/<name>``."""

    def __init__(self, model_dir, name=None, versions=None):
        model_dir = os.fspath(model_dir).rstrip("/")
        if os.path.exists(os.path.join(model_dir, EXPORT_FILE)):  # a single version folder
            version_dirs = {int(os.path.basename(model_dir)): model_dir}
            model_dir = os.path.dirname(model_dir)
        else:
            if not os.path.isdir(model_dir):
                raise InputError(model_dir, "model folder not found")
            available = existing_versions(model_dir)
            if versions:
                missing = sorted(set(versions) - set(available))
                if missing:
                    raise InputError(model_dir, f"version(s) {missing} not found; available: {available}")
                available = sorted(versions)
            if not available:
                raise InputError(model_dir, "no exported version here")
            version_dirs = {v: os.path.join(model_dir, str(v)) for v in available}
        self.name = name or os.path.basename(model_dir)
        self.versions = {}
        for version, path in version_dirs.items():
            try:
                loaded = tf.saved_model.load(path)
            except (OSError, ValueError, tf.errors.OpError) as exc:
                raise InputError(path, f"cannot load the SavedModel ({str(exc).splitlines()[0][:200]})") from None
            self.versions[version] = LoadedVersion(version, path, dict(loaded.signatures))
            self.versions[version]._keepalive = loaded  # signatures need the object alive

    @property
    def latest(self) -> int:
        return max(self.versions)

    def get(self, version: int | None) -> LoadedVersion:
        if version is None:
            return self.versions[self.latest]
        if version not in self.versions:
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"Servable not found for request: Specific({self.name}, {version})",
            )
        return self.versions[version]


def signature_metadata(function, signature_name="serving_default") -> dict:
    """TF Serving's signature_def JSON for a concrete function."""
    def tensor_info(spec, name):
        dims = [{"size": str(-1 if d is None else d)} for d in spec.shape]
        # TensorFlow's own enum names, as TF Serving prints them (DT_FLOAT, DT_INT32)
        dtype = types_pb2.DataType.Name(spec.dtype.as_datatype_enum)
        return {"dtype": dtype, "tensor_shape": {"dim": dims}, "name": name}

    inputs = {k: tensor_info(v, f"{signature_name}_{k}:0")
              for k, v in function.structured_input_signature[1].items()}
    outputs = {k: tensor_info(v, f"StatefulPartitionedCall:{i}") for i, (k, v) in enumerate(sorted(function.structured_outputs.items()))}
    return {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}


def run_predict(function, body: dict):
    """Answer a predict request body with a concrete function."""
    specs = function.structured_input_signature[1]
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise RequestError(HTTPStatus.BAD_REQUEST, "JSON object must have exactly one of 'instances' or 'inputs'")
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'instances' must be a non-empty list")
        if all(isinstance(i, dict) for i in instances):
            columns = {k: [i.get(k) for i in instances] for k in specs}
        elif len(specs) == 1:
            columns = {next(iter(specs)): instances}
        else:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"instances must be objects with keys {sorted(specs)}")
    else:
        inputs = body["inputs"]
        columns = inputs if isinstance(inputs, dict) else ({next(iter(specs)): inputs} if len(specs) == 1 else None)
        if columns is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"'inputs' must be an object with keys {sorted(specs)}")
    kwargs = {}
    for key, spec in specs.items():
        if columns.get(key) is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"missing input '{key}'")
        try:
            array = np.asarray(columns[key], dtype=spec.dtype.as_numpy_dtype)
        except (ValueError, TypeError, RecursionError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"input '{key}' is not a {spec.dtype.name} tensor: {exc}") from None
        if array.dtype == object or not spec.shape.is_compatible_with(array.shape):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"input '{key}' has shape {list(array.shape)}, expected {[-1 if d is None else d for d in spec.shape]}",
            )
        if not np.all(np.isfinite(array)):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"input '{key}' contains NaN or Inf")
        kwargs[key] = tf.constant(array)
    unknown = set(columns) - set(specs)
    if unknown:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown input(s) {sorted(unknown)}; expected {sorted(specs)}")
    outputs = {k: v.numpy() for k, v in function(**kwargs).items()}
    if row_format:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}


def make_handler(repository: ModelRepository, max_bytes: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mr2ct-serve"

        def log_message(self, fmt, *args):  # quiet by default; errors are in the answers
            if getattr(self.server, "verbose", False):
                super().log_message(fmt, *args)

        def _send(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            match = _PATH.match(self.path.split("?", 1)[0])
            if not match:
                raise RequestError(HTTPStatus.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
            if match["name"] != repository.name:
                raise RequestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: Latest({match['name']})")
            version = int(match["version"]) if match["version"] else None
            return repository.get(version), match["rest"]

        def _discard(self, length, chunk=1 << 20):
            while length > 0:
                read = self.rfile.read(min(chunk, length))
                if not read:
                    break
                length -= len(read)

        def do_GET(self):
            try:
                loaded, rest = self._route()
                if rest == ":predict":
                    raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "predict needs POST")
                if rest == "/metadata":
                    self._send(HTTPStatus.OK, {
                        "model_spec": {"name": repository.name, "signature_name": "", "version": str(loaded.version)},
                        "metadata": {"signature_def": {"signature_def": {
                            name: signature_metadata(fn, name) for name, fn in loaded.signatures.items()}}},
                    })
                    return
                versions = [loaded] if self.path.count("/versions/") else [repository.versions[v] for v in sorted(repository.versions, reverse=True)]
                self._send(HTTPStatus.OK, {"model_version_status": [
                    {"version": str(v.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                    for v in versions]})
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_bytes:
                    self._discard(length)  # so the client can read the answer
                    raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                       f"request of {length} bytes exceeds the limit of {max_bytes} bytes")
                raw = self.rfile.read(length)
                loaded, rest = self._route()
                if rest != ":predict":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"Malformed request: POST {self.path}")
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise RequestError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {exc}") from None
                except RecursionError:
                    raise RequestError(HTTPStatus.BAD_REQUEST, "JSON Parse error: nested too deeply") from None
                if not isinstance(body, dict):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
                signature = body.get("signature_name") or "serving_default"
                if signature not in loaded.signatures:
                    raise RequestError(HTTPStatus.BAD_REQUEST,
                                       f"Serving signature name: \"{signature}\" not found in signature def")
                self._send(HTTPStatus.OK, run_predict(loaded.signatures[signature], body))
            except RequestError as exc:
                self._send(exc.status, {"error": str(exc)})
            except tf.errors.OpError as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc).splitlines()[0]})
            except Exception as exc:  # never close a connection without an answer
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"[:500]})

    return Handler


class ModelServer:
    """Serves a :class:`ModelRepository` on ``host:port`` (port 0 picks a free one).

    Args:
        repository: the loaded model.
        host: address to bind. Defaults to `"127.0.0.1"` (this machine only).
        port: TCP port. Defaults to `8501` (TF Serving's REST port).
        max_bytes: largest request body accepted. Defaults to 256 MiB.
    """

    def __init__(self, repository, host="127.0.0.1", port=8501, max_bytes=DEFAULT_MAX_BYTES, verbose=False):
        self.repository = repository
        self.httpd = ThreadingHTTPServer((host, port), make_handler(repository, max_bytes))
        self.httpd.daemon_threads = True
        self.httpd.verbose = verbose
        self._thread = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self):
        self.httpd.serve_forever()

    def start(self) -> "ModelServer":
        """Serve on a background thread (for tests and scripts)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
