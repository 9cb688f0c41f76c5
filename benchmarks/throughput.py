r"""Measures sampling, training, export and input throughput against the machine's peak.

  python -m benchmarks.throughput --preset=demo
  python -m benchmarks.throughput --preset=biggan128 --mixed_precision=mixed_bfloat16 \
      --jit_compile --runs=5 --output=benchmarks/results/throughput.md --append

Presets: `biggan128` is the TF-Hub BigGAN-128 architecture (random weights: speed does not
depend on them) transferred to 5 classes, batch 8; `demo` is the offline demo's BigGAN-32
(ch 8, configs/demo_*.flags) transferred to 4 classes, batch 32. Models are built by
`trainer.Trainer` with `--mixed_precision` and `--jit_compile`, exactly as training does.

What is measured (each: the median of --runs timed runs after a warm-up call with tracing
and one more call; a run repeats the call until it lasts --min_run_seconds):

* sample: `G((z, y), training=False)` in a `tf.function` with a fixed input signature
  (XLA-compiled with --jit_compile), on the first method's transferred generator.
* train: `Trainer.train_step` (one D and one G update) per method (`kp_bn` is its bn
  stage), fed synthetic tensors as benchmarks/train_speed.py does.
* export: the same generator written by `serving.save_generator`, loaded back with
  `tf.saved_model.load` and called through `signatures["serving_default"]` (never
  XLA-compiled: the export is what TF Serving runs).
* input (demo only): `next()` on `Trainer.make_iterator(0)` over the real demo data set
  (`cgan_demo_shapes`, prepared into a temporary directory unless --data_dir), alone.

FLOPs come from benchmarks/flops.py (matrix products only, 2 per multiply-add). The
reference is TF's own 2048x2048 matmul in float32 and bfloat16, measured before and
after the models; the machine counts as busy when its 1-minute load is above 0.5 at the
start, when the matmul rate drops by more than 10% between the two measurements, or when
other processes used more than half a core during the run (from /proc/stat).
--profile_dir wraps 3 more training iterations of the first method in the TF profiler
and prints the 10 op types with the most self time from the trace's `.xplane.pb`.
"""

import dataclasses
import gc
import glob
import os
import shlex
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from benchmarks import flops
from benchmarks import machine
from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data
from tf_cgan_transfer import precision
from tf_cgan_transfer import serving as serving_lib
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer

PARTS = ("sample", "train", "export", "input")
METHODS = ("kp_bn", "bn_only", "finetune", "freeze_d", "scratch")  # kp_bn: its bn stage
PROFILED_STEPS = 3


@dataclasses.dataclass(frozen=True)
class Preset:
    """A model size: the source BigGAN's constructor arguments and the transfer's shape."""

    name: str
    source: dict
    batch_size: int
    num_classes: int  # new classes of the transfer

    @property
    def resolution(self):
        return self.source["resolution"]


PRESETS = {
    "biggan128": Preset("biggan128", dict(resolution=128), batch_size=8, num_classes=5),
    "demo": Preset(
        "demo",
        dict(resolution=32, ch=8, num_classes=12, dim_z=32, shared_dim=32, attention_resolution=0),
        batch_size=32,
        num_classes=len(demo_data.NEW_CLASSES),
    ),
}


# ---- Models -------------------------------------------------------------------------


def make_source(preset):
    """The preset's pretrained-architecture BigGAN with random weights (float32)."""
    return biggan.Generator(**preset.source).build_weights()


def make_trainer(preset, method, source, model_dir, mixed_precision, jit_compile, data_config=None):
    """A `trainer.Trainer` for `method` (kp_bn: its bn stage) as a training run builds it."""
    num_classes = preset.num_classes
    if data_config is None:  # fed synthetic tensors: the data set is never opened
        data_config = data.DataConfig("folder", preset.resolution, image_folder="unused")
    else:
        num_classes = None  # from the data set
    config = train_config.TrainConfig(
        model_dir=model_dir,
        data=data_config,
        method=method,
        source=source,
        batch_size=preset.batch_size,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        sample_every=0,
    )
    return trainer.Trainer(config, num_classes=num_classes)


