"""Scoring generators against real images: generator adapters and the `Evaluator`.

`as_generator` turns any generator (a `biggan.Generator`, an exported SavedModel, a
callable) into one interface; `Evaluator` generates images from it, classifies them and
returns `scoring.score` of their `activations` against those of the real images (and,
for the memorisation score, of the training images). The real and training activations
are computed once per `Evaluator`, and cached on disk under a hash of everything that
produced them (data, image count, classifier), so periodic evaluations during training
and repeated command-line runs pay for them once.
"""

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import activations as activations_lib
from tf_cgan_transfer import biggan
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import progress as progress_lib
from tf_cgan_transfer import real_data
from tf_cgan_transfer import scoring
from tf_cgan_transfer.real_data import EvaluationError

# The memorisation score compares every generated image with every training image;
# beyond this many training images it uses the first ones (and says so).
MAX_TRAINING_IMAGES = 50_000
SAME_CLASSES = "same"  # class map: the classifier's classes are the generator's


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


class Evaluator:
    """Evaluates generators against one real image set; real activations are cached.

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
      cache_dir: directory for the cached activations (`real_<sha1 of key>.npz` and
        `train_<sha1>.npz`, each with a `.json` sidecar holding the key); None: memory
        only.
      seed: seed of the latents and of KID's shuffling.
      per_class: also compute the per-class metrics.
      training: a `real_data.RealSource` of the training images (every one of them, up
        to `MAX_TRAINING_IMAGES`), for the memorisation score and the check of whether
        the real set is the training data; None: neither.
      class_map: the classifier's index of each generator class, for the class accuracy
        of generated images; `SAME_CLASSES` ("same"): generator class i is the
        classifier's class i; None: the classifier does not know the generator's classes.

    Raises:
      EvaluationError: sizes out of range, a training source of unknown size, a bad
        class map, or a cache key that is not a JSON dict.
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
        training: Optional[real_data.RealSource] = None,
        class_map: Optional[Union[str, Sequence[int]]] = None,
    ):
        if num_images < 2 or batch_size < 1:
            raise EvaluationError(
                f"num_images must be >= 2 and batch_size >= 1, got {num_images} and {batch_size}."
            )
        if not isinstance(cache_key, dict):
            raise EvaluationError(f"cache_key must be a dict, got {type(cache_key).__name__}.")
        if training is not None and not training.num_images:
            raise EvaluationError("The training images' source must know how many images it holds.")
        self.classifier = classifier_lib.load_classifier(classifier)
        self.class_map = class_map
        if class_map not in (None, SAME_CLASSES):
            self._check_class_map([int(c) for c in class_map])
        self.real_dataset_fn = real_dataset_fn
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.cache = activations_lib.ActivationCache(cache_dir)
        self.seed = seed
        self.per_class = per_class
        self.training = training
        classifier_key = dict(
            name=self.classifier.name,
            image_size=self.classifier.image_size,
            pool_dim=self.classifier.pool_dim,
        )
        self.cache_key = dict(
            data=cache_key,
            num_images=self.num_images,
            classifier=classifier_key,
            format=activations_lib.CACHE_FORMAT,
        )
        self.num_training = 0
        if training is not None:
            self.num_training = min(int(training.num_images), MAX_TRAINING_IMAGES)
            if training.num_images > MAX_TRAINING_IMAGES:
                logging.warning(
                    "The memorisation score uses the first %d of %d training images.",
                    MAX_TRAINING_IMAGES,
                    training.num_images,
                )
            self.training_cache_key = dict(
                self.cache_key, data=training.cache_key, num_images=self.num_training
            )
        try:
            self._key_text = activations_lib.canonical(self.cache_key)
            if training is not None:
                self._training_key_text = activations_lib.canonical(self.training_cache_key)
        except (TypeError, ValueError) as e:
            raise EvaluationError(f"cache_key must be JSON-serialisable: {e}") from e
        self._real = None
        self._training = None
        self._warned_training_data = False
        self._steps = {}

    def _check_class_map(self, class_map, num_classes=None):
        if num_classes is not None and len(class_map) != num_classes:
            raise EvaluationError(
                f"The class map has {len(class_map)} entries but the generator has "
                f"{num_classes} classes: give one classifier class per generator class "
                "(--classifier_classes)."
            )
        if not all(0 <= c < self.classifier.num_logits for c in class_map):
            raise EvaluationError(
                f"The class map {list(class_map)} names classifier classes outside "
                f"0..{self.classifier.num_logits - 1} (the classifier has "
                f"{self.classifier.num_logits} logits; --classifier_classes)."
            )
        return list(class_map)

    def resolved_class_map(self, num_classes):
        """The class map for a generator of `num_classes` classes (None: no accuracy)."""
        if self.class_map is None:
            return None
        if self.class_map == SAME_CLASSES:
            return self._check_class_map(range(num_classes))
        return self._check_class_map([int(c) for c in self.class_map], num_classes)

    def cache_paths(self):
        """`(npz path, json path)` of the real activations, or None without a cache_dir."""
        return self.cache.paths("real", self._key_text)

    def _cached(self, prefix, key, key_text, count, dataset_fn, what):
        arrays = self.cache.get(prefix, key_text, count, self.classifier.pool_dim)
        if arrays is None:
            arrays = activations_lib.classify(
                self.classifier, dataset_fn(), count, self.batch_size, what
            )
            if self.cache.cache_dir:
                self.cache.put(prefix, key, key_text, arrays)
        return arrays

    def real_activations(self):
        """The `activations.Activations` of the `num_images` real images.

        Read from the cache when its key matches, else computed (and cached); kept in
        memory after the first call.
        """
        if self._real is None:
            self._real = self._cached(
                "real",
                self.cache_key,
                self._key_text,
                self.num_images,
                self.real_dataset_fn,
                "real_dataset_fn",
            )
        return self._real

    def training_activations(self):
        """The `Activations` of the training images, or None without a training source."""
        if self.training is None:
            return None
        if self._training is None:
            self._training = self._cached(
                "train",
                self.training_cache_key,
                self._training_key_text,
                self.num_training,
                self.training.dataset_fn,
                "the training images' dataset",
            )
        return self._training

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
                images = adapter(z, y)
                outputs = self.classifier(images)
                return (
                    outputs[classifier_lib.POOL_KEY],
                    outputs[classifier_lib.LOGITS_KEY],
                    activations_lib.small_pixels(images),
                )

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
        """The `Activations` of `num_images` generated images.

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
        # Zero padding (dropped below): `pad` may exceed n when n < batch.
        z = tf.pad(z, [[0, pad], [0, 0]])
        labels = np.arange(n + pad, dtype=np.int32) % adapter.num_classes
        labels[n:] = 0
        generate_and_classify = self._generation_function(generator, adapter)
        parts = []
        progress = progress_lib.Progress("classifying generated images", n, "images")
        for i in range(num_batches):
            rows = slice(i * batch, (i + 1) * batch)
            pool, logits, pixels = generate_and_classify(z[rows], labels[rows])
            parts.append((pool.numpy(), logits.numpy(), labels[rows], pixels.numpy()))
            progress.update(min(batch, n - i * batch))
        progress.close()
        generated = activations_lib.concatenate(parts)
        return generated.select(np.arange(len(generated)) < n)

    def evaluate(self, generator, truncation=1.0):
        """Generates `num_images` images and scores them against the real images.

        Returns:
          `scoring.score`'s dict, plus `real_set` (the real data's cache key: which
          images FID & co. used), `training_set` (the training images' key, or None),
          `num_real`, `num_generated`, `seconds` (all of this call, including real and
          training activations when not cached) and `images_per_second` (generation
          and classification only).
        """
        start = time.time()
        real = self.real_activations()
        training = self.training_activations()
        adapter = as_generator(generator)
        class_map = self.resolved_class_map(adapter.num_classes)
        generation_start = time.time()
        generated = self.generated_activations(generator, truncation)
        generation_seconds = time.time() - generation_start
        results = scoring.score(
            real,
            generated,
            adapter.num_classes,
            training=training,
            class_map=class_map,
            seed=self.seed,
            per_class=self.per_class,
        )
        if results["real_is_training_data"] and not self._warned_training_data:
            self._warned_training_data = True
            logging.warning(
                "FID, KID, precision/recall and density/coverage compare with the training "
                "images, which a copying generator matches best: %s",
                results["memorisation_note"],
            )
        results.update(
            real_set=self.cache_key["data"],
            training_set=None if self.training is None else self.training.cache_key,
            num_real=len(real),
            num_generated=len(generated),
            seconds=time.time() - start,
            images_per_second=len(generated) / generation_seconds,
        )
        return results
