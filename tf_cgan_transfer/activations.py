"""What an evaluation keeps of a set of images: classifier outputs, labels, small pixels.

Every metric of `metrics` is a function of these arrays, so one pass of the classifier
over a set of images serves them all: FID, KID, precision/recall and density/coverage
use the pool features, IS and class accuracy the logits, and the pixel-space
memorisation score the images downsampled to at most `PIXEL_SIZE` (area averaging: the
exact copy of an image stays at distance 0, a shifted copy does not collapse onto it).

`classify` runs the classifier over a `tf.data.Dataset`; `ActivationCache` keeps the
arrays of real image sets on disk under a hash of everything that produced them.
"""

import dataclasses
import hashlib
import io
import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import progress as progress_lib
from tf_cgan_transfer.real_data import EvaluationError

CACHE_FORMAT = 2  # bump when the cached arrays change meaning (2: logits and pixels)
PIXEL_SIZE = 32  # side of the pixel-space copies (smaller images are kept as they are)
_FIELDS = ("pool", "logits", "labels", "pixels")


@dataclasses.dataclass(frozen=True)
class Activations:
    """One image set as the metrics see it (N images).

    Attributes:
      pool: float32 `[N, D]` classifier pool features.
      logits: float32 `[N, C]` classifier logits.
      labels: int32 `[N]` the generator's class ids.
      pixels: uint8 `[N, P * P * 3]`, the images area-downsampled to side
        P = min(R, `PIXEL_SIZE`) and flattened.
    """

    pool: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    pixels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def of_class(self, c):
        """The images of class `c`."""
        keep = self.labels == c
        return Activations(*(getattr(self, f)[keep] for f in _FIELDS))

    def select(self, keep):
        """The images where the boolean `keep [N]` is True."""
        return Activations(*(getattr(self, f)[keep] for f in _FIELDS))

    def pixel_vectors(self):
        """`pixels` as float32 in [0, 1], the space of pixel distances."""
        return self.pixels.astype(np.float32) / 255.0


def small_pixels(images):
    """`images [B, R, R, 3]` in [-1, 1] -> uint8 `[B, P * P * 3]` (see `Activations`)."""
    size = images.shape[1]
    if size > PIXEL_SIZE:
        images = tf.image.resize(images, [PIXEL_SIZE, PIXEL_SIZE], method="area")
        size = PIXEL_SIZE
    pixels = tf.round((tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0) + 1.0) * 127.5)
    return tf.reshape(tf.cast(pixels, tf.uint8), [-1, size * size * 3])


def concatenate(parts):
    """One `Activations` of a list of per-batch `(pool, logits, labels, pixels)` tuples."""
    pool, logits, labels, pixels = (np.concatenate(a) for a in zip(*parts))
    return Activations(
        pool.astype(np.float32), logits.astype(np.float32), labels.astype(np.int32), pixels
    )


def check_dataset(dataset, what):
    """Raises an `EvaluationError` unless `dataset` yields (float images, int labels)."""
    if not isinstance(dataset, tf.data.Dataset):
        raise EvaluationError(f"{what} returned a {type(dataset).__name__}, not a tf.data.Dataset.")
    spec = dataset.element_spec
    ok = isinstance(spec, tuple) and len(spec) == 2
    if ok:
        images, labels = spec
        ok = (
            images.dtype.is_floating
            and images.shape.rank == 4
            and images.shape[-1] == 3
            and labels.dtype.is_integer
            and labels.shape.rank == 1
        )
    if not ok:
        raise EvaluationError(
            f"{what} must yield (float images [B, R, R, 3] in [-1, 1], int labels [B]) "
            f"batches; its element_spec is {spec}."
        )


