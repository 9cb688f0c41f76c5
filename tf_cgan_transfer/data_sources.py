"""Opening data sources: TFDS data sets and image folders -> class names and record labels.

A source lists its records in a fixed order (TFDS files in order, folder files sorted)
with each record's class; `data.py` decides from that which records a run uses. To add
a kind of source, add an opener here that returns a `Source` and dispatch to it in
`open_source`; `data.make_dataset` then needs only its records (`records`).

Importing this module registers the offline `cgan_demo_shapes` data set and the
`wesnoth_units` builder (made from the game's files) with TFDS.
"""

import dataclasses
import difflib
import os
from typing import List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_cgan_transfer import demo_data
from tf_cgan_transfer import errors
from tf_cgan_transfer import wesnoth_units

FOLDER = "folder"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGE_KEY = "image"
LABEL_KEY = "label"


class DataError(errors.UserError, ValueError):
    """The data cannot be used as configured; the message says why and what to do."""


@dataclasses.dataclass
class Source:
    """An opened data source: every record's class, in the fixed read order."""

    name: str
    class_names: List[str]
    builder: Optional[tfds.core.DatasetBuilder] = None  # TFDS
    paths: Optional[List[str]] = None  # folder: one file per record
    labels: Optional[np.ndarray] = None  # folder: filled at open; TFDS: by read_labels


def open_source(config):
    """The `Source` a `data.DataConfig` names (its dataset, split, data_dir, image_folder)."""
    return _open_folder(config) if config.dataset == FOLDER else _open_tfds(config)


def _is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _open_folder(config):
    root = config.image_folder
    if not tf.io.gfile.isdir(root):
        raise DataError(
            f"Image folder {root} does not exist or is not a directory: set image_folder to a "
            "directory holding one sub-folder of images per class."
        )
    class_dirs = sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(root)
        if not name.startswith(".") and tf.io.gfile.isdir(os.path.join(root, name))
    )
    if not class_dirs:
        raise DataError(
            f"Image folder {root} has no class sub-folders: put the images of each class in "
            f"its own sub-folder ({root}/<class name>/<image>.jpg)."
        )
    paths, labels = [], []
    for label, name in enumerate(class_dirs):
        class_dir = os.path.join(root, name)
        files = sorted(f for f in tf.io.gfile.listdir(class_dir) if _is_image_file(f))
        paths += [os.path.join(class_dir, f) for f in files]
        labels += [label] * len(files)
    return Source(
        name=root,
        class_names=class_dirs,
        paths=paths,
        labels=np.asarray(labels, np.int64),
    )


def base_name(name):
    return name.split("/")[0].split(":")[0]


def _open_tfds(config):
    try:
        builder = tfds.builder(config.dataset, data_dir=config.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(base_name(config.dataset), known, n=5, cutoff=0.6)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise DataError(
            f"Unknown TFDS data set {config.dataset!r}. {hint}Use a name from "
            "tfds.list_builders(), or dataset='folder' with image_folder for your own images."
        ) from None
    except ValueError as e:  # e.g. an unknown builder config or version
        raise DataError(f"Cannot open TFDS data set {config.dataset!r}: {e}") from None
    features = builder.info.features
    label = features[LABEL_KEY] if LABEL_KEY in features else None
    if isinstance(label, tfds.features.ClassLabel) and label.num_classes is None:
        # Classes known only once prepared (wesnoth_units: from the game files).
        raise _not_prepared(config, builder)
    if IMAGE_KEY not in features or not isinstance(label, tfds.features.ClassLabel):
        raise DataError(
            f"TFDS data set {config.dataset!r} has no {IMAGE_KEY!r} image and {LABEL_KEY!r} "
            f"ClassLabel features (it has {sorted(features.keys())}): use a labelled image "
            "data set, or export the images to a folder and use dataset='folder'."
        )
    names = list(label.names) if label.names else [str(i) for i in range(label.num_classes)]
    return Source(name=config.dataset, class_names=names, builder=builder)


def ensure_prepared(config):
    """Generates the offline demo data set in `data_dir` if it is not there yet.

    Only `cgan_demo_shapes` can be prepared here (it is procedural); other TFDS data
    sets are left alone (`validate` says how to prepare them). Returns True if it built.
    """
    if config.dataset == FOLDER or base_name(config.dataset) != demo_data.NAME:
        return False
    builder = tfds.builder(config.dataset, data_dir=config.data_dir)
    if builder.is_prepared():
        return False
    builder.download_and_prepare()
    return True


def _not_prepared(config, builder):
    root = config.data_dir or str(builder.data_dir)
    suffix = "/" + builder.info.full_name  # <root>/<name>[/<config>]/<version>
    root = root[: -len(suffix)] if root.endswith(suffix) else root
    if base_name(config.dataset) == demo_data.NAME:
        variant = builder.builder_config.name
        fix = f"run tf_cgan_transfer.demo_data.prepare({root!r}, {variant!r}) (works offline)"
    elif base_name(config.dataset) == wesnoth_units.NAME:
        variant = builder.builder_config.name
        fix = (
            f"run tf_cgan_transfer.wesnoth_units.prepare({root!r}, <manual_dir>, {variant!r}) "
            "(works offline), with manual_dir the data/core folder of Wesnoth 1.16 "
            "(holding units/ and images/units/). " + wesnoth_units.INSTRUCTIONS_LINE
        )
    else:
        fix = (
            f"on a machine with internet run `tfds build {base_name(config.dataset)} "
            "--data_dir=<dir>` (or tfds.builder(name, data_dir=<dir>).download_and_prepare()) "
            "and copy <dir> here, then point data_dir at it"
        )
    return DataError(
        f"TFDS data set {config.dataset!r} is not prepared in {root}, and TFDS cannot "
        f"download here: {fix}."
    )


def tfds_records(config, builder):
    """`(encoded image, int64 label)` of every record of the split, in file order."""
    try:
        ds = builder.as_dataset(
            split=config.split,
            shuffle_files=False,
            decoders={IMAGE_KEY: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(try_autocache=False),
        )
    except AssertionError:  # TFDS's "could not find data in <data_dir>"
        raise _not_prepared(config, builder) from None
    except ValueError as e:  # unknown split
        raise DataError(
            f"Split {config.split!r} of {config.dataset!r}: {e} Set split to one of them "
            "(combine with '+', e.g. 'train+validation')."
        ) from None
    return ds.map(lambda ex: (ex[IMAGE_KEY], tf.cast(ex[LABEL_KEY], tf.int64)))


def read_labels(config, source):
    """The source label of every record (int64 `[num records]`), in the fixed order.

    Folders know them from their file lists; TFDS labels are read once (images are not
    decoded). `data.plan` calls this once per configuration; everything downstream
    reuses the plan.
    """
    if source.labels is not None:
        return source.labels
    labels = tfds_records(config, source.builder).map(lambda _, label: label).batch(8192)
    chunks = list(labels.as_numpy_iterator())
    return np.concatenate(chunks) if chunks else np.zeros([0], np.int64)


def check_image_file(path):
    """Raises a `DataError` naming `path` when it does not decode as an image."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        raise DataError(
            f"Cannot read image {path} ({type(e).__name__}: {e.message}): replace or remove "
            "the file (JPEG, PNG, BMP or GIF)."
        ) from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"Image {path} is empty ({image.shape}): replace or remove the file.")
