"""Synthesize CT from an MR volume with the exported Keras model, without the mr2ct CLI.

The same steps as ``mr2ct predict``, spelled out: load ``mr_to_ct.keras``,
preprocess the MR with the parameters the export recorded
(``mr2ct_export.json``), run ``model.predict`` on the slices (the model
returns HU), put the slices back on the MR's own grid and write int16 HU.

    python examples/predict_with_keras.py --model saved_models/mr2ct --input mr.nii.gz --output sct.nii.gz
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import mr2ct.models  # noqa: E402, F401  (registers mr2ct's layers for load_model)
from mr2ct.data.io import read_volume, write_volume  # noqa: E402
from mr2ct.data.preprocess import (  # noqa: E402
    PreprocessConfig,
    preprocess_mr,
    resample_to_reference,
    volume_from_geometry,
)
from mr2ct.export import resolve_export  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="saved_models/<name> (latest version) or .../<name>/<N>")
    parser.add_argument("--input", required=True, help="MR volume (NIfTI, NRRD, MHA or a DICOM series folder)")
    parser.add_argument("--output", required=True, help="synthesized CT, e.g. sct.nii.gz")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    export_dir, info = resolve_export(args.model)  # the version folder and its mr2ct_export.json
    model = keras.models.load_model(os.path.join(export_dir, info["keras_models"]["mr_to_ct"]))

    mr = read_volume(args.input)
    config = PreprocessConfig.from_dict(info["preprocessing"]["config"])
    slices, record = preprocess_mr(mr, config)  # N4, S x S slices, [-1, 1]: float32 [K, S, S]
    hu = model.predict(slices[..., None], batch_size=args.batch_size, verbose=0)[..., 0]

    on_slices = volume_from_geometry(hu, record["output_geometry"])
    sct = resample_to_reference(on_slices, mr, order=1, default_value=-1000.0)  # back on the MR's grid
    write_volume(sct, args.output, dtype="int16")
    print(f"wrote {args.output}: {sct.shape[0]} slices, HU {sct.array.min():.0f} to {sct.array.max():.0f}")


if __name__ == "__main__":
    main()
