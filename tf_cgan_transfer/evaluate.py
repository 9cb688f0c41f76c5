r"""GAN evaluation on TF-GAN: FID, KID, Inception Score, KMMD and per-class FID.

  python -m tf_cgan_transfer.evaluate --model=runs/flowers_bn/best \
      --dataset=oxford_flowers102 --split=test --data_dir=/data/tfds --num_images=10000 \
      --cache_dir=/tmp/fid_stats --output=runs/flowers_bn/eval/best.json

Real images come from a data set (`--dataset`, as in training: TFDS or an image
folder, with `--classes` remapped like the generator's) or an .npz
(`--real_images_npz`).

The metrics are TF-GAN's (`tensorflow_gan.eval`), computed from activations of the
TF-GAN Inception module (`pool_3` features, `logits`), or of any SavedModel with the
same two outputs (`--classifier`). The classifier is loaded once per process; TF-GAN's
own `classifier_fn_from_tfhub` reloads it on every call. Real-image activations are
cached on disk under a hash of what produced them (`Evaluator`).

Offline, download the Inception module once elsewhere (the `ClassifierError` raised
for an unreachable handle says what and where to put it).
"""

import collections.abc
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_gan as tfgan
import tensorflow_hub as hub

from tf_cgan_transfer import biggan

INCEPTION_HANDLE = tfgan.eval.INCEPTION_TFHUB
POOL_KEY = tfgan.eval.INCEPTION_FINAL_POOL  # "pool_3"
LOGITS_KEY = tfgan.eval.INCEPTION_OUTPUT  # "logits"
DEFAULT_IMAGE_SIZE = tfgan.eval.INCEPTION_DEFAULT_IMAGE_SIZE  # 299
TFHUB_URL = "https://tfhub.dev/"
MIN_STABLE_IMAGES = 2048  # fewer images per set give a visibly biased FID
KID_BLOCK_SIZE = 1024  # TF-GAN's default max_block_size
CACHE_FORMAT = 1  # bump when the cached arrays change meaning
_LOG_EVERY_BATCHES = 10


class ClassifierError(ValueError):
    """The classifier cannot be found, loaded or used; the message says what to do."""


class EvaluationError(ValueError):
    """Bad evaluation inputs (data, generator, sizes); the message says what to do."""


# ---- Classifier --------------------------------------------------------------------


def download_help(url):
    """Where to get a TF-Hub module by hand and where to put it (for offline machines)."""
    digest = hashlib.sha1(url.encode("utf8")).hexdigest()
    cache_root = os.environ.get("TFHUB_CACHE_DIR")
    cached = os.path.join(cache_root or "$TFHUB_CACHE_DIR", digest)
    note = "" if cache_root else " (set TFHUB_CACHE_DIR to choose the cache root)"
    return (
        f"On a machine with internet, download {url}?tf-hub-format=compressed (a .tar.gz), "
        f"unpack it, and either pass the unpacked directory as --classifier (the "
        f"`classifier` argument in Python) or unpack it into {cached}, the TF-Hub cache "
        f"directory for this handle{note}."
    )


