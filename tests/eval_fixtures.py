"""Shared fixtures of the evaluation tests: NumPy references, images, a generator, classifiers.

The Inception module cannot be downloaded here; `tests/fake_inception.py` writes fake
modules with its interface in both forms (callable TF2 SavedModel, TF1 Hub format), and
`classifier_dir` writes each once per test process. The metrics are checked against the
independent float64 NumPy/SciPy computations below.
"""

import atexit
import os
import shutil
import tempfile

import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

from tests import fake_inception
from tf_cgan_transfer import biggan

NUM_CLASSES = 3
INCEPTION_URL = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"


# ---- NumPy references ----------------------------------------------------------------


def reference_fid(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2.0 * root)


def reference_fid_gram(a, b):
    """FID through the n_a x n_b cross-Gram matrix, cheap for any width.

    With S_a = A^T A, S_b = B^T B (A, B the centred rows over sqrt(n - 1)), the non-zero
    eigenvalues of S_a S_b are the squared singular values of A B^T, so
    tr (S_a S_b)^(1/2) is the nuclear norm of A B^T.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    cb = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    trace_root = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return mean_term + np.sum(ca * ca) + np.sum(cb * cb) - 2.0 * trace_root


def reference_kid(a, b):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (one block)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1.0) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return (
        (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        - 2.0 * k_ab.mean()
    )


def reference_is(logits):
    p = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
    q = p.mean(axis=0)
    return np.exp(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def reference_kmmd(real, generated, sigma=1.0):
    """The docstring's formula, with every pairwise distance computed explicitly."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)

    def squared(x, y):
        return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

    n = len(real)
    rr = squared(real, real)
    scale = rr.sum() / (n * (n - 1))  # the diagonal is zero
    kernel = lambda d: np.exp(-d / (2.0 * sigma**2 * scale))  # noqa: E731
    return (
        kernel(rr).mean()
        + kernel(squared(generated, generated)).mean()
        - 2.0 * kernel(squared(real, generated)).mean()
    )


# ---- Fixtures ------------------------------------------------------------------------


def smooth_images(n, size, seed):
    """Deterministic images in [-1, 1] with low-frequency structure (visible after pooling)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, size=[n, 4, 4, 3]).astype(np.float32) * 0.8
    images = tf.image.resize(coarse, [size, size], method="bilinear")
    return np.clip(images.numpy(), -1.0, 1.0)


def tiny_generator(seed=0):
    tf.keras.utils.set_random_seed(seed)
    return biggan.Generator(
        32, ch=8, num_classes=NUM_CLASSES, shared_dim=8, dim_z=8
    ).build_weights()


_CLASSIFIER_DIRS = {}


def classifier_dir(form, **kwargs):
    """`(directory, weights)` of a fake Inception module, written once per test process.

    Args:
      form: "tf2" (callable SavedModel) or "tf1" (TF1 Hub format).
      **kwargs: `image_size`, `pool_dim`, `logits_dim` for `fake_inception`.
    """
    key = (form, tuple(sorted(kwargs.items())))
    if key not in _CLASSIFIER_DIRS:
        if not _CLASSIFIER_DIRS:
            root = tempfile.mkdtemp(prefix="evaluate_test_")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _CLASSIFIER_DIRS["root"] = root
        path = os.path.join(_CLASSIFIER_DIRS["root"], f"{form}_{len(_CLASSIFIER_DIRS)}")
        write = dict(tf2=fake_inception.write_tf2_module, tf1=fake_inception.write_tf1_hub_module)
        _CLASSIFIER_DIRS[key] = (path, write[form](path, **kwargs))
    return _CLASSIFIER_DIRS[key]
