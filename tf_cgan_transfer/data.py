"""Input pipelines for GAN training: TFDS data sets and image folders -> `tf.data`.

A `DataConfig` names the source (a TFDS data set, e.g. `oxford_flowers102`, or an image
folder with one sub-folder per class), the resolution and an optional class subset and
per-class cap. `validate` checks everything that can be checked before training and
raises one `DataError` naming the problem and the fix; `make_dataset` yields
`(images, labels)` batches: float32 `[B, R, R, 3]` in [-1, 1] (centre crop to a square,
then bilinear resize with antialiasing, as BigGAN's input pipeline) and int32 `[B]`.

Records keep a fixed order (TFDS files are read in order, folder files are sorted), the
class subset and cap are applied to that order, and every random choice (shuffle, flip)
derives from `config.seed`: the same config gives the same batches. The pipeline holds
TF ops only, so its iterator can be saved with `tf.train.Checkpoint(iterator=...)`.

Importing this module registers the offline `cgan_demo_shapes` data set with TFDS.
"""

import dataclasses
import difflib
import os
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_cgan_transfer import demo_data

FOLDER = "folder"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
IMAGE_KEY = "image"
LABEL_KEY = "label"


class DataError(ValueError):
    """The data cannot be used as configured; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared.

    Attributes:
      dataset: a TFDS name (`"oxford_flowers102"`, `"cifar100"`, `"cgan_demo_shapes"`,
        optionally with `/config` or `:version`), or `"folder"` for `image_folder`.
      resolution: side R of the square output images.
      split: TFDS split expression, e.g. `"train"` or `"train+validation"` (TFDS only).
      data_dir: TFDS data directory; None means TFDS's default (`~/tensorflow_datasets`).
      image_folder: for `dataset="folder"`, a directory with one sub-folder of images per
        class; sorted sub-folder names are the class ids 0..N-1.
      classes: source label ids to keep, remapped to 0..N-1 in the given order; None keeps
        every class.
      images_per_class: keep at most this many images of each class (a seed-determined
        choice, see `make_dataset`); None keeps all.
      flip: random horizontal flips.
      seed: seed of the cap choice, the shuffle and the flips.
      shuffle_buffer: size of the shuffle buffer (capped by the number of examples).
    """

    dataset: str
    resolution: int
    split: str = "train"
    data_dir: Optional[str] = None
    image_folder: Optional[str] = None
    classes: Optional[Tuple[int, ...]] = None
    images_per_class: Optional[int] = None
    flip: bool = True
    seed: int = 0
    shuffle_buffer: int = 10_000

    def __post_init__(self):
        if not self.dataset:
            raise DataError("dataset is empty: give a TFDS name or 'folder'.")
        if self.dataset == FOLDER and not self.image_folder:
            raise DataError("dataset='folder' needs image_folder (a directory of class folders).")
        if self.dataset != FOLDER and self.image_folder:
            raise DataError(
                f"image_folder is set but dataset is {self.dataset!r}: set dataset='folder' "
                "to read the folder, or drop image_folder."
            )
        if not isinstance(self.resolution, int) or self.resolution < 1:
            raise DataError(f"resolution must be a positive integer, got {self.resolution!r}.")
        if self.images_per_class is not None and self.images_per_class < 1:
            raise DataError(
                f"images_per_class must be positive or None (all), got {self.images_per_class}."
            )
        if self.shuffle_buffer < 1:
            raise DataError(f"shuffle_buffer must be at least 1, got {self.shuffle_buffer}.")
        if self.classes is not None:
            classes = tuple(int(c) for c in self.classes)
            if not classes:
                raise DataError("classes is empty: list the class ids to keep, or None for all.")
            repeated = sorted({c for c in classes if classes.count(c) > 1})
            if repeated:
                raise DataError(
                    f"classes repeats the id(s) {repeated}: list each class once "
                    "(its position is its new label)."
                )
            object.__setattr__(self, "classes", classes)


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a `DataConfig` yields, after the class subset and the per-class cap.

    Attributes:
      num_classes: number of classes N (labels are 0..N-1).
      class_names: name of each new label.
      counts: images of each new label.
      num_examples: total images, `sum(counts)`.
    """

    num_classes: int
    class_names: List[str]
    counts: List[int]
    num_examples: int


@dataclasses.dataclass
class _Source:
    """An opened data source: every record's class, in the fixed read order."""

    name: str
    class_names: List[str]
    builder: Optional[tfds.core.DatasetBuilder] = None  # TFDS
    paths: Optional[List[str]] = None  # folder: one file per record
    labels: Optional[np.ndarray] = None  # folder: filled at open; TFDS: by _tfds_labels