def resolve_classifier(handle):
    """`(local SavedModel directory, stable name)` for a handle or a directory.

    Args:
      handle: a SavedModel / TF-Hub module directory, a `https://tfhub.dev/...` URL
        (resolved through the TF-Hub cache, `TFHUB_CACHE_DIR`), or a short handle such
        as `tensorflow/tfgan/eval/inception/1`.

    Raises:
      ClassifierError: nothing usable there; for an unreachable URL the message says
        what to download and where to put it.
    """
    if not handle:
        raise ClassifierError("No classifier given: pass a TF-Hub handle or a SavedModel dir.")
    handle = os.fspath(handle)
    if tf.io.gfile.isdir(handle):
        path = handle
        name = handle if "://" in handle else os.path.abspath(handle)
    elif re.match(r"^(https?|gs)://", handle) or re.match(
        r"^[A-Za-z][\w.-]*(/[\w.-]+)+/\d+$", handle
    ):
        url = handle if "://" in handle else TFHUB_URL + handle
        try:
            path = hub.resolve(url)
        except Exception as e:  # hub raises several types for network and cache failures
            local = "" if "://" in handle else f" (no local directory {handle!r} exists either)"
            raise ClassifierError(
                f"Could not fetch classifier {url}{local} ({type(e).__name__}: {e}). "
                + download_help(url)
            ) from e
        name = url
    else:
        raise ClassifierError(
            f"Classifier {handle!r} is neither an existing directory nor a TF-Hub handle "
            f"(e.g. {INCEPTION_HANDLE})."
        )
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise ClassifierError(
            f"{path} is not a SavedModel (no saved_model.pb): unpack the whole module there."
        )
    return path, name


def _image_size(specs):
    """The spatial size of the first 4-D, square, fully known input spec; else 299."""
    for spec in specs:
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4 and shape[1] and shape[1] == shape[2]:
            return int(shape[1])
    return DEFAULT_IMAGE_SIZE


def _entry_point(module, name):
    """`(fn(images) -> outputs, image size)`: `__call__` if callable, else a signature."""
    if callable(module):
        concrete = getattr(getattr(module, "__call__", None), "concrete_functions", [])
        specs = [s for c in concrete for s in tf.nest.flatten(c.structured_input_signature)]
        return module, _image_size(specs)
    signatures = getattr(module, "signatures", {})
    for key in ("default", "serving_default"):  # TF1 Hub format, then plain SavedModels
        if key in signatures:
            signature = signatures[key]
            inputs = signature.structured_input_signature[1]
            if len(inputs) != 1:
                raise ClassifierError(
                    f"{name}: signature {key!r} takes {sorted(inputs)}; a classifier "
                    "signature must take exactly one input, the images."
                )
            ((input_name, spec),) = inputs.items()
            return (lambda images: signature(**{input_name: images})), _image_size([spec])
    raise ClassifierError(
        f"{name} is neither callable nor has a 'default' or 'serving_default' signature "
        f"(it has {sorted(signatures)}): not an image classifier module."
    )


class Classifier:
    """A loaded classifier with the TF-GAN Inception interface.

    Call: float images `[N, H, W, 3]` in [-1, 1], any size (resized bilinearly to
    `image_size`, values clipped to [-1, 1]) -> `{"pool_3": [N, D], "logits": [N, C]}`
    float32, outputs flattened (`pool_3` is `[N, 1, 1, 2048]` in the Inception module).
    Works for a callable module (TF2 SavedModel `__call__`) and for a TF1 Hub format
    module (`signatures["default"]`). One `tf.function` trace serves every image size.

    Attributes:
      name: the handle or absolute directory it was loaded from.
      path: the local SavedModel directory.
      image_size: the network's input size (its input signature's, else 299).
      pool_dim, num_logits: output widths, read from a probe call at load time.
    """

    def __init__(self, module, path, name):
        self.module = module  # keeps the loaded variables alive
        self.path = path
        self.name = name
        self._fn, self.image_size = _entry_point(module, name)
        size = self.image_size
        probe = self._outputs(tf.zeros([1, size, size, 3]))
        self.pool_dim = int(probe[POOL_KEY].shape[1])
        self.num_logits = int(probe[LOGITS_KEY].shape[1])
        self._run = tf.function(
            self._outputs, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)]
        )

    def _outputs(self, images):
        images = tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0)
        images = tf.image.resize(images, [self.image_size] * 2, method="bilinear")
        outputs = self._fn(images)
        is_dict = isinstance(outputs, collections.abc.Mapping)
        if not is_dict or not {POOL_KEY, LOGITS_KEY} <= set(outputs):
            found = sorted(outputs) if is_dict else type(outputs).__name__
            raise ClassifierError(
                f"{self.name} returns {found}; a classifier must return a dict with "
                f"{POOL_KEY!r} and {LOGITS_KEY!r} (the TF-GAN Inception module's outputs)."
            )
        return {
            key: tf.reshape(tf.cast(outputs[key], tf.float32), [tf.shape(images)[0], -1])
            for key in (POOL_KEY, LOGITS_KEY)
        }

    def __call__(self, images):
        return self._run(images)


