r"""Converts a BigGAN-PyTorch checkpoint into a models directory of our G and D, plus samples.

  python -m tf_cgan_transfer.pytorch_convert \
      --weights=/data/138k --output_dir=/tmp/biggan128_pytorch \
      --class_ids=1,207,980 --samples_per_class=4

`--weights` is a BigGAN-PyTorch weights directory (`G.pth`, `D.pth`, `G_ema.pth`, e.g.
the released `BigGAN_ch96_bs256x8_138k.zip` unpacked) or one generator file. Writes to
--output_dir what `hub_convert` writes (`generator_config.json`, `models.*`,
`import_report.json` and `samples.png`) and, when the save has a `D.pth`,
`discriminator_config.json` with D in the same checkpoint: `train --source=<output_dir>`
then transfers from both, as it does from the weights directory itself.
"""

import dataclasses
from typing import Optional

from absl import flags
from absl import logging

from tf_cgan_transfer import cli
from tf_cgan_transfer import hub_convert
from tf_cgan_transfer import pytorch_import


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """What `convert` does (the flags of `define_flags`)."""

    weights: str
    output_dir: str
    ema: bool = False
    suffix: Optional[str] = None
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
      The `pytorch_import.ImportReport`s (generator, then discriminator when imported).

    Raises:
      pytorch_import.PytorchImportError: the output directory already holds a generator
        (without `overwrite`), the checkpoint cannot be imported, or a class id is out
        of range.
    """
    error = pytorch_import.PytorchImportError
    hub_convert.check_output_dir(config, error)
    generator, discriminator, reports = pytorch_import.load_models(
        config.weights, ema=config.ema, suffix=config.suffix
    )
    for report in reports:
        logging.info("Imported %s: %s", report.path, report.config)
    report = dict(
        generator=dataclasses.asdict(reports[0]),
        discriminator=dataclasses.asdict(reports[1]) if discriminator is not None else None,
    )
    hub_convert.write_outputs(config, generator, report, error, discriminator)
    return reports


def define_flags(fv):
    """Defines the command line's flags, with validators, on the `flags.FlagValues` `fv`."""
    flags.DEFINE_string(
        "weights",
        None,
        "BigGAN-PyTorch weights directory (G.pth, D.pth, G_ema.pth) or one G*.pth file.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "ema",
        False,
        "Convert G_ema (the author's samples) instead of G (what the paper transfers from).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "suffix",
        None,
        "Which save of the directory: copy0, best1, ... (None: the latest, G.pth).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("weights", flag_values=fv)
    hub_convert.define_output_flags(fv, statistics="the checkpoint's")


def config_from_flags(fv):
    """The `ConvertConfig` of the parsed flags `fv` (defined by `define_flags`)."""
    return cli.config_of(ConvertConfig, fv, class_ids=tuple(int(c) for c in fv.class_ids))


def main(fv):
    """Converts as the parsed flags `fv` say and prints what was loaded."""
    config = config_from_flags(fv)
    reports = convert(config)
    loaded = sum(len(r.loaded_keys) for r in reports)
    ignored = sum(len(r.ignored_keys) for r in reports)
    paths = ", ".join(r.path for r in reports)
    print(f"Converted {paths} ({loaded} keys loaded, {ignored} ignored) -> {config.output_dir}")


if __name__ == "__main__":
    cli.run(main, define_flags)