# ---- Opening sources -----------------------------------------------------------------


def _open(config):
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
    return _Source(
        name=root,
        class_names=class_dirs,
        paths=paths,
        labels=np.asarray(labels, np.int64),
    )


def _base_name(name):
    return name.split("/")[0].split(":")[0]


def _open_tfds(config):
    try:
        builder = tfds.builder(config.dataset, data_dir=config.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(_base_name(config.dataset), known, n=5, cutoff=0.6)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise DataError(
            f"Unknown TFDS data set {config.dataset!r}. {hint}Use a name from "
            "tfds.list_builders(), or dataset='folder' with image_folder for your own images."
        ) from None
    except ValueError as e:  # e.g. an unknown builder config or version
        raise DataError(f"Cannot open TFDS data set {config.dataset!r}: {e}") from None
    features = builder.info.features
    label = features[LABEL_KEY] if LABEL_KEY in features else None
    if IMAGE_KEY not in features or not isinstance(label, tfds.features.ClassLabel):
        raise DataError(
            f"TFDS data set {config.dataset!r} has no {IMAGE_KEY!r} image and {LABEL_KEY!r} "
            f"ClassLabel features (it has {sorted(features.keys())}): use a labelled image "
            "data set, or export the images to a folder and use dataset='folder'."
        )
    names = list(label.names) if label.names else [str(i) for i in range(label.num_classes)]
    return _Source(name=config.dataset, class_names=names, builder=builder)


def ensure_prepared(config):
    """Generates the offline demo data set in `data_dir` if it is not there yet.

    Only `cgan_demo_shapes` can be prepared here (it is procedural); other TFDS data
    sets are left alone (`validate` says how to prepare them). Returns True if it built.
    """
    if config.dataset == FOLDER or _base_name(config.dataset) != demo_data.NAME:
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
    if _base_name(config.dataset) == demo_data.NAME:
        variant = builder.builder_config.name
        fix = f"run tf_cgan_transfer.demo_data.prepare({root!r}, {variant!r}) (works offline)"
    else:
        fix = (
            f"on a machine with internet run `tfds build {_base_name(config.dataset)} "
            "--data_dir=<dir>` (or tfds.builder(name, data_dir=<dir>).download_and_prepare()) "
            "and copy <dir> here, then point data_dir at it"
        )
    return DataError(
        f"TFDS data set {config.dataset!r} is not prepared in {root}, and TFDS cannot "
        f"download here: {fix}."
    )


def _tfds_records(config, builder):
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


def _tfds_labels(config, source):
    """Reads the label of every record once (images are not decoded)."""
    labels = _tfds_records(config, source.builder).map(lambda _, label: label).batch(8192)
    chunks = list(labels.as_numpy_iterator())
    return np.concatenate(chunks) if chunks else np.zeros([0], np.int64)


# ---- Class subset and per-class cap ----------------------------------------------------


def _classes(config, source):
    """The kept source ids, in new-label order; raises on ids out of range."""
    num = len(source.class_names)
    if config.classes is None:
        return tuple(range(num))
    bad = [c for c in config.classes if not 0 <= c < num]
    if bad:
        raise DataError(
            f"classes {bad} out of range: {source.name} has {num} classes (ids 0..{num - 1}). "
            "Fix --classes."
        )
    return config.classes


def _remap_table(classes, num_source_classes):
    """`table[source id]` = new label, or -1 for dropped classes."""
    table = np.full([num_source_classes], -1, np.int64)
    table[list(classes)] = np.arange(len(classes))
    return table


def _select(config, classes, num_source_classes, labels):
    """Boolean mask of the kept records and the new label of every record.

    With `images_per_class = M`, class c keeps the first M of its records in an order
    drawn from `(config.seed, c)`: the choice of a class does not depend on the other
    classes, and a larger M keeps a superset.
    """
    new_labels = _remap_table(classes, num_source_classes)[labels]
    keep = new_labels >= 0
    if config.images_per_class is not None:
        for new_label, source_id in enumerate(classes):
            index = np.flatnonzero(new_labels == new_label)
            if len(index) > config.images_per_class:
                order = np.random.default_rng([config.seed, source_id]).permutation(len(index))
                keep[index[order[config.images_per_class :]]] = False
    return keep, new_labels


def _info(config, source, classes, labels):
    keep, new_labels = _select(config, classes, len(source.class_names), labels)
    counts = np.bincount(new_labels[keep], minlength=len(classes)).tolist()
    return DataInfo(
        num_classes=len(classes),
        class_names=[source.class_names[c] for c in classes],
        counts=counts,
        num_examples=int(sum(counts)),
    )


# ---- Public API ------------------------------------------------------------------------


def describe(config):
    """Classes and image counts of `config`, without decoding images.

    A TFDS data set must be prepared in `config.data_dir` (nothing is downloaded); its
    class names come from the `label` ClassLabel feature and the counts from reading the
    label of every record of the split once.

    Args:
      config: a `DataConfig`.

    Returns:
      A `DataInfo` (after the class subset and the per-class cap).

    Raises:
      DataError: unknown data set or split, data set not prepared, missing folder, or
        class ids out of range.
    """
    return _describe(config)[-1]


def _describe(config):
    source = _open(config)
    classes = _classes(config, source)
    labels = source.labels if source.labels is not None else _tfds_labels(config, source)
    return source, classes, labels, _info(config, source, classes, labels)


def validate(config, expected_num_classes=None):
    """Checks everything about `config` that can be checked before training.

    Beyond `describe`: every kept class has images, the class count matches the model's,
    and (image folders) every kept file decodes. TFDS records are trusted.

    Args:
      config: a `DataConfig`.
      expected_num_classes: number of classes of the model to be trained, or None.

    Returns:
      The `DataInfo` of `config`.

    Raises:
      DataError: the first problem found, naming the class, file or count and the fix.
    """
    source, classes, labels, info = _describe(config)
    if expected_num_classes is not None and expected_num_classes != info.num_classes:
        raise DataError(
            f"The model has {expected_num_classes} classes but the data has "
            f"{info.num_classes}; set --classes to {expected_num_classes} class ids or "
            f"--num_classes={info.num_classes}."
        )
    for new_label, count in enumerate(info.counts):
        if count:
            continue
        if source.paths is not None:
            class_dir = os.path.join(config.image_folder, info.class_names[new_label])
            raise DataError(
                f"Class folder {class_dir} has no images "
                f"({' '.join(IMAGE_EXTENSIONS)}): add images or remove the folder."
            )
        raise DataError(
            f"Class {classes[new_label]} ({info.class_names[new_label]!r}) has no images in "
            f"split {config.split!r} of {config.dataset!r}: drop it from --classes."
        )
    if source.paths is not None:
        keep, _ = _select(config, classes, len(source.class_names), labels)
        for path in np.asarray(source.paths, dtype=object)[keep]:
            _check_image_file(path)
    return info


def _check_image_file(path):
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        raise DataError(
            f"Cannot read image {path} ({type(e).__name__}: {e.message}): replace or remove "
            "the file (JPEG, PNG, BMP or GIF)."
        ) from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"Image {path} is empty ({image.shape}): replace or remove the file.")


