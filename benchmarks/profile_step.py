"""Where a CycleGAN training step's time goes: TensorFlow's profiler, summed by op type.

Builds the networks as ``benchmarks/train_step.py`` does, runs the warm-up
steps, then traces ``--iterations`` steps with ``tf.profiler`` and reads the
trace back (the host plane of its ``.xplane.pb``). Prints, per step: the
wall time, how many ops ran, the time the ops took summed over threads, and
how much of the two cores' wall time no op was running (executor and
dispatch overhead, idle threads); then the op types by time, with their
count, total and mean duration: whether a step is held up by the number of
ops (much wall time with none running) or by what they do, and which ops.

    python benchmarks/profile_step.py [--size 160 --filters 24 --blocks 6] [--only bf16] [--top 25]
        [--keep DIR]

``--keep DIR`` leaves the trace in DIR for TensorBoard's profile plugin.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402
from train_step import build_cycle_gan, cpu_line  # noqa: E402


def op_events(xspace_path):
    """``(op_name, op_type, start_ps, duration_ps, thread)`` of every TensorFlow op run in the trace."""
    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # Executor kernels are traced as "op_name:OpType"; Python, function and runtime events are not.
                if ":" not in name or "::" in name or name.startswith(("$", "Iterator")) or " " in name:
                    continue
                op_name, _, op_type = name.rpartition(":")
                # Op types start with a capital, or with "_" for the ones grappler and oneDNN put in (_FusedConv2D).
                if not op_type or not (op_type[0].isupper() or op_type[0] == "_") or "/" in op_type:
                    continue
                start = line.timestamp_ns * 1000 + event.offset_ps
                events.append((op_name, op_type, start, event.duration_ps, line.id))
    return events


def busy_ps(events):
    """Wall time (ps) during which at least one of ``events`` was running."""
    total, end = 0, -1
    for start, stop in sorted((e[2], e[2] + e[3]) for e in events):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--filters", type=int, default=24)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--only", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=25, help="op types listed")
    parser.add_argument("--keep", default=None, help="write the trace here and keep it")
    args = parser.parse_args(argv)

    print(cpu_line(), flush=True)
    print(f"CycleGAN step, {args.size}x{args.size}, batch 1, filters {args.filters}, {args.blocks} blocks, "
          f"{args.only}, TF {tf.__version__}", flush=True)
    model, step = build_cycle_gan(args.only, False, args.size, args.filters, args.blocks)
    rng = np.random.default_rng(0)
    data = {key: tf.constant(rng.uniform(-1, 1, (1, args.size, args.size, 1)).astype("float32"))
            for key in ("mr", "ct")}
    for _ in range(args.warmup):
        float(step(data)["generator_loss"])
    graph = step.get_concrete_function(data).graph.as_graph_def()
    print(f"traced step: {len(graph.node)} graph nodes at the top level, "
          f"{sum(len(f.node_def) for f in graph.library.function)} in its {len(graph.library.function)} functions",
          flush=True)

    logdir = args.keep or tempfile.mkdtemp(prefix="mr2ct_profile_")
    walls = []
    tf.profiler.experimental.start(logdir)
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        float(step(data)["generator_loss"])
        walls.append(time.perf_counter() - t0)
    tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise SystemExit(f"no .xplane.pb trace was written under {logdir}")
    events = op_events(paths[-1])
    if not events:
        raise SystemExit(f"the trace {paths[-1]} holds no TensorFlow op events")

    n = args.iterations
    wall = sum(walls) / n
    op_time = sum(e[3] for e in events) / 1e12 / n
    busy = busy_ps(events) / 1e12 / n
    threads = len({e[4] for e in events})
    print(f"per step (mean of {n}, profiler on): wall {wall * 1e3:.1f} ms; "
          f"{len(events) / n:.0f} ops run on {threads} threads; op time summed over threads "
          f"{op_time * 1e3:.1f} ms; some op running {busy * 1e3:.1f} ms of the wall time, none "
          f"{(wall - busy) * 1e3:.1f} ms", flush=True)
    by_type = collections.defaultdict(list)
    for _, op_type, _, duration, _ in events:
        by_type[op_type].append(duration / 1e6)  # microseconds
    short = [e[3] / 1e6 for e in events if e[3] / 1e6 < 20]
    print(f"ops shorter than 20 us: {len(short) / n:.0f} a step, {sum(short) / n / 1e3:.1f} ms of op time; "
          f"median op {statistics.median(e[3] / 1e6 for e in events):.1f} us", flush=True)
    print(f"{'op type':<34}{'count/step':>11}{'ms/step':>10}{'share':>8}{'mean us':>10}")
    ranked = sorted(by_type.items(), key=lambda item: -sum(item[1]))
    for op_type, durations in ranked[: args.top]:
        total = sum(durations) / 1e3 / n
        print(f"{op_type:<34}{len(durations) / n:>11.0f}{total:>10.2f}{total / (op_time * 1e3):>8.1%}"
              f"{statistics.mean(durations):>10.1f}")
    rest = ranked[args.top:]
    if rest:
        total = sum(sum(d) for _, d in rest) / 1e3 / n
        print(f"{f'{len(rest)} other types':<34}{sum(len(d) for _, d in rest) / n:>11.0f}{total:>10.2f}"
              f"{total / (op_time * 1e3):>8.1%}")
    if args.keep:
        print(f"trace kept in {logdir} (tensorboard --logdir {logdir})")


if __name__ == "__main__":
    main()
