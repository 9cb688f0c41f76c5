r"""Converts a TF-Hub BigGAN module into a checkpoint of our Generator, plus samples.

  python -m tf_cgan_transfer.hub_convert \
      --module=https://tfhub.dev/deepmind/biggan-128/2 --output_dir=/tmp/biggan128 \
      --class_ids=1,207,980 --samples_per_class=4

Writes to --output_dir: `generator_config.json` + `models.*` (read back with
`biggan.restore_models`), `import_report.json` (keys loaded and ignored) and
`samples.png` (one row per class id).
"""

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import hub_import
from tf_cgan_transfer import images

_MODULE = flags.DEFINE_string(
    "module", None, "TF-Hub handle (URL or deepmind/biggan-128/2) or local module directory."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the checkpoint and samples.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an existing converted generator in --output_dir."
)
_CLASS_IDS = flags.DEFINE_list("class_ids", ["0", "1", "2", "3"], "Class ids, one sample row each.")
_SAMPLES = flags.DEFINE_integer("samples_per_class", 4, "Samples per row of samples.png (0: none).")
_TRUNCATION = flags.DEFINE_float(
    "truncation", 1.0, "Latent truncation in [0.02, 1]; z ~ TruncNormal[-2, 2] * truncation."
)
_STANDING_BATCHES = flags.DEFINE_integer(
    "standing_stats_batches",
    0,
    "Batches of 64 for re-accumulating BN standing statistics at --truncation before "
    "sampling (0: keep the module's statistics, which are exact for truncation 1.0).",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed for the sample latents.")

flags.mark_flags_as_required(["module", "output_dir"])


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    module: str
    output_dir: str
    overwrite: bool
    class_ids: tuple
    samples_per_class: int
    truncation: float
    standing_stats_batches: int
    seed: int


def _config_from_flags():
    try:
        class_ids = tuple(int(c) for c in _CLASS_IDS.value)
    except ValueError as e:
        raise app.UsageError(f"--class_ids must be integers, got {_CLASS_IDS.value}") from e
    if not 0.0 < _TRUNCATION.value <= 1.0:
        raise app.UsageError(f"--truncation must be in (0, 1], got {_TRUNCATION.value}")
    if _SAMPLES.value < 0 or _STANDING_BATCHES.value < 0:
        raise app.UsageError("--samples_per_class and --standing_stats_batches must be >= 0")
    return ConvertConfig(
        module=_MODULE.value,
        output_dir=_OUTPUT_DIR.value,
        overwrite=_OVERWRITE.value,
        class_ids=class_ids,
        samples_per_class=_SAMPLES.value,
        truncation=_TRUNCATION.value,
        standing_stats_batches=_STANDING_BATCHES.value,
        seed=_SEED.value,
    )


def sample_sheet(generator, class_ids, samples_per_class, truncation, seed, batch_size=16):
    """`[len(class_ids) * samples_per_class, R, R, 3]` images, row-major by class."""
    labels = tf.repeat(tf.constant(class_ids, tf.int32), samples_per_class)
    z = biggan.sample_z(len(labels), generator.dim_z, truncation, seed)
    call = tf.function(lambda z, y: generator((z, y), training=False))
    return tf.concat(
        [
            call(z[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(labels), batch_size)
        ],
        axis=0,
    )


def convert(config):
    """Runs the conversion described by a `ConvertConfig`; returns the ImportReport."""
    config_path = os.path.join(config.output_dir, biggan.GENERATOR_CONFIG_FILE)
    if tf.io.gfile.exists(config_path) and not config.overwrite:
        raise hub_import.HubImportError(
            f"{config.output_dir} already holds a converted generator; pass --overwrite "
            "to replace it or choose another --output_dir."
        )
    generator, report = hub_import.load_generator(config.module)
    bad = [c for c in config.class_ids if not 0 <= c < generator.num_classes]
    if bad:
        raise hub_import.HubImportError(
            f"--class_ids {bad} out of range: the module has {generator.num_classes} classes."
        )
    logging.info("Imported %s: %s", report.module_path, report.config)
    if config.standing_stats_batches:
        biggan.accumulate_standing_stats(
            generator, config.standing_stats_batches, 64, config.truncation, config.seed
        )
    elif config.truncation != 1.0:
        logging.warning(
            "Sampling at truncation %.2f with the module's statistics, which are exact only "
            "for truncation 1.0; set --standing_stats_batches to re-accumulate them.",
            config.truncation,
        )
    biggan.save_models(config.output_dir, generator)
    with tf.io.gfile.GFile(os.path.join(config.output_dir, "import_report.json"), "w") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)
    if config.samples_per_class and config.class_ids:
        sheet = sample_sheet(
            generator, config.class_ids, config.samples_per_class, config.truncation, config.seed
        )
        path = os.path.join(config.output_dir, "samples.png")
        images.write_png(path, images.make_grid(sheet, rows=len(config.class_ids)))
        logging.info("Wrote %s", path)
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        report = convert(_config_from_flags())
    except hub_import.HubImportError as e:
        sys.exit(f"error: {e}")
    print(
        f"Converted {report.module_path} ({len(report.loaded_keys)} keys loaded, "
        f"{len(report.ignored_keys)} ignored) -> {_OUTPUT_DIR.value}"
    )


if __name__ == "__main__":
    app.run(main)
