r"""The paper's method comparison (cGANTransfer, CVPR 2021) at CPU scale, on the demo data.

  python -m benchmarks.method_table
  python -m benchmarks.method_table --quick --out_dir=/tmp/method_table_quick
  python -m benchmarks.method_table --work_dir=/tmp/method_table --out_dir=benchmarks/results

What it measures, on the offline data set `cgan_demo_shapes` (12 old classes, 4 new):

1. pre-trains the demo's source BigGAN-32 on the old classes (configs/demo_source.flags;
   reused when `<work_dir>/source_<steps>/models` exists);
2. trains a domain classifier on all 16 classes (`benchmarks.domain_classifier`; FID and
   KID are computed in its feature space, as TF-GAN's Inception is neither fit for 32x32
   shapes nor downloadable here) and reports its test accuracy;
3. transfers the source to the new classes with every method (kp_bn bn stage, kp_bn
   bn+ft, bn_only, finetune, freeze_d, scratch) with the same step budget, batch, images
   per class and seeds (configs/demo_transfer.flags), recording FID, KID and per-class
   FID every `--eval_every` steps against *all* train images of the new classes, the
   trainable parameters of G and D, and wall time;
4. sweeps the images per class for kp_bn (bn stage) vs finetune.

It writes `method_table.md`, `method_table.png` and `method_table.json` to --out_dir.
Finished runs are reused (a unit of work counts as finished once its result file is
written), so an interrupted benchmark continues where it stopped. --quick is a smoke run
for CI (a few steps, one seed): its numbers mean nothing.
"""

import dataclasses
import datetime
import glob
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from typing import Optional, Tuple

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from benchmarks import domain_classifier
from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer

# Rows of the main table: (label, method, unit that produces it).
METHODS = (
    ("kp_bn (bn)", "kp_bn"),
    ("kp_bn (bn+ft)", "kp_bn"),
    ("bn_only", "bn_only"),
    ("finetune", "finetune"),
    ("freeze_d", "freeze_d"),
    ("scratch", "scratch"),
)
SWEEP_METHODS = ("kp_bn (bn)", "finetune")
BN_FRACTION = 2 / 3  # kp_bn bn+ft: this share of the steps in the bn stage, the rest in ft

# configs/demo_source.flags and configs/demo_transfer.flags, as typed configs (a test
# checks them against the flagfiles).
ARCHITECTURE = trainer.ArchitectureConfig(
    resolution=32, ch=8, dim_z=32, shared_dim=32, attention_resolution=0
)
OPTIMIZER = trainer.OptimizerConfig(g_lr=2e-4, d_lr=2e-4, epsilon=1e-6)
BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Settings:
    """One benchmark: sizes, seeds and where things go.

    Attributes:
      work_dir: data, source, classifier and runs (reused across invocations).
      out_dir: where the md/png/json go.
      quick: a CI smoke run (the report says its numbers mean nothing).
      seeds: seeds of the main table (0..seeds-1).
      train_steps: iterations per method (kp_bn bn+ft splits them between its stages).
      eval_every: steps between evaluations (also at step 0).
      images_per_class: training images per new class of the main table.
      sweep_images_per_class: images per class of the sweep (kp_bn bn vs finetune).
      sweep_seeds: seeds of the sweep (the main table's runs are reused where they match).
      eval_num_images: real and generated images per evaluation; None: every train image
        of the new classes (1,200; `run` resolves it).
      source_steps: pre-training iterations of the source.
      classifier_epochs: training epochs of the domain classifier.
      command: the command line, for the report.
    """

    work_dir: str
    out_dir: str
    quick: bool = False
    seeds: int = 3
    train_steps: int = 900
    eval_every: int = 150
    images_per_class: int = 50
    sweep_images_per_class: Tuple[int, ...] = (10, 50, 200)
    sweep_seeds: int = 1
    eval_num_images: Optional[int] = None
    source_steps: int = 2500
    classifier_epochs: int = 8
    command: str = ""

    @property
    def bn_steps(self):
        """Steps of kp_bn's bn stage in bn+ft: a multiple of eval_every near 2/3."""
        return self.eval_every * max(1, round(BN_FRACTION * self.train_steps / self.eval_every))

    def validate(self):
        if self.train_steps % self.eval_every or self.train_steps < 2 * self.eval_every:
            raise ValueError(
                f"train_steps={self.train_steps} must be a multiple of eval_every="
                f"{self.eval_every} and at least twice it (kp_bn bn+ft evaluates at the "
                "stage boundary)."
            )
        if self.seeds < 1 or self.sweep_seeds < 1:
            raise ValueError("seeds and sweep_seeds must be >= 1.")
        return self


