r"""Writes PNG sample sheets from a model directory or an exported SavedModel.

  python -m tf_cgan_transfer.sample --model=runs/flowers_bn/models_ema \
      --output=samples/sheet.png --classes=0,3,7 --samples_per_class=8 --truncation=0.5
  python -m tf_cgan_transfer.sample --export=exports/flowers/2 --output=sheet.png \
      --classes=rose,tulip

Modes (rows are separated by 2 black pixels, as `images.make_grid`):

* `sheet`: one row per class, --samples_per_class columns.
* `interpolate_z`: one row per class, --steps columns walking (slerp or lerp) between
  the same two latents in every row.
* `interpolate_class` (model directories only): exactly two --classes; one row per
  latent (--samples_per_class rows), --steps columns mixing the two one-hot labels.

Rows of classes are named at their left (`sheets.labelled_grid`; --nolabel_rows for the
plain grid) with --class_names, else the names the model's run recorded (its data's
label or folder names; ImageNet's for 1000 classes) or the export's class names.

--model draws with `sampling` (what the trainer's sample sheets use); --export calls the
export's `sample` signature. Latent i is `biggan.sample_z(1, dim_z, truncation, seed + i)`
in both (`sampling.seeded_latents`), so `--model` and `--export` sheets of the same
generator (and standing statistics) match.
"""

import dataclasses
import os
from typing import Optional

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import class_names as class_names_lib
from tf_cgan_transfer import cli
from tf_cgan_transfer import errors
from tf_cgan_transfer import images
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sampling
from tf_cgan_transfer import sheets

MODES = ("sheet", "interpolate_z", "interpolate_class")


class SampleError(errors.UserError, ValueError):
    """The samples cannot be drawn as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """What `run` draws (the flags of `define_flags`)."""

    output: str
    classes: tuple
    model: Optional[str] = None
    export: Optional[str] = None
    mode: str = "sheet"
    samples_per_class: int = 8
    steps: int = 8
    interpolation: str = "slerp"
    truncation: Optional[float] = None
    seed: int = 0
    standing_stats_batches: int = 0
    batch_size: int = 32
    class_names: Optional[str] = None  # a names file
    label_rows: bool = True


# ---- Exports -------------------------------------------------------------------------


def _assertion(error):
    """The `assertion failed: ...` line of an in-graph check's error (else its first line)."""
    lines = error.message.splitlines()
    return next((line for line in lines if "assertion failed" in line), lines[0])


def _export_labels(module, classes):
    """Integer labels for --classes given as ids or (through `label_for_name`) names."""
    if all(c.lstrip("-").isdigit() for c in classes):
        return [int(c) for c in classes]
    try:
        out = module.signatures["label_for_name"](class_name=tf.constant(list(classes)))
    except tf.errors.InvalidArgumentError as e:
        raise SampleError(f"--classes {list(classes)}: {_assertion(e)}") from e
    return [int(v) for v in out["label"].numpy()]


def sample_export(module, config):
    """A sheet drawn by an export's `sample` signature.

    Args:
      module: the loaded export version (`tf.saved_model.load`).
      config: a `SampleConfig` (mode `sheet`).

    Returns:
      `(images [rows * cols, R, R, 3] uint8, rows)`.

    Raises:
      SampleError: the export rejects a class name, label or seed.
    """
    labels = _export_labels(module, config.classes)
    exported = float(module.truncation.numpy())
    t = exported if config.truncation is None else config.truncation
    if abs(t - exported) > 1e-6:
        logging.warning(
            "Sampling at truncation %.3g, but the export's BN statistics were accumulated at "
            "%.3g: images will be slightly off.",
            t,
            exported,
        )
    y = np.repeat(np.asarray(labels, np.int32), config.samples_per_class)
    seeds = config.seed + np.arange(len(y), dtype=np.int64)
    sample = module.signatures["sample"]

    def call(y, s):
        return sample(label=y, seed=s, truncation=tf.fill(tf.shape(s), t))["images"]

    try:
        result = sampling.batched(call, config.batch_size, tf.constant(y), tf.constant(seeds))
    except tf.errors.InvalidArgumentError as e:
        raise SampleError(f"The export rejected the request: {_assertion(e)}") from e
    return result, len(labels)


