"""Real images for evaluation: an .npz file or a data set, as a `RealSource`.

A `RealSource` is what an `evaluator.Evaluator` needs of the real images: a function
returning the `tf.data.Dataset` of `(images, labels)` batches (float32 in [-1, 1], the
generator's class ids), a cache key naming them, and their number. `npz_real_source`
reads an .npz; `from_data_config` reads a `data.DataConfig` (a TFDS data set or an image
folder, with the class subset remapped as in training).
"""

import dataclasses
import io
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import data
from tf_cgan_transfer import errors


class EvaluationError(errors.UserError, ValueError):
    """Bad evaluation inputs (data, generator, sizes); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class RealSource:
    """Real images for an `Evaluator`: its dataset function, cache key and size.

    Attributes:
      dataset_fn: returns a `tf.data.Dataset` of `(images, labels)` batches.
      cache_key: JSON-serialisable dict naming the images (`Evaluator`'s `cache_key`).
      num_images: how many images the dataset holds; None: unbounded.
    """

    dataset_fn: Callable[[], tf.data.Dataset]
    cache_key: dict
    num_images: Optional[int]


def npz_real_source(path, batch_size=50):
    """A `RealSource` from an .npz with `images` uint8 [N, R, R, 3] and `labels` [N].

    Args:
      path: the .npz file; its labels must be the generator's class ids.
      batch_size: images per batch of the dataset.

    Returns:
      A `RealSource` of the N images, keyed by the file's absolute path, size and
      modification time (so an edited file is not matched to stale statistics).

    Raises:
      EvaluationError: unreadable file, missing arrays, or wrong dtypes or shapes.
    """
    try:
        with tf.io.gfile.GFile(path, "rb") as f, np.load(io.BytesIO(f.read())) as arrays:
            images, labels = arrays["images"], arrays["labels"]
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


def from_data_config(data_config, batch_size=50, plan=None):
    """A `RealSource` from a `data.DataConfig` (TFDS data set or image folder).

    Evaluation reads the images unflipped, whatever `data_config.flip` says.

    Args:
      data_config: the data to read, e.g. the training data or its test split.
      batch_size: images per batch of the dataset.
      plan: an existing `data.DataPlan` of the same selection (e.g. the trainer's), so
        the labels are not read again; None: validate `data_config` here.

    Returns:
      A `RealSource` of every selected image, keyed by the selection and resolution.

    Raises:
      data.DataError: the data cannot be used as configured.
    """
    config = dataclasses.replace(data_config, flip=False)
    plan = data.validate(config) if plan is None else plan.with_config(config)
    cache_key = dict(
        dataset=config.dataset,
        split=config.split,
        image_folder=config.image_folder and os.path.abspath(config.image_folder),
        classes=list(config.classes) if config.classes else None,
        images_per_class=config.images_per_class,
        resolution=config.resolution,
    )
    return RealSource(lambda: data.make_dataset(plan, batch_size), cache_key, plan.num_examples)
