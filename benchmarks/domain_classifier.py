"""A small CNN trained on a benchmark's own images: the FID/KID network of small data sets.

TF-GAN's Inception network knows ImageNet, not 32x32 coloured shapes or game sprites,
and cannot be downloaded here; FID on such data is therefore measured in the feature
space of a classifier trained on that data (a "domain classifier"). `ensure_for` trains
one on a train split (a minute or two on 2 CPU cores) or reuses the one already saved,
and measures its accuracy on a held-out split through `classifier.load_classifier`, i.e.
exactly as the evaluator will call it; `ensure` does so for all 16 classes of the demo
data set `cgan_demo_shapes`.

The SavedModel is a `tf.Module` whose `__call__` takes float32 images `[N, R, R, 3]` in
[-1, 1] and returns `{"pool_3": [N, FEATURES], "logits": [N, C]}`: `pool_3` is the
global average pool of the last convolution (the penultimate layer, as in Inception).
"""

import dataclasses
import json
import os
import time

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data

FEATURES = 64  # width of pool_3: well below the 1,200 real images FID compares against
METRICS_FILE = "classifier_metrics.json"


def build_model(num_classes=len(demo_data.CLASS_NAMES), image_size=demo_data.IMAGE_SIZE):
    """`(outputs model, logits model)` sharing layers: images -> {"pool_3", "logits"}, and
    images -> logits (the one trained).

    Three stages of two 3x3 conv + BN + ReLU (FEATURES/4, /2, /1 channels; 2x2 max pool
    after the first two), global average pool, linear classifier.
    """
    images = tf.keras.Input([image_size, image_size, 3])
    x = images
    for stage, width in enumerate((FEATURES // 4, FEATURES // 2, FEATURES)):
        for _ in range(2):
            x = tf.keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = tf.keras.layers.BatchNormalization()(x)
            x = tf.keras.layers.ReLU()(x)
        if stage < 2:
            x = tf.keras.layers.MaxPool2D()(x)
    features = tf.keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    logits = tf.keras.layers.Dense(num_classes)(features)
    outputs = {classifier_lib.POOL_KEY: features, classifier_lib.LOGITS_KEY: logits}
    return tf.keras.Model(images, outputs), tf.keras.Model(images, logits)


class DomainClassifier(tf.Module):
    """The exported interface: `classifier.Classifier` reads `pool_3` and `logits`."""

    def __init__(self, outputs_model):
        super().__init__()
        self.outputs_model = outputs_model
        size = outputs_model.input_shape[1]
        # The input signature carries the image size (classifier.Classifier reads it).
        self.__call__ = tf.function(
            self._call, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)]
        )

    def _call(self, images):
        return self.outputs_model(images, training=False)


def demo_split(data_dir, split):
    """The `data.DataConfig` of a split of `cgan_demo_shapes`, every class."""
    return data.DataConfig(
        dataset=demo_data.NAME,
        resolution=demo_data.IMAGE_SIZE,
        split=split,
        data_dir=data_dir,
        flip=False,
    )


def load_split(data_dir_or_config, split="train"):
    """All images of a data config (or of `split` of `cgan_demo_shapes` in a data dir).

    Read through `data.make_dataset`, the GAN's own input pipeline (without its flips),
    so the classifier sees real images exactly as the evaluator feeds them. Label ids
    are the config's (after its class subset). Returns float32 `[N, R, R, 3]` in [-1, 1]
    and int32 `[N]`.
    """
    if isinstance(data_dir_or_config, data.DataConfig):
        config = dataclasses.replace(data_dir_or_config, flip=False, images_per_class=None)
    else:
        config = demo_split(data_dir_or_config, split)
    # One batch of the whole split: make_dataset drops a partial last batch.
    count = data.describe(config).num_examples
    dataset = data.make_dataset(config, count, repeat=False, shuffle=False)
    images, labels = next(iter(dataset))
    return images.numpy(), labels.numpy()


