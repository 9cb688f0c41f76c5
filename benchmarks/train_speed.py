r"""Measures training iterations/s of the real training step (trainer.Trainer).

  python -m benchmarks.train_speed --preset=biggan128 --batch_size=8 --steps=3
  python -m benchmarks.train_speed --preset=demo

biggan128: the TF-Hub BigGAN-128 architecture (random weights: speed does not depend
on them) transferred with kp_bn (bn stage) to 5 classes, a fresh BigGAN D at 128.
demo: the offline demo's transfer model (BigGAN-32, ch 8) from configs/demo_*.flags.
Real images are synthetic tensors fed straight to the step, so the figure is the
model's speed, not the input pipeline's. Prints the median over --steps timed steps
after one warm-up step (which includes tracing).
"""

import statistics
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import trainer

_PRESET = flags.DEFINE_enum("preset", "demo", ["demo", "biggan128"], "Model size.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch (None: 8 / 32 per preset).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.")
_METHOD = flags.DEFINE_enum("method", "kp_bn", ["kp_bn", "finetune"], "Transfer method.")


def main(argv):
    del argv
    if _PRESET.value == "biggan128":
        source = biggan.Generator(128).build_weights()
        resolution, batch, classes = 128, _BATCH.value or 8, 5
    else:
        source = biggan.Generator(
            32, ch=8, num_classes=12, dim_z=32, shared_dim=32, attention_resolution=0
        ).build_weights()
        resolution, batch, classes = 32, _BATCH.value or 32, 4
    config = trainer.TrainConfig(
        model_dir="/tmp/train_speed",
        data=data.DataConfig(dataset="folder", image_folder="unused", resolution=resolution),
        method=_METHOD.value,
        source=source,
        batch_size=batch,
        sample_every=0,
    )
    run = trainer.Trainer(config, num_classes=classes)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, [1, batch, resolution, resolution, 3]), tf.float32)
    labels = tf.constant(rng.integers(0, classes, [1, batch]), tf.int32)
    start = time.time()
    run.train_step(images, labels)
    print(f"warm-up step (with tracing): {time.time() - start:.1f} s")
    times = []
    for _ in range(_STEPS.value):
        start = time.time()
        metrics = run.train_step(images, labels)
        float(metrics["g_loss"])
        times.append(time.time() - start)
    median = statistics.median(times)
    print(
        f"{_PRESET.value} {_METHOD.value} batch {batch}: median {median:.3f} s/step = "
        f"{1 / median:.3f} steps/s = {batch / median:.2f} images/s "
        f"(steps: {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    app.run(main)