_CLASSIFIERS = {}  # resolved real path -> Classifier: one load per process


def load_classifier(handle=INCEPTION_HANDLE):
    """The `Classifier` for a handle or directory, loaded once per process and cached."""
    if isinstance(handle, Classifier):
        return handle
    path, name = resolve_classifier(handle)
    key = os.path.realpath(path) if "://" not in path else path
    if key not in _CLASSIFIERS:
        try:
            module = hub.load(path)
        except Exception as e:  # corrupt or partial downloads fail in many ways
            raise ClassifierError(
                f"Could not load the classifier SavedModel at {path} ({type(e).__name__}: "
                f"{e}). Re-download and unpack it."
            ) from e
        _CLASSIFIERS[key] = Classifier(module, path, name)
        logging.info("Loaded classifier %s from %s", name, path)
    return _CLASSIFIERS[key]


# ---- Metrics (pure functions of activations) ---------------------------------------


def _span_coordinates(a, b):
    """`a`, `b` in an orthonormal basis of their joint affine span (float64)."""
    origin = a.mean(axis=0)
    basis, _ = np.linalg.qr(np.concatenate([a, b]).T - origin[:, None])
    return (a - origin) @ basis, (b - origin) @ basis


def frechet_distance(real, generated):
    """FID, `tfgan.eval.frechet_classifier_distance_from_activations`, in float64.

    FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)), unbiased covariances.
    When the two sets together have fewer points than dimensions, both are first
    written in an orthonormal basis of their joint affine span (an isometry: the mean
    distance, tr S and the spectrum of S_r S_g are unchanged, so FID is too). TF-GAN's
    two D x D matrix square roots then shrink to (n_r + n_g) x (n_r + n_g), which
    matters for per-class FID (two 2048 x 2048 SVDs take ~12 s on 2 CPU cores).

    Returns NaN when a set has fewer than 2 points.
    """
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if len(real) < 2 or len(generated) < 2:
        return float("nan")
    if len(real) + len(generated) < real.shape[1]:
        real, generated = _span_coordinates(real, generated)
    return float(
        tfgan.eval.frechet_classifier_distance_from_activations(
            tf.constant(real), tf.constant(generated)
        )
    )


def kernel_distance(real, generated, seed=0, max_block_size=KID_BLOCK_SIZE):
    """KID and its standard error: `tfgan.eval.kernel_classifier_distance_and_std_from_activations`.

    Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over blocks of at
    most `max_block_size`; std is NaN with one block. TF-GAN's blocks assume random
    order, so both sets are first shuffled with `seed` (real data is often class-sorted).
    """
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float64)[rng.permutation(len(real))]
    generated = np.asarray(generated, np.float64)[rng.permutation(len(generated))]
    # TF-GAN needs tf.Tensor inputs here (it calls .shape.assert_has_rank).
    kid, std = tfgan.eval.kernel_classifier_distance_and_std_from_activations(
        tf.constant(real), tf.constant(generated), max_block_size=max_block_size
    )
    return float(kid), float(std)


def inception_score(logits):
    """IS = exp(E_x[KL(p(y|x) || p(y))]), `tfgan.eval.classifier_score_from_logits`.

    One split over all images, every logit (1008 for Inception), float64.
    """
    logits = tf.constant(np.asarray(logits, np.float64))
    return float(tfgan.eval.classifier_score_from_logits(logits))


