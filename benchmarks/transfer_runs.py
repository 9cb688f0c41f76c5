"""Runs of `benchmarks.transfer_benchmark`: configs, one unit of work, workers, the source.

A unit of work is `(phase, unit, augment, (g_lr, d_lr), seed)`: one method (two-stage
methods both stages, kp_bn also its bn stage alone) transferred from the source to the
phase's new classes. Its directory (`run_dir`) names everything its result depends on,
and its `result.json` (written last) holds its rows; finished units are reused.
"""

import dataclasses
import glob
import json
import os
import shutil
import time

from absl import logging
import tensorflow as tf

from benchmarks import workers
from tf_cgan_transfer import affinity
from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import model_io
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer

UNITS = ("kp_bn", "bn_only", "finetune", "freeze_d", "minegan", "scratch")
ROWS = ("kp_bn (bn)", "kp_bn (bn+ft)", "bn_only", "finetune", "freeze_d", "minegan", "scratch")
AUGMENTS = ("none", "diffaugment")
# Two-stage units: (first stage, its share of the steps). kp_bn's bn stage runs first as
# in the paper; MineGAN trains its miner alone first, then miner and G together.
FIRST_STAGE = {"kp_bn": ("bn", 2 / 3), "minegan": ("miner", 1 / 2)}
RESULT_FILE = "result.json"
# The source the transfers load when it keeps an EMA generator (`prepare_source`).
TRANSFER_SOURCE = "models_transfer"
# The records' final/best metrics (headline scalars of an evaluation record).
METRICS = (
    "kid",
    "fid",
    "precision",
    "recall",
    "density",
    "coverage",
    "memorisation_ratio",
    "copy_share",
    "pixel_memorisation_ratio",
    "class_accuracy",
    "mean_per_class_fid",
)
# A kp_bn row's `mixtures`: how far its mixtures moved from their initialisation and how
# concentrated they are (`mixture_stats`; means over layers and new classes).
MIXTURE_STATS = ("relative_change", "correlation", "mean_top_share", "mean_entropy")


# kp_bn variants (issue 22's study of what makes the mixtures learn; `--kp_variants`):
# unit "kp_bn@NAME" trains the bn stage alone over the whole budget (row "kp_bn@NAME (bn)",
# comparable to "kp_bn (bn)") with these `train_config.TrainConfig` / `OptimizerConfig` changes.
# a: A's learning-rate multiplier; p0: P frozen; nosn: A without spectral norm; uniform,
# prior: A's initialisation (prior: the source D's view of the new classes, `affinity_prior`).
KP_VARIANTS = {
    "a10": dict(a_lr_scale=10.0),
    "a10_p0": dict(a_lr_scale=10.0, p_lr_scale=0.0),
    "uniform_nosn_a10_p0": dict(
        mixture_init="uniform", mixture_spectral_norm=False, a_lr_scale=10.0, p_lr_scale=0.0
    ),
    "prior": dict(mixture_init="prior"),
    "prior_nosn_a10_p0": dict(
        mixture_init="prior", mixture_spectral_norm=False, a_lr_scale=10.0, p_lr_scale=0.0
    ),
}
_OPTIMIZER_FIELDS = ("a_lr_scale", "r_lr_scale", "p_lr_scale")


def row_unit(row):
    """The unit of work a row comes from: "kp_bn (bn+ft)" -> "kp_bn", "kp_bn@a10 (bn)" ->
    "kp_bn@a10", "finetune" -> "finetune"."""
    return row.split(" (")[0] if row.startswith("kp_bn") else row


def split_unit(unit):
    """`(method, variant name or None)` of a unit: "kp_bn@a10" -> ("kp_bn", "a10")."""
    method, _, variant = unit.partition("@")
    if variant and (method != "kp_bn" or variant not in KP_VARIANTS):
        raise ValueError(f"Unknown kp_bn variant {unit!r}; use kp_bn@ one of {sorted(KP_VARIANTS)}.")
    return method, variant or None


def variant_unit(name):
    split_unit(f"kp_bn@{name}")  # validates
    return f"kp_bn@{name}"


# ---- Configs ---------------------------------------------------------------------------


def architecture(settings):
    return transfer.ArchitectureConfig(
        ch=settings.ch,
        dim_z=settings.dim_z,
        shared_dim=settings.shared_dim,
        attention_resolution=0,
    )


def source_dir(settings):
    """The source depends on its steps, batch, augmentation and architecture: all in the
    path."""
    key = f"s{settings.source_steps}_b{settings.source_batch_size}_{settings.source_augment}"
    if settings.source_ema_decay:
        key += f"_ema{settings.source_ema_decay:g}"
    key += f"_ch{settings.ch}_z{settings.dim_z}_e{settings.shared_dim}"
    return os.path.join(settings.work_dir, f"source_{key}")


