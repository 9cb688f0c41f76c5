r"""Measures training iterations/s of the real training step (trainer.Trainer).

  python -m benchmarks.train_speed --preset=biggan128 --batch_size=8 --steps=3
  python -m benchmarks.train_speed --preset=demo

biggan128: the TF-Hub BigGAN-128 architecture (random weights: speed does not depend
on them) transferred with kp_bn (bn stage) to 5 classes, a fresh BigGAN D at 128.
demo: the offline demo's transfer model (BigGAN-32, ch 8) from configs/demo_*.flags.
Real images are synthetic tensors fed straight to the step, so the figure is the
model's speed, not the input pipeline's. Prints the median over --steps timed steps
after one warm-up step (which includes tracing). With --steps_per_call > 1 each timed
unit is one compiled call of that many steps (`GANStep.train_steps`, as `train
--steps_per_call` runs them, drawing the same batch from a distributed iterator), and
the figure is the call's time over its steps.
"""

import statistics
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer

FLAGS = flags.FLAGS


def build_run(preset, method, batch_size=None, optimizer=None):
    """`(trainer.Trainer, batch, resolution, classes)` of the preset's transfer run."""
    if preset == "biggan128":
        source = biggan.Generator(128).build_weights()
        resolution, batch, classes = 128, batch_size or 8, 5
    else:
        source = biggan.Generator(
            32, ch=8, num_classes=12, dim_z=32, shared_dim=32, attention_resolution=0
        ).build_weights()
        resolution, batch, classes = 32, batch_size or 32, 4
    config = train_config.TrainConfig(
        model_dir="/tmp/train_speed",
        data=data.DataConfig(dataset="folder", image_folder="unused", resolution=resolution),
        method=method,
        source=source,
        batch_size=batch,
        sample_every=0,
        optimizer=optimizer or train_config.OptimizerConfig(),
    )
    return trainer.Trainer(config, num_classes=classes), batch, resolution, classes


def synthetic_batch(batch, resolution, classes):
    """`(images [1, batch, R, R, 3], labels [1, batch])` as `train_step` takes them."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, [1, batch, resolution, resolution, 3]), tf.float32)
    labels = tf.constant(rng.integers(0, classes, [1, batch]), tf.int32)
    return images, labels


def main(argv):
    del argv
    optimizer = train_config.OptimizerConfig(fused_updates=FLAGS.fused_updates)
    run, batch, resolution, classes = build_run(
        FLAGS.preset, FLAGS.method, FLAGS.batch_size, optimizer
    )
    images, labels = synthetic_batch(batch, resolution, classes)
    per_call = FLAGS.steps_per_call
    if per_call == 1:
        step = lambda: run.train_step(images, labels)  # noqa: E731
    else:
        batches = tf.data.Dataset.from_tensors((images, labels)).repeat()
        iterator = iter(run.strategy.distribute_datasets_from_function(lambda _: batches))
        length = tf.constant(per_call, tf.int32)
        step = lambda: run.steps.train_steps(iterator, length)  # noqa: E731
    start = time.time()
    step()
    print(f"warm-up call (with tracing): {time.time() - start:.1f} s")
    times = []
    for _ in range(FLAGS.steps):
        start = time.time()
        float(step()["g_loss"])
        times.append((time.time() - start) / per_call)
    median = statistics.median(times)
    print(
        f"{FLAGS.preset} {FLAGS.method} batch {batch}, {per_call} step(s) per call, "
        f"fused_updates={FLAGS.fused_updates}: "
        f"median {median:.4f} s/step = "
        f"{1 / median:.3f} steps/s = {batch / median:.2f} images/s "
        f"(steps: {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    flags.DEFINE_enum("preset", "demo", ["demo", "biggan128"], "Model size.")
    flags.DEFINE_integer("batch_size", None, "Global batch (None: 8 / 32 per preset).")
    flags.DEFINE_integer("steps", 5, "Timed steps.")
    flags.DEFINE_enum("method", "kp_bn", ["kp_bn", "finetune"], "Transfer method.")
    flags.DEFINE_integer("steps_per_call", 1, "Iterations per compiled call.")
    flags.DEFINE_bool("fused_updates", True, "One Adam update call for all variables.")
    app.run(main)