def _export_names(module, config):
    """--class_names (as many as the export has), else the export's own names asset."""
    asset = getattr(module, "class_names", None)  # `serving.ServingModule`'s
    if asset is None:
        return None
    with tf.io.gfile.GFile(asset.asset_path.numpy().decode()) as f:
        names = f.read().splitlines()
    return class_names_lib.resolve(config.class_names, len(names), names)


# ---- Model directories ---------------------------------------------------------------


def _model_labels(generator, classes):
    try:
        labels = [int(c) for c in classes]
    except ValueError as e:
        raise SampleError(f"--classes must be integer ids for --model: {e}") from e
    bad = [c for c in labels if not 0 <= c < generator.num_classes]
    if bad:
        raise SampleError(
            f"--classes {bad} out of range: the model has {generator.num_classes} classes."
        )
    return labels


def _draw_from_model(generator, config, labels):
    """`(images [rows * cols, R, R, 3] float32, rows)` of `config.mode`, by `sampling`."""
    t = 1.0 if config.truncation is None else config.truncation
    common = dict(truncation=t, seed=config.seed, batch_size=config.batch_size)
    if config.mode == "sheet":
        return sampling.sheet(generator, labels, config.samples_per_class, **common), len(labels)
    if config.mode == "interpolate_z":
        pictures = sampling.interpolate_z(
            generator, labels, config.steps, interpolation=config.interpolation, **common
        )
        return pictures, len(labels)
    class_a, class_b = labels
    rows = config.samples_per_class
    pictures = sampling.interpolate_class(generator, class_a, class_b, rows, config.steps, **common)
    return pictures, rows


# ---- Command line --------------------------------------------------------------------


def run(config):
    """Draws the samples a `SampleConfig` describes and writes the PNG.

    Returns:
      The PNG's shape `(height, width, 3)`.

    Raises:
      SampleError: classes, mode or request the model or export cannot draw.
      model_io.ModelError: `config.model` holds no generator.
    """
    if config.export:
        if config.mode != "sheet":
            raise SampleError(f"--mode={config.mode} needs --model; exports only draw sheets.")
        module = tf.saved_model.load(config.export)
        pictures, rows = sample_export(module, config)
        names = _export_names(module, config) if config.label_rows else None
        labels = _export_labels(module, config.classes) if names else None
    else:
        generator = model_io.load_generator(config.model)  # models dir or training run
        labels = _model_labels(generator, config.classes)
        names = None
        if config.label_rows and config.mode != "interpolate_class":  # rows are latents there
            names = class_names_lib.resolve(
                config.class_names, generator.num_classes, path=config.model
            )
        if config.standing_stats_batches:
            biggan.accumulate_standing_stats(
                generator,
                config.standing_stats_batches,
                biggan.STANDING_STATS_BATCH_SIZE,
                1.0 if config.truncation is None else config.truncation,
                config.seed,
            )
        pictures, rows = _draw_from_model(generator, config, labels)
    grid = sheets.labelled_grid(pictures, rows, names and [names[c] for c in labels])
    images.write_png(config.output, grid)
    return tuple(grid.shape)