def classifier_dir(settings):
    return os.path.join(settings.work_dir, f"classifier_e{settings.classifier_epochs}")


def source_config(settings, spec):
    old = spec.old_classes
    return train_config.TrainConfig(
        model_dir=source_dir(settings),
        data=spec.train_of(old),
        method="scratch",
        architecture=architecture(settings),
        optimizer=train_config.OptimizerConfig(g_lr=2e-4, d_lr=2e-4, epsilon=1e-6),
        batch_size=settings.source_batch_size,
        # The old classes have ~23 train images each: without augmentation D wins within
        # a few hundred steps (d_loss_fake 0.0000 at step 1,100 of a first attempt).
        augment=settings.source_augment,
        # The transfers start from the EMA generator (with the trained D): at a few
        # thousand steps the average is much better than the last iterate.
        ema_decay=settings.source_ema_decay,
        train_steps=settings.source_steps,
        checkpoint_every=1000,
        sample_every=settings.source_steps,
        samples_per_class=2,
        log_every=100,
        # The quality curve on the old classes' held-out images (KID, class accuracy):
        # how many steps a recognisable source takes is measured, not guessed.
        **held_out_evaluation(settings, spec, old, settings.source_eval_every),
    )


def run_dir(settings, phase, unit, augment, lrs, seed):
    """A run's directory: everything its result depends on is in the path."""
    key = (
        f"{os.path.basename(source_dir(settings))}_clf{settings.classifier_epochs}_"
        f"T{settings.train_steps}_E{settings.eval_every}_n{settings.images_per_class}_"
        f"b{settings.batch_size}"
    )
    lr = f"g{lrs[0]:g}_d{lrs[1]:g}"
    return os.path.join(settings.work_dir, "runs", key, phase, unit, augment, lr, f"seed{seed}")


def num_held_out(spec, classes):
    return data.describe(spec.held_out_of(classes)).num_examples


def held_out_evaluation(settings, spec, classes, every):
    """The `train_config.TrainConfig` fields of a periodic evaluation every `every` steps
    against every held-out image of `classes` (as many generated), best by KID."""
    return dict(
        eval_every=every,
        eval_num_images=num_held_out(spec, classes),
        classifier=classifier_dir(settings),
        eval_cache_dir=os.path.join(settings.work_dir, "eval_cache"),
        eval_data=spec.held_out_of(classes),
        best_metric="kid",
        classifier_classes=tuple(classes),
    )


def transfer_config(settings, spec, model_dir, unit, augment, lrs, seed, classes, source):
    """The run of `unit` (its first stage; a kp_bn variant's bn stage) on `classes`,
    evaluated on their held-out images."""
    method, variant = split_unit(unit)
    changes = dict(KP_VARIANTS[variant]) if variant else {}
    scales = {k: changes.pop(k) for k in _OPTIMIZER_FIELDS if k in changes}
    return train_config.TrainConfig(
        model_dir=model_dir,
        # The seed also picks the training images, as train.py's --seed does.
        data=spec.train_of(classes, settings.images_per_class, seed),
        method=method,
        stage=FIRST_STAGE[method][0] if method in FIRST_STAGE else None,
        # scratch: a fresh BigGAN of the source's architecture, not the source's weights.
        source=None if unit == "scratch" else source,
        architecture=architecture(settings),
        optimizer=train_config.OptimizerConfig(g_lr=lrs[0], d_lr=lrs[1], epsilon=1e-6, **scales),
        batch_size=settings.batch_size,
        train_steps=settings.train_steps,
        l1_scale=0.01,
        l2_scale=0.01,
        augment=augment,
        seed=seed,
        checkpoint_every=settings.train_steps,
        log_every=settings.eval_every,
        sample_every=0,
        **held_out_evaluation(settings, spec, classes, settings.eval_every),
        **changes,
    )


def with_steps(config, train_steps):
    return dataclasses.replace(config, train_steps=train_steps, checkpoint_every=train_steps)


# ---- Runs ------------------------------------------------------------------------------


def run_trainer(config, evaluate_step_0=True):
    """Trains one config; returns `(seconds, g_params, d_params)`."""
    start = time.time()
    run = trainer.Trainer(config)
    if evaluate_step_0:
        run.run_evaluation(0)
    run.train()
    params = (
        biggan.count_parameters(run.models.g_variables),
        biggan.count_parameters(run.models.d_variables),
    )
    tf.keras.backend.clear_session()
    return time.time() - start, *params


