"""Where a run's files live, and saving, finding and loading models: the one place.

A training run directory (`--model_dir`) holds, as `RunLayout` names them:

    ckpt/                 checkpoints (generator, discriminator, optimisers, step, EMA)
    generator_config.json the generator's config, so a checkpoint can be rebuilt
    samples/step_*.png    sample sheets
    eval/step_*.json      periodic evaluations; eval_cache/ their real statistics
    best/                 the best models by FID (models.* + metrics.json)
    models/               final G and D as trained (a kp_bn or minegan 'ft' stage starts here)
    models_ema/           final EMA generator (what sampling and export use first)
    class_affinity.json   kp_bn runs: which old classes each new class draws on
    mixture_init.npz      kp_bn runs: the mixtures before step 1 (mixture_stats)
    flags.txt, config.json, TensorBoard events
    .lock                 the live run's pid and host (`run_safety.RunLock`)
    ckpt/damaged/         checkpoints found damaged on resume, moved aside (never deleted)

A *models directory* (`save_models`) holds `generator_config.json`,
`discriminator_config.json` (when it has a D) and one checkpoint `models.*`; `models/`,
`models_ema/`, `best/` and a `hub_convert` output are models directories.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import biggan_deep  # noqa: F401  (registers the family's G)
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import discriminator_deep  # noqa: F401  (registers the family's D)
from tf_cgan_transfer import errors
from tf_cgan_transfer import pytorch_checkpoint
from tf_cgan_transfer import pytorch_import
from tf_cgan_transfer import run_safety

GENERATOR_CONFIG_FILE = "generator_config.json"
DISCRIMINATOR_CONFIG_FILE = "discriminator_config.json"
MODELS_PREFIX = "models"
# Object keys of a training checkpoint (ckpt/) that readers outside the trainer use.
GENERATOR_KEY = "generator"
DISCRIMINATOR_KEY = "discriminator"
EMA_GENERATOR_KEY = "ema_generator"


class ModelError(errors.UserError, FileNotFoundError):
    """No usable model where one was expected; the message says what the path needs."""


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Every path of a training run directory (see the module docstring)."""

    root: str

    ckpt_dir = property(lambda self: os.path.join(self.root, "ckpt"))
    models_dir = property(lambda self: os.path.join(self.root, "models"))
    ema_models_dir = property(lambda self: os.path.join(self.root, "models_ema"))
    best_dir = property(lambda self: os.path.join(self.root, "best"))
    best_metrics_file = property(lambda self: os.path.join(self.best_dir, "metrics.json"))
    eval_dir = property(lambda self: os.path.join(self.root, "eval"))
    eval_cache_dir = property(lambda self: os.path.join(self.root, "eval_cache"))
    samples_dir = property(lambda self: os.path.join(self.root, "samples"))
    flags_file = property(lambda self: os.path.join(self.root, "flags.txt"))
    config_file = property(lambda self: os.path.join(self.root, "config.json"))
    generator_config_file = property(lambda self: os.path.join(self.root, GENERATOR_CONFIG_FILE))
    lock_file = property(lambda self: os.path.join(self.root, run_safety.LOCK_FILE))

    def eval_file(self, step):
        return os.path.join(self.eval_dir, f"step_{step:07d}.json")

    def sample_file(self, step):
        return os.path.join(self.samples_dir, f"step_{step:07d}.png")

    def checkpoint_path(self, step):
        """What `tf.train.CheckpointManager` names the checkpoint of `step`."""
        return os.path.join(self.ckpt_dir, f"ckpt-{step}")

    def worker(self, task_type, task_id):
        """The scratch layout of a non-chief worker (inside the chief's run directory)."""
        return RunLayout(os.path.join(self.root, f"workertemp_{task_type}_{task_id}"))

    def latest_checkpoint(self):
        return tf.train.latest_checkpoint(self.ckpt_dir)


# ---- Models directories ----------------------------------------------------------------


def save_models(directory, generator, discriminator=None):
    """Writes the models' configs (JSON) and one `tf.train.Checkpoint` of their weights.

    The directory then holds `generator_config.json`, `discriminator_config.json` (when
    a discriminator is given) and `models.index`/`models.data-*`. Returns the prefix.
    """
    tf.io.gfile.makedirs(directory)
    objects = {GENERATOR_KEY: generator}
    configs = {GENERATOR_CONFIG_FILE: generator.get_config()}
    if discriminator is not None:
        objects[DISCRIMINATOR_KEY] = discriminator
        configs[DISCRIMINATOR_CONFIG_FILE] = discriminator.get_config()
    for filename, config in configs.items():
        write_json(os.path.join(directory, filename), config)
    return tf.train.Checkpoint(**objects).write(os.path.join(directory, MODELS_PREFIX))


