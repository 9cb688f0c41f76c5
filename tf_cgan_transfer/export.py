r"""Exports a generator as a TF Serving SavedModel: `EXPORT_ROOT/NAME/VERSION/`.

  python -m tf_cgan_transfer.export --model=runs/flowers_bn/models_ema --name=flowers \
      --export_root=exports --truncation=0.5 --class_names_file=flowers_classes.txt

Loads the generator (`model_io.load_generator`: EMA first), re-accumulates its standing
BN statistics at --truncation (so an image never depends on the other requests of its
batch) and writes the next free integer version (or --version, never overwriting one)
with `serving.save_generator`, which defines the signatures and warmup requests. The
version is written to a hidden directory (`.tmp-export-HOST-PID`; TF Serving loads only
directories named by an integer) and renamed into place, so a server polling
EXPORT_ROOT/NAME never sees half of it; the next free version is taken at the rename, and
hidden directories of exports whose process is gone (killed mid-write) are removed.
EXPORT_ROOT/models.config lists every model. --max_batch bounds the batch a request may
send (`serving.DEFAULT_MAX_BATCH`).
"""

import dataclasses
import os
import re
import shutil
import socket
from typing import Optional

from absl import flags
from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import cli
from tf_cgan_transfer import model_io
from tf_cgan_transfer import precision
from tf_cgan_transfer import run_safety
from tf_cgan_transfer import serving