# --quick: every code path once, as fast as it goes (model building and tracing dominate).
QUICK = dict(
    quick=True,
    seeds=1,
    train_steps=20,
    eval_every=10,
    sweep_images_per_class=(10, 50),
    eval_num_images=200,
    source_steps=20,
    classifier_epochs=2,
)


def make_settings(work_dir, out_dir, quick=False, **overrides):
    """`Settings` with the defaults of the mode (--quick or full), then `overrides`."""
    values = dict(QUICK) if quick else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(work_dir=work_dir, out_dir=out_dir, **values).validate()


# ---- Configs ---------------------------------------------------------------------------


def source_config(settings, data_dir):
    """configs/demo_source.flags (steps from `settings`)."""
    return trainer.TrainConfig(
        model_dir=os.path.join(settings.work_dir, f"source_{settings.source_steps}"),
        data=data.DataConfig(
            dataset=demo_data.NAME,
            resolution=32,
            data_dir=data_dir,
            classes=demo_data.OLD_CLASSES,
        ),
        method="scratch",
        architecture=ARCHITECTURE,
        optimizer=OPTIMIZER,
        batch_size=BATCH_SIZE,
        train_steps=settings.source_steps,
        checkpoint_every=500,
        sample_every=500,
        log_every=100,
    )


def new_class_data(data_dir, images_per_class, seed=0):
    """The new classes, capped at `images_per_class` (None: all 300 train images)."""
    return data.DataConfig(
        dataset=demo_data.NAME,
        resolution=32,
        data_dir=data_dir,
        classes=demo_data.NEW_CLASSES,
        images_per_class=images_per_class,
        seed=seed,
    )


def transfer_config(settings, model_dir, method, source, data_config, seed):
    """configs/demo_transfer.flags for `method`, with the benchmark's steps and evaluation."""
    return trainer.TrainConfig(
        model_dir=model_dir,
        data=data_config,
        method=method,
        stage="bn" if method == "kp_bn" else None,
        # scratch: a fresh BigGAN of the source's architecture, not the source's weights.
        source=None if method == "scratch" else source,
        architecture=ARCHITECTURE,
        optimizer=OPTIMIZER,
        batch_size=BATCH_SIZE,
        train_steps=settings.train_steps,
        l1_scale=0.01,
        l2_scale=0.01,
        seed=seed,
        checkpoint_every=settings.train_steps,
        log_every=settings.eval_every,
        sample_every=0 if settings.quick else settings.train_steps,
        eval_every=settings.eval_every,
        eval_num_images=settings.eval_num_images,
        classifier=classifier_dir(settings),
        eval_cache_dir=os.path.join(settings.work_dir, "eval_cache"),
    )


def with_steps(config, train_steps):
    """`config` for `train_steps`, keeping its one sample sheet at the end (if any)."""
    # FID alone can hide a wrong class: each run leaves the sheet of its final generator.
    return dataclasses.replace(
        config, train_steps=train_steps, sample_every=config.sample_every and train_steps
    )


def classifier_dir(settings):
    return os.path.join(settings.work_dir, f"classifier_e{settings.classifier_epochs}")


def runs_dir(settings):
    """Runs depend on the source, classifier, steps and evaluation size: all in the name."""
    key = (
        f"src{settings.source_steps}_clf{settings.classifier_epochs}_"
        f"T{settings.train_steps}_E{settings.eval_every}_n{settings.eval_num_images}"
    )
    return os.path.join(settings.work_dir, "runs", key)


