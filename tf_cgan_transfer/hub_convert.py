r"""Converts a TF-Hub BigGAN module into a models directory of our Generator, plus samples.

BigGAN-deep modules (`deepmind/biggan-deep-128/1`, ...) convert the same way, into a
`biggan_deep.DeepGenerator` (`hub_import` tells the families apart).

  python -m tf_cgan_transfer.hub_convert \
      --module=https://tfhub.dev/deepmind/biggan-128/2 --output_dir=/tmp/biggan128 \
      --class_ids=1,207,980 --samples_per_class=4

Writes to --output_dir: `generator_config.json` + `models.*` (`model_io.save_models`;
read back with `model_io.restore_models` or `model_io.load_generator`),
`import_report.json` (keys loaded and ignored) and `samples.png` (`sampling.sheet`: one
row per class id, latent i of the sheet `biggan.sample_z(1, dim_z, truncation, seed + i)`,
as the trainer's sample sheets and an export's `sample` signature draw them). Its rows
are named at their left with --class_names (line k naming class k), else ImageNet's
names for a 1000-class module (the WordNet ids TFDS ships), else not at all.
"""

import dataclasses
import os
from typing import Optional

from absl import flags
from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import class_names as class_names_lib
from tf_cgan_transfer import cli
from tf_cgan_transfer import hub_import
from tf_cgan_transfer import images
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sheets

IMPORT_REPORT_FILE = "import_report.json"
SAMPLES_FILE = "samples.png"


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """What `convert` does (the flags of `define_flags`)."""

    module: str
    output_dir: str
    overwrite: bool = False
    class_ids: tuple = (0, 1, 2, 3)
    samples_per_class: int = 4
    truncation: float = 1.0
    standing_stats_batches: int = 0
    seed: int = 0
    class_names: Optional[str] = None  # a names file: line k names class k


def convert(config):
    """Runs the conversion a `ConvertConfig` describes.

    Returns:
      The `hub_import.ImportReport` of the module.

    Raises:
      hub_import.HubImportError: the output directory already holds a generator (without
        `overwrite`), the module cannot be imported, or a class id is out of range.
      class_names.ClassNamesError: `class_names` does not name the module's classes.
    """
    check_output_dir(config, hub_import.HubImportError)
    generator, report = hub_import.load_generator(config.module)
    logging.info("Imported %s: %s", report.module_path, report.config)
    write_outputs(config, generator, dataclasses.asdict(report), hub_import.HubImportError)
    return report


def check_output_dir(config, error):
    """Raises `error` when `config.output_dir` holds a converted model and not `overwrite`."""
    config_path = os.path.join(config.output_dir, model_io.GENERATOR_CONFIG_FILE)
    if tf.io.gfile.exists(config_path) and not config.overwrite:
        raise error(
            f"{config.output_dir} already holds a converted generator; pass --overwrite "
            "to replace it or choose another --output_dir."
        )


def write_outputs(config, generator, report, error, discriminator=None):
    """Writes an imported model's models directory, `import_report.json` and `samples.png`.

    `config` has the fields of `define_output_flags` (any converter's config); `report`
    is the JSON-able import report. Raises `error` before writing anything when a class
    id is out of range.
    """
    bad = [c for c in config.class_ids if not 0 <= c < generator.num_classes]
    if bad:  # before anything is written
        raise error(
            f"--class_ids {bad} out of range: the model has {generator.num_classes} classes."
        )
    names = class_names_lib.resolve(config.class_names, generator.num_classes)
    if config.standing_stats_batches:
        biggan.accumulate_standing_stats(
            generator,
            config.standing_stats_batches,
            biggan.STANDING_STATS_BATCH_SIZE,
            config.truncation,
            config.seed,
        )
    elif config.truncation != 1.0:
        logging.warning(
            "Sampling at truncation %.2f with the checkpoint's statistics, which are exact "
            "only for truncation 1.0; set --standing_stats_batches to re-accumulate them.",
            config.truncation,
        )
    model_io.save_models(config.output_dir, generator, discriminator)
    model_io.write_json(os.path.join(config.output_dir, IMPORT_REPORT_FILE), report)
    if config.samples_per_class and config.class_ids:
        sheet = sheets.sample_sheet(
            generator,
            config.class_ids,
            config.samples_per_class,
            names,
            truncation=config.truncation,
            seed=config.seed,
        )
        path = os.path.join(config.output_dir, SAMPLES_FILE)
        images.write_png(path, sheet)
        logging.info("Wrote %s", path)


def _integers(values):
    try:
        [int(v) for v in values]
    except ValueError:
        return False
    return True


def define_flags(fv):
    """Defines the command line's flags, with validators, on the `flags.FlagValues` `fv`."""
    flags.DEFINE_string(
        "module",
        None,
        "TF-Hub handle (URL or deepmind/biggan-128/2), Kaggle Models handle or URL "
        "(deepmind/biggan/tensorFlow1/128/2), or local module directory.",
        flag_values=fv,
    )
    flags.mark_flag_as_required("module", flag_values=fv)
    define_output_flags(fv)


def define_output_flags(fv, statistics="the module's"):
    """The flags of `write_outputs` (shared by the converters), with validators."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string(
        "output_dir", None, "Where to write the models directory and samples.", **kw
    )
    flags.DEFINE_bool(
        "overwrite", False, "Replace an existing converted generator in --output_dir.", **kw
    )
    flags.DEFINE_list(
        "class_ids", ["0", "1", "2", "3"], "Class ids, one row of samples.png each.", **kw
    )
    flags.DEFINE_integer(
        "samples_per_class",
        4,
        "Samples per row of samples.png (0: no samples.png).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_float(
        "truncation",
        1.0,
        "Latent truncation in (0, 1]; z ~ TruncNormal[-2, 2] * truncation.",
        **kw,
    )
    flags.DEFINE_integer(
        "standing_stats_batches",
        0,
        f"Batches of {biggan.STANDING_STATS_BATCH_SIZE} re-accumulating BN standing "
        f"statistics at --truncation before sampling (0: keep {statistics} statistics, which "
        "are exact for truncation 1.0).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of the first sample latent; latent i uses seed + i.", **kw
    )
    cli.define_class_names_flag(
        fv,
        "class_names",
        "the model's classes",
        "ImageNet's WordNet ids for a 1000-class model; else unlabelled rows",
    )
    flags.mark_flag_as_required("output_dir", **kw)
    flags.register_validator(
        "class_ids", _integers, "--class_ids must be a list of integers.", **kw
    )
    flags.register_validator(
        "truncation", lambda t: 0.0 < t <= 1.0, "--truncation must be in (0, 1].", **kw
    )


def config_from_flags(fv):
    """The `ConvertConfig` of the parsed flags `fv` (defined by `define_flags`)."""
    return cli.config_of(ConvertConfig, fv, class_ids=tuple(int(c) for c in fv.class_ids))


def main(fv):
    """Converts as the parsed flags `fv` say and prints what was loaded."""
    config = config_from_flags(fv)
    report = convert(config)
    print(
        f"Converted {report.module_path} ({len(report.loaded_keys)} keys loaded, "
        f"{len(report.ignored_keys)} ignored) -> {config.output_dir}"
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