def classify(classifier, dataset, num_images, batch_size, what="real_dataset_fn"):
    """The `Activations` of the first `num_images` images of `dataset`.

    Args:
      classifier: a loaded `classifier.Classifier`.
      dataset: a `tf.data.Dataset` of `(images, labels)` batches (it may repeat).
      num_images: how many images to take; fewer in the dataset is an error.
      batch_size: images per classifier batch.
      what: the dataset's name in error messages.

    Raises:
      EvaluationError: the dataset's form or range is wrong, or it is too short.
    """
    check_dataset(dataset, what)
    dataset = dataset.unbatch().take(num_images).batch(batch_size)
    # With tf.data's autotuning on, deleting the finished iterator stalled for 1.5-49 s
    # in about a third of the passes on a 2-core CPU busy with the classifier (49 s
    # after a 93 s pass of 1,000 images; never in 12 passes without it; see
    # benchmarks/results/eval_cost.md). The classifier, not the input, bounds this loop,
    # so autotuning has nothing to gain here.
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.with_options(options)
    parts, done = [], 0
    progress = progress_lib.Progress(f"classifying {what}", num_images, "images")
    for i, (images, labels) in enumerate(dataset.prefetch(2)):
        if i == 0:
            low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
            if low < -1.01 or high > 1.01:
                raise EvaluationError(
                    f"{what}'s images span [{low:g}, {high:g}]; scale them to [-1, 1] "
                    "(x / 127.5 - 1 for uint8 pixels)."
                )
        outputs = classifier(images)
        parts.append(
            (
                outputs[classifier_lib.POOL_KEY].numpy(),
                outputs[classifier_lib.LOGITS_KEY].numpy(),
                labels.numpy(),
                small_pixels(images).numpy(),
            )
        )
        done += len(labels)
        progress.update(len(labels))
    progress.close()
    if done < num_images:
        raise EvaluationError(
            f"{what} yielded {done} images, fewer than num_images={num_images}: lower "
            "num_images or make the dataset repeat."
        )
    return concatenate(parts)


def canonical(key):
    """The key as canonical JSON text: equal dicts in any order hash alike."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class ActivationCache:
    """`Activations` on disk, one `<prefix>_<sha1 of key>.npz` (+ `.json` sidecar) each.

    Args:
      cache_dir: the directory; None keeps nothing on disk (every `get` misses).
    """

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir

    def paths(self, prefix, key_text):
        """`(npz path, json path)` of a key (canonical JSON text), or None."""
        if not self.cache_dir:
            return None
        digest = hashlib.sha1(key_text.encode("utf8")).hexdigest()
        stem = os.path.join(self.cache_dir, f"{prefix}_{digest}")
        return stem + ".npz", stem + ".json"

    def get(self, prefix, key_text, num_images, pool_dim):
        """The cached `Activations`, or None (missing, another key, unreadable, wrong shape)."""
        paths = self.paths(prefix, key_text)
        if not paths or not all(tf.io.gfile.exists(p) for p in paths):
            return None
        try:
            with tf.io.gfile.GFile(paths[1]) as f:
                if canonical(json.load(f)["key"]) != key_text:
                    logging.warning("%s holds a different key; recomputing.", paths[1])
                    return None
            with tf.io.gfile.GFile(paths[0], "rb") as f, np.load(io.BytesIO(f.read())) as data:
                arrays = Activations(*(data[name] for name in _FIELDS))
        except (OSError, ValueError, KeyError) as e:
            logging.warning("Unreadable statistics %s (%s); recomputing.", paths[0], e)
            return None
        if arrays.pool.shape != (num_images, pool_dim) or any(
            len(getattr(arrays, f)) != num_images for f in _FIELDS
        ):
            logging.warning(
                "Statistics %s have shape %s; recomputing.", paths[0], arrays.pool.shape
            )
            return None
        logging.info("Statistics of %s from %s", prefix, paths[0])
        return arrays

    def put(self, prefix, key, key_text, arrays):
        """Writes `arrays` under the key (`key` for the sidecar, `key_text` its canonical form)."""
        npz_path, json_path = self.paths(prefix, key_text)
        tf.io.gfile.makedirs(self.cache_dir)
        buffer = io.BytesIO()
        np.savez(buffer, **{name: getattr(arrays, name) for name in _FIELDS})
        sidecar = dict(key=key, num_images=len(arrays), pool_dim=arrays.pool.shape[1])
        # The sidecar goes last: a statistics file without one is never read.
        for path, content, mode in (
            (npz_path, buffer.getvalue(), "wb"),
            (json_path, json.dumps(sidecar, indent=2, sort_keys=True), "w"),
        ):
            with tf.io.gfile.GFile(path + ".tmp", mode) as f:
                f.write(content)
            tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        logging.info("Wrote statistics %s", npz_path)
