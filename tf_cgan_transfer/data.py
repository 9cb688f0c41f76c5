"""Input pipelines for GAN training: a data source -> a plan -> `tf.data`.

A `DataConfig` names the source (a TFDS data set, e.g. `oxford_flowers102`, or an image
folder with one sub-folder per class; opened by `data_sources`), the resolution and an
optional class subset and per-class cap. `plan(config)` reads every record's label once
and decides which records a run uses and with which new label: the `DataPlan`, which
validation, the training pipeline and the evaluation's real images all reuse, so the
labels are never read again. `validate` checks everything that can be checked before
training and raises one `DataError` naming the problem and the fix; `make_dataset`
yields `(images, labels)` batches: float32 `[B, R, R, 3]` in [-1, 1] (centre crop to a
square, then bilinear resize with antialiasing, as BigGAN's input pipeline) and int32
`[B]`.

Records keep a fixed order, the class subset and cap are applied to that order, and
every random choice (shuffle, flip) derives from `config.seed`: the same config gives
the same batches. The pipeline holds TF ops only, so its iterator can be saved with
`tf.train.Checkpoint(iterator=...)`.
"""

import dataclasses
import os
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import data_sources
from tf_cgan_transfer.data_sources import FOLDER
from tf_cgan_transfer.data_sources import DataError
from tf_cgan_transfer.data_sources import ensure_prepared

__all__ = [
    "FOLDER",
    "DataConfig",
    "DataError",
    "DataInfo",
    "DataPlan",
    "describe",
    "ensure_prepared",
    "make_dataset",
    "plan",
    "preprocess",
    "validate",
]

# The fields that decide which records a run uses (the rest shape how they are read).
_SELECTION_FIELDS = (
    "dataset",
    "split",
    "data_dir",
    "image_folder",
    "classes",
    "images_per_class",
    "seed",
)


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


def config_from_record(recorded, **overrides):
    """The `DataConfig` of its recorded JSON dict (a run's `config.json` `data`): keys that
    are not fields dropped, `classes` a tuple again; `overrides` replace fields."""
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    values = {k: v for k, v in recorded.items() if k in fields}
    if values.get("classes") is not None:
        values["classes"] = tuple(values["classes"])
    return DataConfig(**dict(values, **overrides))


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


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """Which records of a source a `DataConfig` uses, decided once (`plan`).

    Attributes:
      config: the `DataConfig`.
      source: the opened `data_sources.Source`.
      classes: the kept source ids, in new-label order.
      labels: int64 `[records]`, the source label of every record in the fixed order.
      keep: bool `[records]`, the records the class subset and cap keep.
      new_labels: int64 `[records]`, each record's new label (-1: dropped class).
      info: the `DataInfo` (its fields are also properties of the plan).
      validated: `validate` checked it (empty classes, undecodable files).
    """

    config: "DataConfig"
    source: data_sources.Source
    classes: Tuple[int, ...]
    labels: np.ndarray
    keep: np.ndarray
    new_labels: np.ndarray
    info: DataInfo
    validated: bool = False

    num_classes = property(lambda self: self.info.num_classes)
    class_names = property(lambda self: self.info.class_names)
    counts = property(lambda self: self.info.counts)
    num_examples = property(lambda self: self.info.num_examples)

    def with_config(self, config):
        """This plan for `config`, which may differ only in how records are read (flip,
        shuffle buffer, resolution), not in which records are used."""
        changed = [f for f in _SELECTION_FIELDS if getattr(config, f) != getattr(self.config, f)]
        if changed:
            raise ValueError(f"with_config cannot change the record selection ({changed}).")
        return dataclasses.replace(self, config=config)


