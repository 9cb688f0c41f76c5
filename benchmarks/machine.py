r"""The machine side of benchmarks: timing, the matmul peak, load and CPU use, traces.

  python -m benchmarks.throughput --preset=demo     (uses these helpers)

`time_calls` times a callable (median of runs after warm-up); `matmul_rate` measures
TF's own 2048x2048 matmul, the reference the models' GFLOP/s are compared against;
`cpu_snapshot`/`other_cores` tell how much CPU *other* processes used during a
measurement (from /proc/stat minus this process's own CPU time); `busy_warnings` turns
these into the warnings printed with the figures; `top_ops` reads a TF profiler trace
(`.xplane.pb`) with TF's own protos, no TensorBoard plugin needed.
"""

import datetime
import math
import os
import statistics
import time

import numpy as np
import tensorflow as tf

MATMUL_SIZE = 2048
# The machine counts as busy above this 1-minute load at the start, when a matmul rate
# drops by more than this share between the start and the end, or when other processes
# used more than this many cores on average.
BUSY_LOAD = 0.5
BUSY_MATMUL_DROP = 0.10
BUSY_OTHER_CORES = 0.5


def time_calls(fn, runs, min_run_seconds=1.0):
    """Median seconds per call of `fn` over `runs` timed runs.

    One warm-up call (tracing, compilation) and one calibration call come first; each
    timed run then repeats `fn` enough times to last about `min_run_seconds`. `fn` must
    return only when its work is done (fetch a result).
    """
    start = time.perf_counter()
    fn()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    fn()
    repeats = max(1, math.ceil(min_run_seconds / max(time.perf_counter() - start, 1e-9)))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats)
    return dict(seconds=statistics.median(times), times=times, repeats=repeats, warmup=warmup)


def matmul_rate(dtype, runs=5, size=MATMUL_SIZE, min_run_seconds=0.3):
    """GFLOP/s of one TF `size` x `size` matmul in `dtype` (a `tf.function`, no XLA)."""
    rng = np.random.default_rng(0)
    a = tf.cast(tf.constant(rng.standard_normal([size, size]), tf.float32), dtype)
    b = tf.cast(tf.constant(rng.standard_normal([size, size]), tf.float32), dtype)
    product = tf.function(lambda: tf.matmul(a, b))
    # CPU ops run synchronously: the call returns when the product is computed.
    timing = time_calls(product, runs, min_run_seconds)
    return dict(dtype=tf.as_dtype(dtype).name, gflops=2 * size**3 / timing["seconds"] / 1e9)


def cpu_snapshot():
    """`(wall seconds, busy CPU seconds of the whole machine, CPU seconds of this process)`."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    own = os.times()
    return time.time(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def other_cores(before, after):
    """Average cores other processes kept busy between two `cpu_snapshot`s."""
    wall = max(after[0] - before[0], 1e-9)
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


def machine_info():
    """CPU model and features, cores, TensorFlow version and the date."""
    model, features = "unknown", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            if key.strip() == "flags" and not features:
                features = set(value.split())
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return dict(
        cpu=model,
        cpu_features=[f for f in wanted if f in features],
        cores=os.cpu_count(),
        usable_cores=len(os.sched_getaffinity(0)),
        tensorflow=tf.__version__,
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def busy_warnings(result):
    """Why the figures may be low because of other work on the machine (empty: quiet)."""
    warnings = []
    load = result["load_before"][0]
    if load > BUSY_LOAD:
        warnings.append(f"machine was busy (load {load:.2f} before starting)")
    for before, after in zip(result["matmul_before"], result["matmul_after"]):
        if after["gflops"] < (1 - BUSY_MATMUL_DROP) * before["gflops"]:
            warnings.append(
                f"machine was busy (load {result['load_after'][0]:.2f}): the {before['dtype']} "
                f"matmul dropped from {before['gflops']:.0f} to {after['gflops']:.0f} GFLOP/s"
            )
    if result["other_cores"] > BUSY_OTHER_CORES:
        warnings.append(
            f"machine was busy: other processes used {result['other_cores']:.2f} cores on "
            "average during the run"
        )
    return warnings


def top_ops(xplane_path, top=10):
    """`[(op type, self seconds, count)]` with the most self time in a profiler trace.

    Self time of a TF op event is its duration minus the TF op events nested in it on the
    same thread, summed over threads (ops on different threads overlap in wall time).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    self_ps, counts = {}, {}
    for plane in space.planes:
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack = []  # (end_ps, op type) of the enclosing TF ops
            for event in events:
                meta = plane.event_metadata[event.metadata_id]
                if ":" not in meta.name or not meta.display_name:
                    continue  # not a TF op ("name:Type" with the type as display name)
                while stack and stack[-1][0] <= event.offset_ps:
                    stack.pop()
                op = meta.display_name
                self_ps[op] = self_ps.get(op, 0) + event.duration_ps
                counts[op] = counts.get(op, 0) + 1
                if stack:
                    parent = stack[-1][1]
                    self_ps[parent] -= event.duration_ps
                stack.append((event.offset_ps + event.duration_ps, op))
    ranked = sorted(self_ps.items(), key=lambda item: -item[1])[:top]
    return [(op, ps / 1e12, counts[op]) for op, ps in ranked]
