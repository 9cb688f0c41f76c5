"""The classifier whose activations FID, KID, IS and KMMD are computed from.

By default TF-GAN's Inception module (`tensorflow/tfgan/eval/inception/1`: `pool_3`
features and `logits`); any SavedModel with the same two outputs works, in either form
(a callable TF2 SavedModel, or a TF1 Hub format module with a `default` signature).

Handles go through the shared resolver `tfhub.resolve` (tfhub.dev handles and their
Kaggle Models twins, e.g. `tensorflow/inception/tensorFlow1/tfgan-eval-inception/1`,
fetched by `kagglehub` when it is installed), so offline a module unpacked in the TF-Hub
cache is found, and an unreachable handle raises a `ClassifierError` saying both ways to
get it and where to put it. `load_classifier` loads each classifier once per
process; TF-GAN's own `classifier_fn_from_tfhub` reloads it on every call.
"""

import collections.abc
import os

from absl import logging
import tensorflow as tf
import tensorflow_gan as tfgan
import tensorflow_hub as hub

from tf_cgan_transfer import errors
from tf_cgan_transfer import tfhub

INCEPTION_HANDLE = tfgan.eval.INCEPTION_TFHUB
POOL_KEY = tfgan.eval.INCEPTION_FINAL_POOL  # "pool_3"
LOGITS_KEY = tfgan.eval.INCEPTION_OUTPUT  # "logits"
DEFAULT_IMAGE_SIZE = tfgan.eval.INCEPTION_DEFAULT_IMAGE_SIZE  # 299
_FLAG = "--classifier (the `classifier` argument in Python)"


class ClassifierError(errors.UserError, ValueError):
    """The classifier cannot be found, loaded or used; the message says what to do."""


def resolve_classifier(handle):
    """`(local SavedModel directory, stable name)` for a handle or a directory.

    Args:
      handle: a SavedModel / TF-Hub module directory, a `https://tfhub.dev/...` URL or
        short handle such as `tensorflow/tfgan/eval/inception/1` (resolved through the
        TF-Hub cache, `TFHUB_CACHE_DIR`), or a Kaggle Models handle or URL such as
        `tensorflow/inception/tensorFlow1/tfgan-eval-inception/1` (also via `kagglehub`
        when it is installed).

    Returns:
      The directory, and the URL (handles; a Kaggle twin's is its tfhub.dev URL) or
      absolute path (directories) as its name.

    Raises:
      ClassifierError: nothing usable there; for an unreachable URL the message says
        what to download and where to put it.
    """
    example = f"{INCEPTION_HANDLE} or {tfhub.KAGGLE_TWINS['tensorflow/tfgan/eval/inception/1']}"
    path, name = tfhub.resolve(handle, "classifier", _FLAG, example, error=ClassifierError)
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
    """`(fn(images) -> outputs, image size)`: `__call__` if callable, else a signature.

    Raises:
      ClassifierError: the module is neither callable nor has a one-input signature.
    """
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
    """The `Classifier` for a handle or directory, loaded once per process and cached.

    Args:
      handle: what `resolve_classifier` takes, or an already loaded `Classifier`
        (returned as is).

    Returns:
      The `Classifier`; the same object for every spelling of the same directory.

    Raises:
      ClassifierError: the handle resolves to nothing, or the SavedModel there does not
        load or lacks the `pool_3` and `logits` outputs.
    """
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
