r"""The class-affinity report: which old classes each new class of a kp_bn G draws on.

  python -m tf_cgan_transfer.affinity --model=runs/flowers_bn [--top_k=5]

For each new class n and old class k the score is the mixture weight A(y_n)[k], averaged
over every knowledge-propagating BN and over gain and bias (docs/method.md §2). A kp_bn
training run writes the report of its final sampling generator (EMA first) as
`class_affinity.json` and `class_affinity.txt` in its run directory (`model_io.RunLayout`);
the command prints it for any kp_bn model or run directory.
"""

import dataclasses
import json
import os
from typing import Optional

from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import cli
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import errors
from tf_cgan_transfer import model_io
from tf_cgan_transfer import serving

IMAGENET_CLASSES = 1000
JSON_FILE = "class_affinity.json"
TEXT_FILE = "class_affinity.txt"


class AffinityError(errors.UserError, ValueError):
    """No report can be made for this model; the message says why."""


def imagenet_class_names():
    """The 1000 ImageNet (ILSVRC-2012) class ids in label order, as TFDS ships them.

    BigGAN's class k is line k (WordNet ids such as n01440764, "tench").
    """
    import tensorflow_datasets as tfds  # deferred: heavy, only needed for reports

    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
    with tf.io.gfile.GFile(path) as f:
        return [line.strip() for line in f if line.strip()]


def class_affinity(generator, top_k=5, old_names=None, new_names=None):
    """For each new class, the old classes its learned mixtures weight most.

    The score of old class k for new class n is A(y_n)[k] averaged over every
    knowledge-propagating BN layer and over gain and bias. Returns a JSON-able dict.
    """
    layers_ = [bn for bn in conditional_bn.knowledge_propagating(generator) if bn.use_mixture]
    if not layers_:
        raise AffinityError(
            f"A class-affinity report needs a kp_bn generator; this one's conditioning is "
            f"{generator.conditioning!r}."
        )
    n, k = generator.num_classes, generator.num_source_classes
    y = tf.eye(n)
    scores = tf.add_n([w for bn in layers_ for w in bn.mixture_weights(y)]) / (2 * len(layers_))
    scores = scores.numpy()
    top_k = min(top_k, k)
    classes = []
    for new in range(n):
        order = np.argsort(-scores[new], kind="stable")[:top_k]
        classes.append(
            dict(
                new_class=new,
                name=new_names[new] if new_names else None,
                top=[
                    dict(
                        old_class=int(o),
                        name=old_names[o] if old_names else None,
                        score=float(scores[new, o]),
                    )
                    for o in order
                ],
            )
        )
    return dict(
        num_new_classes=n, num_old_classes=k, num_layers=len(layers_), top_k=top_k, classes=classes
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
    return "\n".join(lines) + "\n"


def old_class_names(generator):
    """Names of the source's classes when they are known (ImageNet's for 1000), else None."""
    if generator.num_source_classes == IMAGENET_CLASSES:
        return imagenet_class_names()
    return None


def write_report(report, directory):
    """Writes `class_affinity.json` and `class_affinity.txt` into `directory`; returns them."""
    json_path = os.path.join(directory, JSON_FILE)
    text_path = os.path.join(directory, TEXT_FILE)
    model_io.write_json(json_path, report)
    with tf.io.gfile.GFile(text_path, "w") as f:
        f.write(format_affinity(report))
    return json_path, text_path


# ---- Command line ------------------------------------------------------------------------


def define_flags(fv):
    flags.DEFINE_string(
        "model", None, "A kp_bn training run directory or models directory.", flag_values=fv
    )
    flags.DEFINE_integer(
        "top_k", 5, "Old classes listed per new class.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_string(
        "class_names_file",
        None,
        "Names of the new classes, one per line (None: the run's report names, else ids).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output_dir", None, "Also write the JSON and text report here.", flag_values=fv
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
    class_names_file: Optional[str] = None
    output_dir: Optional[str] = None


def config_from_flags(fv):
    return cli.config_of(AffinityConfig, fv)


def run(config):
    """The report of the model a config names (also written to `output_dir` if set)."""
    generator = model_io.load_generator(config.model)
    if config.class_names_file:
        new_names = serving.read_class_names(config.class_names_file, generator.num_classes)
    else:
        new_names = _run_new_names(config.model)
    report = class_affinity(generator, config.top_k, old_class_names(generator), new_names)
    if config.output_dir:
        write_report(report, config.output_dir)
    return report


def main(fv):
    print(format_affinity(run(config_from_flags(fv))), end="")


if __name__ == "__main__":
    cli.run(main, define_flags)