# ---- Runs ------------------------------------------------------------------------------


def run_trainer(config, evaluate_step_0=True):
    """Trains one config; returns `(seconds, g_params, d_params)`.

    Periodic FID uses all train images of the new classes (the evaluator the trainer
    builds would use the run's capped training subset, repeated to `eval_num_images`).
    """
    start = time.time()
    run = trainer.Trainer(config)
    real = evaluate.data_real_source(
        dataclasses.replace(config.data, images_per_class=None, seed=0), config.eval_batch_size
    )
    run.evaluator = evaluate.Evaluator(
        config.classifier,
        real.dataset_fn,
        real.cache_key,
        num_images=config.eval_num_images,
        batch_size=config.eval_batch_size,
        cache_dir=config.eval_cache_dir,
        seed=config.seed,
    )
    if evaluate_step_0:
        run.run_evaluation(0)
    run.train()
    params = transfer.count(run.models.g_variables), transfer.count(run.models.d_variables)
    return time.time() - start, *params


def read_evals(model_dir, offset=0, up_to=None):
    """The run's `eval/step_*.json` as lists (steps shifted by `offset`)."""
    curve = dict(steps=[], fid=[], kid=[], kid_std=[], mean_per_class_fid=[])
    for path in sorted(glob.glob(os.path.join(model_dir, "eval", "step_*.json"))):
        with open(path) as f:
            result = json.load(f)
        step = result["step"] + offset
        if up_to is not None and step > up_to:
            continue
        curve["steps"].append(step)
        for key in ("fid", "kid", "kid_std", "mean_per_class_fid"):
            value = result.get(key)
            curve[key].append(float("nan") if value is None else value)
    return curve


def _record(label, seed, images_per_class, curve, seconds, params):
    return dict(
        method=label,
        seed=seed,
        images_per_class=images_per_class,
        wall_seconds=seconds,
        params=params,
        **curve,
    )


