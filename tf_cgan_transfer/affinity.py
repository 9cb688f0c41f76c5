r"""The class-affinity report: which old classes each new class of a kp_bn G draws on.

  python -m tf_cgan_transfer.affinity --model=runs/flowers_bn [--top_k=5]

For each new class n and old class k the score is the mixture weight A(y_n)[k], averaged
over every knowledge-propagating BN and over gain and bias (docs/method.md §2). A kp_bn
training run writes the report of its final sampling generator (EMA first) as
`class_affinity.json`, `class_affinity.txt` and `class_affinity.png` (a heat map: new
classes x the union of their top old classes) in its run directory
(`model_io.RunLayout`), and logs the heat map to TensorBoard (`train/class_affinity`);
the command prints it for any kp_bn model or run directory (and writes the three files
with --output_dir). Both add `mixture_stats.diagnostics`: how far the mixtures moved from
the run's recorded initial ones and how concentrated they are.

Names (`class_names.resolve`): the new classes' from --class_names, else the run's
report, else the run's training data; the old classes' from --source_class_names, else
the source run's training data (the source the run recorded), else ImageNet's for 1000.
"""

import dataclasses
import json
import os
from typing import Optional

from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import class_names
from tf_cgan_transfer import cli
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import errors
from tf_cgan_transfer import images
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sheets

JSON_FILE = "class_affinity.json"
TEXT_FILE = "class_affinity.txt"
PICTURE_FILE = "class_affinity.png"
SUMMARY_TAG = "train/class_affinity"


class AffinityError(errors.UserError, ValueError):
    """No report can be made for this model; the message says why."""


def affinity_scores(generator):
    """The mean mixture weights of a kp_bn generator and the number of layers averaged.

    Returns:
      `(scores, num_layers)`: float `[N, K]` scores, A(y_n)[k] averaged over the
      `num_layers` knowledge-propagating layers and over their parts (a BN's gain and
      bias; BigGAN-deep's class embedding has one).

    Raises:
      AffinityError: the generator learns no mixtures (not kp_bn).
    """
    layers_ = [bn for bn in conditional_bn.knowledge_propagating(generator) if bn.use_mixture]
    if not layers_:
        raise AffinityError(
            f"A class-affinity report needs a kp_bn generator; this one's conditioning is "
            f"{generator.conditioning!r}."
        )
    y = tf.eye(generator.num_classes)
    weights = [w for layer in layers_ for w in layer.mixture_weights(y)]
    return (tf.add_n(weights) / len(weights)).numpy(), len(layers_)


def class_affinity(generator, top_k=5, old_names=None, new_names=None, initial=None):
    """For each new class, the old classes its learned mixtures weight most.

    The score of old class k for new class n is A(y_n)[k] averaged over every
    knowledge-propagating BN layer and over gain and bias. Returns a JSON-able dict; its
    `heatmap` holds the scores of every new class for the union of the top old classes
    (`old_classes`, in order of first appearance), what `heatmap_picture` draws;
    `diagnostics` the `mixture_stats.diagnostics` of the mixtures against `initial`
    (the run's recorded initial mixtures, or None).
    """
    scores, num_layers = affinity_scores(generator)
    n, k = scores.shape
    top_k = min(top_k, k)
    classes, columns = [], []
    for new in range(n):
        order = [int(o) for o in np.argsort(-scores[new], kind="stable")[:top_k]]
        columns += [o for o in order if o not in columns]
        classes.append(
            dict(
                new_class=new,
                name=new_names[new] if new_names else None,
                top=[
                    dict(
                        old_class=o,
                        name=old_names[o] if old_names else None,
                        score=float(scores[new, o]),
                    )
                    for o in order
                ],
            )
        )
    heatmap = dict(
        old_classes=columns,
        old_names=[old_names[o] for o in columns] if old_names else None,
        scores=scores[:, columns].astype(float).tolist(),
    )
    return dict(
        num_new_classes=n,
        num_old_classes=k,
        num_layers=num_layers,
        top_k=top_k,
        classes=classes,
        heatmap=heatmap,
        diagnostics=mixture_stats.diagnostics(mixture_stats.mixtures(generator), initial),
    )


def format_affinity(report):
    """Readable text of a `class_affinity` report, one line per new class."""
    lines = [
        f"Class affinity: top {report['top_k']} of {report['num_old_classes']} old "
        f"classes per new class (mean mixture weight over {report['num_layers']} BN layers)"
    ]
    for entry in report["classes"]:
        label = entry["name"] or f"new class {entry['new_class']}"
        tops = ", ".join(f"{t['name'] or t['old_class']} ({t['score']:+.3f})" for t in entry["top"])
        lines.append(f"{label}: {tops}")
    text = "\n".join(lines) + "\n"
    if report.get("diagnostics"):
        text += mixture_stats.format_diagnostics(report["diagnostics"])
    return text