def synthetic_batch(run):
    """`(images [1, B, R, R, 3], labels [1, B])`: one iteration's input of `run`."""
    cfg, rng = run.config, np.random.default_rng(0)
    r, b = cfg.data.resolution, cfg.batch_size
    images = tf.constant(rng.uniform(-1, 1, [run.batches_per_step, b, r, r, 3]), tf.float32)
    labels = tf.constant(rng.integers(0, run.num_classes, [run.batches_per_step, b]), tf.int32)
    return images, labels


def _latents(generator, batch_size):
    z = biggan.sample_z(batch_size, generator.dim_z, 1.0, seed=0)
    return z, tf.range(batch_size, dtype=tf.int32) % generator.num_classes


def _rates(timing, batch_size, flops_per_call):
    seconds = timing["seconds"]
    return dict(
        seconds=seconds,
        times=timing["times"],
        repeats=timing["repeats"],
        warmup=timing["warmup"],
        batch_size=batch_size,
        calls_per_second=1.0 / seconds,
        images_per_second=batch_size / seconds,
        flops_per_call=flops_per_call,
        flops_per_image=flops_per_call / batch_size,
        gflops=flops_per_call / seconds / 1e9,
    )


# ---- Measurements -------------------------------------------------------------------


def measure_sampling(generator, batch_size, runs, jit_compile=False, min_run_seconds=1.0):
    """Images/s of `generator` in a `tf.function` with a fixed signature, training=False."""
    sample = tf.function(
        lambda z, y: generator((z, y), training=False),
        input_signature=[
            tf.TensorSpec([batch_size, generator.dim_z], tf.float32),
            tf.TensorSpec([batch_size], tf.int32),
        ],
        jit_compile=jit_compile,
    )
    z, y = _latents(generator, batch_size)
    timing = machine.time_calls(lambda: sample(z, y).numpy(), runs, min_run_seconds)
    g_flops = flops.total(flops.traced_products(generator))
    result = _rates(timing, batch_size, g_flops * batch_size)
    result.update(name="sample", compute_dtype=generator.compute_dtype, jit_compile=jit_compile)
    return result


def measure_training(run, runs, min_run_seconds=1.0):
    """Iterations/s and images/s of `run.train_step` on synthetic tensors, with its FLOPs."""
    images, labels = synthetic_batch(run)
    timing = machine.time_calls(
        lambda: float(run.train_step(images, labels)["g_loss"]), runs, min_run_seconds
    )
    cost = flops.iteration_flops(
        flops.traced_products(run.generator),
        flops.traced_products(run.discriminator),
        run.config.batch_size,
        g_trainable=flops.trainable_in(run.models.g_variables),
        d_trainable=flops.trainable_in(run.models.d_variables),
        num_d_steps=run.config.num_d_steps,
    )
    result = _rates(timing, run.config.batch_size, cost["iteration"])
    result.update(
        name=f"train {run.config.method}",
        method=run.config.method,
        stage=run.config.resolved_stage,
        iterations_per_second=result["calls_per_second"],
        iteration_flops=cost,
        compute_dtype=f"G {run.generator.compute_dtype}, D {run.discriminator.compute_dtype}",
        jit_compile=run.config.jit_compile,
    )
    return result


def measure_export(generator, batch_size, export_dir, runs, min_run_seconds=1.0):
    """Images/s of the exported SavedModel's `serving_default`, loaded in this process.

    Also records how long `serving.save_generator` and `tf.saved_model.load` took.
    """
    start = time.perf_counter()
    serving_lib.save_generator(
        generator,
        export_dir,
        serving_lib.default_class_names(generator.num_classes),
        truncation=1.0,
        warmup=False,
    )
    save_seconds = time.perf_counter() - start
    start = time.perf_counter()
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    load_seconds = time.perf_counter() - start
    z, label = _latents(generator, batch_size)
    timing = machine.time_calls(
        lambda: serving(label=label, z=z)[serving_lib.IMAGES_KEY].numpy(), runs, min_run_seconds
    )
    g_flops = flops.total(flops.traced_products(generator))
    result = _rates(timing, batch_size, g_flops * batch_size)
    result.update(
        name="export serving_default", save_seconds=save_seconds, load_seconds=load_seconds
    )
    return result


