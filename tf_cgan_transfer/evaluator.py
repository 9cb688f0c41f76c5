"""Scoring generators against real images: generator adapters and the `Evaluator`.

`as_generator` turns any generator (a `biggan.Generator`, an exported SavedModel, a
callable) into one interface; `Evaluator` generates images from it, classifies them and
returns the `metrics` of their activations against those of the real images. The real
activations are computed once per `Evaluator`, and cached on disk under a hash of
everything that produced them (data, image count, classifier), so periodic evaluations
during training and repeated command-line runs pay for them once.
"""

import dataclasses
import hashlib
import io
import json
import math
import os
import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import metrics
from tf_cgan_transfer.real_data import EvaluationError

CACHE_FORMAT = 1  # bump when the cached arrays change meaning
_LOG_EVERY_BATCHES = 10


# ---- Generators ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GeneratorAdapter:
    """Any generator as `fn(z [B, dim_z] float32, labels [B] int32) -> images [B, R, R, 3]`.

    Images are float32 in [-1, 1]. Build one with `as_generator`.
    """

    fn: Callable
    dim_z: int
    num_classes: int
    owner: object = None  # keeps a loaded SavedModel (and its variables) alive

    def __call__(self, z, labels):
        return self.fn(z, labels)


def _as_int(value):
    """`value` (None, a number, or a scalar variable or tensor) as a Python int or None."""
    if value is None:
        return None
    if isinstance(value, (tf.Variable, tf.Tensor)):
        value = value.numpy()
    return int(value)


def _serving_adapter(module, signature, num_classes):
    """The adapter of an export's `serving_default` (z, label -> images; int or one-hot)."""
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if set(inputs) != {"z", "label"} or "images" not in outputs:
        raise EvaluationError(
            f"The SavedModel's serving_default maps {sorted(inputs)} -> {sorted(outputs)}; "
            "a generator export must map 'z' and 'label' to 'images'."
        )
    z_spec, label_spec = inputs["z"], inputs["label"]
    one_hot = label_spec.shape.rank == 2
    if num_classes is None:
        num_classes = (
            label_spec.shape[-1] if one_hot else _as_int(getattr(module, "num_classes", None))
        )
    dim_z = z_spec.shape[-1]
    if not num_classes or not dim_z:
        raise EvaluationError(
            "Cannot tell the exported generator's number of classes (it has no "
            "`num_classes` attribute and takes int labels): pass num_classes "
            "(--num_classes on the command line)."
        )
    uint8 = outputs["images"].dtype == tf.uint8

    def fn(z, labels):
        if one_hot:
            label = tf.one_hot(labels, num_classes, dtype=label_spec.dtype)
        else:
            label = tf.cast(labels, label_spec.dtype)
        images = signature(z=tf.cast(z, z_spec.dtype), label=label)["images"]
        if uint8:  # edge format: [0, 255]
            return tf.cast(images, tf.float32) / 127.5 - 1.0
        return tf.cast(images, tf.float32)

    return GeneratorAdapter(fn, int(dim_z), int(num_classes), owner=module)


def as_generator(generator, num_classes=None, dim_z=None):
    """Wraps a generator in a `GeneratorAdapter`.

    Args:
      generator: a `biggan.Generator` (called as `generator((z, y), training=False)`);
        a loaded SavedModel with `signatures["serving_default"]` taking `z` and `label`
        and returning `images` (float in [-1, 1] or uint8); or any callable
        `(z, labels) -> images` with `dim_z`/`num_classes` attributes or arguments.
      num_classes, dim_z: override or supply what the generator does not say.

    Raises:
      EvaluationError: the generator's form or sizes cannot be determined.
    """
    if isinstance(generator, GeneratorAdapter):
        return generator
    if isinstance(generator, biggan.Generator):
        return GeneratorAdapter(
            lambda z, y: generator((z, y), training=False),
            generator.dim_z,
            num_classes or generator.num_classes,
        )
    signatures = getattr(generator, "signatures", None)
    if signatures is not None and "serving_default" in signatures:
        return _serving_adapter(generator, signatures["serving_default"], num_classes)
    if callable(generator):
        num_classes = num_classes or _as_int(getattr(generator, "num_classes", None))
        dim_z = dim_z or _as_int(getattr(generator, "dim_z", None))
        if num_classes and dim_z:
            return GeneratorAdapter(generator, int(dim_z), int(num_classes))
    raise EvaluationError(
        f"Cannot evaluate a {type(generator).__name__}: pass a biggan.Generator, a "
        "SavedModel with a serving_default signature (z, label -> images), or a callable "
        "(z, labels) -> images together with num_classes and dim_z."
    )