def run_unit(settings, unit, images_per_class, seed, source, data_dir):
    """Trains one unit of work (or reads its results back); returns its records.

    Units: "kp_bn" (bn stage; then, with the ft split, "kp_bn (bn+ft)" too: the bn run
    is paused at `bn_steps`, the ft stage branches from its models, and the bn run
    resumes to the full budget, so both rows share their first `bn_steps` steps),
    "kp_bn_bn" (bn stage only) and every other method.
    """
    seed_dir = os.path.join(runs_dir(settings), f"ipc{images_per_class}", f"seed{seed}")
    result_path = os.path.join(seed_dir, f"{unit}.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    method = "kp_bn" if unit.startswith("kp_bn") else unit
    model_dir = os.path.join(seed_dir, method)
    ft_dir = os.path.join(seed_dir, "kp_bn_ft")
    for directory in (model_dir, ft_dir) if unit == "kp_bn" else (model_dir,):
        shutil.rmtree(directory, ignore_errors=True)  # an unfinished run: start over
    data_config = new_class_data(data_dir, images_per_class, seed)
    config = transfer_config(settings, model_dir, method, source, data_config, seed)
    if unit != "kp_bn":
        seconds, g, d = run_trainer(config)
        label = "kp_bn (bn)" if method == "kp_bn" else method
        records = [_record(label, seed, images_per_class, read_evals(model_dir), seconds, [g, d])]
    else:
        bn_steps = settings.bn_steps
        first, g, d = run_trainer(with_steps(config, bn_steps))
        bn_models = os.path.join(model_dir, f"models_step_{bn_steps}")
        shutil.copytree(os.path.join(model_dir, "models"), bn_models)
        ft_config = dataclasses.replace(
            config, model_dir=ft_dir, stage="ft", source=None, bn_checkpoint=bn_models
        )
        ft_seconds, ft_g, ft_d = run_trainer(
            with_steps(ft_config, settings.train_steps - bn_steps),
            evaluate_step_0=False,  # step 0 of ft is the bn stage's last evaluation
        )
        second, _, _ = run_trainer(config, evaluate_step_0=False)  # resumes at bn_steps
        ft_curve = read_evals(model_dir, up_to=bn_steps)
        for key, values in read_evals(ft_dir, offset=bn_steps).items():
            ft_curve[key] += values
        records = [
            _record(
                "kp_bn (bn)", seed, images_per_class, read_evals(model_dir), first + second, [g, d]
            ),
            _record(
                "kp_bn (bn+ft)",
                seed,
                images_per_class,
                ft_curve,
                first + ft_seconds,
                [g, d, ft_g, ft_d],
            ),
        ]
    with open(result_path + ".tmp", "w") as f:
        json.dump(records, f, indent=2)  # NaN stays NaN in this internal file
    os.replace(result_path + ".tmp", result_path)
    return records


def prepare_source(settings, data_dir):
    """The source's models directory (pre-trained now unless already finished)."""
    config = source_config(settings, data_dir)
    models = biggan.find_models_dir(config.model_dir)  # written last: the run finished
    if models:
        return models, dict(steps=settings.source_steps, seconds=None, reused=True)
    start = time.time()
    trainer.Trainer(config).train()  # resumes from its checkpoints if interrupted
    seconds = time.time() - start
    return biggan.find_models_dir(config.model_dir), dict(
        steps=settings.source_steps, seconds=seconds, reused=False
    )


# ---- Aggregation ----------------------------------------------------------------------


def _stats(values):
    """Per column of `values [seeds, points]`: mean, std (ddof 1; NaN for one seed), min, max."""
    values = np.asarray(values, np.float64)
    std = np.std(values, axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1], np.nan)
    return dict(
        mean=values.mean(axis=0).tolist(),
        std=std.tolist(),
        min=values.min(axis=0).tolist(),
        max=values.max(axis=0).tolist(),
    )


def aggregate(records):
    """One row per (method, images per class): statistics over seeds at every step."""
    groups = {}
    for record in records:
        groups.setdefault((record["method"], record["images_per_class"]), []).append(record)
    rows = []
    for (method, ipc), group in groups.items():
        row = dict(
            method=method,
            images_per_class=ipc,
            seeds=[r["seed"] for r in group],
            steps=group[0]["steps"],
            params=group[0]["params"],
            wall_seconds=_stats([[r["wall_seconds"]] for r in group]),
        )
        for key in ("fid", "kid", "mean_per_class_fid"):
            row[key] = _stats([r[key] for r in group])
        rows.append(row)
    return rows


# ---- Report ----------------------------------------------------------------------------


