"""A small client for TF Serving's REST API (TF Serving itself or ``mr2ct serve``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from mr2ct.errors import Mr2ctError


class ServingError(Mr2ctError):
    """The server answered with an error, or could not be reached."""


def model_url(server: str, name: str, version: int | None = None) -> str:
    url = f"{server.rstrip('/')}/v1/models/{name}"
    return url if version is None else f"{url}/versions/{version}"


def _request(url, payload=None, timeout=300.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except (json.JSONDecodeError, AttributeError):
            message = ""
        raise ServingError(f"{url}: HTTP {exc.code} {message}".strip()) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServingError(f"{url}: cannot reach the server ({getattr(exc, 'reason', exc)})") from None


def _array(values) -> np.ndarray:
    """A JSON tensor as float32, or as int32 when every value is an integer (labels)."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int32)
    return array.astype(np.float32)


def predict(server, name, inputs: dict, version=None, signature_name=None, timeout=300.0) -> dict:
    """Columnar predict: ``{input: array}`` in, ``{output: array}`` out.

    Outputs are float32, except integer tensors (the ``labels`` of the
    ``segment`` signature), which come back as int32. A signature with one
    output answers ``{"output": array}``.
    """
    payload = {"inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
    if signature_name:
        payload["signature_name"] = signature_name
    answer = _request(model_url(server, name, version) + ":predict", payload, timeout)
    outputs = answer["outputs"]
    if isinstance(outputs, dict):
        return {k: _array(v) for k, v in outputs.items()}
    return {"output": _array(outputs)}


def metadata(server, name, version=None, timeout=30.0) -> dict:
    return _request(model_url(server, name, version) + "/metadata", None, timeout)


def status(server, name, version=None, timeout=30.0) -> dict:
    return _request(model_url(server, name, version), None, timeout)