def measure_input(run, runs, min_run_seconds=1.0):
    """Batches/s of `next()` on the trainer's real input iterator, without training."""
    iterator = run.make_iterator(0)
    timing = machine.time_calls(lambda: next(iterator), runs, min_run_seconds)
    batches = 1.0 / timing["seconds"]
    return dict(
        name="input",
        seconds=timing["seconds"],
        times=timing["times"],
        repeats=timing["repeats"],
        warmup=timing["warmup"],
        batch_size=run.config.batch_size,
        iterations_per_second=batches / run.batches_per_step,
        images_per_second=batches * run.config.batch_size,
    )


def profile_training(run, profile_dir, steps=PROFILED_STEPS):
    """Runs `steps` training iterations under the TF profiler; returns the trace and ops."""
    images, labels = synthetic_batch(run)
    float(run.train_step(images, labels)["g_loss"])  # traced outside the profile
    tf.io.gfile.makedirs(profile_dir)
    tf.profiler.experimental.start(profile_dir)
    start = time.perf_counter()
    try:
        for _ in range(steps):
            float(run.train_step(images, labels)["g_loss"])
    finally:
        seconds = time.perf_counter() - start
        tf.profiler.experimental.stop()
    traces = sorted(
        glob.glob(os.path.join(profile_dir, "plugins", "profile", "*", "*.xplane.pb")),
        key=os.path.getmtime,
    )
    result = dict(
        name=f"profile {run.config.method}",
        steps=steps,
        seconds_per_step=seconds / steps,
        trace=traces[-1] if traces else None,
        top_ops=None,
    )
    if traces:
        result["top_ops"] = machine.top_ops(traces[-1])
    return result


# ---- The whole benchmark ------------------------------------------------------------


def benchmark(
    preset_name,
    mixed_precision="float32",
    jit_compile=False,
    runs=5,
    parts=PARTS,
    methods=("kp_bn", "finetune"),
    profile_dir=None,
    data_dir=None,
    min_run_seconds=1.0,
    batch_size=None,
    log=print,
):
    """Runs the chosen measurements; returns a dict of everything `format_*` prints.

    `parts` and `methods` pick what is measured ("input" only for the demo preset);
    `log` gets progress lines.
    """
    preset = PRESETS[preset_name]
    if batch_size:
        preset = dataclasses.replace(preset, batch_size=batch_size)
    precision.check(mixed_precision)
    unknown = sorted(set(parts) - set(PARTS)) + sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise ValueError(f"Unknown parts/methods {unknown}; parts: {PARTS}, methods: {METHODS}.")
    result = dict(
        preset=preset.name,
        batch_size=preset.batch_size,
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        runs=runs,
        machine=machine.machine_info(),
        load_before=os.getloadavg(),
        measurements=[],
        notes=[],
    )
    snapshot = machine.cpu_snapshot()
    log(f"load average before: {result['load_before'][0]:.2f}; measuring matmuls")
    result["matmul_before"] = [
        machine.matmul_rate(tf.float32, runs),
        machine.matmul_rate(tf.bfloat16, runs),
    ]
    options = dict(
        mixed_precision=mixed_precision,
        jit_compile=jit_compile,
        runs=runs,
        min_run_seconds=min_run_seconds,
        log=log,
    )
    with tempfile.TemporaryDirectory() as scratch:
        source = make_source(preset)
        result["measurements"] += _measure_models(
            preset, source, scratch, parts, methods, profile_dir, result, **options
        )
        if "input" in parts and preset.name != "demo":
            result["notes"].append("input: measured for the demo preset only (its data is offline)")
        elif "input" in parts:
            result["measurements"].append(
                _measure_demo_input(preset, source, scratch, methods[0], data_dir, **options)
            )
    log("measuring matmuls again")
    result["matmul_after"] = [
        machine.matmul_rate(tf.float32, runs),
        machine.matmul_rate(tf.bfloat16, runs),
    ]
    result["load_after"] = os.getloadavg()
    result["other_cores"] = machine.other_cores(snapshot, machine.cpu_snapshot())
    result["warnings"] = machine.busy_warnings(result)
    return result


