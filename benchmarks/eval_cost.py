r"""What one evaluation of 1,000 generated images costs, part by part, and its floor.

  python -m benchmarks.eval_cost --output=benchmarks/results/eval_cost.md

One evaluation as training runs it: 1,000 generated images against 1,000 held-out real
images, with 200 training images (the demo transfer's size), 10 classes, 2048-wide
features. The feature network is an InceptionV3 of random weights with the real
network's shapes and cost (TF-GAN's module cannot be downloaded here; the cost of a
forward pass does not depend on the weights), the generator the demo's (32x32).

Timed, in seconds, best of `--repeats` (the first repeat of generation includes its
one trace, a few seconds):
* classifying the real and the training images (first evaluation only: cached after);
* generating and classifying the 1,000 images;
* every metric of `scoring.score` on those activations, and FID alone the way TF-GAN
  computes it (two 2048 x 2048 matrix square roots), the route `metrics.frechet_distance`
  took for these sizes before it used the cross-Gram form.
A periodic evaluation is generation plus metrics; the first one adds the real and
training passes. The floor is the classifier: its FLOPs per image (TF's profiler) times
the images per second of the generated pass, against this machine's float32 matmul rate.
"""

import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
import tensorflow_gan as tfgan

from benchmarks import machine
from tf_cgan_transfer import biggan
from tf_cgan_transfer import evaluator as evaluator_lib
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


def tfgan_fid(real, generated):
    """FID as TF-GAN computes it from the full 2048-wide activations."""
    real_pool, generated_pool = (tf.constant(s.pool, tf.float64) for s in (real, generated))
    return float(tfgan.eval.frechet_classifier_distance_from_activations(real_pool, generated_pool))


def stand_in_gflops():
    """FLOPs per image of the stand-in's forward pass at 299x299 (TF's profiler)."""
    from tensorflow.python.profiler import model_analyzer, option_builder  # noqa: PLC0415

    network = tf.keras.applications.InceptionV3(weights=None, classes=1008, pooling="avg")
    spec = tf.TensorSpec([1, 299, 299, 3], tf.float32)
    graph = tf.function(lambda x: network(x, training=False)).get_concrete_function(spec).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return model_analyzer.profile(graph, options=options).total_float_ops / 1e9


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
    times["classify 1,000 real images (first evaluation only)"] = time.perf_counter() - start
    start = time.perf_counter()
    train_set = evaluator.training_activations()
    times["classify 200 training images (first evaluation only)"] = time.perf_counter() - start
    generated = None

    def generate():
        nonlocal generated
        generated = evaluator.generated_activations(generator)

    times["generate and classify 1,000 images"] = _best(generate, repeats)
    progress(f"generation: {times['generate and classify 1,000 images']:.1f} s")
    times["all metrics (scoring.score)"] = _best(
        lambda: scoring.score(real_set, generated, NUM_CLASSES, training=train_set), repeats
    )
    times["FID alone, TF-GAN's way (before)"] = _best(
        lambda: tfgan_fid(real_set, generated), repeats
    )
    floor = dict(
        gflops_per_image=stand_in_gflops(),
        matmul_gflops=machine.matmul_rate(tf.float32)["gflops"],
    )
    return times, floor


def report(times, floor, repeats):
    info = machine.machine_info()
    features = ", ".join(info["cpu_features"]) or "no AVX-512, AMX or AVX512-BF16"
    lines = [
        "# Cost of one evaluation of 1,000 generated images",
        "",
        f"Command: `python -m benchmarks.eval_cost --repeats={repeats}` ({info['cpu']}, "
        f"{features}, {info['usable_cores']} cores, TF {info['tensorflow']}, {info['date']}). "
        f"1,000 generated vs 1,000 held-out real images, {NUM_TRAINING} training images, "
        f"{NUM_CLASSES} classes, 2048-wide features of an InceptionV3-sized stand-in; best "
        "of the repeats.",
        "",
        "| part | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in times.items()]
    real, training, generation, scores, _ = times.values()
    rate = NUM_IMAGES / generation * floor["gflops_per_image"]
    lines += [
        "",
        "A periodic evaluation (real and training activations cached): "
        f"**{generation + scores:.1f} s**; the first one: **{real + training + generation + scores:.1f} s**.",
        "",
        f"Floor: the classifier costs {floor['gflops_per_image']:.2f} GFLOP an image at "
        f"{NUM_IMAGES / generation:.1f} images/s, {rate:.0f} GFLOP/s: "
        f"{100 * rate / floor['matmul_gflops']:.0f}% of this machine's float32 2048x2048 "
        f"matmul ({floor['matmul_gflops']:.0f} GFLOP/s).",
    ]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    times, floor = measure(flags.FLAGS.repeats)
    text = report(times, floor, flags.FLAGS.repeats)
    print(text)
    if flags.FLAGS.output:
        with open(flags.FLAGS.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    flags.DEFINE_integer("repeats", 1, "Timed repeats of each part (best is reported).")
    flags.DEFINE_string("output", None, "Markdown file for the report.")
    app.run(main)