_TMP_PREFIX = ".tmp-export-"


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What `run` exports (the flags of `define_flags`). `version=None`: the next free."""

    model: str
    name: str
    export_root: str = "exports"
    version: Optional[int] = None
    class_names_file: Optional[str] = None
    truncation: float = 1.0
    standing_stats_batches: int = 16
    seed: int = 0
    warmup: bool = True
    base_path_prefix: Optional[str] = None
    mixed_precision: str = "float32"
    max_batch: int = serving.DEFAULT_MAX_BATCH


def _plain_name(name):
    return bool(name) and os.sep not in name and not name.startswith(".")


def _remove_dead_exports(model_base):
    """Removes `.tmp-export-HOST-PID` directories of this host's exports whose process
    is gone (another host's pids cannot be checked: those are left)."""
    if "://" in model_base or not os.path.isdir(model_base):
        return
    host = socket.gethostname()
    for name in os.listdir(model_base):
        match = re.fullmatch(re.escape(_TMP_PREFIX + host) + r"-(\d+)", name)
        if match and not run_safety.process_alive(int(match.group(1))):
            logging.warning("Removing %s: left by an export that was killed.", name)
            shutil.rmtree(os.path.join(model_base, name), ignore_errors=True)


def _publish(tmp_dir, model_base, version):
    """Renames `tmp_dir` to `version` (None: the next free one, taken now); returns it."""
    while True:
        chosen = version if version is not None else max(
            serving.list_versions(model_base), default=0
        ) + 1
        version_dir = os.path.join(model_base, str(chosen))
        try:
            tf.io.gfile.rename(tmp_dir, version_dir)  # fails if it exists
            return version_dir
        except tf.errors.OpError:
            if not tf.io.gfile.exists(version_dir):
                raise
            if version is not None:
                raise serving.ExportError(
                    f"{version_dir} was written by another export meanwhile; exports are "
                    "immutable: pick another --version or omit it."
                ) from None
            # Another export took that number meanwhile: take the next.


def run(config):
    """Exports as an `ExportConfig` says.

    Returns:
      The version directory written.

    Raises:
      serving.ExportError: a bad name or version, an existing version, bad class names,
        or no serving protos with `warmup`.
      model_io.ModelError: `config.model` holds no generator.
    """
    if not _plain_name(config.name):
        raise serving.ExportError(f"--name={config.name!r} must be a plain directory name.")
    model_base = os.path.join(config.export_root, config.name)
    existing = serving.list_versions(model_base)
    next_free = max(existing, default=0) + 1
    version = config.version if config.version is not None else next_free
    if version < 0:
        raise serving.ExportError(f"--version must be >= 0, got {version}.")
    version_dir = os.path.join(model_base, str(version))
    if tf.io.gfile.exists(version_dir):
        raise serving.ExportError(
            f"{version_dir} already exists; exports are immutable: pick another --version "
            f"or omit it (next free: {next_free})."
        )
    if config.warmup:
        serving.check_serving_protos()  # fail before the slow work
    # The served graph computes in the precision the generator is built with.
    with precision.policy_scope(config.mixed_precision):
        generator = model_io.load_generator(config.model)
    if config.class_names_file:
        class_names = serving.read_class_names(config.class_names_file, generator.num_classes)
    else:
        class_names = serving.default_class_names(generator.num_classes)
    if config.standing_stats_batches:
        biggan.accumulate_standing_stats(
            generator,
            config.standing_stats_batches,
            biggan.STANDING_STATS_BATCH_SIZE,
            config.truncation,
            config.seed,
        )
    else:
        logging.warning("Keeping the checkpoint's BN statistics (--standing_stats_batches=0).")
    tf.io.gfile.makedirs(model_base)
    _remove_dead_exports(model_base)
    tmp_dir = os.path.join(model_base, f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}")
    if tf.io.gfile.exists(tmp_dir):
        tf.io.gfile.rmtree(tmp_dir)
    try:
        serving.save_generator(
            generator,
            tmp_dir,
            class_names,
            config.truncation,
            config.name,
            config.warmup,
            config.max_batch,
        )
        run_safety.fault_point("export_write")
        version_dir = _publish(tmp_dir, model_base, config.version)
    finally:
        if tf.io.gfile.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    serving.write_models_config(config.export_root, config.base_path_prefix)
    return version_dir


def define_flags(fv):
    """Defines the command line's flags, with validators, on the `flags.FlagValues` `fv`."""
    kw = dict(flag_values=fv)
    # What to export.
    flags.DEFINE_string(
        "model",
        None,
        "A models directory (model_io.save_models), or a training run's --model_dir: its "
        "models_ema/ or models/ when finished, else its latest ckpt/ (EMA generator first).",
        **kw,
    )
    flags.DEFINE_string(
        "class_names_file",
        None,
        "Text file of the K class names, line i naming label i (None: class_0..class_{K-1}).",
        **kw,
    )
    flags.DEFINE_float(
        "truncation", 1.0, "Truncation the BN standing statistics are accumulated at.", **kw
    )
    flags.DEFINE_integer(
        "standing_stats_batches",
        16,
        f"Batches of {biggan.STANDING_STATS_BATCH_SIZE} for the standing statistics (0: keep "
        "the checkpoint's).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the standing-statistics batches.", **kw)
    flags.DEFINE_enum(
        "mixed_precision",
        "float32",
        list(precision.POLICIES),
        "Precision of the served graph: mixed_bfloat16 runs convolutions in bfloat16 (fast "
        "on TPUs, Ampere+ GPUs and CPUs with AVX512-BF16/AMX; images within ~1e-2).",
        **kw,
    )
    # Where to write it.
    flags.DEFINE_string("name", None, "Model name: the directory under --export_root.", **kw)
    flags.DEFINE_string("export_root", "exports", "Root of the served models.", **kw)
    flags.DEFINE_integer(
        "version",
        None,
        "Version to write (None: the next free); never overwritten.",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_integer(
        "max_batch",
        serving.DEFAULT_MAX_BATCH,
        "Largest batch one request may send; larger ones fail with INVALID_ARGUMENT (bounds "
        "the server's memory per request).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_bool(
        "warmup", True, "Write warmup requests (needs the tensorflow-serving-api protos).", **kw
    )
    flags.DEFINE_string(
        "base_path_prefix",
        None,
        "base_path in models.config is PREFIX/NAME (e.g. /models in a server container, or "
        "a path relative to the server's working directory); None: absolute local paths.",
        **kw,
    )
    flags.mark_flags_as_required(["model", "name"], **kw)
    validators = {
        "truncation": (lambda t: 0.0 < t <= 1.0, "--truncation must be in (0, 1]."),
        "model": (
            lambda p: p is None or model_io.is_model_path(p),
            "--model must be a training run directory (models_ema/, models/ or ckpt/ with "
            "generator_config.json) or a models directory (model_io.save_models).",
        ),
        "name": (lambda n: n is None or _plain_name(n), "--name must be a plain directory name."),
    }
    for name, (checker, message) in validators.items():
        flags.register_validator(name, checker, message=message, **kw)


def config_from_flags(fv):
    """The `ExportConfig` of the parsed flags `fv` (defined by `define_flags`)."""
    return cli.config_of(ExportConfig, fv)


def main(fv):
    """Exports as the parsed flags `fv` say and prints the version directory."""
    print(f"Exported {run(config_from_flags(fv))}")


if __name__ == "__main__":
    cli.run(main, define_flags)