def _mean_kernel(a, b, gamma, chunk=1024):
    total = 0.0
    b_norms = np.sum(b * b, axis=1)
    for start in range(0, len(a), chunk):
        rows = a[start : start + chunk]
        squared = np.sum(rows * rows, axis=1)[:, None] + b_norms[None, :] - 2.0 * rows @ b.T
        total += np.exp(-gamma * np.maximum(squared, 0.0)).sum()
    return total / (len(a) * len(b))


def kernel_mmd(real, generated, sigma=1.0):
    """KMMD: Gaussian-kernel MMD^2 with squared distances normalised by the real data's.

    With real features r_1..r_n, generated g_1..g_m (float64):

        s        = 1/(n(n-1)) sum_{i != j} |r_i - r_j|^2   (= 2 tr of r's unbiased covariance)
        k(x, y)  = exp(-|x - y|^2 / (2 sigma^2 s))
        KMMD     = 1/n^2 sum_{i,j} k(r_i, r_j) + 1/m^2 sum_{i,j} k(g_i, g_j)
                   - 2/(nm) sum_{i,j} k(r_i, g_j)

    i.e. the biased (V-statistic, diagonals included) estimate of MMD^2, in [0, 2];
    sigma = 1 as in the cGANTransfer paper's tables. NaN when n < 2 or s = 0.
    """
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    if len(real) < 2 or len(generated) < 1:
        return float("nan")
    scale = 2.0 * np.sum(np.var(real, axis=0, ddof=1))
    if not scale > 0:
        return float("nan")
    gamma = 1.0 / (2.0 * sigma**2 * scale)
    return float(
        _mean_kernel(real, real, gamma)
        + _mean_kernel(generated, generated, gamma)
        - 2.0 * _mean_kernel(real, generated, gamma)
    )


def per_class_frechet_distance(real, real_labels, generated, generated_labels, num_classes):
    """Intra-FID: `{c: FID(generated of class c, real of class c)}` for c < num_classes.

    A class with fewer than 2 real or generated images gets NaN (with a warning).
    """
    real_labels = np.asarray(real_labels)
    generated_labels = np.asarray(generated_labels)
    result, empty = {}, []
    for c in range(num_classes):
        r, g = real[real_labels == c], generated[generated_labels == c]
        if len(r) < 2 or len(g) < 2:
            empty.append(c)
        result[c] = frechet_distance(r, g)
    if empty:
        logging.warning(
            "Per-class FID is NaN for classes %s: fewer than 2 real or generated images "
            "(real labels must be the generator's class ids 0..%d).",
            empty,
            num_classes - 1,
        )
    return result


def warn_if_too_few(num_real, num_generated, feature_dim):
    """Logs a warning when FID/KID come from too few images to be stable."""
    needed = max(MIN_STABLE_IMAGES, feature_dim)
    if min(num_real, num_generated) < needed:
        logging.warning(
            "FID/KID computed from %d real and %d generated images (%d-dim features): "
            "fewer than %d per set gives a biased, unstable FID. Compare only numbers "
            "from equal image counts, or evaluate at least %d images.",
            num_real,
            num_generated,
            feature_dim,
            needed,
            needed,
        )


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
    if value is None:
        return None
    if isinstance(value, (tf.Variable, tf.Tensor)):
        value = value.numpy()
    return int(value)


