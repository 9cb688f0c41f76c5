"""What every command line shares: one flag idiom, one `main` wrapper, the data flags.

Each command-line module (`train`, `evaluate`, `export`, `sample`, `hub_convert`,
`pytorch_convert`, `affinity`) has the same three parts:

* `define_flags(fv)` defines its flags on the `flags.FlagValues` `fv`, with validators,
  so a bad flag or flagfile fails before any work (tests pass a fresh `FlagValues`);
* `config_from_flags(fv)` builds the one typed config its library code takes;
* `main(fv)` runs it and prints one line of outcome.

`run(main, define_flags)` is the `__main__` entry: it defines the flags on
`flags.FLAGS`, lets absl parse them, and turns any `errors.UserError` into one line
`error: ...` on stderr with exit code 2 (no traceback). Library modules never read flags.
"""

import dataclasses
import sys

from absl import app
from absl import flags
import tensorflow as tf

from tf_cgan_transfer import data
from tf_cgan_transfer import errors

USER_ERROR_EXIT_CODE = 2


def run(main, define_flags):
    """Defines the flags, parses argv and runs `main(flags.FLAGS)` (the `__main__` entry)."""
    define_flags(flags.FLAGS)

    def absl_main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        try:
            main(flags.FLAGS)
        except errors.UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)

    app.run(absl_main)


def config_of(config_class, fv, **values):
    """A `config_class` dataclass whose fields are the parsed flags of the same names.

    `values` gives the fields that are not flags (or replace a flag's raw value).
    """
    for field in dataclasses.fields(config_class):
        if field.name not in values and field.name in fv:
            values[field.name] = fv[field.name].value
    return config_class(**values)


def valid_class_ids(value):
    """True for None or a list of distinct non-negative integers (as strings)."""
    if value is None:
        return True
    try:
        ids = [int(v) for v in value]
    except ValueError:
        return False
    return all(i >= 0 for i in ids) and len(set(ids)) == len(ids)


def define_class_names_flag(fv, name, of, fallback):
    """A flag naming a class names file (`class_names.read_file`), checked to exist.

    Args:
      fv: the `flags.FlagValues` to define it on.
      name: the flag's name ("class_names", "source_class_names").
      of: whose names, in the help text ("the new classes").
      fallback: where the names come from without it, in the help text.
    """
    flags.DEFINE_string(
        name,
        None,
        f"Names of {of} for sample sheets and reports: a text file, one name per line, "
        f"line i naming class i (None: {fallback}).",
        flag_values=fv,
    )
    flags.register_validator(
        name,
        lambda path: path is None or tf.io.gfile.exists(path),
        f"--{name} must be an existing text file (one class name per line).",
        flag_values=fv,
    )


def define_data_flags(fv, split, what):
    """The flags naming a data set (as `data.DataConfig` does), shared by train and evaluate.

    Args:
      fv: the `flags.FlagValues` to define them on.
      split: the default TFDS split ("train" for training, "test" for evaluation).
      what: what the data is for, in the help texts ("Training data", "Real data").
    """
    flags.DEFINE_string(
        "dataset",
        None,
        f"{what}: a TFDS name (oxford_flowers102, cifar100, cgan_demo_shapes) or 'folder' "
        "(with --image_folder).",
        flag_values=fv,
    )
    flags.DEFINE_string("split", split, "TFDS split (combine with '+').", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "TFDS data_dir (None: TFDS default).", flag_values=fv)
    flags.DEFINE_string(
        "image_folder",
        None,
        "--dataset=folder: root with one sub-folder of images per class.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "classes",
        None,
        "Subset of source class ids, remapped to 0..N-1 in this order (None: all).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "images_per_class", None, "Cap on images per class (None: all).", flag_values=fv
    )
    flags.register_validator(
        "classes",
        valid_class_ids,
        "--classes must be a list of distinct non-negative integers.",
        flag_values=fv,
    )
    flags.register_validator(
        "images_per_class",
        lambda v: v is None or v >= 1,
        "--images_per_class must be >= 1 (or unset for all).",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["dataset", "image_folder"],
        lambda f: f["dataset"] is None
        or (f["dataset"] == "folder") == (f["image_folder"] is not None),
        "--image_folder goes with --dataset=folder (and --dataset=folder needs it).",
        flag_values=fv,
    )