def _measure_models(
    preset,
    source,
    scratch,
    parts,
    methods,
    profile_dir,
    result,
    mixed_precision,
    jit_compile,
    log,
    **timing,
):
    """Sampling, export and profile on the first method's trainer; train steps on each."""
    measured = []
    for index, method in enumerate(methods):
        if index > 0 and "train" not in parts:
            break  # only the first method's generator is sampled and exported
        log(f"building {method} ({mixed_precision}, jit_compile={jit_compile})")
        model_dir = os.path.join(scratch, method)
        run = make_trainer(preset, method, source, model_dir, mixed_precision, jit_compile)
        if index == 0 and "sample" in parts:
            log("sampling")
            measured.append(
                measure_sampling(
                    run.generator, preset.batch_size, jit_compile=jit_compile, **timing
                )
            )
        if "train" in parts:
            log(f"training {method}")
            measured.append(measure_training(run, **timing))
        if index == 0 and "export" in parts:
            log("exporting")
            export_dir = os.path.join(scratch, "export", "1")
            measured.append(measure_export(run.generator, preset.batch_size, export_dir, **timing))
        if index == 0 and profile_dir:
            log(f"profiling {PROFILED_STEPS} iterations of {method} into {profile_dir}")
            result["profile"] = profile_training(run, profile_dir)
        del run  # a biggan-128 trainer holds about 2 GB
        gc.collect()
    return measured


def _measure_demo_input(
    preset, source, scratch, method, data_dir, mixed_precision, jit_compile, log, **timing
):
    """`measure_input` on the demo transfer's data (configs/demo_transfer.flags)."""
    if data_dir is None:
        data_dir = os.path.join(scratch, "tfds")
        log(f"preparing {demo_data.NAME} in {data_dir}")
        demo_data.prepare(data_dir)
    data_config = data.DataConfig(
        demo_data.NAME,
        preset.resolution,
        data_dir=data_dir,
        classes=demo_data.NEW_CLASSES,
        images_per_class=50,
    )
    log("input pipeline")
    model_dir = os.path.join(scratch, "input")
    run = make_trainer(preset, method, source, model_dir, mixed_precision, jit_compile, data_config)
    return measure_input(run, **timing)


# ---- Reports ------------------------------------------------------------------------


def matmul_reference(result):
    """`{dtype: mean GFLOP/s of the before and after matmuls}`."""
    pairs = zip(result["matmul_before"], result["matmul_after"])
    return {b["dtype"]: (b["gflops"] + a["gflops"]) / 2 for b, a in pairs}


def export_share(result):
    """Export images/s over in-process sampling images/s, or None."""
    rates = {m["name"]: m["images_per_second"] for m in result["measurements"]}
    if "sample" in rates and "export serving_default" in rates:
        return rates["export serving_default"] / rates["sample"]
    return None


def input_verdicts(result):
    """`[(method, input batches/s, steps/s, keeps up)]` for each measured train step."""
    measured = {m["name"]: m for m in result["measurements"]}
    if "input" not in measured:
        return []
    feed = measured["input"]["iterations_per_second"]
    return [
        (m["method"], feed, m["iterations_per_second"], feed > m["iterations_per_second"])
        for m in result["measurements"]
        if m["name"].startswith("train ")
    ]


def _table_rows(result):
    reference = matmul_reference(result)
    rows = []
    order = {"sample": 0, "export serving_default": 1, "input": 3}  # train rows: 2
    for m in sorted(result["measurements"], key=lambda m: order.get(m["name"], 2)):
        row = [
            m["name"],
            str(m["batch_size"]),
            f"{m['seconds']:.4f}",
            f"{m['images_per_second']:.1f}",
        ]
        row.append(f"{m['iterations_per_second']:.3f}" if "iterations_per_second" in m else "")
        if "gflops" in m:
            row += [
                f"{m['flops_per_image'] / 1e9:.3f}",
                f"{m['gflops']:.1f}",
                f"{100 * m['gflops'] / reference['float32']:.1f}%",
                f"{100 * m['gflops'] / reference['bfloat16']:.1f}%",
            ]
        else:
            row += [""] * 4
        rows.append(row)
    return rows


