r"""What the nearest-neighbour and memorisation metrics add to an evaluation's time.

  python -m benchmarks.eval_cost --output=benchmarks/results/eval_cost.md

One evaluation as training runs it: 1,000 generated images against 1,000 held-out real
images, with 200 training images (the demo transfer's size), 10 classes, 2048-wide
features. The feature network is an InceptionV3 of random weights with the real
network's shapes and cost (TF-GAN's module cannot be downloaded here; the cost of a
forward pass does not depend on the weights), the generator the demo's (32x32).

Timed, in seconds, best of `--repeats` (the first repeat of generation includes its
one trace, a few seconds):
* the metrics of before (FID, KID, IS, KMMD, per-class FID) and the added ones
  (precision/recall, density/coverage, the memorisation score in feature and pixel
  space, per class too, and the training-overlap check), on the same activations;
* generating and classifying the 1,000 images (which now also keeps their 32x32
  pixels), and classifying the training images (once per run: cached after).
The overhead of a periodic evaluation is (added metrics) / (generation + old metrics).
"""

import os
import platform
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import activations
from tf_cgan_transfer import biggan
from tf_cgan_transfer import evaluator as evaluator_lib
from tf_cgan_transfer import metrics
from tf_cgan_transfer import real_data
from tf_cgan_transfer import scoring

NUM_IMAGES = 1000
NUM_TRAINING = 200
NUM_CLASSES = 10


def write_inception_stand_in(directory):
    """A SavedModel with TF-GAN Inception's interface and InceptionV3's compute."""
    network = tf.keras.applications.InceptionV3(weights=None, classes=1008, pooling="avg")
    pool_layer = network.get_layer("avg_pool").output
    features = tf.keras.Model(network.input, [pool_layer, network.output])

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.features = features

        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
        def __call__(self, images):
            pool, probabilities = self.features(images, training=False)
            return {"pool_3": pool[:, None, None, :], "logits": tf.math.log(probabilities + 1e-9)}

    tf.saved_model.save(Module(), directory)
    return directory


def _images(n, seed):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, size=[n, 4, 4, 3]).astype(np.float32) * 0.8
    return tf.image.resize(coarse, [32, 32]).numpy(), (np.arange(n) % NUM_CLASSES).astype(np.int32)


def _source(n, seed, name):
    images, labels = _images(n, seed)
    dataset_fn = lambda: tf.data.Dataset.from_tensor_slices((images, labels)).batch(50)  # noqa
    return real_data.RealSource(dataset_fn, dict(dataset=name), n)


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def old_metrics(real, generated):
    """The evaluation's metrics before the nearest-neighbour and memorisation ones."""
    metrics.frechet_distance(real.pool, generated.pool)
    metrics.kernel_distance(real.pool, generated.pool)
    metrics.inception_score(generated.logits)
    metrics.kernel_mmd(real.pool, generated.pool)
    metrics.per_class_frechet_distance(
        real.pool, real.labels, generated.pool, generated.labels, NUM_CLASSES
    )


def measure(repeats, progress=print):
    work = tempfile.mkdtemp(prefix="eval_cost_")
    classifier = write_inception_stand_in(os.path.join(work, "inception"))
    progress("wrote the Inception stand-in")
    tf.keras.utils.set_random_seed(0)
    generator = biggan.Generator(
        32, ch=8, num_classes=NUM_CLASSES, dim_z=32, shared_dim=32, attention_resolution=0
    ).build_weights()
    real = _source(NUM_IMAGES, 1, "held_out")
    training = _source(NUM_TRAINING, 2, "train")
    evaluator = evaluator_lib.Evaluator(
        classifier, real.dataset_fn, real.cache_key, NUM_IMAGES, training=training
    )
    times = {}
    start = time.perf_counter()
    real_set = evaluator.real_activations()
    times["classify 1,000 real images (once, cached)"] = time.perf_counter() - start
    start = time.perf_counter()
    train_set = evaluator.training_activations()
    times["classify 200 training images (once, cached)"] = time.perf_counter() - start
    generated = None

    def generate():
        nonlocal generated
        generated = evaluator.generated_activations(generator)

    times["generate and classify 1,000 images"] = _best(generate, repeats)
    progress(f"generation: {times['generate and classify 1,000 images']:.1f} s")
    old = _best(lambda: old_metrics(real_set, generated), repeats)
    everything = _best(
        lambda: scoring.score(real_set, generated, NUM_CLASSES, training=train_set), repeats
    )
    times["metrics before (FID, KID, IS, KMMD, per-class FID)"] = old
    times["all metrics now"] = everything
    return times


def overheads(times):
    """`(added seconds, cached base, uncached base, uncached added)` of one evaluation."""
    values = list(times.values())
    real, training, generation, old, everything = values
    added = everything - old
    return added, generation + old, real + generation + old, training + added


def report(times, repeats):
    lines = [
        "# Cost of the nearest-neighbour and memorisation metrics",
        "",
        f"Command: `python -m benchmarks.eval_cost --repeats={repeats}` "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TF {tf.__version__}). 1,000 generated vs 1,000 held-out real images, "
        f"{NUM_TRAINING} training images, {NUM_CLASSES} classes, 2048-wide features of an "
        "InceptionV3-sized stand-in; best of the repeats.",
        "",
        "| part | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in times.items()]
    added, base, uncached, uncached_added = overheads(times)
    lines += [
        "",
        f"The added metrics take {added:.2f} s per evaluation: "
        f"{100 * added / base:.1f}% of the {base:.1f} s an evaluation took before "
        "(generation and classification plus the old metrics, real statistics cached), "
        "as during training. A first, uncached evaluation (a command line without "
        f"--cache_dir) also classifies the training images once: {uncached_added:.1f} s "
        f"more than the {uncached:.1f} s it took before ({100 * uncached_added / uncached:.1f}%). "
        f"The pixel copies ({activations.PIXEL_SIZE}x{activations.PIXEL_SIZE}) come out of "
        "the same generate-and-classify pass.",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    times = measure(flags.FLAGS.repeats)
    text = report(times, flags.FLAGS.repeats)
    print(text)
    if flags.FLAGS.output:
        with open(flags.FLAGS.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    flags.DEFINE_integer("repeats", 1, "Timed repeats of each part (best is reported).")
    flags.DEFINE_string("output", None, "Markdown file for the report.")
    app.run(main)