def data_config(fv, resolution, **overrides):
    """The `data.DataConfig` of the data flags (`define_data_flags`) at `resolution`."""
    values = dict(
        dataset=fv.dataset,
        resolution=resolution,
        split=fv.split,
        data_dir=fv.data_dir,
        image_folder=fv.image_folder,
        classes=tuple(int(c) for c in fv.classes) if fv.classes else None,
        images_per_class=fv.images_per_class,
    )
    values.update(overrides)
    return data.DataConfig(**values)


def define_eval_data_flags(fv):
    """The flags naming the held-out real images and the classifier's classes.

    Shared by train (periodic evaluation) and evaluate. Unset, the real set of FID & co.
    is the training data, and the evaluations say so.
    """
    flags.DEFINE_string(
        "eval_split",
        None,
        "Held-out TFDS split of the training data set (e.g. test) as the real images of "
        "FID/KID/precision/recall/density/coverage (None: the training data).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "eval_image_folder",
        None,
        "Held-out real images as a folder with one sub-folder per class (the training "
        "data's class order, or --eval_classes).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "eval_classes",
        None,
        "Class ids of the held-out set, one per generator class in order (None: the "
        "training data's --classes).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "classifier_classes",
        None,
        "The classifier's logit index of each generator class, for the class accuracy of "
        "generated images: 'same' (class i is logit i, e.g. a classifier trained on the "
        "new classes) or one index per class (None: the classifier does not know them).",
        flag_values=fv,
    )
    flags.register_validator(
        "eval_classes",
        valid_class_ids,
        "--eval_classes must be a list of distinct non-negative integers.",
        flag_values=fv,
    )
    flags.register_validator(
        "classifier_classes",
        lambda v: v is None or v == ["same"] or all(s.isdigit() for s in v),
        "--classifier_classes must be 'same' or a list of non-negative integers.",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["eval_split", "eval_image_folder"],
        lambda f: not (f["eval_split"] and f["eval_image_folder"]),
        "Give the held-out images as one of --eval_split or --eval_image_folder.",
        flag_values=fv,
    )


def class_map(fv):
    """--classifier_classes as the `evaluator.Evaluator` class map (None, 'same' or ids)."""
    if fv.classifier_classes is None:
        return None
    if fv.classifier_classes == ["same"]:
        return "same"
    return tuple(int(c) for c in fv.classifier_classes)


def names_held_out(fv):
    """True when `define_eval_data_flags`' flags name held-out images."""
    return bool(fv.eval_split or fv.eval_image_folder or fv.eval_classes)


def eval_data_config(fv, training):
    """The `data.DataConfig` of the held-out images (`define_eval_data_flags`), or None.

    It is `training` with the split, folder and classes the flags give, every image of
    them (no per-class cap) and no flips.

    Raises:
      data.DataError: a TFDS split of folder data, or a class count unlike the training
        data's.
    """
    if not names_held_out(fv):
        return None
    if fv.eval_split and training.dataset == data.FOLDER:
        raise data.DataError(
            f"--eval_split={fv.eval_split} names a TFDS split, but the training data is the "
            "image folder --image_folder: give the held-out images as --eval_image_folder."
        )
    classes = tuple(int(c) for c in fv.eval_classes) if fv.eval_classes else training.classes
    if fv.eval_classes and training.classes and len(classes) != len(training.classes):
        raise data.DataError(
            f"--eval_classes has {len(classes)} classes and --classes {len(training.classes)}: "
            "give one held-out class per generator class, in the same order."
        )
    values = dict(split=fv.eval_split or training.split, classes=classes)
    if fv.eval_image_folder:
        values.update(dataset=data.FOLDER, image_folder=fv.eval_image_folder)
    return dataclasses.replace(training, images_per_class=None, flip=False, **values)
