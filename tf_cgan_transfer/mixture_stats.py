"""How far a kp_bn generator's class mixtures moved, and how concentrated they are.

Every knowledge-propagating BN gives new class n the mixture weights A(y_n) over the K
old classes, once for the gain and once for the bias (docs/method.md §2). A method
whose mixtures stay at their random initialisation propagates no knowledge, however
good its samples, so each kp_bn run records the mixtures it started from
(`INITIAL_FILE` in the run directory, written before the first step) and these
statistics compare the current ones with them:

* `relative_change` ‖A − A₀‖_F / ‖A₀‖_F of the layer's `[N, K]` matrix of mixtures;
* `correlation`: Pearson's correlation of A's entries with A₀'s (1: nothing learned
  beyond a rescaling);
* `top_share`: per new class, the share of its mixture mass Σ_k |A(y_n)[k]| held by
  its `TOP` largest old classes (1: sparse; TOP/K: uniform);
* `entropy`: per new class, the entropy of |A(y_n)| / Σ|A(y_n)| divided by log K
  (0: one old class; 1: uniform).
"""

import os

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import model_io
from tf_cgan_transfer import run_safety

INITIAL_FILE = "mixture_init.npz"
TOP = 5
PARTS = ("gain", "bias")
SUMMARY_PREFIX = "mixtures"


def mixtures(generator):
    """`{label: [N, K] float64}` of every mixture of a kp_bn generator, in layer order.

    Labels are `<block>/<bn>/<part>` (`part` in `PARTS`), and `linear/code` for
    BigGAN-deep's knowledge-propagating class embedding; {} for other generators.
    """
    y = tf.eye(generator.num_classes)
    found = {}
    for label, layer in conditional_bn.labelled_knowledge_propagating(generator):
        for part, weights in zip(layer.PART_LABELS, layer.mixture_weights(y)):
            found[f"{label}/{part}"] = weights.numpy().astype(np.float64)
    return found


def save_initial(path, generator):
    """Writes the generator's mixtures to `path` (an .npz), atomically."""
    model_io.write_npz(path, **mixtures(generator))


def load_initial(path):
    """`{label: [N, K]}` saved by `save_initial`, or None when `path` does not exist."""
    if not path or not os.path.exists(path):
        return None
    with np.load(path) as saved:
        return {label: saved[label] for label in saved.files}


def find_initial(path):
    """The `INITIAL_FILE` of the run `path` belongs to (a run directory or one of its
    models directories), or None."""
    return model_io.find_run_file(path, INITIAL_FILE)


def record_initial(run_root, generator, first_stage=None):
    """The run's initial mixtures, written to `<run_root>/INITIAL_FILE` at its start.

    Args:
      run_root: the run directory.
      generator: the run's generator, before its first step.
      first_stage: for a second stage, the first stage's models or run directory: its
        initial mixtures are the run's (copied; None when it recorded none, since the
        second stage starts from learned mixtures, not from an initialisation).

    Returns:
      `{label: [N, K]}`, or None (no mixtures, or a second stage without a record).
    """
    if not mixtures(generator):
        return None
    path = os.path.join(run_root, INITIAL_FILE)
    if not os.path.exists(path):
        if first_stage:
            found = find_initial(first_stage)
            if found is None:
                return None
            copy = lambda partial: tf.io.gfile.copy(found, partial, overwrite=True)  # noqa: E731
            run_safety.write_atomically(path, copy)
        else:
            save_initial(path, generator)
    return load_initial(path)


def _class_stats(a, top):
    """`(top_share [N], entropy [N])` of the rows of `a` `[N, K]`."""
    mass = np.abs(a)
    total = np.maximum(mass.sum(axis=1), 1e-12)
    top = min(top, a.shape[1])
    top_share = np.sort(mass, axis=1)[:, ::-1][:, :top].sum(axis=1) / total
    p = mass / total[:, None]
    entropy = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-300)), 0.0), axis=1)
    return top_share, entropy / np.log(a.shape[1]) if a.shape[1] > 1 else np.zeros_like(entropy)