HEADER = (
    "measurement",
    "batch",
    "median s/call",
    "images/s",
    "iterations/s",
    "GFLOP/image",
    "GFLOP/s",
    "of fp32 matmul",
    "of bf16 matmul",
)


def _summary_lines(result):
    m, lines = result["machine"], []
    lines.append(
        f"{m['cpu']} ({', '.join(m['cpu_features'])}), {m['usable_cores']} of {m['cores']} "
        f"cores, TensorFlow {m['tensorflow']}, {m['date']}"
    )
    lines.append(
        f"{result['preset']}, batch {result['batch_size']}, {result['mixed_precision']}, "
        f"jit_compile={result['jit_compile']}, median of {result['runs']} runs"
    )
    before = ", ".join(f"{x['dtype']} {x['gflops']:.0f}" for x in result["matmul_before"])
    after = ", ".join(f"{x['dtype']} {x['gflops']:.0f}" for x in result["matmul_after"])
    lines.append(
        f"{machine.MATMUL_SIZE}x{machine.MATMUL_SIZE} matmul GFLOP/s before: {before}; after: {after}"
    )
    lines.append(
        f"load average (1 min) before {result['load_before'][0]:.2f}, after "
        f"{result['load_after'][0]:.2f} (includes this run); other processes used "
        f"{result['other_cores']:.2f} cores on average"
    )
    dtypes = [
        f"{m['name']}: {m['compute_dtype']}" for m in result["measurements"] if "compute_dtype" in m
    ]
    if dtypes:
        lines.append("computes in: " + "; ".join(dtypes))
    for meas in result["measurements"]:
        if meas["name"].startswith("train "):
            cost = meas["iteration_flops"]
            lines.append(
                f"{meas['name']} FLOPs: G forward {cost['g_forward'] / 1e9:.3f} and D forward "
                f"{cost['d_forward'] / 1e9:.3f} GFLOP/image; iteration {cost['iteration'] / 1e9:.2f} "
                f"GFLOP (D step {cost['d_step'] / 1e9:.2f}, G step {cost['g_step'] / 1e9:.2f})"
            )
    for meas in result["measurements"]:
        if meas["name"] == "export serving_default":
            lines.append(
                f"export: save_generator {meas['save_seconds']:.1f} s, "
                f"tf.saved_model.load {meas['load_seconds']:.1f} s"
            )
    share = export_share(result)
    if share is not None:
        lines.append(f"export serving_default reaches {100 * share:.0f}% of in-process sampling")
    for method, feed, steps, keeps_up in input_verdicts(result):
        lines.append(
            f"input pipeline: {feed:.1f} batches/s alone vs train {method} {steps:.2f} steps/s: "
            + ("keeps up" if keeps_up else "CANNOT keep up")
        )
    profile = result.get("profile")
    if profile:
        lines.append(
            f"{profile['name']}: {profile['steps']} iterations at {profile['seconds_per_step']:.3f} "
            f"s each under the profiler; trace: {profile['trace'] or 'not found'}"
        )
        for op, seconds, count in profile["top_ops"] or []:
            lines.append(f"  {op:40s} {1000 * seconds:9.1f} ms self ({count} calls)")
    lines += result["notes"]
    lines += [f"WARNING: {w}" for w in result["warnings"]]
    return lines


def format_text(result, command):
    """The report printed on the console."""
    rows = [list(HEADER)] + _table_rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    table = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([command] + _summary_lines(result) + [""] + table)


