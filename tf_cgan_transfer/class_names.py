"""Class names: what labels the rows of sample sheets and the class-affinity report.

Where a model's names come from, first found first (`resolve`):

1. a names file (`--class_names`): one name per line, line i naming class i;
2. what the caller knows (the training data's plan: TFDS label names, `features['label']
   .names`, or an image folder's sorted sub-folder names);
3. the run the model belongs to: its recorded names file, else its recorded training
   data's names (`model_io.recorded_config`), read from the data set's metadata or
   folder listing without reading any image;
4. for 1000 classes, ImageNet's (BigGAN's TF-Hub modules): the WordNet ids TFDS ships
   (`n01440764` is class 0, tench) — the only ImageNet names available offline;
5. none: sheets and reports fall back to class ids.
"""

import os

from absl import logging
import tensorflow as tf

from tf_cgan_transfer import data
from tf_cgan_transfer import data_sources
from tf_cgan_transfer import errors
from tf_cgan_transfer import model_io

IMAGENET_CLASSES = 1000
# Where TFDS keeps ImageNet's label list, newest layout first (relative to its package).
_IMAGENET_LABEL_FILES = (
    os.path.join("datasets", "imagenet2012", "labels.txt"),
    os.path.join("image_classification", "imagenet2012_labels.txt"),
)


class ClassNamesError(errors.UserError, ValueError):
    """A class names file cannot be used; the message names the file and the fix."""


def read_file(path, num_classes=None):
    """The names in `path`, line i naming class i (surrounding spaces stripped).

    Blank lines after the last name are ignored; a blank line before it is an error,
    since skipping it would give every later class the next class's name.

    Args:
      path: a text file, one name per line.
      num_classes: the number of names required (None: any number).

    Raises:
      ClassNamesError: the file is missing, holds no names or a blank line between
        names, or another number of names than `num_classes`.
    """
    if not tf.io.gfile.exists(path):
        raise ClassNamesError(f"Class names file {path} does not exist.")
    with tf.io.gfile.GFile(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ClassNamesError(f"Class names file {path} holds no names: write one per line.")
    if "" in lines:
        raise ClassNamesError(
            f"Class names file {path}: line {lines.index('') + 1} is empty. Line i names class "
            "i, so every line up to the last name needs a name."
        )
    check_count(lines, num_classes, path)
    return lines


def check_count(names, num_classes, where):
    """Raises `ClassNamesError` unless `names` has `num_classes` entries (None: any)."""
    if num_classes is not None and len(names) != num_classes:
        raise ClassNamesError(
            f"{where} lists {len(names)} class names, but the model has {num_classes} "
            "classes: give one name per class, line i naming class i."
        )


def imagenet():
    """The 1000 ImageNet (ILSVRC-2012) class names in label order, as TFDS ships them.

    BigGAN's class k is line k: WordNet ids such as `n01440764` (tench).

    Raises:
      ClassNamesError: this TFDS release ships no ImageNet label list.
    """
    import tensorflow_datasets as tfds  # deferred: only the ImageNet path needs the package

    root = os.path.dirname(tfds.__file__)
    for relative in _IMAGENET_LABEL_FILES:
        path = os.path.join(root, relative)
        if tf.io.gfile.exists(path):
            return read_file(path, IMAGENET_CLASSES)
    raise ClassNamesError(
        f"No ImageNet label list in {root} (looked for {', '.join(_IMAGENET_LABEL_FILES)}): "
        "pass the names as a file, one per line."
    )


def of_data(recorded):
    """The names of the classes a data config uses, in label order, or None.

    Opens the source only (TFDS metadata or the folder listing), reading no image or
    label. None, with a warning, when the source cannot be opened (moved or not there).

    Args:
      recorded: a `data.DataConfig` or its recorded JSON dict (`config.json`'s `data`).
    """
    if isinstance(recorded, dict):
        try:
            recorded = data.config_from_record(recorded)
        except (data.DataError, TypeError) as e:
            logging.warning("Cannot read class names from the recorded data %s: %s", recorded, e)
            return None
    try:
        source = data_sources.open_source(recorded)
    except data.DataError as e:
        logging.warning("No class names from %s: %s", recorded.dataset, e)
        return None
    names = source.class_names
    if recorded.classes is None:
        return list(names)
    if not all(0 <= c < len(names) for c in recorded.classes):
        return None
    return [names[c] for c in recorded.classes]


def of_run(path):
    """The class names of the training run `path` belongs to (a run or models directory).

    The run's recorded names file when it still exists, else its training data's names
    (`of_data`); None for a path that is not one of our runs.
    """
    recorded = model_io.recorded_config(path)
    if recorded is None:
        return None
    names_file = recorded.get("class_names")
    if names_file and tf.io.gfile.exists(names_file):
        return read_file(names_file)
    return of_data(recorded["data"]) if isinstance(recorded.get("data"), dict) else None


def resolve(names_file, num_classes, known=None, path=None):
    """The names of a model's `num_classes` classes, from the first source that has them.

    Args:
      names_file: a names file (`read_file`), or None.
      num_classes: the model's class count; a file with another count is an error.
      known: names the caller already has (e.g. the data plan's), or None.
      path: the model's directory or source handle (`of_run`), or None.

    Returns:
      A list of `num_classes` names, or None when no source has them.

    Raises:
      ClassNamesError: `names_file` is unusable or lists another number of names.
    """
    if names_file:
        return read_file(names_file, num_classes)
    candidates = [("the caller", lambda: known)]
    if path is not None:
        candidates.append((f"the run of {path}", lambda: of_run(path)))
    if num_classes == IMAGENET_CLASSES:
        candidates.append(("ImageNet", _imagenet_or_none))
    for where, names_of in candidates:
        names = names_of()
        if names is None:
            continue
        if len(names) == num_classes:
            return list(names)
        logging.warning(
            "Ignoring the %d class names of %s: the model has %d classes.",
            len(names),
            where,
            num_classes,
        )
    return None


def _imagenet_or_none():
    try:
        return imagenet()
    except ClassNamesError as e:
        logging.warning("%s", e)
        return None