# ---- Evaluator ----------------------------------------------------------------------


def _canonical(key):
    """The key as canonical JSON text: equal dicts in any order hash alike."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class Evaluator:
    """Evaluates generators against one real data set; real activations are cached.

    Args:
      classifier: a handle or directory (`classifier.load_classifier`) or a loaded
        `classifier.Classifier`.
      real_dataset_fn: returns a `tf.data.Dataset` of `(images, labels)`: float32
        images `[B, R, R, 3]` in [-1, 1] and int labels `[B]` (the generator's class
        ids). It may repeat; the first `num_images` images are used.
      cache_key: JSON-serialisable dict naming the real data (data set, split, classes,
        resolution, ...). The on-disk key adds `num_images` and the classifier (name,
        input size, feature width), so those never need to be in it.
      num_images: real images, and generated images per evaluation.
      batch_size: images per classifier (and generator) batch.
      cache_dir: directory for `real_<sha1 of key>.npz` (pool features float32 [N, D],
        labels int32 [N]) and its `.json` sidecar with the key; None: memory only.
      seed: seed of the latents and of KID's shuffling.
      per_class: also compute per-class FID (intra-FID).

    Raises:
      EvaluationError: sizes out of range or a cache key that is not a JSON dict.
      classifier.ClassifierError: the classifier cannot be resolved or loaded.
    """

    def __init__(
        self,
        classifier,
        real_dataset_fn,
        cache_key: dict,
        num_images: int,
        batch_size: int = 50,
        cache_dir: Optional[str] = None,
        seed: int = 0,
        per_class: bool = True,
    ):
        if num_images < 2 or batch_size < 1:
            raise EvaluationError(
                f"num_images must be >= 2 and batch_size >= 1, got {num_images} and {batch_size}."
            )
        if not isinstance(cache_key, dict):
            raise EvaluationError(f"cache_key must be a dict, got {type(cache_key).__name__}.")
        self.classifier = classifier_lib.load_classifier(classifier)
        self.real_dataset_fn = real_dataset_fn
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.cache_dir = cache_dir
        self.seed = seed
        self.per_class = per_class
        self.cache_key = dict(
            data=cache_key,
            num_images=self.num_images,
            classifier=dict(
                name=self.classifier.name,
                image_size=self.classifier.image_size,
                pool_dim=self.classifier.pool_dim,
            ),
            format=CACHE_FORMAT,
        )
        try:
            self._key_text = _canonical(self.cache_key)
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"cache_key must be JSON-serialisable: {e}") from e
        self._real = None
        self._steps = {}

    def cache_paths(self):
        """`(npz path, json path)` of the real statistics, or None without a cache_dir."""
        if not self.cache_dir:
            return None
        digest = hashlib.sha1(self._key_text.encode("utf8")).hexdigest()
        stem = os.path.join(self.cache_dir, f"real_{digest}")
        return stem + ".npz", stem + ".json"

    def _read_cache(self):
        paths = self.cache_paths()
        if not paths or not all(tf.io.gfile.exists(p) for p in paths):
            return None
        try:
            with tf.io.gfile.GFile(paths[1]) as f:
                if _canonical(json.load(f)["key"]) != self._key_text:
                    logging.warning("%s holds a different key; recomputing.", paths[1])
                    return None
            with tf.io.gfile.GFile(paths[0], "rb") as f, np.load(io.BytesIO(f.read())) as data:
                pool, labels = data["pool"], data["labels"]
        except (OSError, ValueError, KeyError) as e:
            logging.warning("Unreadable real statistics %s (%s); recomputing.", paths[0], e)
            return None
        if pool.shape != (self.num_images, self.classifier.pool_dim) or len(labels) != len(pool):
            logging.warning("Real statistics %s have shape %s; recomputing.", paths[0], pool.shape)
            return None
        logging.info("Real statistics from %s", paths[0])
        return pool, labels

    def _write_cache(self, pool, labels):
        npz_path, json_path = self.cache_paths()
        tf.io.gfile.makedirs(self.cache_dir)
        buffer = io.BytesIO()
        np.savez(buffer, pool=pool, labels=labels)
        sidecar = dict(key=self.cache_key, num_images=len(pool), pool_dim=pool.shape[1])
        # The sidecar goes last: a statistics file without one is never read.
        for path, content, mode in (
            (npz_path, buffer.getvalue(), "wb"),
            (json_path, json.dumps(sidecar, indent=2, sort_keys=True), "w"),
        ):
            with tf.io.gfile.GFile(path + ".tmp", mode) as f:
                f.write(content)
            tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        logging.info("Wrote real statistics %s", npz_path)

    def _check_dataset(self, dataset):
        if not isinstance(dataset, tf.data.Dataset):
            raise EvaluationError(
                f"real_dataset_fn returned a {type(dataset).__name__}, not a tf.data.Dataset."
            )
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
                f"real_dataset_fn must yield (float images [B, R, R, 3] in [-1, 1], int "
                f"labels [B]) batches; its element_spec is {spec}."
            )

    def _classify_real(self):
        dataset = self.real_dataset_fn()
        self._check_dataset(dataset)
        dataset = dataset.unbatch().take(self.num_images).batch(self.batch_size)
        pools, labels = [], []
        start = time.time()
        for i, (images, y) in enumerate(dataset.prefetch(tf.data.AUTOTUNE)):
            if i == 0:
                low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
                if low < -1.01 or high > 1.01:
                    raise EvaluationError(
                        f"real_dataset_fn's images span [{low:g}, {high:g}]; scale them to "
                        "[-1, 1] (x / 127.5 - 1 for uint8 pixels)."
                    )
            pools.append(self.classifier(images)[classifier_lib.POOL_KEY].numpy())
            labels.append(y.numpy())
            if (i + 1) % _LOG_EVERY_BATCHES == 0:
                done = sum(map(len, labels))
                logging.info(
                    "Real images: %d/%d classified (%.1f images/s)",
                    done,
                    self.num_images,
                    done / (time.time() - start),
                )
        count = sum(map(len, labels))
        if count < self.num_images:
            raise EvaluationError(
                f"real_dataset_fn yielded {count} images, fewer than num_images="
                f"{self.num_images}: lower num_images or make the dataset repeat."
            )
        return np.concatenate(pools).astype(np.float32), np.concatenate(labels).astype(np.int32)

    def real_activations(self):
        """`(pool features float32 [N, D], labels int32 [N])` of the real images.

        Read from the cache when its key matches, else computed (and cached); kept in
        memory after the first call.
        """
        if self._real is None:
            self._real = self._read_cache()
            if self._real is None:
                self._real = self._classify_real()
                if self.cache_dir:
                    self._write_cache(*self._real)
        return self._real

    def _generation_function(self, generator, adapter):
        """The traced generate-and-classify step, one per generator object (reused)."""
        key = id(generator)
        if key not in self._steps:

            @tf.function(
                input_signature=[
                    tf.TensorSpec([self.batch_size, adapter.dim_z], tf.float32),
                    tf.TensorSpec([self.batch_size], tf.int32),
                ]
            )
            def generate_and_classify(z, y):
                outputs = self.classifier(adapter(z, y))
                return outputs[classifier_lib.POOL_KEY], outputs[classifier_lib.LOGITS_KEY]

            # Holding the generator keeps its id from being reused by another object.
            self._steps[key] = (generator, generate_and_classify)
        return self._steps[key][1]

    def generation_trace_count(self):
        """How often the generate-and-classify functions were traced, over all generators.

        One per generator when the fixed-shape signature works; more means retracing
        (a slow evaluation).
        """
        return sum(fn.experimental_get_tracing_count() for _, fn in self._steps.values())

    def generated_activations(self, generator, truncation=1.0):
        """`(pool [N, D], logits [N, C], labels [N])` of `num_images` generated images.

        Labels cycle over the classes (`i % num_classes`); z is
        `biggan.sample_z(num_images, dim_z, truncation, seed)`, so the images depend only
        on the seed. One `tf.function` trace with a fixed batch shape generates and
        classifies (the last batch is padded, and the padding dropped).
        """
        adapter = as_generator(generator)
        n, batch = self.num_images, self.batch_size
        num_batches = math.ceil(n / batch)
        pad = num_batches * batch - n
        z = biggan.sample_z(n, adapter.dim_z, truncation, self.seed)
        z = tf.concat([z, z[:pad]], axis=0)
        labels = np.arange(n + pad, dtype=np.int32) % adapter.num_classes
        labels[n:] = labels[:pad]
        generate_and_classify = self._generation_function(generator, adapter)
        pools, logits = [], []
        start = time.time()
        for i in range(num_batches):
            rows = slice(i * batch, (i + 1) * batch)
            pool, logit = generate_and_classify(z[rows], labels[rows])
            pools.append(pool.numpy())
            logits.append(logit.numpy())
            if (i + 1) % _LOG_EVERY_BATCHES == 0 or i + 1 == num_batches:
                done = min(n, (i + 1) * batch)
                logging.info(
                    "Generated images: %d/%d classified (%.1f images/s)",
                    done,
                    n,
                    done / (time.time() - start),
                )
        return np.concatenate(pools)[:n], np.concatenate(logits)[:n], labels[:n]

    def evaluate(self, generator, truncation=1.0):
        """Generates `num_images` images and scores them against the real images.

        Returns:
          A dict: `fid`, `kid`, `kid_std` (NaN with one KID block, i.e. <= 1024 images),
          `inception_score`, `kmmd`, `precision`, `recall`, `density`, `coverage`
          (`metrics.manifold_metrics`); with per_class also `per_class_fid` ({class id:
          FID}), `mean_per_class_fid` (over classes with a finite FID) and
          `per_class_manifold` ({class id: the four nearest-neighbour metrics}); and
          `num_real`, `num_generated`, `seconds` (all of this call, including real
          statistics when not cached) and `images_per_second` (generation and
          classification only).
        """
        start = time.time()
        real, real_labels = self.real_activations()
        adapter = as_generator(generator)
        generation_start = time.time()
        pool, logits, labels = self.generated_activations(generator, truncation)
        generation_seconds = time.time() - generation_start
        metrics.warn_if_too_few(len(real), len(pool), pool.shape[1])
        kid, kid_std = metrics.kernel_distance(real, pool, seed=self.seed)
        results = dict(
            fid=metrics.frechet_distance(real, pool),
            kid=kid,
            kid_std=kid_std,
            inception_score=metrics.inception_score(logits),
            kmmd=metrics.kernel_mmd(real, pool),
            **metrics.manifold_metrics(real, pool),
        )
        if self.per_class:
            per_class = metrics.per_class_frechet_distance(
                real, real_labels, pool, labels, adapter.num_classes
            )
            finite = [v for v in per_class.values() if np.isfinite(v)]
            results["per_class_fid"] = per_class
            results["mean_per_class_fid"] = float(np.mean(finite)) if finite else float("nan")
            results["per_class_manifold"] = {
                c: metrics.manifold_metrics(real[real_labels == c], pool[labels == c])
                for c in range(adapter.num_classes)
            }
        results.update(
            num_real=len(real),
            num_generated=len(pool),
            seconds=time.time() - start,
            images_per_second=len(pool) / generation_seconds,
        )
        return results