def _serving_adapter(module, signature, num_classes):
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
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class Evaluator:
    """Evaluates generators against one real data set; real activations are cached.

    Args:
      classifier: a handle or directory (`load_classifier`) or a loaded `Classifier`.
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
        self.classifier = load_classifier(classifier)
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
        self.generation_traces = 0  # traces of the generate-and-classify functions
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
            pools.append(self.classifier(images)[POOL_KEY].numpy())
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
                self.generation_traces += 1
                outputs = self.classifier(adapter(z, y))
                return outputs[POOL_KEY], outputs[LOGITS_KEY]

            # Holding the generator keeps its id from being reused by another object.
            self._steps[key] = (generator, generate_and_classify)
        return self._steps[key][1]

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
          `inception_score`, `kmmd`; with per_class also `per_class_fid` ({class id:
          FID}) and `mean_per_class_fid` (over classes with a finite FID); and
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
        warn_if_too_few(len(real), len(pool), pool.shape[1])
        kid, kid_std = kernel_distance(real, pool, seed=self.seed)
        results = dict(
            fid=frechet_distance(real, pool),
            kid=kid,
            kid_std=kid_std,
            inception_score=inception_score(logits),
            kmmd=kernel_mmd(real, pool),
        )
        if self.per_class:
            per_class = per_class_frechet_distance(
                real, real_labels, pool, labels, adapter.num_classes
            )
            finite = [v for v in per_class.values() if np.isfinite(v)]
            results["per_class_fid"] = per_class
            results["mean_per_class_fid"] = float(np.mean(finite)) if finite else float("nan")
        results.update(
            num_real=len(real),
            num_generated=len(pool),
            seconds=time.time() - start,
            images_per_second=len(pool) / generation_seconds,
        )
        return results


# ---- Command line -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    model: str
    num_classes: Optional[int]
    classifier: str
    num_images: int
    batch_size: int
    truncation: float
    seed: int
    per_class: bool
    real_images_npz: Optional[str]
    cache_dir: Optional[str]
    output: str
    dataset: Optional[str] = None
    split: str = "test"
    data_dir: Optional[str] = None
    image_folder: Optional[str] = None
    classes: Optional[tuple] = None
    images_per_class: Optional[int] = None
    resolution: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class RealSource:
    """Real images for an `Evaluator`: its dataset function, cache key and size."""

    dataset_fn: Callable[[], tf.data.Dataset]
    cache_key: dict
    num_images: Optional[int]  # None: unbounded


def npz_real_source(path, batch_size=50):
    """A `RealSource` from an .npz with `images` uint8 [N, R, R, 3] and `labels` [N]."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f, np.load(io.BytesIO(f.read())) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise EvaluationError(
            f"{path} is not an .npz with `images` and `labels` arrays ({type(e).__name__}: {e})."
        ) from e
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise EvaluationError(
            f"{path}: `images` must be uint8 [N, R, R, 3], got {images.dtype} {images.shape}."
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise EvaluationError(
            f"{path}: `labels` must be int [{len(images)}], got {labels.dtype} {labels.shape}."
        )
    labels = labels.astype(np.int32)

    def dataset_fn():
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
        return dataset.map(lambda x, y: (tf.cast(x, tf.float32) / 127.5 - 1.0, y))

    stat = tf.io.gfile.stat(path)
    cache_key = dict(
        dataset="npz:" + os.path.abspath(path),
        split="all",
        classes=sorted(int(c) for c in np.unique(labels)),
        resolution=int(images.shape[1]),
        file_bytes=int(stat.length),
        file_mtime_ns=int(stat.mtime_nsec),
    )
    return RealSource(dataset_fn, cache_key, len(images))


def data_real_source(data_config, batch_size=50):
    """A `RealSource` from a `data.DataConfig` (TFDS data set or image folder)."""
    from tf_cgan_transfer import data  # deferred: the CLI's only use of the data module

    data_config = dataclasses.replace(data_config, flip=False)
    info = data.validate(data_config)
    cache_key = dict(
        dataset=data_config.dataset,
        split=data_config.split,
        image_folder=data_config.image_folder and os.path.abspath(data_config.image_folder),
        classes=list(data_config.classes) if data_config.classes else None,
        images_per_class=data_config.images_per_class,
        resolution=data_config.resolution,
    )
    return RealSource(
        lambda: data.make_dataset(data_config, batch_size), cache_key, info.num_examples
    )


def _model_resolution(config):
    if config.resolution:
        return config.resolution
    if tf.io.gfile.exists(os.path.join(config.model, biggan.GENERATOR_CONFIG_FILE)):
        return biggan.read_config(config.model)["resolution"]
    raise EvaluationError("Pass --resolution: it cannot be read from an exported model.")


def _real_source(config):
    """The one real-data source the config names: an .npz or a data set."""
    if config.real_images_npz:
        return npz_real_source(config.real_images_npz, config.batch_size)
    if config.dataset:
        from tf_cgan_transfer import data

        data_config = data.DataConfig(
            dataset=config.dataset,
            resolution=_model_resolution(config),
            split=config.split,
            data_dir=config.data_dir,
            image_folder=config.image_folder,
            classes=config.classes,
            images_per_class=config.images_per_class,
            seed=config.seed,
        )
        try:
            return data_real_source(data_config, config.batch_size)
        except data.DataError as e:
            raise EvaluationError(str(e)) from e
    raise EvaluationError("No real data given: pass --dataset or --real_images_npz.")


def load_model(path, num_classes=None):
    """A `GeneratorAdapter` for a model directory (or a finished training run, its EMA
    generator first) or an exported SavedModel directory."""
    models_dir = biggan.find_models_dir(path, prefer_ema=True)
    if models_dir:
        generator, _ = biggan.restore_models(models_dir)
        if num_classes not in (None, generator.num_classes):
            raise EvaluationError(
                f"--num_classes={num_classes}, but {path} has {generator.num_classes} "
                "classes; drop --num_classes for model directories."
            )
        return as_generator(generator)
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return as_generator(tf.saved_model.load(path), num_classes)
    raise EvaluationError(
        f"{path} holds neither saved models (biggan.save_models, or a finished run's "
        "models_ema/ or models/) nor saved_model.pb."
    )


def json_safe(value):
    """NaN/inf -> None and dict keys -> str, so the file is standard JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def run(config):
    """Evaluates the model a config names and writes the JSON; returns the record."""
    classifier = load_classifier(config.classifier)  # first: fails fast offline
    source = _real_source(config)
    if source.num_images is not None and source.num_images < config.num_images:
        raise EvaluationError(
            f"The real data has {source.num_images} images, fewer than --num_images="
            f"{config.num_images}: lower --num_images."
        )
    generator = load_model(config.model, config.num_classes)
    evaluator = Evaluator(
        classifier,
        source.dataset_fn,
        source.cache_key,
        config.num_images,
        batch_size=config.batch_size,
        cache_dir=config.cache_dir,
        seed=config.seed,
        per_class=config.per_class,
    )
    results = evaluator.evaluate(generator, truncation=config.truncation)
    record = dict(results, config=dataclasses.asdict(config), classifier_path=classifier.path)
    parent = os.path.dirname(config.output)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(config.output, "w") as f:
        json.dump(json_safe(record), f, indent=2, sort_keys=True)
    return record


def summary(results):
    """One line: the headline metrics."""
    line = (
        f"FID {results['fid']:.3f}  KID {results['kid']:.5f}  IS {results['inception_score']:.3f}"
        f"  KMMD {results['kmmd']:.5f}"
    )
    if "mean_per_class_fid" in results:
        line += f"  mean per-class FID {results['mean_per_class_fid']:.3f}"
    return line + (
        f"  ({results['num_generated']} generated vs {results['num_real']} real images, "
        f"{results['images_per_second']:.1f} images/s, {results['seconds']:.1f} s)"
    )


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags (with validators) in `flag_values`.

    Only `__main__` calls this: importing the module defines no flags, so `train.py`
    can import `Evaluator` next to its own `--seed`, `--batch_size`, ... without clashes.
    """
    fv = dict(flag_values=flag_values)
    # Model and classifier.
    flags.DEFINE_string(
        "model",
        None,
        "Model directory written by biggan.save_models (generator_config.json + "
        "models.*), or an exported SavedModel version directory (exports/NAME/VERSION).",
        **fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Classes of an exported SavedModel that takes int labels and does not record its "
        "class count (None: read it from the model).",
        lower_bound=1,
        **fv,
    )
    flags.DEFINE_string(
        "classifier",
        INCEPTION_HANDLE,
        "TF-Hub handle or SavedModel directory of a classifier with 'pool_3' and 'logits' "
        "outputs (default: TF-GAN's Inception module; offline, a local copy of it).",
        **fv,
    )
    # Sampling.
    flags.DEFINE_integer(
        "num_images",
        10000,
        "Real images, and generated images (>= 2048 for a stable FID).",
        lower_bound=2,
        **fv,
    )
    flags.DEFINE_integer("batch_size", 50, "Images per batch.", lower_bound=1, **fv)
    flags.DEFINE_float(
        "truncation", 1.0, "Latent truncation in (0, 1]; z ~ TruncNormal[-2, 2] * t.", **fv
    )
    flags.DEFINE_integer("seed", 0, "Seed of the latents and of KID's shuffling.", **fv)
    flags.DEFINE_bool("per_class", True, "Also compute per-class FID (intra-FID).", **fv)
    # Real data: exactly one source (a --data_* group for data.py's sources goes here).
    flags.DEFINE_string(
        "real_images_npz",
        None,
        "An .npz with `images` uint8 [N, R, R, 3] and int `labels` [N] (generator ids).",
        **fv,
    )
    flags.DEFINE_string(
        "dataset", None, "Real data: a TFDS name or 'folder' (with --image_folder).", **fv
    )
    flags.DEFINE_string("split", "test", "TFDS split of the real data.", **fv)
    flags.DEFINE_string("data_dir", None, "TFDS data_dir.", **fv)
    flags.DEFINE_string("image_folder", None, "--dataset=folder: one sub-folder per class.", **fv)
    flags.DEFINE_list(
        "classes",
        None,
        "Source class ids, remapped to the generator's 0..N-1 (as in training).",
        **fv,
    )
    flags.DEFINE_integer("images_per_class", None, "Cap on real images per class.", **fv)
    flags.DEFINE_integer(
        "resolution", None, "Real image resolution (None: the model's; needed for exports).", **fv
    )
    # Output.
    flags.DEFINE_string(
        "cache_dir", None, "Directory caching real-image statistics (None: no cache).", **fv
    )
    flags.DEFINE_string("output", None, "JSON file to write the results to.", **fv)

    flags.mark_flags_as_required(["model", "output"], **fv)
    validators = {
        "truncation": (lambda t: 0.0 < t <= 1.0, "--truncation must be in (0, 1]."),
        "model": (
            lambda path: path is None
            or any(
                tf.io.gfile.exists(os.path.join(path, name))
                for name in (biggan.GENERATOR_CONFIG_FILE, "saved_model.pb")
            ),
            "--model must be a directory holding generator_config.json "
            "(biggan.save_models) or saved_model.pb (an export version directory).",
        ),
        "real_images_npz": (
            lambda path: path is None or (path.endswith(".npz") and tf.io.gfile.exists(path)),
            "--real_images_npz must name an existing .npz file.",
        ),
        "output": (
            lambda path: path is None or not tf.io.gfile.isdir(path),
            "--output must be a file path (e.g. eval/metrics.json), not a directory.",
        ),
    }
    for name, (checker, message) in validators.items():
        flags.register_validator(name, checker, message=message, **fv)
    flags.register_multi_flags_validator(
        ["real_images_npz", "dataset"],
        lambda values: (values["real_images_npz"] is None) != (values["dataset"] is None),
        message="Give the real data as exactly one of --dataset or --real_images_npz.",
        **fv,
    )


def config_from_flags(flag_values=flags.FLAGS):
    """The `EvalConfig` of parsed flags (defined by `define_flags`)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(EvalConfig)}
    if values["classes"]:
        values["classes"] = tuple(int(c) for c in values["classes"])
    return EvalConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_from_flags()
    try:
        results = run(config)
    except (ClassifierError, EvaluationError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"{summary(results)} -> {config.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
