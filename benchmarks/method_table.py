r"""The paper's method comparison (cGANTransfer, CVPR 2021) at CPU scale, on the demo data.

  python -m benchmarks.method_table
  python -m benchmarks.method_table --quick --out_dir=/tmp/method_table_quick
  python -m benchmarks.method_table --work_dir=/tmp/method_table --out_dir=benchmarks/results

What it measures, on the offline data set `cgan_demo_shapes` (12 old classes, 4 new):

1. pre-trains the demo's source BigGAN-32 on the old classes (configs/demo_source.flags;
   reused when `<work_dir>/source_<steps>/models` exists);
2. trains a domain classifier on all 16 classes (`benchmarks.domain_classifier`): FID
   and KID are computed in its feature space, as TF-GAN's Inception knows nothing of
   32x32 shapes (and cannot be downloaded here); its test accuracy goes in the report;
3. transfers the source to the new classes with every method (kp_bn bn stage, kp_bn
   bn+ft, bn_only, finetune, freeze_d, scratch) with the same step budget, batch, images
   per class and seeds (configs/demo_transfer.flags), recording FID, KID and per-class
   FID every --eval_every steps (and at step 0) against *all* train images of the new
   classes, the trainable parameters of G and D, and the wall time;
4. sweeps the images per class for kp_bn (bn stage) vs finetune, reusing the main
   table's runs at --images_per_class.

It writes `method_table.md`, `method_table.png` and `method_table.json` to --out_dir
(`benchmarks.method_report`). Finished work is reused: a unit of work (one method, one
seed, one images-per-class value) counts as finished once its result file exists, so an
interrupted benchmark continues where it stopped. --quick is a smoke run for CI (a few
steps, one seed, two units at a time): its numbers mean nothing.
"""

import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
from typing import Optional, Tuple

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from benchmarks import domain_classifier
from benchmarks import method_report
from benchmarks import transfer_runs
from benchmarks import workers
from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data
from tf_cgan_transfer import precision
from tf_cgan_transfer import train_config
from tf_cgan_transfer import transfer

# Units of work per seed; "kp_bn" yields both kp_bn rows (see `run_unit`).
UNITS = ("kp_bn", "bn_only", "finetune", "freeze_d", "scratch")
SWEEP_UNITS = ("kp_bn_bn", "finetune")  # rows method_report.SWEEP_ROWS
BN_FRACTION = 2 / 3  # kp_bn bn+ft: this share of the steps in the bn stage, the rest in ft

# configs/demo_source.flags and configs/demo_transfer.flags as typed configs (the test
# checks them against the flagfiles).
ARCHITECTURE = transfer.ArchitectureConfig(ch=8, dim_z=32, shared_dim=32, attention_resolution=0)
OPTIMIZER = train_config.OptimizerConfig(g_lr=2e-4, d_lr=2e-4, epsilon=1e-6)
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
      eval_every: steps between evaluations (there is one at step 0 too).
      images_per_class: training images per new class in the main table.
      sweep_images_per_class: images per class of the sweep (kp_bn bn vs finetune).
      sweep_seeds: seeds of the sweep where it does not reuse the main table's runs.
      eval_num_images: real and generated images per evaluation; None: every train image
        of the new classes (1,200; `run` resolves it).
      source_steps: pre-training iterations of the source.
      classifier_epochs: training epochs of the domain classifier.
      workers: units trained at a time, each worker a process of its own. 1 keeps the
        wall times comparable; --quick uses 2 (tracing is single-threaded Python).
      mixed_precision: the transfers' `precision` policy (the source stays float32).
      command: the command line, for the report.
    """

    work_dir: str
    out_dir: str
    quick: bool = False
    seeds: int = 3
    # Sized for under an hour on 2 CPU cores, source pre-training included (estimated
    # ~45-50 min from measured rates: 7-8 transfer steps/s, ~3 s per evaluation of 1,200
    # images, ~15 s to build and trace each run).
    train_steps: int = 600
    eval_every: int = 100
    images_per_class: int = 50
    sweep_images_per_class: Tuple[int, ...] = (10, 50, 200)
    sweep_seeds: int = 1
    eval_num_images: Optional[int] = None
    source_steps: int = 2500
    classifier_epochs: int = 8
    workers: int = 1
    mixed_precision: str = "float32"
    command: str = ""

    @property
    def bn_steps(self):
        """Steps of kp_bn's bn stage in bn+ft: the multiple of eval_every nearest 2/3."""
        return self.eval_every * max(1, round(BN_FRACTION * self.train_steps / self.eval_every))

    def validate(self):
        if self.train_steps % self.eval_every or self.train_steps < 2 * self.eval_every:
            raise ValueError(
                f"train_steps={self.train_steps} must be a multiple of eval_every="
                f"{self.eval_every} and at least twice it (kp_bn bn+ft switches stage at an "
                "evaluation)."
            )
        if min(self.seeds, self.sweep_seeds, self.workers, *self.sweep_images_per_class) < 1:
            raise ValueError("seeds, sweep_seeds, workers and images per class must be >= 1.")
        return self