def preprocess(encoded, resolution):
    """Encoded JPEG/PNG/BMP/GIF bytes -> float32 `[R, R, 3]` in [-1, 1].

    Grey and RGBA images become RGB (GIFs: first frame). The largest centred square is
    cropped, then resized to `resolution` (bilinear with antialiasing).
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    image = tf.image.resize(image, [resolution, resolution], "bilinear", antialias=True)
    return tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)


def make_dataset(config, batch_size, input_context=None, repeat=True, shuffle=True, skip_batches=0):
    """The training input pipeline of `config`.

    Order of operations: records in a fixed order (TFDS files in order, folder files
    sorted) -> class subset, remap and per-class cap (see `describe`; for TFDS the cap
    reads every label once first) -> shard by input pipeline -> shuffle (seeded) ->
    repeat -> (skip) -> decode, centre crop, resize, [-1, 1], seeded flip -> batch ->
    prefetch. Each example's flip is drawn statelessly from (seed, pipeline id, position
    in the stream), so a run is reproducible and its iterator can be checkpointed.

    Args:
      config: a `DataConfig`.
      batch_size: global batch size; with `input_context`, each pipeline yields
        `input_context.get_per_replica_batch_size(batch_size)` examples per batch.
      input_context: a `tf.distribute.InputContext`, as passed by
        `strategy.distribute_datasets_from_function`; the records are sharded by
        `input_pipeline_id`.
      repeat: repeat forever (else one epoch; the last partial batch is dropped).
      shuffle: shuffle the examples (with `config.seed`).
      skip_batches: start after this many batches (of this pipeline), e.g. to resume a
        run without a checkpointed iterator; the skipped examples are not decoded, and
        the batches that follow equal those of an unskipped pipeline.

    Returns:
      A `tf.data.Dataset` of `(images, labels)`: float32 `[B, R, R, 3]` in [-1, 1] and
      int32 `[B]`.

    Raises:
      DataError: as `describe`, or when the batch size does not split over the replicas.
    """
    source = _open(config)
    classes = _classes(config, source)
    table = _remap_table(classes, len(source.class_names))
    pipeline_id, num_pipelines = 0, 1
    if input_context is not None:
        pipeline_id = input_context.input_pipeline_id
        num_pipelines = input_context.num_input_pipelines
        try:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        except ValueError as e:
            raise DataError(f"{e}: make the batch size a multiple of the replicas.") from None

    if source.paths is not None:
        keep, new_labels = _select(config, classes, len(table), source.labels)
        paths = np.asarray(source.paths, dtype=object)[keep].astype(str)
        ds = tf.data.Dataset.from_tensor_slices((paths, new_labels[keep]))
        ds = _shard(ds, num_pipelines, pipeline_id)
        num_examples = len(paths)
        load = tf.io.read_file
    else:
        ds = _tfds_records(config, source.builder)
        if config.images_per_class is not None:
            keep, _ = _select(config, classes, len(table), _tfds_labels(config, source))
            keep_table = tf.constant(keep)
            ds = ds.enumerate().filter(lambda i, record: tf.gather(keep_table, i))
            ds = ds.map(lambda i, record: record)
            num_examples = int(keep.sum())
        else:
            ds = ds.filter(lambda _, label: tf.gather(table, label) >= 0)
            num_examples = None
        ds = _shard(ds, num_pipelines, pipeline_id)
        ds = ds.map(lambda encoded, label: (encoded, tf.gather(table, label)))
        load = tf.identity
    if num_examples is not None and num_examples < num_pipelines:
        raise DataError(
            f"{config.dataset} yields {num_examples} images after the class subset and cap, "
            f"fewer than the {num_pipelines} input pipelines: check --classes and "
            "--images_per_class (validate() names empty classes)."
        )

    if shuffle:
        buffer = config.shuffle_buffer
        if num_examples is not None:
            buffer = max(1, min(buffer, -(-num_examples // num_pipelines)))
        ds = ds.shuffle(buffer, seed=config.seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    base_seed = tf.constant([config.seed, pipeline_id], tf.int64)

    def prepare(index, key, label):
        image = preprocess(load(key), config.resolution)
        if config.flip:
            seed = tf.random.experimental.stateless_fold_in(base_seed, index)
            image = tf.image.stateless_random_flip_left_right(image, seed)
        return image, tf.cast(label, tf.int32)

    ds = ds.enumerate()  # positions in the stream, for the flips: before any skip
    if skip_batches:
        ds = ds.skip(skip_batches * batch_size)
    ds = ds.map(
        lambda index, example: prepare(index, *example),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def _shard(ds, num_pipelines, pipeline_id):
    return ds.shard(num_pipelines, pipeline_id) if num_pipelines > 1 else ds
