"""Slices per second and memory of MR-to-CT inference with the paper-size generator.

Two tables:

1. Network throughput: slices per second of ``mr2ct.models.ResnetGenerator()``
   (64 filters, 9 blocks, 11.4 M parameters) on 256x256x1 slices, at batch 1
   and 8, float32 and bfloat16 (Keras policy ``"mixed_bfloat16"``), and with
   ``--xla`` also XLA-compiled (``tf.function(jit_compile=True)``): median,
   min and max over ``--iterations`` timed calls after ``--warmup`` calls,
   the achieved GFLOP/s, and the peak resident memory of the calls.
2. End to end: wall time and peak resident memory of what ``mr2ct predict``
   does (``Synthesizer.local`` + ``predict_paths``: read the NIfTI, N4,
   resample to 256x256 slices, scale, the network in batches, resample back to
   the MR's grid, write int16) for MR volumes of 256x256x40 and 512x512x200
   voxels, with an export (``mr2ct.export.export_run``) of an untrained
   paper-size CycleGAN. The volumes are the phantom's anatomy
   (:mod:`mr2ct.data.phantom`) rendered on a 320 mm field of view with slices
   of ``min(2, 200 / slices)`` mm. The load column includes one warm-up batch.

Each case runs in its own subprocess, so the memory it reports is its own:
the resident set before the measured part (model loaded) and the peak during
it (``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs``
before the measured part; on systems without them, ``ru_maxrss`` of the whole
process).

Reference target (from the issue): a PyTorch implementation of the same
generator does 3.45 slices/s at batch 1 on this machine (2 CPU cores); the
target is at least 4 slices/s in float32, and prediction memory bounded by
the batch, not by the volume. bfloat16 is emulated on this CPU (no
AVX512-BF16 or AMX): 4 to 7 s a slice, so keep it to a couple of
iterations. The machine's cores are shared: the load average is printed
before and after, and numbers taken under load are lower.

    python benchmarks/inference.py                                 # everything (bf16 takes minutes)
    python benchmarks/inference.py --precision fp32 --skip-volumes  # about a minute
    python benchmarks/inference.py --precision bf16 --batches 1 --iterations 2 --warmup 1 --skip-volumes
    python benchmarks/inference.py --sizes 256x256x40 --workdir /tmp/mr2ct-bench  # keeps export and volumes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGE_SIZE = 256
FOV_MM = 320.0
TARGET_SLICES_PER_S = 4.0
PYTORCH_SLICES_PER_S = 3.45
RESULT_PREFIX = "MR2CT-BENCH-RESULT "


# --------------------------------------------------------------------------- memory


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def reset_peak_memory() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(reset_done: bool) -> float:
    """Peak resident memory (MB) since the last reset, or of the whole process."""
    peak = _status_mb("VmHWM") if reset_done else None
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
    return peak


def rss_mb() -> float:
    return _status_mb("VmRSS") or float("nan")


# --------------------------------------------------------------------------- cases (in a subprocess)


def throughput_case(precision: str, batch: int, xla: bool, iterations: int, warmup: int) -> dict:
    """Time the generator alone on random slices."""
    import keras
    import numpy as np
    import tensorflow as tf

    from mr2ct.models import ResnetGenerator

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    keras.utils.set_random_seed(0)
    generator = ResnetGenerator()
    forward = tf.function(lambda x: generator(x, training=False), jit_compile=xla)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32"))
    before = rss_mb()
    reset = reset_peak_memory()
    for _ in range(warmup):
        forward(x).numpy()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        forward(x).numpy()  # .numpy() waits for the result
        times.append(time.perf_counter() - start)
    return {"times": times, "rss_before_mb": before, "peak_mb": peak_memory_mb(reset)}


def volume_case(export_dir: str, volume_path: str, output_path: str, batch: int) -> dict:
    """Predict one MR volume through Synthesizer.local and predict_paths, timing each part."""
    import numpy as np

    from mr2ct.serving import predict

    start = time.perf_counter()
    synthesizer = predict.Synthesizer.local(export_dir, batch_size=batch)
    size = synthesizer.info["image_size"]
    synthesizer.run_batch(np.zeros((1, size, size, 1), np.float32))  # warm-up (the first call optimizes the graph)
    load = time.perf_counter() - start

    spent = {"preprocess": 0.0, "network": 0.0, "to_mr_grid": 0.0}

    def timed(function, key):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
        return run

    synthesizer.run_batch = timed(synthesizer.run_batch, "network")
    # Synthesizer.volume looks these up in its module at call time.
    predict.preprocess_mr = timed(predict.preprocess_mr, "preprocess")
    predict.resample_to_reference = timed(predict.resample_to_reference, "to_mr_grid")

    before = rss_mb()
    reset = reset_peak_memory()
    start = time.perf_counter()
    predict.predict_paths(synthesizer, volume_path, output_path)
    total = time.perf_counter() - start
    return {"load": load, "total": total, **spent, "rss_before_mb": before, "peak_mb": peak_memory_mb(reset)}


def run_case(case: dict, timeout: float) -> dict:
    """Run ``case`` in a fresh Python process; its result, or ``{"error": ...}``."""
    command = [sys.executable, os.path.abspath(__file__), "--_case", json.dumps(case)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = [line for line in proc.stderr.splitlines() if line.strip()][-3:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


def _child(case_json: str) -> None:
    case = json.loads(case_json)
    kind = case.pop("kind")
    result = throughput_case(**case) if kind == "throughput" else volume_case(**case)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- set-up (in this process)


def parse_size(text: str) -> tuple[int, int, int]:
    """``"512x512x200"`` (rows x columns x slices) to an array shape ``(k, j, i)``."""
    try:
        rows, cols, slices = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLSxSLICES, e.g. 256x256x40. Received: {text!r}") from None
    if min(rows, cols, slices) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive. Received: {text!r}")
    return slices, rows, cols


def phantom_mr(path: str, shape: tuple[int, int, int], seed: int = 0) -> str:
    """Write the phantom's MR rendered on a ``shape`` (k, j, i) grid as an int16 NIfTI (cached)."""
    if os.path.exists(path):
        return path
    import numpy as np

    from mr2ct.data import phantom
    from mr2ct.data.io import write_volume

    rng = np.random.default_rng(seed)
    params = phantom.sample_parameters(rng)
    n_k, n_j, n_i = shape
    spacing = (FOV_MM / n_i, FOV_MM / n_j, min(2.0, 200.0 / n_k))
    extent = (np.array([n_i, n_j, n_k]) - 1) * np.array(spacing)
    grid = phantom.Grid(shape, spacing, tuple(np.asarray(params.mr_centre) - extent / 2))
    tissue = phantom.render_tissue(phantom.build_anatomy(params), grid)
    write_volume(grid.volume(phantom.render_mr(tissue, params, rng)), path, dtype="int16")
    return path