def define_flags(fv):
    """Defines the command line's flags, with validators, on the `flags.FlagValues` `fv`."""
    kw = dict(flag_values=fv)
    # Model.
    flags.DEFINE_string(
        "model",
        None,
        "A models directory (model_io.save_models) or a training run directory (its EMA "
        "generator first).",
        **kw,
    )
    flags.DEFINE_string("export", None, "Export version directory (exports/NAME/VERSION).", **kw)
    flags.DEFINE_integer(
        "standing_stats_batches",
        0,
        f"--model only: batches of {biggan.STANDING_STATS_BATCH_SIZE} re-accumulating BN "
        "statistics at --truncation first (0: the checkpoint's statistics).",
        lower_bound=0,
        **kw,
    )
    # What to draw.
    flags.DEFINE_enum(
        "mode", "sheet", MODES, "What the PNG shows (see the module docstring).", **kw
    )
    flags.DEFINE_list(
        "classes", ["0"], "Class ids (or, with --export, class names), one row each.", **kw
    )
    flags.DEFINE_integer(
        "samples_per_class",
        8,
        "Columns of a sheet; rows of interpolate_class.",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_integer("steps", 8, "Columns of the interpolations.", lower_bound=2, **kw)
    flags.DEFINE_enum(
        "interpolation", "slerp", sampling.INTERPOLATIONS, "interpolate_z path.", **kw
    )
    flags.DEFINE_float(
        "truncation",
        None,
        "Latent truncation in (0, 1] (None: 1.0 for --model, the export's for --export).",
        **kw,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the first latent; latent i uses seed + i.", **kw)
    flags.DEFINE_integer("batch_size", 32, "Images per generator call.", lower_bound=1, **kw)
    # Row labels.
    cli.define_class_names_flag(
        fv,
        "class_names",
        "the model's classes",
        "the names the model's run recorded, ImageNet's for 1000 classes, or the export's; "
        "else unlabelled rows",
    )
    flags.DEFINE_bool(
        "label_rows",
        True,
        "Name each row's class at its left, when the names are known (not for "
        "interpolate_class, whose rows are latents).",
        **kw,
    )
    # Output.
    flags.DEFINE_string("output", None, "PNG file to write.", **kw)

    flags.mark_flags_as_required(["output"], **kw)
    flags.register_validator(
        "output",
        lambda p: p is None or p.lower().endswith(".png"),
        "--output must be a .png file path.",
        **kw,
    )
    flags.register_validator(
        "truncation",
        lambda t: t is None or 0.0 < t <= 1.0,
        "--truncation must be in (0, 1].",
        **kw,
    )
    flags.register_validator(
        "model",
        lambda p: p is None or model_io.is_model_path(p),
        "--model must be a training run directory or a directory holding "
        "generator_config.json (model_io.save_models).",
        **kw,
    )
    flags.register_validator(
        "export",
        lambda p: p is None or tf.io.gfile.exists(os.path.join(p, "saved_model.pb")),
        "--export must be an export version directory holding saved_model.pb.",
        **kw,
    )
    flags.register_validator(
        "classes", lambda c: bool(c), "--classes must name at least one class.", **kw
    )
    multi_validators = [
        (
            ["model", "export"],
            lambda v: (v["model"] is None) != (v["export"] is None),
            "Give exactly one of --model or --export.",
        ),
        (
            ["mode", "export"],
            lambda v: v["mode"] == "sheet" or v["export"] is None,
            "Exports only draw sheets: --mode=interpolate_* needs --model.",
        ),
        (
            ["mode", "classes"],
            lambda v: v["mode"] != "interpolate_class" or len(v["classes"] or []) == 2,
            "--mode=interpolate_class needs exactly two --classes.",
        ),
        (
            ["model", "classes"],
            lambda v: v["model"] is None
            or all(c.lstrip("-").isdigit() for c in v["classes"] or []),
            "--classes must be integer ids with --model (names need an --export).",
        ),
    ]
    for names, checker, message in multi_validators:
        flags.register_multi_flags_validator(names, checker, message=message, **kw)


def config_from_flags(fv):
    """The `SampleConfig` of the parsed flags `fv` (defined by `define_flags`)."""
    return cli.config_of(SampleConfig, fv, classes=tuple(fv.classes))


def main(fv):
    """Draws what the parsed flags `fv` say and prints the PNG written."""
    config = config_from_flags(fv)
    shape = run(config)
    print(f"Wrote {config.output} ({shape[1]}x{shape[0]})")


if __name__ == "__main__":
    cli.run(main, define_flags)