def heatmap_picture(report):
    """The heat map of a `class_affinity` report: uint8 `[H, W, 3]`.

    Rows are the new classes, columns the union of their top old classes (labelled
    `<old id> <name>`), each cell the mean mixture weight.
    """
    heat = report["heatmap"]
    rows = [e["name"] or f"new class {e['new_class']}" for e in report["classes"]]
    names = heat["old_names"] or [None] * len(heat["old_classes"])
    columns = [f"{o} {name}" if name else str(o) for o, name in zip(heat["old_classes"], names)]
    title = f"class affinity: mean mixture weight over {report['num_layers']} BN layers"
    return sheets.heatmap(heat["scores"], rows, columns, title=title)


def write_report(report, directory):
    """Writes `class_affinity.{json,txt,png}` into `directory`; returns the three paths."""
    json_path = os.path.join(directory, JSON_FILE)
    text_path = os.path.join(directory, TEXT_FILE)
    picture_path = os.path.join(directory, PICTURE_FILE)
    model_io.write_json(json_path, report)
    with tf.io.gfile.GFile(text_path, "w") as f:
        f.write(format_affinity(report))
    images.write_png(picture_path, heatmap_picture(report))
    return json_path, text_path, picture_path


def old_class_names(num_source_classes, source=None, names_file=None):
    """The names of a kp_bn generator's old classes, or None (`class_names.resolve`).

    Args:
      num_source_classes: the generator's `num_source_classes`.
      source: the source the transfer started from (one of our runs names its classes
        by its training data; a TF-Hub BigGAN has ImageNet's 1000), or None.
      names_file: a names file of the old classes (it wins), or None.
    """
    return class_names.resolve(names_file, num_source_classes, path=source)


def write_run_report(
    generator,
    directory,
    new_names=None,
    source=None,
    source_names=None,
    writer=None,
    step=0,
    initial=None,
):
    """The report of a finished kp_bn run: the three files, and the heat map in TensorBoard.

    Args:
      generator: the run's sampling generator (kp_bn).
      directory: the run directory.
      new_names: the new classes' names, or None (ids).
      source, source_names: the run's source and old classes' names file
        (`old_class_names`).
      writer: the run's `tf.summary` writer, or None.
      step: the summary's step (an integer, or the run's int64 step variable).
      initial: the run's initial mixtures (`mixture_stats.record_initial`), or None.

    Returns:
      The report.
    """
    old_names = old_class_names(generator.num_source_classes, source, source_names)
    report = class_affinity(generator, old_names=old_names, new_names=new_names, initial=initial)
    write_report(report, directory)
    if writer is not None:
        with writer.as_default(step=step):
            tf.summary.image(SUMMARY_TAG, heatmap_picture(report)[None])
    return report


# ---- Command line ------------------------------------------------------------------------


def define_flags(fv):
    flags.DEFINE_string(
        "model", None, "A kp_bn training run directory or models directory.", flag_values=fv
    )
    flags.DEFINE_integer(
        "top_k", 5, "Old classes listed per new class.", lower_bound=1, flag_values=fv
    )
    cli.define_class_names_flag(
        fv, "class_names", "the new classes", "the run's report, else its data's; else ids"
    )
    flags.DEFINE_alias("class_names_file", "class_names", flag_values=fv)  # its old name
    cli.define_class_names_flag(
        fv,
        "source_class_names",
        "the old (source) classes",
        "the source run's data's, ImageNet's for 1000 classes; else ids",
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        f"Also write the report here ({JSON_FILE}, {TEXT_FILE} and the heat map {PICTURE_FILE}).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("model", flag_values=fv)
    flags.register_validator(
        "model",
        lambda p: p is None or model_io.is_model_path(p),
        "--model must be a training run directory or a models directory "
        "(generator_config.json + models.*).",
        flag_values=fv,
    )


def _run_new_names(path):
    """The new-class names a run's own report recorded, if any."""
    report_path = os.path.join(path, JSON_FILE)
    if not tf.io.gfile.exists(report_path):
        return None
    with tf.io.gfile.GFile(report_path) as f:
        names = [entry.get("name") for entry in json.load(f)["classes"]]
    return names if all(names) else None


@dataclasses.dataclass(frozen=True)
class AffinityConfig:
    model: str
    top_k: int = 5
    class_names: Optional[str] = None  # names files
    source_class_names: Optional[str] = None
    output_dir: Optional[str] = None


def config_from_flags(fv):
    return cli.config_of(AffinityConfig, fv)


def run(config):
    """The report of the model a config names (also written to `output_dir` if set)."""
    generator = model_io.load_generator(config.model)
    new_names = class_names.resolve(
        config.class_names, generator.num_classes, _run_new_names(config.model), config.model
    )
    source = (model_io.recorded_config(config.model) or {}).get("source")
    old_names = old_class_names(generator.num_source_classes, source, config.source_class_names)
    initial = mixture_stats.load_initial(mixture_stats.find_initial(config.model))
    report = class_affinity(generator, config.top_k, old_names, new_names, initial)
    if config.output_dir:
        write_report(report, config.output_dir)
    return report


def main(fv):
    config = config_from_flags(fv)
    print(format_affinity(run(config)), end="")
    if config.output_dir:
        print(f"Wrote {os.path.join(config.output_dir, PICTURE_FILE)} and the JSON and text report")


if __name__ == "__main__":
    cli.run(main, define_flags)