def paper_export(workdir: str) -> str:
    """An export of an untrained paper-size CycleGAN (cached): ``workdir/saved_models/mr2ct``."""
    model_dir = os.path.join(workdir, "saved_models", "mr2ct")
    if os.path.isdir(model_dir) and os.listdir(model_dir):
        return model_dir
    import keras
    import tensorflow as tf

    from mr2ct.config import preset
    from mr2ct.export import export_run
    from mr2ct.training import builders
    from mr2ct.training.tracking import checkpoint_items
    from mr2ct.training.trainer import CONFIG_FILE, PREPROCESSING_FILE

    config = preset("paper")
    run_dir = os.path.join(workdir, "run_paper")
    os.makedirs(run_dir, exist_ok=True)
    config.to_yaml(os.path.join(run_dir, CONFIG_FILE))
    pre = builders.build_preprocess_config(config)
    record = {"image_size": pre.image_size, "config": pre.to_dict(),
              "ct_intensity": {"hu_min": pre.ct_hu_min, "hu_max": pre.ct_hu_max}}  # as `mr2ct prepare` writes it
    with open(os.path.join(run_dir, PREPROCESSING_FILE), "w") as f:
        json.dump(record, f)
    keras.utils.set_random_seed(0)
    model = builders.build_cyclegan(config)
    checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), **checkpoint_items(model=model))
    tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), 1).save(0)
    export_run(run_dir, os.path.join(workdir, "saved_models"), name="mr2ct")
    return model_dir


def machine_line() -> str:
    import tensorflow as tf

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPU cores, TF {tf.__version__}, load average {load}"


# --------------------------------------------------------------------------- main


