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

Latent i is `biggan.sample_z(1, dim_z, truncation, seed + i)`, what an export's `sample`
signature draws for that seed, so `--model` and `--export` sheets of the same
generator (and standing statistics) match.
"""

import dataclasses
import os
import sys
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import export
from tf_cgan_transfer import images

MODES = ("sheet", "interpolate_z", "interpolate_class")
INTERPOLATIONS = ("slerp", "lerp")


class SampleError(ValueError):
    """The samples cannot be drawn as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class SampleConfig:
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


def slerp(a, b, weights):
    """Spherical interpolation `[D], [D], [T] -> [T, D]` (lerp when a and b are parallel)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    weights = np.asarray(weights, np.float64)[:, None]
    cos = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return ((1 - weights) * a + weights * b).astype(np.float32)
    out = (np.sin((1 - weights) * omega) * a + np.sin(weights * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def lerp(a, b, weights):
    """Linear interpolation `[D], [D], [T] -> [T, D]`."""
    weights = np.asarray(weights, np.float32)[:, None]
    return ((1 - weights) * np.asarray(a) + weights * np.asarray(b)).astype(np.float32)


def _batched(fn, batch_size, *arrays):
    n = len(arrays[0])
    return tf.concat(
        [fn(*(a[i : i + batch_size] for a in arrays)) for i in range(0, n, batch_size)], axis=0
    )


def _model_images(generator, z, y, batch_size):
    call = tf.function(lambda z, y: generator((z, y), training=False))
    return _batched(call, batch_size, tf.constant(z), tf.constant(y))


def sample_model(generator, config, labels):
    """`(images [rows * cols, R, R, 3] float32, rows)` for a model directory's generator."""
    t = 1.0 if config.truncation is None else config.truncation
    dz = generator.dim_z
    if config.mode == "sheet":
        y = np.repeat(np.asarray(labels, np.int32), config.samples_per_class)
        seeds = config.seed + np.arange(len(y), dtype=np.int64)
        z = export.seeded_latents(seeds, dz, t).numpy()
        return _model_images(generator, z, y, config.batch_size), len(labels)
    weights = np.linspace(0.0, 1.0, config.steps)
    if config.mode == "interpolate_z":
        ends = export.seeded_latents(config.seed + np.arange(2, dtype=np.int64), dz, t).numpy()
        path = (slerp if config.interpolation == "slerp" else lerp)(ends[0], ends[1], weights)
        z = np.tile(path, [len(labels), 1])
        y = np.repeat(np.asarray(labels, np.int32), config.steps)
        return _model_images(generator, z, y, config.batch_size), len(labels)
    # interpolate_class: rows = latents, columns = (1 - w) one_hot(a) + w one_hot(b).
    rows = config.samples_per_class
    seeds = config.seed + np.arange(rows, dtype=np.int64)
    z = np.repeat(export.seeded_latents(seeds, dz, t).numpy(), config.steps, axis=0)
    one_hot = np.eye(generator.num_classes, dtype=np.float32)[list(labels)]
    mixes = (1 - weights[:, None]) * one_hot[0] + weights[:, None] * one_hot[1]
    y = np.tile(mixes.astype(np.float32), [rows, 1])
    return _model_images(generator, z, y, config.batch_size), rows


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
    """`(images [rows * cols, R, R, 3] uint8, rows)` from an export's `sample` signature."""
    labels = _export_labels(module, config.classes)
    t = float(module.truncation.numpy()) if config.truncation is None else config.truncation
    if abs(t - float(module.truncation.numpy())) > 1e-6:
        logging.warning(
            "Sampling at truncation %.3g, but the export's BN statistics were accumulated at "
            "%.3g: images will be slightly off.",
            t,
            float(module.truncation.numpy()),
        )
    y = np.repeat(np.asarray(labels, np.int32), config.samples_per_class)
    seeds = config.seed + np.arange(len(y), dtype=np.int64)
    sample = module.signatures["sample"]

    def call(y, s):
        return sample(label=y, seed=s, truncation=tf.fill(tf.shape(s), t))["images"]

    try:
        result = _batched(call, config.batch_size, tf.constant(y), tf.constant(seeds))
    except tf.errors.InvalidArgumentError as e:
        raise SampleError(f"The export rejected the request: {_assertion(e)}") from e
    return result, len(labels)