# --quick: every method once, as fast as it goes (model building and tracing dominate:
# each run costs ~15 s of CPU before its first step). The sweep reuses the main runs.
QUICK = dict(
    quick=True,
    seeds=1,
    train_steps=4,
    eval_every=2,
    sweep_images_per_class=(50,),
    eval_num_images=48,
    source_steps=4,
    classifier_epochs=1,
    workers=2,
)


def make_settings(work_dir, out_dir, quick=False, **overrides):
    """`Settings` with the defaults of the mode (--quick or full), then `overrides`."""
    values = dict(QUICK) if quick else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(work_dir=work_dir, out_dir=out_dir, **values).validate()


# ---- Configs ---------------------------------------------------------------------------


def source_config(settings, data_dir):
    """configs/demo_source.flags (steps from `settings`)."""
    return train_config.TrainConfig(
        model_dir=os.path.join(settings.work_dir, f"source_{settings.source_steps}"),
        data=demo_classes(data_dir, demo_data.OLD_CLASSES),
        method="scratch",
        architecture=ARCHITECTURE,
        optimizer=OPTIMIZER,
        batch_size=BATCH_SIZE,
        train_steps=settings.source_steps,
        checkpoint_every=500,
        sample_every=500,
        log_every=100,
    )


def demo_classes(data_dir, classes, images_per_class=None, seed=0):
    """`classes` of cgan_demo_shapes' train split, capped at `images_per_class` (None: all
    300 images each); `seed` picks the capped subset."""
    return data.DataConfig(
        dataset=demo_data.NAME,
        resolution=32,
        data_dir=data_dir,
        classes=classes,
        images_per_class=images_per_class,
        seed=seed,
    )


def transfer_config(settings, model_dir, method, source, data_dir, images_per_class, seed):
    """configs/demo_transfer.flags for `method`, with the benchmark's steps and evaluation.

    The seed also picks the `images_per_class` training images (as train.py's --seed).
    """
    return train_config.TrainConfig(
        model_dir=model_dir,
        data=demo_classes(data_dir, demo_data.NEW_CLASSES, images_per_class, seed),
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
        mixed_precision=settings.mixed_precision,
        checkpoint_every=settings.train_steps,
        log_every=settings.eval_every,
        # One sample sheet at the end of each full run: FID alone can hide a wrong class.
        sample_every=0 if settings.quick else settings.train_steps,
        eval_every=settings.eval_every,
        eval_num_images=settings.eval_num_images,
        classifier=classifier_dir(settings),
        eval_cache_dir=os.path.join(settings.work_dir, "eval_cache"),
        # FID against every train image of the new classes, not just the training subset.
        eval_data=demo_classes(data_dir, demo_data.NEW_CLASSES),
    )


def with_steps(config, train_steps):
    """`config` for `train_steps` steps, its sample sheet (if any) still at the end."""
    return dataclasses.replace(
        config, train_steps=train_steps, sample_every=config.sample_every and train_steps
    )


def classifier_dir(settings):
    return os.path.join(settings.work_dir, f"classifier_e{settings.classifier_epochs}")


def unit_dir(settings, images_per_class, seed):
    """Runs depend on the source, classifier, steps and evaluation size: all in the path."""
    key = (
        f"src{settings.source_steps}_clf{settings.classifier_epochs}_"
        f"T{settings.train_steps}_E{settings.eval_every}_n{settings.eval_num_images}"
    )
    if settings.mixed_precision != "float32":
        key += f"_{settings.mixed_precision}"
    return os.path.join(settings.work_dir, "runs", key, f"ipc{images_per_class}", f"seed{seed}")