def throughput_table(args) -> list[dict]:
    from train_step import conv_flops, gemm_gflops

    from mr2ct.models import ResnetGenerator

    flops = conv_flops(ResnetGenerator(), IMAGE_SIZE)
    print(f"float32 GEMM ceiling on this machine: {gemm_gflops():.0f} GFLOP/s", flush=True)
    print(f"\nResnetGenerator (paper size) on {IMAGE_SIZE}x{IMAGE_SIZE}x1 slices: {flops / 1e9:.1f} GFLOP a slice; "
          f"median (min-max) of {args.iterations} calls after {args.warmup} warm-up")
    print(f"{'precision':<10}{'xla':<6}{'batch':>6}{'s/batch':>10}{'slices/s':>10}{'(min-max)':>14}"
          f"{'GFLOP/s':>9}{'RSS MB':>9}{'peak MB':>9}", flush=True)
    rows = []
    for precision in args.precision:
        for xla in [False, True] if args.xla else [False]:
            for batch in args.batches:
                case = {"kind": "throughput", "precision": precision, "batch": batch, "xla": xla,
                        "iterations": args.iterations, "warmup": args.warmup}
                result = run_case(case, args.timeout)
                label = f"{precision:<10}{str(xla):<6}{batch:>6}"
                if "error" in result:
                    print(f"{label}  failed: {result['error']}", flush=True)
                    continue
                t = result["times"]
                med = statistics.median(t)
                spread = f"({batch / max(t):.2f}-{batch / min(t):.2f})"
                print(f"{label}{med:>10.3f}{batch / med:>10.2f}{spread:>14}{batch * flops / med / 1e9:>9.0f}"
                      f"{result['rss_before_mb']:>9.0f}{result['peak_mb']:>9.0f}", flush=True)
                rows.append(dict(case, slices_per_s=batch / med))
    for row in rows:
        if row["precision"] == "fp32" and row["batch"] == 1 and not row["xla"]:
            verdict = "meets" if row["slices_per_s"] >= TARGET_SLICES_PER_S else "below"
            print(f"fp32 batch 1: {row['slices_per_s']:.2f} slices/s; target {TARGET_SLICES_PER_S} "
                  f"(PyTorch reference {PYTORCH_SLICES_PER_S}): {verdict}")
    return rows


def volume_table(args, workdir: str) -> None:
    print("\nPreparing the export of an untrained paper-size CycleGAN and the MR volumes ...", flush=True)
    start = time.perf_counter()
    export_dir = paper_export(workdir)
    volumes = []
    for shape in args.sizes:
        name = f"mr_{shape[1]}x{shape[2]}x{shape[0]}"
        volumes.append((name, shape, phantom_mr(os.path.join(workdir, f"{name}.nii.gz"), shape)))
    print(f"(ready in {time.perf_counter() - start:.0f} s)")
    print(f"\nEnd to end (Synthesizer.local + predict_paths, batch {args.volume_batch}): seconds, resident MB")
    print(f"{'volume':<20}{'load':>7}{'total':>8}{'prepro':>8}{'network':>9}{'to MR':>7}{'I/O':>6}"
          f"{'slices/s':>10}{'RSS MB':>8}{'peak MB':>9}{'+MB':>7}", flush=True)
    for name, shape, path in volumes:
        case = {"kind": "volume", "export_dir": export_dir, "volume_path": path,
                "output_path": os.path.join(workdir, f"sct_{name}.nii.gz"), "batch": args.volume_batch}
        r = run_case(case, args.timeout)
        label = f"{shape[1]}x{shape[2]}x{shape[0]}"
        if "error" in r:
            print(f"{label:<20}  failed: {r['error']}", flush=True)
            continue
        io = r["total"] - r["preprocess"] - r["network"] - r["to_mr_grid"]
        print(f"{label:<20}{r['load']:>7.1f}{r['total']:>8.1f}{r['preprocess']:>8.1f}{r['network']:>9.1f}"
              f"{r['to_mr_grid']:>7.1f}{io:>6.1f}{shape[0] / r['network']:>10.2f}{r['rss_before_mb']:>8.0f}"
              f"{r['peak_mb']:>9.0f}{r['peak_mb'] - r['rss_before_mb']:>7.0f}", flush=True)
    print("load: Synthesizer.local and one warm-up batch; prepro: preprocess_mr (N4, resampling, scaling); "
          "to MR: resampling back; I/O: the rest (read, write int16); +MB: peak above the RSS before predicting")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--xla", action="store_true", help="also time XLA-compiled calls")
    parser.add_argument("--skip-throughput", action="store_true", help="only the end-to-end table")
    parser.add_argument("--skip-volumes", action="store_true", help="only the network table")
    parser.add_argument("--sizes", nargs="+", type=parse_size, help="MR volumes as ROWSxCOLSxSLICES",
                        default=[parse_size("256x256x40"), parse_size("512x512x200")])
    parser.add_argument("--volume-batch", type=int, default=8, help="batch size of the end-to-end runs")
    parser.add_argument("--workdir", help="keep the export and volumes here and reuse them "
                                          "(default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._case:
        _child(args._case)
        return

    print(f"MR-to-CT inference; {machine_line()}", flush=True)
    if not args.skip_throughput:
        throughput_table(args)
    if not args.skip_volumes:
        if args.workdir:
            os.makedirs(args.workdir, exist_ok=True)
            volume_table(args, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="mr2ct-bench-") as workdir:
                volume_table(args, workdir)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