def run(config):
    """Draws the samples a `SampleConfig` describes and writes the PNG; returns its shape."""
    if config.export:
        if config.mode != "sheet":
            raise SampleError(f"--mode={config.mode} needs --model; exports only draw sheets.")
        module = tf.saved_model.load(config.export)
        pictures, rows = sample_export(module, config)
    else:
        generator = export.restore_generator(config.model)  # models dir or training run
        try:
            labels = [int(c) for c in config.classes]
        except ValueError as e:
            raise SampleError(f"--classes must be integer ids for --model: {e}") from e
        bad = [c for c in labels if not 0 <= c < generator.num_classes]
        if bad:
            raise SampleError(
                f"--classes {bad} out of range: the model has {generator.num_classes} classes."
            )
        if config.standing_stats_batches:
            t = 1.0 if config.truncation is None else config.truncation
            biggan.accumulate_standing_stats(
                generator, config.standing_stats_batches, 64, t, config.seed
            )
        pictures, rows = sample_model(generator, config, labels)
    grid = images.make_grid(pictures, rows=rows)
    images.write_png(config.output, grid)
    return tuple(grid.shape)


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags in `flag_values` (only `__main__` calls this)."""
    fv = dict(flag_values=flag_values)
    # Model.
    flags.DEFINE_string("model", None, "Model directory written by biggan.save_models.", **fv)
    flags.DEFINE_string("export", None, "Export version directory (exports/NAME/VERSION).", **fv)
    flags.DEFINE_integer(
        "standing_stats_batches",
        0,
        "--model only: batches of 64 re-accumulating BN statistics at --truncation first "
        "(0: the checkpoint's statistics).",
        lower_bound=0,
        **fv,
    )
    # What to draw.
    flags.DEFINE_enum(
        "mode", "sheet", MODES, "What the PNG shows (see the module docstring).", **fv
    )
    flags.DEFINE_list(
        "classes", ["0"], "Class ids (or, with --export, class names), one row each.", **fv
    )
    flags.DEFINE_integer(
        "samples_per_class",
        8,
        "Columns of a sheet; rows of interpolate_class.",
        lower_bound=1,
        **fv,
    )
    flags.DEFINE_integer("steps", 8, "Columns of the interpolations.", lower_bound=2, **fv)
    flags.DEFINE_enum("interpolation", "slerp", INTERPOLATIONS, "interpolate_z path.", **fv)
    flags.DEFINE_float(
        "truncation",
        None,
        "Latent truncation in (0, 1] (None: 1.0 for --model, the export's for --export).",
        **fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the first latent; latent i uses seed + i.", **fv)
    flags.DEFINE_integer("batch_size", 32, "Images per generator call.", lower_bound=1, **fv)
    # Output.
    flags.DEFINE_string("output", None, "PNG file to write.", **fv)

    flags.mark_flags_as_required(["output"], **fv)
    flags.register_validator(
        "output",
        lambda p: p is None or p.lower().endswith(".png"),
        "--output must be a .png file path.",
        **fv,
    )
    flags.register_validator(
        "truncation",
        lambda t: t is None or 0.0 < t <= 1.0,
        "--truncation must be in (0, 1].",
        **fv,
    )
    flags.register_validator(
        "model",
        lambda p: p is None or tf.io.gfile.exists(os.path.join(p, biggan.GENERATOR_CONFIG_FILE)),
        "--model must be a training run directory or a directory holding "
        "generator_config.json (biggan.save_models).",
        **fv,
    )
    flags.register_validator(
        "export",
        lambda p: p is None or tf.io.gfile.exists(os.path.join(p, "saved_model.pb")),
        "--export must be an export version directory holding saved_model.pb.",
        **fv,
    )
    flags.register_validator(
        "classes", lambda c: bool(c), "--classes must name at least one class.", **fv
    )
    flags.register_multi_flags_validator(
        ["model", "export"],
        lambda v: (v["model"] is None) != (v["export"] is None),
        message="Give exactly one of --model or --export.",
        **fv,
    )
    flags.register_multi_flags_validator(
        ["mode", "export"],
        lambda v: v["mode"] == "sheet" or v["export"] is None,
        message="Exports only draw sheets: --mode=interpolate_* needs --model.",
        **fv,
    )
    flags.register_multi_flags_validator(
        ["mode", "classes"],
        lambda v: v["mode"] != "interpolate_class" or len(v["classes"] or []) == 2,
        message="--mode=interpolate_class needs exactly two --classes.",
        **fv,
    )
    flags.register_multi_flags_validator(
        ["model", "classes"],
        lambda v: v["model"] is None or all(c.lstrip("-").isdigit() for c in v["classes"] or []),
        message="--classes must be integer ids with --model (names need an --export).",
        **fv,
    )


def config_from_flags(flag_values=flags.FLAGS):
    """The `SampleConfig` of parsed flags (defined by `define_flags`)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(SampleConfig)}
    values["classes"] = tuple(values["classes"])
    return SampleConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_from_flags()
    try:
        shape = run(config)
    except (SampleError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"Wrote {config.output} ({shape[1]}x{shape[0]})")


if __name__ == "__main__":
    define_flags()
    app.run(main)
