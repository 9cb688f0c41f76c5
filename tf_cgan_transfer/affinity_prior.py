"""An affinity prior from data: which old classes the pretrained D sees in each new class.

kp_bn learns each new class's mixture A(y_n) over the K old classes from a random start
(docs/method.md §2). The source already holds an opinion: its projection discriminator
scores an image x against old class k by <e_k, phi(x)> (e_k: row k of D's class
embedding, phi: D's pooled features). Averaging the softmax of these scores over a new
class's training images gives a distribution over old classes,

    prior[n, k] = mean over images x of class n of softmax_k(<e_k, phi(x)>),

which `mixture_init="prior"` uses as the mixtures' starting point
(`conditional_bn.KnowledgePropagationBatchNorm.set_mixtures`) instead of the reference's
orthogonal draw. It needs a source with a discriminator (our runs, BigGAN-PyTorch); TF-Hub's
BigGANs ship none.
"""

import dataclasses
import math
import os

from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import data
from tf_cgan_transfer import errors
from tf_cgan_transfer import model_io

PRIOR_FILE = "affinity_prior.npz"


class PriorError(errors.UserError, ValueError):
    """No prior can be computed; the message says why and what to do."""


def projection_scores(discriminator, images):
    """<e_k, phi(x)> for every old class k: float32 `[B, K]` (inference mode)."""
    phi = discriminator.features(images, training=False)
    embedding = discriminator.embedding.normalized_kernel()  # [K, C]
    return tf.matmul(phi, tf.cast(embedding, phi.dtype), transpose_b=True)


def projection_prior(discriminator, batches, num_new_classes):
    """The module docstring's prior from `(images, labels)` batches of the new classes.

    Args:
      discriminator: the source's `discriminator.Discriminator` (K old classes).
      batches: an iterable of `(images [B, R, R, 3] in [-1, 1], labels [B])`, labels in
        [0, num_new_classes).
      num_new_classes: N.

    Returns:
      float64 `[N, K]`, each row a distribution over the old classes.

    Raises:
      PriorError: a new class has no image.
    """
    sums = np.zeros([num_new_classes, discriminator.num_classes])
    counts = np.zeros([num_new_classes])
    for images, labels in batches:
        p = tf.nn.softmax(projection_scores(discriminator, images), axis=-1).numpy()
        labels = np.asarray(labels)
        np.add.at(sums, labels, p)
        np.add.at(counts, labels, 1)
    if not counts.all():
        missing = [int(n) for n in np.flatnonzero(counts == 0)]
        raise PriorError(f"New classes {missing} have no training image to compute a prior from.")
    return sums / counts[:, None]


def one_epoch(plan, batch_size=32):
    """Every selected image of a `data.DataPlan` once, in file order, unflipped."""
    plan = plan.with_config(dataclasses.replace(plan.config, flip=False))
    total = plan.num_examples
    dataset = data.make_dataset(plan, batch_size, repeat=True, shuffle=False)
    for i, (images, labels) in enumerate(dataset.take(math.ceil(total / batch_size))):
        keep = min(batch_size, total - i * batch_size)
        yield images[:keep], labels[:keep]


def for_source(source_d, plan, num_new_classes):
    """The prior of a transfer from a source with discriminator `source_d` (None: fails)."""
    if source_d is None:
        raise PriorError(
            "mixture_init='prior' scores the new classes' images with the source's "
            "discriminator, and this source has none (TF-Hub BigGANs ship only G). Use a "
            "source with a D (one of our runs, a BigGAN-PyTorch import) or another "
            "--mixture_init."
        )
    logging.info(
        "Affinity prior: scoring %d training images with the source's D", plan.num_examples
    )
    return projection_prior(source_d, one_epoch(plan), num_new_classes)


def save(directory, prior):
    """Writes `prior` to `<directory>/PRIOR_FILE` (atomically); returns the path."""
    path = os.path.join(directory, PRIOR_FILE)
    model_io.write_npz(path, prior=np.asarray(prior))
    return path


def load(path):
    """The prior saved next to a run or models directory `path`, or None."""
    found = model_io.find_run_file(path, PRIOR_FILE)
    if found is None:
        return None
    with np.load(found) as saved:
        return saved["prior"]


def for_run(run_root, plan, num_new_classes, write=True):
    """The `transfer.build(prior=...)` function of a training run.

    A run computes its prior once, from its training data (`plan`, a function returning
    the `data.DataPlan`, called only then), and saves it in `run_root` (when `write`: the
    chief); a resumed run rebuilds its models with the saved prior before restoring its
    checkpoint, without touching the data again.
    """

    def prior(source_g, source_d):
        del source_g
        saved = load(run_root)
        if saved is not None:
            return saved
        computed = for_source(source_d, plan(), num_new_classes)
        if write:
            save(run_root, computed)
        return computed

    return prior