def accuracy(classifier_dir, images, labels, batch_size=200):
    """Top-1 accuracy of the saved classifier, loaded as the evaluator loads it."""
    classifier = classifier_lib.load_classifier(classifier_dir)
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = classifier(images[start : start + batch_size])[classifier_lib.LOGITS_KEY]
        correct += int(
            np.sum(np.argmax(logits.numpy(), axis=1) == labels[start : start + batch_size])
        )
    return correct / len(images)


def train(data_dir, output_dir, epochs=8, batch_size=64, seed=0):
    """Trains the demo's classifier (all 16 classes of `cgan_demo_shapes`); see `train_on`.

    8 epochs reach 99-100% test accuracy (20-30 s of training on 2 CPU cores).
    """
    return train_on(
        demo_split(data_dir, "train"),
        demo_split(data_dir, "test"),
        output_dir,
        len(demo_data.CLASS_NAMES),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )


def train_on(
    train_data, test_data, output_dir, num_classes, epochs=8, batch_size=64, seed=0, flip=False
):
    """Trains the classifier on `train_data`, saves it, measures accuracy on `test_data`.

    Args:
      train_data, test_data: `data.DataConfig`s of the same classes (label ids
        0..num_classes-1 after their class subsets); the test images must be held out.
      output_dir: where the SavedModel and `classifier_metrics.json` go.
      num_classes: C, the logits' width.
      epochs, batch_size, seed: training; the learning rate decays to 0 over the epochs.
      flip: also train on every image's mirror image (for data whose classes are
        mirror-invariant, such as sprites that face either way).

    Returns:
      A dict (also written to `output_dir/classifier_metrics.json`): `test_accuracy`,
      `train_accuracy`, `num_train`, `num_test`, `num_classes`, `epochs`, `seconds`
      (training only), `path`.
    """
    start = time.time()
    train_images, train_labels = load_split(train_data)
    test_images, test_labels = load_split(test_data)
    if flip:  # both orientations of every image, shuffled together by fit
        train_images = np.concatenate([train_images, train_images[:, :, ::-1]])
        train_labels = np.concatenate([train_labels, train_labels])
    tf.keras.utils.set_random_seed(seed)  # the initial weights and the epochs' shuffles
    outputs_model, logits_model = build_model(num_classes, train_data.resolution)
    # Cosine decay to 0: the last epochs settle the weights, so few epochs suffice.
    steps = epochs * (len(train_images) // batch_size + 1)
    logits_model.compile(
        optimizer=tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # (The demo needs no flips: every demo shape is mirror-symmetric up to its random
    # rotation, so its data set is already closed under the GAN's horizontal flips.)
    history = logits_model.fit(
        train_images, train_labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0
    )
    seconds = time.time() - start
    tf.saved_model.save(DomainClassifier(outputs_model), output_dir)
    metrics = dict(
        test_accuracy=accuracy(output_dir, test_images, test_labels),
        train_accuracy=float(history.history["accuracy"][-1]),
        num_train=int(len(train_images)),
        num_test=int(len(test_images)),
        num_classes=int(num_classes),
        epochs=epochs,
        seconds=seconds,
        path=os.path.abspath(output_dir),
    )
    with tf.io.gfile.GFile(os.path.join(output_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics


def _reused(output_dir):
    """The saved classifier's metrics, or None. A saved classifier counts only with its
    metrics file (written last), so a run killed while saving trains again."""
    metrics_path = os.path.join(output_dir, METRICS_FILE)
    if not tf.io.gfile.exists(metrics_path):
        return None
    with tf.io.gfile.GFile(metrics_path) as f:
        return dict(json.load(f), reused=True)


def ensure(data_dir, output_dir, epochs=8, seed=0):
    """The metrics of the demo's classifier in `output_dir`, training it first if needed."""
    return _reused(output_dir) or dict(train(data_dir, output_dir, epochs, seed=seed), reused=False)


def ensure_for(train_data, test_data, output_dir, num_classes, epochs=8, seed=0, flip=False):
    """The metrics of the classifier in `output_dir`, `train_on` first if it is not there."""
    reused = _reused(output_dir)
    if reused:
        return reused
    metrics = train_on(
        train_data, test_data, output_dir, num_classes, epochs=epochs, seed=seed, flip=flip
    )
    return dict(metrics, reused=False)
