r"""The evaluation command line: every metric of one model, against held-out images.

  python -m tf_cgan_transfer.evaluate --model=runs/flowers_bn/best --eval_split=test \
      --num_images=10000 --cache_dir=/tmp/fid_stats --output=runs/flowers_bn/eval/best.json

`--model` is a models directory, a training run (its EMA generator first, see
`model_io.load_generator`) or an exported SavedModel version directory. Three image
sets take part (`scoring`):

* the *training data* (the data flags of `cli.define_data_flags`: TFDS or an image
  folder, with `--classes` remapped like the generator's): by default what the run
  recorded in its `config.json`, so a run's models need no data flags at all;
* the *real set* that FID, KID, KMMD, precision/recall and density/coverage compare
  with: held-out images named by `--eval_split` / `--eval_image_folder` /
  `--eval_classes` (the training data set's other split, another folder) or
  `--real_images_npz`; without them, the training data itself, which the record
  (`real_is_training_data`) and the console then point out;
* the generated images.

The memorisation score needs the training data and held-out images and says which is
missing. The classifier is TF-GAN's Inception module unless `--classifier` names
another (`classifier.load_classifier`; offline, its error says what to download and
where to put it); `--classifier_classes` maps generator classes to its logits for the
class accuracy. `evaluator.Evaluator` does the scoring and caches the real and
training statistics in `--cache_dir`.
"""

import dataclasses
import os
from typing import Optional, Tuple, Union

from absl import flags
import tensorflow as tf

from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import cli
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluator as evaluator_lib
from tf_cgan_transfer import metrics
from tf_cgan_transfer import model_io
from tf_cgan_transfer import real_data
from tf_cgan_transfer.real_data import EvaluationError

