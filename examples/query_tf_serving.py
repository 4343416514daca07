"""Synthesize CT through TF Serving's REST API with a plain HTTP client.

The network runs on the server (TF Serving, e.g. the ``tensorflow/serving``
Docker image, or ``mr2ct serve``); this script only preprocesses the MR with
the parameters of the export (``mr2ct_export.json``: TF Serving knows nothing
about them), posts the slices to ``<server>/v1/models/<name>:predict`` in
batches (TF Serving's columnar format: ``{"inputs": {"mr": [n, S, S, 1]}}``,
answer ``{"outputs": [n, S, S, 1]}`` in HU), puts the answer back on the MR's
grid and writes it as int16 NIfTI with the input's affine. HTTP and JSON are
the standard library's; no TensorFlow is imported.

    python examples/query_tf_serving.py --server http://localhost:8501 \\
        --export saved_models/mr2ct --input mr.nii.gz --output sct.nii.gz
"""

import argparse
import json
import os
import urllib.error
import urllib.request

import nibabel as nib
import numpy as np

from mr2ct.data.io import read_volume
from mr2ct.data.preprocess import PreprocessConfig, preprocess_mr, resample_to_reference, volume_from_geometry


def read_export_info(path, version=None):
    """``mr2ct_export.json`` of ``saved_models/<name>/<N>``, or of a version (default: the latest) of ``<name>``."""
    if not os.path.exists(os.path.join(path, "mr2ct_export.json")):
        versions = sorted(int(d) for d in os.listdir(path) if d.isdigit())
        if not versions:
            raise SystemExit(f"{path}: no exported version here")
        path = os.path.join(path, str(version or versions[-1]))
    with open(os.path.join(path, "mr2ct_export.json")) as f:
        return json.load(f)


def predict(url, mr_batch):
    """POST a batch of preprocessed MR slices ``[n, S, S, 1]``; synthesized CT in HU back."""
    body = json.dumps({"inputs": {"mr": mr_batch.tolist()}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            outputs = json.load(response)["outputs"]
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{url}: HTTP {error.code}: {error.read().decode(errors='replace')}") from None
    except urllib.error.URLError as error:
        raise SystemExit(f"{url}: cannot reach the server ({error.reason})") from None
    return np.asarray(outputs["ct_hu"] if isinstance(outputs, dict) else outputs, dtype=np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://localhost:8501", help="TF Serving's REST endpoint")
    parser.add_argument("--export", required=True, help="saved_models/<name>[/<N>]: the export's mr2ct_export.json")
    parser.add_argument("--name", help="model name on the server (default: the export's)")
    parser.add_argument("--version", type=int, help="model version (default: the server's latest)")
    parser.add_argument("--input", required=True, help="MR volume, NIfTI")
    parser.add_argument("--output", required=True, help="synthesized CT, NIfTI (int16 HU)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    info = read_export_info(args.export, args.version)
    url = f"{args.server.rstrip('/')}/v1/models/{args.name or info['name']}"
    url += (f"/versions/{args.version}" if args.version else "") + ":predict"

    mr = read_volume(args.input)
    slices, record = preprocess_mr(mr, PreprocessConfig.from_dict(info["preprocessing"]["config"]))
    hu = np.concatenate([predict(url, slices[i:i + args.batch_size, ..., None])[..., 0]
                         for i in range(0, len(slices), args.batch_size)])
    sct = resample_to_reference(volume_from_geometry(hu, record["output_geometry"]), mr, order=1, default_value=-1000.0)

    image = nib.load(args.input)
    data = np.clip(np.rint(sct.array), -32768, 32767).astype(np.int16).transpose(2, 1, 0)  # [k, j, i] -> (i, j, k)
    out = nib.Nifti1Image(data, image.affine, image.header)
    out.set_data_dtype(np.int16)
    out.header.set_slope_inter(1.0, 0.0)
    nib.save(out, args.output)
    print(f"wrote {args.output}: {data.shape[2]} slices, HU {data.min()} to {data.max()}")


if __name__ == "__main__":
    main()