def replace_models(directory, generator, discriminator=None, json_files=None):
    """`save_models` (plus `{filename: value}` JSON files) replacing `directory` whole.

    Everything is written to `run_safety.staging_dir(directory)` first and swapped in by
    `run_safety.replace_dir`, so a kill or a full disk at any instant leaves the old or
    the new models, complete (`run_safety.recover_dir` tidies up after a kill). Object
    stores (gs://) cannot rename directories: there it writes in place.
    """
    if "://" in directory:  # gs:// has no directory rename: written in place, as before
        save_models(directory, generator, discriminator)
        for filename, value in (json_files or {}).items():
            write_json(os.path.join(directory, filename), value)
        return directory
    run_safety.recover_dir(directory)
    staging = run_safety.staging_dir(directory)
    save_models(staging, generator, discriminator)
    for filename, value in (json_files or {}).items():
        write_json(os.path.join(staging, filename), value)
    run_safety.fault_point("replace_models")
    run_safety.replace_dir(directory)
    return directory


def write_npz(path, **arrays):
    """Writes `arrays` to the .npz file `path`: complete or absent, never half-written."""
    write = lambda partial: np.savez(partial, **arrays)  # noqa: E731
    run_safety.write_atomically(path, write, suffix=".partial.npz")


def find_run_file(path, name):
    """`<path>/<name>` or, for a models directory inside a run, `<run>/<name>`; None when
    neither exists."""
    if not path:
        return None
    for directory in (path, os.path.dirname(os.path.normpath(path))):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    return None


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON, creating parent directories.

    Written to `path.partial` and renamed: `path` is never half-written.
    """

    def write(partial):
        with tf.io.gfile.GFile(partial, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True)

    run_safety.write_atomically(path, write)


def read_config(directory, filename=GENERATOR_CONFIG_FILE):
    """The JSON config `filename` in `directory`, or a `ModelError` saying what it is."""
    path = os.path.join(directory, filename)
    if not tf.io.gfile.exists(path):
        raise ModelError(
            f"{path} not found: {directory!r} is not a model directory written by "
            "model_io.save_models (hub_convert or a training run)."
        )
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _is_url(path):
    # tf.io.gfile reads gs:// but fails on http(s):// (handles, not directories).
    return str(path).startswith(("http://", "https://"))


def find_models_dir(path, prefer_ema=False):
    """The models directory that `path` stands for, or None.

    `path` itself when it holds saved models, else a finished training run's
    `models_ema/` (with `prefer_ema`, when present) or `models/` (G and D as trained).
    """
    if _is_url(path):
        return None
    names = ("", "models_ema", "models") if prefer_ema else ("", "models")
    for name in names:
        candidate = os.path.join(path, name) if name else path
        if tf.io.gfile.exists(os.path.join(candidate, MODELS_PREFIX + ".index")):
            return candidate
    return None


def restore_models(directory):
    """Rebuilds and restores the models saved by `save_models`: `(generator, D or None)`.

    Every variable of the rebuilt models must be found in the checkpoint.
    """
    generator = biggan.Generator.from_config(read_config(directory)).build_weights()
    objects = {GENERATOR_KEY: generator}
    discriminator = None
    if tf.io.gfile.exists(os.path.join(directory, DISCRIMINATOR_CONFIG_FILE)):
        config = read_config(directory, DISCRIMINATOR_CONFIG_FILE)
        discriminator = discriminator_lib.Discriminator.from_config(config).build_weights()
        objects[DISCRIMINATOR_KEY] = discriminator
    status = tf.train.Checkpoint(**objects).read(os.path.join(directory, MODELS_PREFIX))
    status.assert_existing_objects_matched()
    return generator, discriminator


# ---- Finding and loading -----------------------------------------------------------------


def is_model_path(path):
    """True when `load_generator` can read `path` (cheap: looks for config files only)."""
    return (
        bool(path)
        and not _is_url(path)
        and any(
            tf.io.gfile.exists(os.path.join(path, sub, GENERATOR_CONFIG_FILE))
            for sub in ("", "models_ema", "models")
        )
    )


def generator_config(path):
    """The generator config of a models directory or run directory, or None (not ours).

    Reads JSON only, no weights: enough to tell a model's resolution or class count.
    """
    if _is_url(path):
        return None
    for sub in ("", "models_ema", "models"):
        directory = os.path.join(path, sub) if sub else path
        if tf.io.gfile.exists(os.path.join(directory, GENERATOR_CONFIG_FILE)):
            return read_config(directory)
    return None


def recorded_config(path):
    """The `TrainConfig` JSON dict recorded by the run `path` belongs to, or None.

    `path` is a run directory or one of its models directories (`best/`, `models/`,
    `models_ema/`): the run's `config.json` holds what it was trained with.
    """
    if not isinstance(path, str) or not path or _is_url(path):
        return None
    path = path.rstrip("/")
    for root in (path, os.path.dirname(path)):
        config_file = RunLayout(root).config_file
        if tf.io.gfile.exists(config_file):
            with tf.io.gfile.GFile(config_file) as f:
                recorded = json.load(f)
            return recorded if isinstance(recorded, dict) else None
    return None


def training_data_of(path):
    """The `data` of the `TrainConfig` recorded by the run `path` belongs to, or None.

    As `recorded_config`; returns the JSON dict of `data.DataConfig`'s fields.
    """
    recorded = (recorded_config(path) or {}).get("data")
    return recorded if isinstance(recorded, dict) else None


def load_models(path):
    """`(generator, discriminator or None)` of a models directory or a finished run's
    `models/` (G and D as trained: what a transfer or an 'ft' stage starts from)."""
    directory = find_models_dir(path)
    if directory is None:
        raise ModelError(
            f"{path} holds no saved models: expected a models directory "
            "(generator_config.json + models.*) or a finished training run with models/."
        )
    return restore_models(directory)


def load_generator(path):
    """The generator to sample, evaluate or export from `path`, EMA first.

    `path` is a models directory, or a training run directory: its final `models_ema/`
    or `models/` when the run finished, else the latest checkpoint in `ckpt/` (the EMA
    generator when the run keeps one).

    Raises:
      ModelError: `path` holds none of these.
    """
    directory = find_models_dir(path, prefer_ema=True)
    if directory:
        return restore_models(directory)[0]
    layout = RunLayout(path)
    latest = layout.latest_checkpoint()
    if latest and tf.io.gfile.exists(layout.generator_config_file):
        generator = biggan.Generator.from_config(read_config(path)).build_weights()
        keys = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
        which = EMA_GENERATOR_KEY if EMA_GENERATOR_KEY in keys else GENERATOR_KEY
        status = tf.train.Checkpoint(**{which: generator}).read(latest)
        status.assert_existing_objects_matched()
        tf.get_logger().info("Loaded the %s of %s", which, latest)
        return generator
    raise ModelError(
        f"{path} is neither a model directory (generator_config.json + models.*) nor a "
        "training run with models_ema/, models/ or checkpoints in ckpt/."
    )


def is_pytorch_source(source):
    """True for a BigGAN-PyTorch weights directory or `.pth` file (names only, no reads)."""
    source = str(source)
    return source.endswith(pytorch_checkpoint.EXTENSION) or pytorch_checkpoint.is_weights_dir(
        source
    )


def load_source(source, ema=False):
    """`(generator, discriminator or None)` of a pretrained source.

    `source` is one of our model or run directories (its `models/`), a BigGAN-PyTorch
    weights directory or G file (G, or G_ema with `ema`, and its D when the save has one;
    see `pytorch_import.load_models`), a TF-Hub handle or module directory (no
    discriminator), a `biggan.Generator`, or a `(G, D)` pair.

    Raises:
      ModelError: `ema` for a source that has no separate EMA generator to choose.
    """
    if ema and not (isinstance(source, (str, os.PathLike)) and is_pytorch_source(source)):
        raise ModelError(
            f"Choosing the EMA generator (--source_ema) applies to BigGAN-PyTorch weights "
            f"directories (G_ema.pth) only, not to {source!r}."
        )
    if isinstance(source, biggan.Generator):
        return source.build_weights(), None
    if isinstance(source, tuple):
        return source
    directory = find_models_dir(str(source))
    if directory:
        return restore_models(directory)
    if is_pytorch_source(source):
        generator, discriminator, _ = pytorch_import.load_models(str(source), ema=ema)
        return generator, discriminator
    from tf_cgan_transfer import hub_import  # deferred: tensorflow_hub is heavy

    generator, _ = hub_import.load_generator(source)
    return generator, None


def source_resolution(source):
    """The resolution of a source without loading weights or using the network, or None.

    Our model and run directories give their config JSON, a BigGAN-PyTorch weights
    directory its G's shapes (read from the file), a local TF-Hub module directory its
    variable shapes, and a TF-Hub handle of a known BigGAN its name
    (`.../biggan-128/2`).
    """
    config = generator_config(source)
    if config is not None:
        return config["resolution"]
    if is_pytorch_source(source):
        return pytorch_import.resolution_of(str(source))
    from tf_cgan_transfer import hub_import  # deferred: tensorflow_hub is heavy

    return hub_import.resolution_without_download(source)