def plan(config):
    """The `DataPlan` of `config`: opens the source and reads every label once.

    A TFDS data set must be prepared in `config.data_dir` (nothing is downloaded).

    Raises:
      DataError: unknown data set or split, data set not prepared, missing folder, or
        class ids out of range.
    """
    source = data_sources.open_source(config)
    classes = _classes(config, source)
    labels = data_sources.read_labels(config, source)
    keep, new_labels = _select(config, classes, len(source.class_names), labels)
    counts = np.bincount(new_labels[keep], minlength=len(classes)).tolist()
    info = DataInfo(
        num_classes=len(classes),
        class_names=[source.class_names[c] for c in classes],
        counts=counts,
        num_examples=int(sum(counts)),
    )
    return DataPlan(config, source, classes, labels, keep, new_labels, info)


def _plan_of(config_or_plan):
    if isinstance(config_or_plan, DataPlan):
        return config_or_plan
    return plan(config_or_plan)


def describe(config):
    """Classes and image counts of `config` (a `DataConfig` or `DataPlan`), without
    decoding images: a `DataInfo` after the class subset and the per-class cap."""
    return _plan_of(config).info


def validate(config, expected_num_classes=None):
    """Checks everything about `config` that can be checked before training.

    Beyond `plan`: every kept class has images, the class count matches the model's,
    and (image folders) every kept file decodes. TFDS records are trusted.

    Args:
      config: a `DataConfig`, or a `DataPlan` (not re-read).
      expected_num_classes: number of classes of the model to be trained, or None.

    Returns:
      The validated `DataPlan` (it has the `DataInfo` fields: num_classes, counts, ...).

    Raises:
      DataError: the first problem found, naming the class, file or count and the fix.
    """
    data_plan = _plan_of(config)
    config, info = data_plan.config, data_plan.info
    if expected_num_classes is not None and expected_num_classes != info.num_classes:
        raise DataError(
            f"The model has {expected_num_classes} classes but the data has "
            f"{info.num_classes}; set --classes to {expected_num_classes} class ids or "
            f"--num_classes={info.num_classes}."
        )
    if data_plan.validated:
        return data_plan
    for new_label, count in enumerate(info.counts):
        if count:
            continue
        if data_plan.source.paths is not None:
            class_dir = os.path.join(config.image_folder, info.class_names[new_label])
            raise DataError(
                f"Class folder {class_dir} has no images "
                f"({' '.join(data_sources.IMAGE_EXTENSIONS)}): add images or remove the folder."
            )
        raise DataError(
            f"Class {data_plan.classes[new_label]} ({info.class_names[new_label]!r}) has no "
            f"images in split {config.split!r} of {config.dataset!r}: drop it from --classes."
        )
    if data_plan.source.paths is not None:
        for path in np.asarray(data_plan.source.paths, dtype=object)[data_plan.keep]:
            data_sources.check_image_file(path)
    return dataclasses.replace(data_plan, validated=True)


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
    sorted) -> class subset, remap and per-class cap (the plan's) -> shard by input pipeline -> shuffle (seeded) ->
    repeat -> (skip) -> decode, centre crop, resize, [-1, 1], seeded flip -> batch ->
    prefetch. Each example's flip is drawn statelessly from (seed, pipeline id, position
    in the stream), so a run is reproducible and its iterator can be checkpointed.

    Args:
      config: a `DataPlan` (its labels are not read again) or a `DataConfig`.
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
    data_plan = _plan_of(config)
    config, source = data_plan.config, data_plan.source
    table = _remap_table(data_plan.classes, len(source.class_names))
    pipeline_id, num_pipelines = 0, 1
    if input_context is not None:
        pipeline_id = input_context.input_pipeline_id
        num_pipelines = input_context.num_input_pipelines
        try:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        except ValueError as e:
            raise DataError(f"{e}: make the batch size a multiple of the replicas.") from None

    if source.paths is not None:
        keep, new_labels = data_plan.keep, data_plan.new_labels
        paths = np.asarray(source.paths, dtype=object)[keep].astype(str)
        ds = tf.data.Dataset.from_tensor_slices((paths, new_labels[keep]))
        ds = _shard(ds, num_pipelines, pipeline_id)
        num_examples = len(paths)
        load = tf.io.read_file
    else:
        ds = data_sources.tfds_records(config, source.builder)
        if config.images_per_class is not None:
            keep = data_plan.keep
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