def machine_info():
    model = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1] for line in f if line.startswith("model name")]
        model = names[0].strip() if names else model
    return dict(
        cpu=model,
        cores=os.cpu_count(),
        tensorflow=tf.__version__,
        python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _pm(stats, i, digits=2):
    mean, std = stats["mean"][i], stats["std"][i]
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _params(params):
    if len(params) == 4:
        return f"bn {params[0]:,} / ft {params[2]:,}", f"{params[1]:,} / {params[3]:,}"
    return f"{params[0]:,}", f"{params[1]:,}"


def markdown(report):
    s = report["settings"]
    main = [r for r in report["aggregates"] if r["images_per_class"] == s["images_per_class"]]
    order = [label for label, _ in METHODS]
    main.sort(key=lambda r: order.index(r["method"]))
    steps = max((r["steps"] for r in main), key=len)
    lines = ["# Method comparison on cgan_demo_shapes (CPU scale)", ""]
    if s["quick"]:
        lines += [
            "> **QUICK MODE (CI smoke run): a few steps, one seed, tiny source and classifier.",
            "> These numbers mean nothing; run without --quick for the comparison.**",
            "",
        ]
    clf = report["classifier"]
    accuracy_note = "" if clf["test_accuracy"] > 0.95 else " — **below 95%: FIDs are unreliable**"
    n_real = s["eval_num_images"]
    lines += [
        f"Source: BigGAN-32 (ch 8) pre-trained {s['source_steps']} steps on the 12 old classes "
        "(configs/demo_source.flags). Transfer to the 4 new classes (configs/demo_transfer.flags: "
        f"batch {BATCH_SIZE}, lr 2e-4, l1 0.01, l2 0.01) for {s['train_steps']} steps, "
        f"{s['images_per_class']} images per class, seeds 0..{s['seeds'] - 1}. kp_bn bn+ft: "
        f"bn stage {report['bn_steps']} steps, then ft {s['train_steps'] - report['bn_steps']} "
        "steps from its models (same seed).",
        "",
        f"FID / KID / per-class FID: {n_real} generated images vs {n_real} real train images "
        "of the new classes (all of them, not just the training subset), in the "
        f"{domain_classifier.FEATURES}-d penultimate features of a domain classifier "
        f"(benchmarks/domain_classifier.py) with test accuracy "
        f"**{clf['test_accuracy']:.2%}** on {clf['num_test']} test images of all 16 "
        f"classes{accuracy_note}. Values are mean ± std over seeds (the plot's band is "
        "min–max). Lower is better everywhere.",
        "",
        "| method | trainable G | trainable D | final FID | final KID | final per-class FID "
        "| wall time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in main:
        g, d = _params(r["params"])
        lines.append(
            f"| {r['method']} | {g} | {d} | {_pm(r['fid'], -1)} | {_pm(r['kid'], -1, digits=3)} | "
            f"{_pm(r['mean_per_class_fid'], -1)} | {_pm(r['wall_seconds'], 0, digits=0)} |"
        )
    lines += [
        "",
        "Wall time: building, tracing, training and the periodic evaluations of the runs of "
        "that row (kp_bn (bn) includes one extra model build and trace: it is paused at the "
        "bn+ft stage boundary and resumed). The machine is shared: times are indicative.",
        "",
    ]
    for key, title, digits in (
        ("fid", "FID", 2),
        ("kid", "KID", 3),
        ("mean_per_class_fid", "mean per-class FID", 2),
    ):
        lines += [f"### {title} by step", ""]
        lines.append("| method | " + " | ".join(str(step) for step in steps) + " |")
        lines.append("| --- |" + " ---: |" * len(steps))
        for r in main:
            cells = [
                _pm(r[key], r["steps"].index(step), digits=digits) if step in r["steps"] else "–"
                for step in steps
            ]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines.append("")
    sweep = sorted(s["sweep_images_per_class"])
    lines += [
        f"### Images per class: final FID after {s['train_steps']} steps",
        "",
        f"Seeds: {s['sweep_seeds']} for the sweep "
        + (
            f"({s['seeds']} at {s['images_per_class']} images per class: the main table's runs)"
            if s["images_per_class"] in sweep
            else ""
        )
        + ".",
        "",
        "| method | " + " | ".join(f"{k} / class" for k in sweep) + " |",
        "| --- |" + " ---: |" * len(sweep),
    ]
    for method in SWEEP_METHODS:
        cells = []
        for k in sweep:
            match = [
                r
                for r in report["aggregates"]
                if r["method"] == method and r["images_per_class"] == k
            ]
            cells.append(_pm(match[0]["fid"], -1) if match else "–")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    m = report["machine"]
    src = report["source"]
    lines += [
        "",
        "### Run",
        "",
        f"Command: `{s['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; TensorFlow {m['tensorflow']}, Python "
        f"{m['python']}; {m['date']}. Load average (1/5/15 min) before "
        f"{' / '.join(f'{x:.2f}' for x in report['load_before'])}, after "
        f"{' / '.join(f'{x:.2f}' for x in report['load_after'])}.",
        "",
        f"Total time {report['total_seconds'] / 60:.1f} min (source pre-training "
        + ("reused" if src["reused"] else f"{src['seconds']:.0f} s")
        + ", classifier "
        + ("reused" if clf["reused"] else f"{clf['seconds']:.0f} s")
        + "). Raw numbers: method_table.json; plot: method_table.png.",
        "",
    ]
    return "\n".join(lines)


def plot(report, path):
    """FID vs steps per method (mean line, min–max band) and the images-per-class sweep."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    s = report["settings"]
    colours = {label: f"C{i}" for i, (label, _) in enumerate(METHODS)}  # same in both panels
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in report["aggregates"]:
        if r["images_per_class"] != s["images_per_class"]:
            continue
        colour = colours[r["method"]]
        left.plot(r["steps"], r["fid"]["mean"], marker="o", ms=3, color=colour, label=r["method"])
        left.fill_between(r["steps"], r["fid"]["min"], r["fid"]["max"], color=colour, alpha=0.2)
    left.axvline(report["bn_steps"], color="grey", ls=":", lw=1)
    left.text(report["bn_steps"], left.get_ylim()[1], " bn → ft", va="top", fontsize=8)
    left.set(
        xlabel="step",
        ylabel="FID (domain classifier)",
        title=f"{s['images_per_class']} images/class, {s['seeds']} seed(s), band: min–max",
    )
    handles, labels = left.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: list(colours).index(labels[i]))
    left.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8)
    for method in SWEEP_METHODS:
        rows = sorted(
            (r for r in report["aggregates"] if r["method"] == method),
            key=lambda r: r["images_per_class"],
        )
        x = [r["images_per_class"] for r in rows]
        mean = np.array([r["fid"]["mean"][-1] for r in rows])
        low = mean - np.array([r["fid"]["min"][-1] for r in rows])
        high = np.array([r["fid"]["max"][-1] for r in rows]) - mean
        right.errorbar(
            x, mean, yerr=[low, high], marker="o", capsize=3, color=colours[method], label=method
        )
    right.set_xscale("log")
    right.set_xticks(sorted(s["sweep_images_per_class"]))
    right.set_xticklabels([str(k) for k in sorted(s["sweep_images_per_class"])])
    right.minorticks_off()
    right.set(
        xlabel="images per class",
        ylabel=f"FID at step {s['train_steps']}",
        title="images-per-class sweep (bars: min–max over seeds)",
    )
    right.legend(fontsize=8)
    if s["quick"]:
        figure.suptitle("QUICK MODE: smoke run, numbers mean nothing", color="red")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---- Driver ----------------------------------------------------------------------------


def run(settings):
    """Runs the benchmark; writes md/png/json to `settings.out_dir`; returns the report."""
    start, load_before = time.time(), os.getloadavg()
    data_dir = os.path.join(settings.work_dir, "tfds")
    demo_data.prepare(data_dir)
    if settings.eval_num_images is None:
        all_images = data.describe(new_class_data(data_dir, None)).num_examples
        settings = dataclasses.replace(settings, eval_num_images=all_images)
    source, source_info = prepare_source(settings, data_dir)
    _progress(start, f"source ready ({source})")
    classifier = domain_classifier.ensure(
        data_dir, classifier_dir(settings), epochs=settings.classifier_epochs
    )
    _progress(start, f"domain classifier: test accuracy {classifier['test_accuracy']:.2%}")
    if classifier["test_accuracy"] <= 0.95 and not settings.quick:
        logging.warning("The domain classifier is weak: its FIDs mean little.")

    records = []
    units = [("kp_bn", "kp_bn")] + [(m, m) for _, m in METHODS[2:]]
    work = [
        (u, settings.images_per_class, seed) for seed in range(settings.seeds) for u, _ in units
    ]
    for k in settings.sweep_images_per_class:
        for seed in range(settings.sweep_seeds):
            if k == settings.images_per_class:
                break  # the main table's runs (and seeds)
            work += [("kp_bn_bn", k, seed), ("finetune", k, seed)]
    for unit, ipc, seed in work:
        for record in run_unit(settings, unit, ipc, seed, source, data_dir):
            records.append(record)
            _progress(
                start,
                f"{record['method']} ipc {ipc} seed {seed}: FID "
                + " ".join(f"{x:.2f}" for x in record["fid"])
                + f" ({record['wall_seconds']:.0f} s)",
            )
    report = dict(
        settings=dataclasses.asdict(settings),
        bn_steps=settings.bn_steps,
        classifier=classifier,
        source=source_info,
        records=records,
        aggregates=aggregate(records),
        machine=machine_info(),
        load_before=list(load_before),
        load_after=list(os.getloadavg()),
        total_seconds=time.time() - start,
    )
    os.makedirs(settings.out_dir, exist_ok=True)
    with open(os.path.join(settings.out_dir, "method_table.json"), "w") as f:
        json.dump(evaluate.json_safe(report), f, indent=2)
    with open(os.path.join(settings.out_dir, "method_table.md"), "w") as f:
        f.write(markdown(report))
    plot(report, os.path.join(settings.out_dir, "method_table.png"))
    _progress(start, f"wrote {settings.out_dir}/method_table.{{md,png,json}}")
    return report


def _progress(start, message):
    print(f"[{(time.time() - start) / 60:5.1f} min] {message}", flush=True)


# ---- Command line ----------------------------------------------------------------------


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags in `flag_values`.

    Only `__main__` calls this: importing the module (the test does) defines no flags.
    """
    fv = dict(flag_values=flag_values)
    flags.DEFINE_bool(
        "quick", False, "CI smoke run: tiny sizes, one seed, meaningless numbers.", **fv
    )
    flags.DEFINE_string("out_dir", "benchmarks/results", "Where the md/png/json go.", **fv)
    flags.DEFINE_string(
        "work_dir",
        "/tmp/method_table",
        "Data, source, classifier, runs (reused when finished).",
        **fv,
    )
    # Sizes: None takes the mode's default (Settings for the full run, QUICK for --quick).
    flags.DEFINE_integer("seeds", None, "Seeds of the main table (full: 3).", lower_bound=1, **fv)
    flags.DEFINE_integer(
        "train_steps", None, "Iterations per method (full: 900).", lower_bound=1, **fv
    )
    flags.DEFINE_integer(
        "eval_every", None, "Steps between evaluations (full: 150).", lower_bound=1, **fv
    )
    flags.DEFINE_integer(
        "images_per_class",
        None,
        "Training images per new class in the main table (full: 50).",
        lower_bound=1,
        **fv,
    )
    flags.DEFINE_list(
        "sweep_images_per_class", None, "Images per class of the sweep (full: 10,50,200).", **fv
    )
    flags.DEFINE_integer("sweep_seeds", None, "Seeds of the sweep (full: 1).", lower_bound=1, **fv)
    flags.DEFINE_integer(
        "eval_num_images",
        None,
        "Real and generated images per evaluation (None: all 1,200 new-class train images).",
        lower_bound=2,
        **fv,
    )
    flags.DEFINE_integer(
        "source_steps", None, "Source pre-training steps (full: 2500).", lower_bound=1, **fv
    )


def settings_from_flags(flag_values=flags.FLAGS, command=""):
    """The `Settings` of parsed flags (defined by `define_flags`)."""
    fv = flag_values
    sweep = fv.sweep_images_per_class
    return make_settings(
        fv.work_dir,
        fv.out_dir,
        quick=fv.quick,
        seeds=fv.seeds,
        train_steps=fv.train_steps,
        eval_every=fv.eval_every,
        images_per_class=fv.images_per_class,
        sweep_images_per_class=tuple(int(k) for k in sweep) if sweep else None,
        sweep_seeds=fv.sweep_seeds,
        eval_num_images=fv.eval_num_images,
        source_steps=fv.source_steps,
        command=command,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    command = shlex.join(["python", "-m", "benchmarks.method_table"] + sys.argv[1:])
    try:
        settings = settings_from_flags(command=command)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    run(settings)


if __name__ == "__main__":
    define_flags()
    app.run(main)