def _compare(a, a0):
    """`(relative_change, correlation)` of `a` against its initial value `a0`."""
    change = float(np.linalg.norm(a - a0) / max(np.linalg.norm(a0), 1e-12))
    x, x0 = a.ravel() - a.mean(), a0.ravel() - a0.mean()
    denominator = np.linalg.norm(x) * np.linalg.norm(x0)
    correlation = float(x @ x0 / denominator) if denominator > 0 else float("nan")
    return change, correlation


def diagnostics(current, initial=None, top=TOP):
    """The statistics of the module docstring, per mixture and overall.

    Args:
      current: `{label: [N, K]}` (`mixtures`).
      initial: the same at step 0, or None (then no change and correlation).
      top: the old classes counted by `top_share`.

    Returns:
      A JSON-able dict: `layers`, one entry per label with `relative_change` and
      `correlation` (None without `initial`), `top_share` and `entropy` (per new class)
      and their means; `overall`, the means over the layers (per class too).
    """
    if initial is not None and set(initial) != set(current):
        raise ValueError(
            f"The initial mixtures are of other layers ({sorted(initial)[:3]}...) than the "
            f"generator's ({sorted(current)[:3]}...): they belong to another model."
        )
    layers, shares, entropies = [], [], []
    for label, a in current.items():
        share, entropy = _class_stats(a, top)
        change = correlation = None
        if initial is not None:
            if initial[label].shape != a.shape:
                raise ValueError(
                    f"{label}: initial mixtures {initial[label].shape} vs current {a.shape}."
                )
            change, correlation = _compare(a, initial[label])
        layers.append(
            dict(
                layer=label,
                relative_change=change,
                correlation=correlation,
                top_share=share.tolist(),
                entropy=entropy.tolist(),
                mean_top_share=float(share.mean()),
                mean_entropy=float(entropy.mean()),
            )
        )
        shares.append(share)
        entropies.append(entropy)
    mean = lambda key: (
        None if initial is None or not layers else float(np.mean([e[key] for e in layers]))
    )
    overall = dict(
        relative_change=mean("relative_change"),
        correlation=mean("correlation"),
        top_share=np.mean(shares, axis=0).tolist() if layers else [],
        entropy=np.mean(entropies, axis=0).tolist() if layers else [],
        mean_top_share=float(np.mean(shares)) if layers else None,
        mean_entropy=float(np.mean(entropies)) if layers else None,
    )
    return dict(top=top, has_initial=initial is not None, layers=layers, overall=overall)


def format_diagnostics(stats):
    """Readable lines of `diagnostics`: one per layer, then the overall means."""
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
    lines = [
        f"Mixture diagnostics (change and correlation against step 0; top-{stats['top']} "
        "share of the mixture mass; entropy in units of log K):"
    ]
    rows = [(e["layer"], e) for e in stats["layers"]] + [("overall", stats["overall"])]
    for label, e in rows:
        lines.append(
            f"  {label}: change {fmt(e['relative_change'], '.3f')}, correlation "
            f"{fmt(e['correlation'], '.3f')}, top-{stats['top']} share "
            f"{fmt(e['mean_top_share'], '.3f')}, entropy {fmt(e['mean_entropy'], '.3f')}"
        )
    return "\n".join(lines) + "\n"


def log_summaries(generator, initial, writer, step):
    """`write_summaries` of the generator's `diagnostics` against `initial` (or None)."""
    current = mixtures(generator)
    if current:
        write_summaries(diagnostics(current, initial), writer, step)


def write_summaries(stats, writer, step):
    """Scalars `mixtures/<layer>/<statistic>` and `mixtures/<statistic>` (the means)."""
    names = ("relative_change", "correlation", "mean_top_share", "mean_entropy")
    with writer.as_default(step=step):
        for label, entry in [(e["layer"], e) for e in stats["layers"]] + [("", stats["overall"])]:
            for name in names:
                if entry[name] is not None:
                    tag = "/".join(p for p in (SUMMARY_PREFIX, label, name) if p)
                    tf.summary.scalar(tag, entry[name])