SAVED_MODEL_FILE = "saved_model.pb"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One evaluation: what to score, against what, and where to write the JSON.

    Attributes:
      model: a models directory, a training run directory or an export version directory.
      output: the JSON file to write.
      classifier: TF-Hub handle or SavedModel directory of the feature network.
      num_classes: class count of an export that does not record it (None: the model's).
      num_images: real images, and generated images.
      batch_size: images per batch.
      truncation: latent truncation in (0, 1].
      seed: seed of the latents and of KID's shuffling.
      per_class: also compute the per-class metrics.
      data_config: the training data, or None (unknown: no memorisation score).
      eval_data: held-out real images, or None.
      real_images_npz: an .npz of held-out real images, or None.
      classifier_classes: the class map of `evaluator.Evaluator` (None, "same" or one
        classifier index per generator class).
      cache_dir: directory caching real-image statistics (None: no cache).

    The real set is `real_images_npz`, else `eval_data`, else `data_config`.
    """

    model: str
    output: str
    classifier: str = classifier_lib.INCEPTION_HANDLE
    num_classes: Optional[int] = None
    num_images: int = 10000
    batch_size: int = 50
    truncation: float = 1.0
    seed: int = 0
    per_class: bool = True
    data_config: Optional[data.DataConfig] = None
    eval_data: Optional[data.DataConfig] = None
    real_images_npz: Optional[str] = None
    classifier_classes: Optional[Union[str, Tuple[int, ...]]] = None
    cache_dir: Optional[str] = None


def _sources(config):
    """`(real source, training source or None)` of the config."""
    training = None
    if config.data_config is not None:
        training = real_data.from_data_config(config.data_config, config.batch_size)
    if config.real_images_npz:
        return real_data.npz_real_source(config.real_images_npz, config.batch_size), training
    if config.eval_data is not None:
        return real_data.from_data_config(config.eval_data, config.batch_size), training
    if training is None:
        raise EvaluationError(
            "No real data given: pass the training data (--dataset, or a run that recorded "
            "it) with held-out images (--eval_split, --eval_image_folder), or "
            "--real_images_npz."
        )
    return training, training


def load_model(path, num_classes=None):
    """An `evaluator.GeneratorAdapter` of the model at `path`.

    Args:
      path: an exported SavedModel directory (with saved_model.pb), or anything
        `model_io.load_generator` reads (models directory, run directory; EMA first).
      num_classes: class count of an export that does not record it; for our models it
        must be None or the model's own.

    Raises:
      EvaluationError: `num_classes` contradicts the model, or the export's class count
        cannot be told.
      model_io.ModelError: `path` holds no model.
    """
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return evaluator_lib.as_generator(tf.saved_model.load(path), num_classes)
    generator = model_io.load_generator(path)
    if num_classes not in (None, generator.num_classes):
        raise EvaluationError(
            f"--num_classes={num_classes}, but {path} has {generator.num_classes} "
            "classes; drop --num_classes for model directories."
        )
    return evaluator_lib.as_generator(generator)


def run(config):
    """Evaluates the model `config` names and writes the JSON record.

    Returns:
      The record: `Evaluator.evaluate`'s results plus `config` and `classifier_path`.

    Raises:
      errors.UserError: a subclass naming the bad input (classifier, data, model).
    """
    classifier = classifier_lib.load_classifier(config.classifier)  # first: fails fast offline
    real, training = _sources(config)
    if real.num_images is not None and real.num_images < config.num_images:
        raise EvaluationError(
            f"The real data has {real.num_images} images, fewer than --num_images="
            f"{config.num_images}: lower --num_images."
        )
    generator = load_model(config.model, config.num_classes)
    evaluator = evaluator_lib.Evaluator(
        classifier,
        real.dataset_fn,
        real.cache_key,
        config.num_images,
        batch_size=config.batch_size,
        cache_dir=config.cache_dir,
        seed=config.seed,
        per_class=config.per_class,
        training=training,
        class_map=config.classifier_classes,
    )
    results = evaluator.evaluate(generator, truncation=config.truncation)
    record = dict(results, config=dataclasses.asdict(config), classifier_path=classifier.path)
    model_io.write_json(config.output, metrics.json_safe(record))
    return record


def _is_model(path):
    """True for what `load_model` reads: our model and run directories, or an export."""
    return model_io.is_model_path(path) or tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE))


def define_flags(fv):
    """Defines the command line's flags, with validators, on the `flags.FlagValues` `fv`."""
    flags.DEFINE_string(
        "model",
        None,
        "A models directory (model_io.save_models), a training run directory (its EMA "
        "generator first), or an exported SavedModel version directory (exports/NAME/VERSION).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Classes of an exported SavedModel that takes int labels and does not record its "
        "class count (None: read it from the model).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "classifier",
        classifier_lib.INCEPTION_HANDLE,
        "TF-Hub or Kaggle Models handle, or SavedModel directory, of a classifier with "
        "'pool_3' and 'logits' outputs (default: TF-GAN's Inception module; offline, a local "
        "copy of it).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_images",
        10000,
        "Real images, and generated images (>= 2048 for a stable FID).",
        lower_bound=2,
        flag_values=fv,
    )
    flags.DEFINE_integer("batch_size", 50, "Images per batch.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float(
        "truncation",
        1.0,
        "Latent truncation in (0, 1]; z ~ TruncNormal[-2, 2] * t.",
        flag_values=fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the latents and of KID's shuffling.", flag_values=fv)
    flags.DEFINE_bool(
        "per_class", True, "Also compute the per-class metrics (intra-FID & co.).", flag_values=fv
    )
    # The training data (default: the run's record), and the held-out real images.
    cli.define_data_flags(
        fv, "train", "Training data (the images the model learned from; default: the run's)"
    )
    cli.define_eval_data_flags(fv)
    flags.DEFINE_string(
        "real_images_npz",
        None,
        "Held-out real images as an .npz with `images` uint8 [N, R, R, 3] and int "
        "`labels` [N] (generator ids).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "resolution",
        None,
        "Real image resolution (None: the model's; needed for exports).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "cache_dir",
        None,
        "Directory caching real-image statistics (None: no cache).",
        flag_values=fv,
    )
    flags.DEFINE_string("output", None, "JSON file to write the results to.", flag_values=fv)

    flags.mark_flags_as_required(["model", "output"], flag_values=fv)
    validators = {
        "truncation": (lambda t: 0.0 < t <= 1.0, "--truncation must be in (0, 1]."),
        "model": (
            lambda path: path is None or _is_model(path),
            "--model must be a directory holding generator_config.json (a models directory "
            "or a training run) or saved_model.pb (an export version directory).",
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
        flags.register_validator(name, checker, message=message, flag_values=fv)
    flags.register_multi_flags_validator(
        ["real_images_npz", "eval_split", "eval_image_folder", "eval_classes"],
        lambda f: not (
            f["real_images_npz"]
            and (f["eval_split"] or f["eval_image_folder"] or f["eval_classes"])
        ),
        message="Give the held-out images as one of --real_images_npz or --eval_split / "
        "--eval_image_folder / --eval_classes.",
        flag_values=fv,
    )


def _resolution(fv):
    """--resolution, else the model's (read from its config; exports have none)."""
    if fv.resolution:
        return fv.resolution
    config = model_io.generator_config(fv.model)
    if config is None:
        raise EvaluationError("Pass --resolution: it cannot be read from an exported model.")
    return config["resolution"]


def _training_data(fv):
    """The training `data.DataConfig`: the data flags, else the run's record, else None."""
    if fv.dataset:
        return cli.data_config(fv, _resolution(fv), seed=fv.seed, flip=False)
    recorded = model_io.training_data_of(fv.model)
    if recorded is None:
        return None
    return data.config_from_record(recorded, flip=False)


def config_from_flags(fv):
    """The `EvalConfig` of parsed flags (defined by `define_flags`).

    Raises:
      EvaluationError: a data set needs a resolution that cannot be read from the model.
      data.DataError: held-out flags that do not fit the training data.
    """
    data_config = _training_data(fv)
    eval_data = None
    if data_config is not None:
        eval_data = cli.eval_data_config(fv, data_config)
    elif cli.names_held_out(fv):
        raise EvaluationError(
            f"--eval_split/--eval_image_folder/--eval_classes name held-out images of the "
            f"training data, which {fv.model} does not record: pass the data flags "
            "(--dataset, ...) too, or --real_images_npz."
        )
    if data_config is None and not fv.real_images_npz:
        raise EvaluationError(
            f"No real data: {fv.model} records no training data. Pass --dataset (the "
            "training data) with --eval_split or --eval_image_folder, or --real_images_npz."
        )
    # Every other field is the flag of the same name.
    return cli.config_of(
        EvalConfig,
        fv,
        data_config=data_config,
        eval_data=eval_data,
        classifier_classes=cli.class_map(fv),
    )


def main(fv):
    """Evaluates, writes the JSON and prints the one-line summary."""
    config = config_from_flags(fv)
    results = run(config)
    print(f"{metrics.summary(results)} -> {config.output}")


if __name__ == "__main__":
    cli.run(main, define_flags)