def read_evals(model_dir, offset=0, up_to=None):
    """The run's evaluation records, in step order (steps shifted by `offset`)."""
    records = []
    for path in sorted(glob.glob(os.path.join(model_dir, "eval", "step_*.json"))):
        with open(path) as f:
            record = json.load(f)
        record["step"] += offset
        if up_to is None or record["step"] <= up_to:
            records.append(record)
    return records


def _affinity(directory):
    """`(ranked, mixtures)` of a kp_bn run's affinity report: each new class's old classes,
    best first, and the overall `mixture_stats.diagnostics` scalars (None, None without a
    report)."""
    path = os.path.join(directory, affinity.JSON_FILE)
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        report = json.load(f)
    ranked = [[t["old_class"] for t in entry["top"]] for entry in report["classes"]]
    overall = report["diagnostics"]["overall"]
    return ranked, {k: overall[k] for k in MIXTURE_STATS}


def _value(record, key):
    value = record.get(key)
    return float("nan") if value is None else float(value)


def _summary(evals):
    """`(curve, final, best)` of a row's evaluation records (best: lowest KID)."""
    curve = dict(steps=[r["step"] for r in evals])
    for key in ("kid", "fid", "class_accuracy", "recall"):
        curve[key] = [_value(r, key) for r in evals]
    final = evals[-1]
    finite = [r for r in evals if r.get("kid") is not None]
    best = min(finite, key=lambda r: r["kid"]) if finite else final

    def pick(r):
        out = {k: _value(r, k) for k in METRICS}
        out["step"] = r["step"]
        out["per_class"] = r.get("per_class")
        out["per_class_fid"] = r.get("per_class_fid")
        return out

    return curve, pick(final), pick(best)


def _record(row, item, **fields):
    """One row of a unit of work: its identity (`item`) and `fields`."""
    phase, unit, augment, lrs, seed = item
    record = dict(
        row=row, phase=phase, unit=unit, augment=augment, g_lr=lrs[0], d_lr=lrs[1], seed=seed
    )
    record.update(fields)
    return record


def _row(row, item, evals, seconds, params, directory, affinity=None, mixtures=None):
    curve, final, best = _summary(evals)
    return _record(
        row,
        item,
        wall_seconds=seconds,
        params=params,
        curve=curve,
        final=final,
        best=best,
        run_dir=directory,
        affinity=affinity,
        mixtures=mixtures,
        failed=None,
    )


def run_unit(settings, spec, item, source):
    """Trains one unit of work from scratch, writes its result file, returns its rows.

    `item` = (phase, unit, augment, (g_lr, d_lr), seed). Two-stage units pause their first
    stage at `first_stage_steps`, run the second stage ("ft") from its models there; kp_bn
    then resumes its bn stage to the full budget, so `kp_bn (bn)` and `kp_bn (bn+ft)` share
    their first steps (as if bn+ft had run its own bn stage with the same seed).
    """
    model_dir = run_dir(settings, *item)
    result_path = os.path.join(model_dir, RESULT_FILE)
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    shutil.rmtree(model_dir, ignore_errors=True)  # left by an interrupted run
    try:
        rows = _train_unit(settings, spec, item, source, model_dir)
    except trainer.TrainingError as e:  # a diverged run (non-finite loss) is a result too
        logging.warning("%s failed: %s", item, e)
        rows = _failed_rows(item, str(e))
    model_io.write_json(result_path + ".tmp", rows)
    os.replace(result_path + ".tmp", result_path)  # written last: the unit is finished
    return rows


def unit_rows(unit):
    """The rows a unit of work yields."""
    if unit.startswith("kp_bn"):
        return ("kp_bn (bn)", "kp_bn (bn+ft)") if unit == "kp_bn" else (f"{unit} (bn)",)
    return (unit,)


def _failed_rows(item, message):
    """Rows of a unit whose training stopped: NaN metrics (a failed run never wins the
    sweep and counts as missing in the means), the error kept."""
    nan = dict({k: float("nan") for k in METRICS}, step=None, per_class=None, per_class_fid=None)
    return [
        _record(
            row,
            item,
            wall_seconds=float("nan"),
            params=None,
            curve=None,
            final=nan,
            best=nan,
            run_dir=None,
            affinity=None,
            mixtures=None,
            failed=message,
        )
        for row in unit_rows(item[1])
    ]


