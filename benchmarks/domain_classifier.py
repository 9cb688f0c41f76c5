"""A small CNN on all 16 classes of `cgan_demo_shapes`: the FID/KID network of the demo.

TF-GAN's Inception network knows ImageNet, not 32x32 coloured shapes, and cannot be
downloaded here; FID on the demo data set is therefore measured in the feature space of
a classifier trained on that data set (a "domain classifier"). `ensure` trains one (well
under a minute on 2 CPU cores) or reuses the one already saved, and measures its
accuracy on the test split through `classifier.load_classifier`, i.e. exactly as the
evaluator will call it.

The SavedModel is a `tf.Module` whose `__call__` takes float32 images `[N, 32, 32, 3]` in
[-1, 1] and returns `{"pool_3": [N, FEATURES], "logits": [N, 16]}`: `pool_3` is the
global average pool of the last convolution (the penultimate layer, as in Inception).
"""

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


def build_model(num_classes=len(demo_data.CLASS_NAMES)):
    """`(outputs model, logits model)` sharing layers: images -> {"pool_3", "logits"}, and
    images -> logits (the one trained).

    Three stages of two 3x3 conv + BN + ReLU (FEATURES/4, /2, /1 channels; 2x2 max pool
    after the first two), global average pool, linear classifier.
    """
    images = tf.keras.Input([demo_data.IMAGE_SIZE, demo_data.IMAGE_SIZE, 3])
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

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, demo_data.IMAGE_SIZE, demo_data.IMAGE_SIZE, 3], tf.float32)
        ]
    )
    def __call__(self, images):
        return self.outputs_model(images, training=False)


def load_split(data_dir, split):
    """All images of a split of `cgan_demo_shapes` (every class, original label ids).

    Read through `data.make_dataset`, the GAN's own input pipeline, so the classifier
    sees real images exactly as the evaluator feeds them. Returns float32 `[N, 32, 32, 3]`
    in [-1, 1] and int32 `[N]`.
    """
    config = data.DataConfig(
        dataset=demo_data.NAME,
        resolution=demo_data.IMAGE_SIZE,
        split=split,
        data_dir=data_dir,
        flip=False,
    )
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
    """Trains the classifier on the train split, saves it, measures test accuracy.

    8 epochs reach 99-100% test accuracy (20-30 s of training on 2 CPU cores).

    Returns:
      A dict (also written to `output_dir/classifier_metrics.json`): `test_accuracy`,
      `train_accuracy`, `num_train`, `num_test`, `epochs`, `seconds` (training only),
      `path`.
    """
    start = time.time()
    train_images, train_labels = load_split(data_dir, "train")
    test_images, test_labels = load_split(data_dir, "test")
    tf.keras.utils.set_random_seed(seed)  # the initial weights and the epochs' shuffles
    outputs_model, logits_model = build_model()
    # Cosine decay to 0: the last epochs settle the weights, so few epochs suffice.
    steps = epochs * (len(train_images) // batch_size + 1)
    logits_model.compile(
        optimizer=tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # No flip augmentation: every demo shape is mirror-symmetric up to its random
    # rotation, so the data set is already closed under the GAN's horizontal flips.
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
        epochs=epochs,
        seconds=seconds,
        path=os.path.abspath(output_dir),
    )
    with tf.io.gfile.GFile(os.path.join(output_dir, METRICS_FILE), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics


def ensure(data_dir, output_dir, epochs=8, seed=0):
    """The metrics of the classifier in `output_dir`, training it first if it is not there.

    A saved classifier counts only with its metrics file (written last), so a run killed
    while saving trains again.
    """
    metrics_path = os.path.join(output_dir, METRICS_FILE)
    if tf.io.gfile.exists(metrics_path):
        with tf.io.gfile.GFile(metrics_path) as f:
            metrics = json.load(f)
        return dict(metrics, reused=True)
    return dict(train(data_dir, output_dir, epochs, seed=seed), reused=False)