def format_markdown(result, command):
    """A Markdown section with the same figures."""
    title = (
        f"## {result['preset']}, {result['mixed_precision']}, "
        f"{'XLA' if result['jit_compile'] else 'no XLA'}, {result['machine']['date']}"
    )
    rows = [list(HEADER), ["---"] * len(HEADER)] + _table_rows(result)
    table = ["| " + " | ".join(r) + " |" for r in rows]
    summary = [
        ("  * " if line.startswith(" ") else "* ") + line.strip() for line in _summary_lines(result)
    ]
    return "\n".join([title, "", f"`{command}`", ""] + summary + [""] + table) + "\n"


# ---- Command line -------------------------------------------------------------------


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags in `flag_values` (only `__main__` and tests call it)."""
    fv = dict(flag_values=flag_values)
    # What to measure.
    flags.DEFINE_enum("preset", "demo", sorted(PRESETS), "Model size and batch.", **fv)
    flags.DEFINE_enum(
        "mixed_precision",
        "float32",
        precision.POLICIES,
        "Keras precision policy the models are built with.",
        **fv,
    )
    flags.DEFINE_bool(
        "jit_compile", False, "XLA for the train step and the in-process sampler.", **fv
    )
    flags.DEFINE_list("parts", list(PARTS), f"Measurements, from {', '.join(PARTS)}.", **fv)
    flags.DEFINE_list(
        "methods",
        ["kp_bn", "finetune"],
        f"Train-step methods (kp_bn: its bn stage), from {', '.join(METHODS)}.",
        **fv,
    )
    flags.DEFINE_integer("batch_size", None, "Batch (None: 8 / 32 per preset).", **fv)
    # How to measure.
    flags.DEFINE_integer(
        "runs", 5, "Timed runs per measurement (the median is reported).", lower_bound=1, **fv
    )
    flags.DEFINE_float(
        "min_run_seconds",
        1.0,
        "A timed run repeats the call until it lasts this long (seconds).",
        lower_bound=0.0,
        **fv,
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        f"TFDS data dir holding {demo_data.NAME} (None: generate it into a temp dir).",
        **fv,
    )
    flags.DEFINE_string(
        "profile_dir",
        None,
        f"Profile {PROFILED_STEPS} training iterations into this directory (None: no profile).",
        **fv,
    )
    # Where to write.
    flags.DEFINE_string("output", None, "Also write the report as Markdown here (None: no).", **fv)
    flags.DEFINE_bool("append", False, "Append to --output instead of overwriting it.", **fv)
    flags.register_validator(
        "parts", lambda v: set(v) <= set(PARTS), f"--parts must be from {', '.join(PARTS)}.", **fv
    )
    flags.register_validator(
        "methods",
        lambda v: bool(v) and set(v) <= set(METHODS),
        f"--methods must be from {', '.join(METHODS)}.",
        **fv,
    )


def _progress_logger():
    start = time.perf_counter()
    return lambda line: print(
        f"[{time.perf_counter() - start:6.1f} s] {line}", file=sys.stderr, flush=True
    )


def command_line(argv):
    return " ".join(["python -m benchmarks.throughput"] + [shlex.quote(a) for a in argv[1:]])


def run_from_flags(flag_values, command):
    """Measures what parsed `flag_values` ask for, prints the report; returns the results."""
    fv = flag_values
    print(command, flush=True)
    result = benchmark(
        fv.preset,
        mixed_precision=fv.mixed_precision,
        jit_compile=fv.jit_compile,
        runs=fv.runs,
        parts=tuple(fv.parts),
        methods=tuple(fv.methods),
        profile_dir=fv.profile_dir,
        data_dir=fv.data_dir,
        min_run_seconds=fv.min_run_seconds,
        batch_size=fv.batch_size,
        log=_progress_logger(),
    )
    print(format_text(result, command))
    if fv.output:
        tf.io.gfile.makedirs(os.path.dirname(fv.output) or ".")
        with tf.io.gfile.GFile(fv.output, "a" if fv.append else "w") as f:
            f.write(format_markdown(result, command) + "\n")
        print(f"wrote {fv.output}")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run_from_flags(flags.FLAGS, command_line(sys.argv))


if __name__ == "__main__":
    define_flags()
    app.run(main)