def _train_unit(settings, spec, item, source, model_dir):
    phase, unit, augment, lrs, seed = item
    classes = spec.dev_classes if phase == "dev" else spec.test_classes
    first_dir, ft_dir = os.path.join(model_dir, "first"), os.path.join(model_dir, "ft")
    config = transfer_config(settings, spec, first_dir, unit, augment, lrs, seed, classes, source)
    if unit not in FIRST_STAGE:  # one stage (a kp_bn variant: its bn stage, whole budget)
        seconds, g, d = run_trainer(config)
        (row,) = unit_rows(unit)
        evals = read_evals(first_dir)
        # (Only kp_bn runs write an affinity report: None, None for the other methods.)
        rows = [_row(row, item, evals, seconds, [g, d], first_dir, *_affinity(first_dir))]
    else:
        split = settings.first_stage_steps(unit)
        first, g, d = run_trainer(with_steps(config, split))
        split_models = os.path.join(first_dir, f"models_step_{split}")
        shutil.copytree(os.path.join(first_dir, "models"), split_models)
        ft_config = dataclasses.replace(
            config, model_dir=ft_dir, stage="ft", source=None, bn_checkpoint=split_models
        )
        ft_seconds, ft_g, ft_d = run_trainer(
            with_steps(ft_config, settings.train_steps - split),
            evaluate_step_0=False,  # its step 0 is the first stage's last evaluation
        )
        staged = read_evals(first_dir, up_to=split) + read_evals(ft_dir, offset=split)
        row = "kp_bn (bn+ft)" if unit == "kp_bn" else unit
        rows = [
            _row(
                row,
                item,
                staged,
                first + ft_seconds,
                [g, d, ft_g, ft_d],
                ft_dir,
                *_affinity(ft_dir),
            )
        ]
        if unit == "kp_bn":
            second, _, _ = run_trainer(config, evaluate_step_0=False)  # resumes at split
            rows.insert(
                0,
                _row(
                    "kp_bn (bn)",
                    item,
                    read_evals(first_dir),
                    first + second,
                    [g, d],
                    first_dir,
                    *_affinity(first_dir),
                ),
            )
    return rows


def run_items(settings, spec, items, source, on_done):
    """Every item's rows (in `items` order); trains the unfinished ones in
    `settings.workers` processes (`benchmarks.workers`)."""
    results = {}
    pending = []
    for item in items:
        path = os.path.join(run_dir(settings, *item), RESULT_FILE)
        if os.path.exists(path):
            with open(path) as f:
                results[item] = json.load(f)
            on_done(item, results[item])
        else:
            pending.append(item)

    def finished(job, rows):
        results[job[2]] = rows
        on_done(job[2], rows)

    jobs = [(settings, spec, item, source) for item in pending]
    workers.run_in_processes(run_unit, jobs, settings.workers, finished)
    return [row for item in items for row in results[item]]


def train_or_reuse(config):
    """`(models directory, info)` of the run of `config` (a `train_config.TrainConfig`): trained
    now unless its models exist (written last), resuming its checkpoints if interrupted."""
    models = model_io.find_models_dir(config.model_dir)
    if models:
        return models, dict(steps=config.train_steps, seconds=None, reused=True)
    start = time.time()
    trainer.Trainer(config).train()
    tf.keras.backend.clear_session()
    return model_io.find_models_dir(config.model_dir), dict(
        steps=config.train_steps, seconds=time.time() - start, reused=False
    )


def prepare_source(settings, spec):
    """`(models directory, info)` of the source, pre-trained now unless finished.

    With an EMA generator, the directory is `<source>/models_transfer/`: the EMA G with
    the trained D (a run's `models/` pairs D with the last iterate of G). TF-Hub's BigGAN
    modules are EMA generators too, so every transfer starts from an averaged G.
    """
    models, info = train_or_reuse(source_config(settings, spec))
    if not settings.source_ema_decay:
        return models, info
    merged = os.path.join(source_dir(settings), TRANSFER_SOURCE)
    if not model_io.find_models_dir(merged):
        layout = model_io.RunLayout(source_dir(settings))
        generator, _ = model_io.restore_models(layout.ema_models_dir)
        _, discriminator = model_io.restore_models(layout.models_dir)
        partial = merged + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        model_io.save_models(partial, generator, discriminator)
        os.replace(partial, merged)  # complete or absent, never half-written
        tf.keras.backend.clear_session()
    return merged, info


def score_source(settings, spec, source):
    """The source on the old classes' held-out images (KID, FID, class accuracy)."""
    output = os.path.join(source_dir(settings), "held_out_eval.json")
    if os.path.exists(output):
        with open(output) as f:
            return json.load(f)
    old = spec.old_classes
    record = evaluate.run(
        evaluate.EvalConfig(
            model=source,
            output=output,
            classifier=classifier_dir(settings),
            num_images=num_held_out(spec, old),
            data_config=spec.train_of(old),
            eval_data=spec.held_out_of(old),
            classifier_classes=tuple(old),
            cache_dir=os.path.join(settings.work_dir, "eval_cache"),
            per_class=False,
        )
    )
    tf.keras.backend.clear_session()
    return record
