r"""Time of one Adam update of a model's trained variables: fused against per variable.

  python -m benchmarks.optimizer_update --preset=demo
  python -m benchmarks.optimizer_update --preset=biggan128 --runs=5

Builds the transfer run of `benchmarks.train_speed` (demo: BigGAN-32 ch 8; biggan128:
the TF-Hub BigGAN-128 architecture, random weights) for each method and times
`apply_gradients` alone, inside one `tf.function`, on G's and on D's trained variables
with fixed random gradients, four ways:
* `per_variable`: Keras' update, a dozen graph ops per variable;
* `per_variable_xla`: Keras' update compiled with XLA, one launch per variable;
* `fused`: `optimizers.FusedAdam`, every variable's update in one function;
* `fused_xla`: the same compiled with XLA, one launch for all.
Median milliseconds per update over `--runs` runs (`machine.time_calls`).

With `--paired_blocks=N` it also times whole training steps of two trainers built side
by side in one process, one with fused updates and one without, alternating blocks of
10 steps N times each (separate processes vary by more than an update can change):

  python -m benchmarks.optimizer_update --preset=demo --paired_blocks=12
"""

from absl import app
from absl import flags
import statistics
import time

import numpy as np
import tensorflow as tf

from benchmarks import machine
from benchmarks import train_speed
from tf_cgan_transfer import optimizers
from tf_cgan_transfer import train_config

FLAGS = flags.FLAGS
VARIANTS = dict(
    per_variable=(False, False),
    per_variable_xla=(False, True),
    fused=(True, False),
    fused_xla=(True, True),
)


def time_update(variables, fused, xla, runs):
    """Median seconds of one `apply_gradients` over `variables` (copies: left untouched)."""
    rng = np.random.default_rng(0)
    copies = [tf.Variable(v.read_value()) for v in variables]
    grads = [tf.constant(rng.normal(size=v.shape) * 1e-3, v.dtype) for v in copies]
    optimizer = optimizers.make(1e-4, 0.0, 0.999, 1e-6, xla_updates=xla, fused=fused)
    optimizer.build(copies)
    update = tf.function(lambda: optimizer.apply_gradients(zip(grads, copies)))
    # apply_gradients returns the step counter: fetching it waits for the update.
    return machine.time_calls(lambda: update().numpy(), runs, min_run_seconds=0.5)["seconds"]


def paired_steps(preset, method, blocks, block_steps=10):
    """`{fused: median seconds per step}` of two trainers, alternating blocks of steps."""
    steps = {}
    for fused in (False, True):
        optimizer = train_config.OptimizerConfig(fused_updates=fused)
        run, batch, resolution, classes = train_speed.build_run(preset, method, optimizer=optimizer)
        images, labels = train_speed.synthetic_batch(batch, resolution, classes)
        steps[fused] = lambda r=run, x=images, y=labels: float(r.train_step(x, y)["g_loss"])
        steps[fused]()  # trace
    times = {False: [], True: []}
    for block in range(blocks):
        for fused in (False, True) if block % 2 == 0 else (True, False):
            start = time.perf_counter()
            for _ in range(block_steps):
                steps[fused]()
            times[fused].append((time.perf_counter() - start) / block_steps)
    return {fused: statistics.median(t) for fused, t in times.items()}


def main(argv):
    del argv
    print(machine.machine_info())
    rows = []
    for method in FLAGS.methods:
        run = train_speed.build_run(FLAGS.preset, method)[0]
        for model, variables in (("G", run.models.g_variables), ("D", run.models.d_variables)):
            params = sum(v.shape.num_elements() for v in variables)
            for name, (fused, xla) in VARIANTS.items():
                seconds = time_update(variables, fused, xla, FLAGS.runs)
                rows.append((method, model, len(variables), params, name, seconds))
                print(f"{method} {model} {len(variables)} vars {params:,} params {name}: "
                      f"{1e3 * seconds:.2f} ms", flush=True)
    print()
    print(f"| {FLAGS.preset} | model | variables | parameters | "
          + " | ".join(VARIANTS) + " |")
    print("| --- | --- | ---: | ---: |" + " ---: |" * len(VARIANTS))
    for i in range(0, len(rows), len(VARIANTS)):
        method, model, count, params = rows[i][:4]
        cells = " | ".join(f"{1e3 * r[5]:.2f}" for r in rows[i : i + len(VARIANTS)])
        print(f"| {method} | {model} | {count} | {params:,} | {cells} |")
    if FLAGS.paired_blocks:
        print()
        print(f"| {FLAGS.preset}, s/step | per-variable | fused |")
        print("| --- | ---: | ---: |")
        for method in FLAGS.methods:
            medians = paired_steps(FLAGS.preset, method, FLAGS.paired_blocks)
            print(f"| {method} | {medians[False]:.3f} | {medians[True]:.3f} |", flush=True)


if __name__ == "__main__":
    flags.DEFINE_enum("preset", "demo", ["demo", "biggan128"], "Model size.")
    flags.DEFINE_integer("runs", 7, "Timed runs (median reported).")
    flags.DEFINE_list("methods", ["kp_bn", "finetune"], "Transfer methods.")
    flags.DEFINE_integer("paired_blocks", 0, "Also time whole steps in this many paired blocks.")
    app.run(main)