# ---- Runs ------------------------------------------------------------------------------


# One trained config -> (seconds, g_params, d_params): the transfer benchmark's.
run_trainer = transfer_runs.run_trainer


def read_evals(model_dir, offset=0, up_to=None):
    """The run's `eval/step_*.json` as lists (steps shifted by `offset`, NaN for null)."""
    records = transfer_runs.read_evals(model_dir, offset, up_to)
    curve = dict(steps=[r["step"] for r in records])
    for key in ("fid", "kid", "kid_std", "mean_per_class_fid"):
        curve[key] = [float("nan") if r.get(key) is None else r[key] for r in records]
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
    """Trains one unit of work from scratch, writes its result file, returns its records.

    Units: "kp_bn" yields "kp_bn (bn)" and "kp_bn (bn+ft)": the bn run pauses at
    `bn_steps`, the ft stage starts from its models there, and the bn run resumes to the
    full budget, so both rows share their first `bn_steps` steps (as if the bn+ft row
    had run its own bn stage with the same seed). "kp_bn_bn" is the bn stage alone; any
    other unit is that method.
    """
    seed_dir = unit_dir(settings, images_per_class, seed)
    method = "kp_bn" if unit.startswith("kp_bn") else unit
    model_dir = os.path.join(seed_dir, method)
    ft_dir = os.path.join(seed_dir, "kp_bn_ft")
    for directory in (model_dir, ft_dir) if unit == "kp_bn" else (model_dir,):
        shutil.rmtree(directory, ignore_errors=True)  # left by an interrupted unit
    config = transfer_config(settings, model_dir, method, source, data_dir, images_per_class, seed)
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
            evaluate_step_0=False,  # its step 0 is the bn stage's last evaluation
        )
        second, _, _ = run_trainer(config, evaluate_step_0=False)  # resumes at bn_steps
        bn_ft_curve = read_evals(model_dir, up_to=bn_steps)
        for key, values in read_evals(ft_dir, offset=bn_steps).items():
            bn_ft_curve[key] += values
        records = [
            _record(
                "kp_bn (bn)", seed, images_per_class, read_evals(model_dir), first + second, [g, d]
            ),
            _record(
                "kp_bn (bn+ft)",
                seed,
                images_per_class,
                bn_ft_curve,
                first + ft_seconds,
                [g, d, ft_g, ft_d],
            ),
        ]
    path = os.path.join(seed_dir, f"{unit}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(records, f, indent=2)  # an internal file: NaN may stay NaN
    os.replace(path + ".tmp", path)  # written last: the unit is finished
    return records


def _finished(settings, unit, images_per_class, seed):
    path = os.path.join(unit_dir(settings, images_per_class, seed), f"{unit}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def work_list(settings):
    """`(unit, images_per_class, seed)` of the main table, then of the sweep."""
    work = [(u, settings.images_per_class, s) for s in range(settings.seeds) for u in UNITS]
    for k in settings.sweep_images_per_class:
        if k != settings.images_per_class:  # else the main table's runs
            work += [(u, k, s) for s in range(settings.sweep_seeds) for u in SWEEP_UNITS]
    return work


def run_units(settings, source, data_dir, on_done):
    """Every unit's records, in `work_list` order; trains the unfinished ones.

    Units train in `settings.workers` worker processes (`benchmarks.workers`), one unit
    at a time each; with one worker they run one after another, so their wall times
    compare. `on_done(unit, ipc, seed, records)` is called for each unit, finished
    earlier or now.
    """
    work = work_list(settings)
    results = {}
    for item in work:
        results[item] = _finished(settings, *item)
        if results[item] is not None:
            on_done(*item, results[item])
    pending = [item for item in work if results[item] is None]

    def finished(job, records):
        item = job[1:4]
        results[item] = records
        on_done(*item, records)

    jobs = [(settings, *item, source, data_dir) for item in pending]
    workers.run_in_processes(run_unit, jobs, settings.workers, finished)
    return [record for item in work for record in results[item]]


def prepare_source(settings, data_dir):
    """`(models directory, info)` of the source, pre-trained now unless already finished."""
    return transfer_runs.train_or_reuse(source_config(settings, data_dir))


# ---- Driver ----------------------------------------------------------------------------


def run(settings):
    """Runs the benchmark; writes md/png/json to `settings.out_dir`; returns the report."""
    start, load_before = time.time(), os.getloadavg()

    def progress(message):
        print(f"[{(time.time() - start) / 60:5.1f} min] {message}", flush=True)

    data_dir = os.path.join(settings.work_dir, "tfds")
    demo_data.prepare(data_dir)
    all_images = data.describe(demo_classes(data_dir, demo_data.NEW_CLASSES)).num_examples
    if settings.eval_num_images is None:
        settings = dataclasses.replace(settings, eval_num_images=all_images)
    source, source_info = prepare_source(settings, data_dir)
    progress(f"source ready: {source}")
    classifier = domain_classifier.ensure(
        data_dir, classifier_dir(settings), epochs=settings.classifier_epochs
    )
    progress(f"domain classifier: test accuracy {classifier['test_accuracy']:.2%}")
    if classifier["test_accuracy"] <= 0.95 and not settings.quick:
        logging.warning("The domain classifier is weak: FIDs in its features mean little.")

    def on_done(unit, ipc, seed, records):
        for r in records:
            fids = " ".join(f"{x:.2f}" for x in r["fid"])
            progress(
                f"{r['method']}, {ipc}/class, seed {seed}: FID {fids} ({r['wall_seconds']:.0f} s)"
            )

    records = run_units(settings, source, data_dir, on_done)
    example = transfer_config(settings, "", "kp_bn", source, data_dir, None, 0)
    report = dict(
        settings=dataclasses.asdict(settings),
        setup=dict(
            batch_size=example.batch_size,
            g_lr=example.optimizer.g_lr,
            d_lr=example.optimizer.d_lr,
            l1_scale=example.l1_scale,
            l2_scale=example.l2_scale,
            classifier_features=domain_classifier.FEATURES,
            real_images_available=all_images,
        ),
        bn_steps=settings.bn_steps,
        classifier=classifier,
        source=source_info,
        records=records,
        aggregates=method_report.aggregate(records),
        machine=method_report.machine_info(tf.__version__),
        load_before=list(load_before),
        load_after=list(os.getloadavg()),
        total_seconds=time.time() - start,
    )
    method_report.write(report, settings.out_dir)
    progress(f"wrote {settings.out_dir}/method_table.{{md,png,json}}")
    return report


# ---- Command line ----------------------------------------------------------------------


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags in `flag_values`.

    Only `__main__` calls this: importing the module (the test does) defines no flags.
    """
    fv = dict(flag_values=flag_values)
    flags.DEFINE_bool("quick", False, "CI smoke run: tiny sizes, meaningless numbers.", **fv)
    flags.DEFINE_string("out_dir", "benchmarks/results", "Where the md/png/json go.", **fv)
    flags.DEFINE_string(
        "work_dir", "/tmp/method_table", "Data, source, classifier and runs (reused).", **fv
    )
    # Sizes: None takes the mode's default (Settings for the full run, QUICK for --quick).
    for name, help_text in (
        ("seeds", "Seeds of the main table (full: 3)."),
        ("train_steps", "Iterations per method (full: 600)."),
        ("eval_every", "Steps between evaluations, also done at step 0 (full: 100)."),
        ("images_per_class", "Training images per new class in the main table (full: 50)."),
        ("sweep_seeds", "Seeds of the sweep's own runs (full: 1)."),
        ("eval_num_images", "Images per evaluation (None: all 1,200 new-class train images)."),
        ("source_steps", "Source pre-training steps (full: 2500)."),
        ("workers", "Units trained at a time, one process each (full: 1; --quick: 2)."),
    ):
        flags.DEFINE_integer(name, None, help_text, lower_bound=1, **fv)
    flags.DEFINE_list(
        "sweep_images_per_class", None, "Images per class of the sweep (full: 10,50,200).", **fv
    )
    flags.DEFINE_enum(
        "mixed_precision", "float32", list(precision.POLICIES), "Transfers' precision.", **fv
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
        workers=fv.workers,
        mixed_precision=fv.mixed_precision,
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
