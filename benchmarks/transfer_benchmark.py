r"""Does knowledge propagation give better new classes from few images? Every method, tuned.

  python -m benchmarks.transfer_benchmark --manual_dir=DIR/usr/share/games/wesnoth/1.16/data/core
  python -m benchmarks.transfer_benchmark --quick --manual_dir=... --out_dir=/tmp/tb_quick
  python -m benchmarks.transfer_benchmark --dataset=NAME --old_classes=... --dev_classes=... \
      --test_classes=... [--relations=relations.json]

Protocol (docs/design.md's benchmark section; `benchmarks.transfer_data` for the data):

1. one source BigGAN is pre-trained from scratch on the old classes' train images
   (`<work_dir>/source_*`, reused; DiffAugment, an EMA of G), and scored on their
   held-out images: KID, FID and the class accuracy of its samples (is a sample
   recognisably of its class?); the transfers start from its EMA G and trained D;
2. a domain classifier (`benchmarks.domain_classifier`) is trained on the train images of
   every class: its features are the FID/KID space, its logits the class accuracy;
3. dev phase: every unit (`UNITS`; kp_bn yields the rows `kp_bn (bn)` and `kp_bn (bn+ft)`)
   with every augmentation (`--augments`) and every learning-rate pair of the sweep
   (`--learning_rates`) transfers the source to the dev classes (seed 0); each row's pair
   with the lowest final KID on the dev classes' held-out images is chosen (skipped when
   the sweep has one pair);
4. test phase: each row at its chosen pair, `--seeds` seeds, on the test classes;
   evaluated every `--eval_every` steps against the test classes' held-out images
   (seen by no training step and not by the classifier): KID (primary), FID,
   precision/recall, memorisation, class accuracy, per class; final and best step;
   trainable parameters; wall time; for kp_bn, whether the learned affinities point at
   the related old classes (`transfer_data.affinity_hits`);
5. a side-by-side picture: one row per method (its better augmentation on dev), the same
   test classes and latents, under the held-out real images.

Finished runs are reused (a run counts once its `result.json` exists), so an interrupted
benchmark continues where it stopped. Writes `transfer_benchmark.{md,json}`,
`transfer_curves.png` and `transfer_samples.png` to --out_dir (`benchmarks.transfer_report`).
--quick is a smoke run for CI: its numbers mean nothing.
"""

import dataclasses
import os
import shlex
import sys
import time
from typing import Optional, Tuple

from absl import app
from absl import flags
import tensorflow as tf

from benchmarks import domain_classifier
from benchmarks import method_report
from benchmarks import transfer_data
from benchmarks import transfer_report
from benchmarks import transfer_runs
from benchmarks.transfer_runs import AUGMENTS, ROWS, UNITS  # noqa: F401 (re-exported)
from tf_cgan_transfer import errors
from tf_cgan_transfer import wesnoth_units

# (G, D) learning rates of the sweep: the paper's CIFAR pair and five times its G rate
# (the BN-only methods move few, small parameters; Adam moves each by at most ~lr a
# step). Two pairs keep the default run near 90 minutes: every run costs a model build
# and a trace besides its steps. (Units of work, rows and stages: `transfer_runs`.)
LEARNING_RATES = ((2e-4, 2e-4), (1e-3, 2e-4))


@dataclasses.dataclass(frozen=True)
class Settings:
    """One benchmark: sizes, seeds and where things go.

    Attributes:
      work_dir: data, source, classifier and runs (reused across invocations).
      out_dir: where the report goes.
      quick: a CI smoke run (the report says its numbers mean nothing).
      seeds: seeds of the test phase (0..seeds-1); the dev phase uses seed 0.
      train_steps: iterations per run (two-stage units split them).
      eval_every: steps between evaluations (there is one at step 0 too).
      images_per_class: training images per new class.
      batch_size: images per step of the transfers.
      learning_rates: the sweep's (G, D) pairs.
      augments: D's augmentation variants ("none", "diffaugment").
      units: the units of work (`UNITS` or a subset).
      kp_variants: kp_bn variants (`transfer_runs.KP_VARIANTS` names) trained at the
        setting `kp_bn (bn)` chose on dev: bn stage only, seed 0 on dev, every seed on test.
      source_steps, source_batch_size, source_augment, source_ema_decay,
        source_eval_every: pre-training of the source (D's augmentation: "diffaugment" or
        "none"; the EMA decay of G, whose average is what the transfers start from, 0: the
        last iterate; steps between its evaluations on the old classes' held-out images,
        0: none).
      ch, dim_z, shared_dim: the source's architecture (and scratch's).
      classifier_epochs: training epochs of the domain classifier.
      workers: runs trained at a time, each in a process of its own.
      command: the command line, for the report.
    """

    work_dir: str
    out_dir: str
    quick: bool = False
    seeds: int = 3
    train_steps: int = 300
    eval_every: int = 100
    images_per_class: int = 10
    batch_size: int = 16
    learning_rates: Tuple[Tuple[float, float], ...] = LEARNING_RATES
    augments: Tuple[str, ...] = AUGMENTS
    units: Tuple[str, ...] = UNITS
    kp_variants: Tuple[str, ...] = tuple(transfer_runs.KP_VARIANTS)
    source_steps: int = 16000
    source_batch_size: int = 32
    source_augment: str = "diffaugment"
    source_ema_decay: float = 0.999
    source_eval_every: int = 2000
    ch: int = 8
    dim_z: int = 64
    shared_dim: int = 64
    classifier_epochs: int = 30
    workers: int = 2
    command: str = ""

    def validate(self):
        if self.train_steps % self.eval_every or self.train_steps < 2 * self.eval_every:
            raise ValueError(
                f"train_steps={self.train_steps} must be a multiple of eval_every="
                f"{self.eval_every} and at least twice it (two-stage units switch stage at "
                "an evaluation)."
            )
        unknown = set(self.units) - set(UNITS) or set(self.augments) - set(AUGMENTS)
        if unknown:
            raise ValueError(
                f"Unknown units or augments {sorted(unknown)}; use {UNITS}, {AUGMENTS}."
            )
        for name in self.kp_variants:
            transfer_runs.variant_unit(name)  # a ValueError naming the known variants
        if self.kp_variants and "kp_bn" not in self.units:
            raise ValueError("kp_variants are trained at kp_bn's chosen setting: add kp_bn to units.")
        if min(self.seeds, self.workers, self.images_per_class, len(self.learning_rates)) < 1:
            raise ValueError("seeds, workers, images_per_class and learning_rates must be >= 1.")
        return self

    def first_stage_steps(self, unit):
        """Steps of a two-stage unit's first stage: the multiple of eval_every nearest its
        share."""
        share = transfer_runs.FIRST_STAGE[unit][1]
        return self.eval_every * max(1, round(share * self.train_steps / self.eval_every))

    def rows(self):
        return tuple(r for r in ROWS if transfer_runs.row_unit(r) in self.units)


QUICK = dict(
    quick=True,
    seeds=1,
    train_steps=4,
    eval_every=2,
    learning_rates=LEARNING_RATES[:1],  # one pair: the dev phase is skipped
    augments=("diffaugment",),
    source_steps=4,
    source_eval_every=0,  # (a curve of one source step costs CI a trace for nothing)
    classifier_epochs=1,
    kp_variants=("prior_nosn_a10_p0",),  # the one that needs the most machinery
)


def make_settings(work_dir, out_dir, quick=False, **overrides):
    """`Settings` with the defaults of the mode (--quick or full), then `overrides`."""
    values = dict(QUICK) if quick else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "kp_bn" not in values.get("units", UNITS) and overrides.get("kp_variants") is None:
        values["kp_variants"] = ()  # (the variants train at kp_bn's chosen setting)
    return Settings(work_dir=work_dir, out_dir=out_dir, **values).validate()


# ---- Phases ----------------------------------------------------------------------------


def dev_items(settings):
    if len(settings.learning_rates) < 2:
        return []  # nothing to choose
    return [
        ("dev", unit, augment, tuple(lrs), 0)
        for unit in settings.units
        for augment in settings.augments
        for lrs in settings.learning_rates
    ]


def choose(settings, dev_rows):
    """{(row, augment): (g_lr, d_lr)} with the lowest final dev KID (NaN loses); the
    sweep's only pair when there was no dev phase."""
    chosen = {}
    for row in settings.rows():
        for augment in settings.augments:
            candidates = [r for r in dev_rows if r["row"] == row and r["augment"] == augment]
            if not candidates:
                chosen[(row, augment)] = tuple(settings.learning_rates[0])
                continue
            best = min(candidates, key=lambda r: _sort_key(r["final"]["kid"]))
            chosen[(row, augment)] = (best["g_lr"], best["d_lr"])
    return chosen


def _sort_key(value):
    return float("inf") if value != value else value


def test_items(settings, chosen):
    """Test-phase items: each row's chosen pair; a kp_bn item serves both kp_bn rows."""
    items = []
    for seed in range(settings.seeds):
        for row in settings.rows():
            for augment in settings.augments:
                item = ("test", transfer_runs.row_unit(row), augment, chosen[(row, augment)], seed)
                if item not in items:
                    items.append(item)
    return items


def test_rows(rows, chosen):
    """The test rows that ran at their row's chosen pair (a kp_bn item may serve only
    one of its two rows)."""
    return [r for r in rows if chosen[(r["row"], r["augment"])] == (r["g_lr"], r["d_lr"])]


def _at(rows, augment, lrs):
    """The rows trained with `augment` at the (G, D) pair `lrs`."""
    return [r for r in rows if r["augment"] == augment and (r["g_lr"], r["d_lr"]) == tuple(lrs)]


def variant_setting(settings, chosen, dev_rows):
    """`(augment, (g_lr, d_lr))` the kp_bn variants train at: `kp_bn (bn)`'s augmentation
    with the lower dev KID at its chosen pair (the first augmentation without a dev phase)."""

    def dev_kid(augment):
        at = _at(dev_rows, augment, chosen[("kp_bn (bn)", augment)])
        kids = [r["final"]["kid"] for r in at if r["row"] == "kp_bn (bn)"]
        return _sort_key(kids[0]) if kids else float("inf")

    augment = min(settings.augments, key=lambda a: (dev_kid(a), settings.augments.index(a)))
    return augment, tuple(chosen[("kp_bn (bn)", augment)])


def variant_items(settings, phase, augment, lrs):
    """The kp_bn variants' items of a phase (dev: seed 0, only with a sweep; test: every
    seed)."""
    if phase == "dev" and len(settings.learning_rates) < 2:
        return []
    seeds = range(1) if phase == "dev" else range(settings.seeds)
    return [
        (phase, transfer_runs.variant_unit(name), augment, lrs, seed)
        for seed in seeds
        for name in settings.kp_variants
    ]


def choose_variant(dev_rows, augment, lrs):
    """The row with the lowest final dev KID among `kp_bn (bn)` and its variants, at the
    variants' augmentation and pair (None without a dev phase)."""
    candidates = [
        r for r in _at(dev_rows, augment, lrs) if r["row"] == "kp_bn (bn)" or "@" in r["unit"]
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda r: _sort_key(r["final"]["kid"]))["row"]


def run(settings, spec, progress=print, picture=True):
    """Runs the benchmark; writes the report to `settings.out_dir`; returns it."""
    start, load_before = time.time(), os.getloadavg()

    def log(message):
        progress(f"[{(time.time() - start) / 60:5.1f} min] {message}")

    classifier = domain_classifier.ensure_for(
        spec.train,
        spec.held_out,
        transfer_runs.classifier_dir(settings),
        spec.num_classes,
        epochs=settings.classifier_epochs,
        flip=spec.mirror_invariant,
    )
    log(f"domain classifier: held-out accuracy {classifier['test_accuracy']:.2%}")
    source, source_info = transfer_runs.prepare_source(settings, spec)
    source_info["held_out"] = {
        k: transfer_runs.score_source(settings, spec, source).get(k)
        for k in ("kid", "fid", "class_accuracy", "real_class_accuracy", "num_real")
    }
    source_info["curve"] = [
        {k: r.get(k) for k in ("step", "kid", "fid", "class_accuracy")}
        for r in transfer_runs.read_evals(transfer_runs.source_dir(settings))
    ]
    log(f"source ready: {source} {source_info['held_out']}")

    def on_done(item, rows):
        for r in rows:
            if r.get("failed"):
                log(
                    f"{r['phase']} {r['row']} {r['augment']} lr {r['g_lr']:g}/{r['d_lr']:g} "
                    f"seed {r['seed']}: FAILED {r['failed']}"
                )
                continue
            kid = " ".join(f"{x:.4f}" for x in r["curve"]["kid"])
            log(
                f"{r['phase']} {r['row']} {r['augment']} lr {r['g_lr']:g}/{r['d_lr']:g} seed "
                f"{r['seed']}: KID {kid} ({r['wall_seconds']:.0f} s)"
            )

    dev = transfer_runs.run_items(settings, spec, dev_items(settings), source, on_done)
    chosen = choose(settings, dev)
    test = test_rows(
        transfer_runs.run_items(settings, spec, test_items(settings, chosen), source, on_done),
        chosen,
    )
    variants = None
    if settings.kp_variants:
        augment, lrs = variant_setting(settings, chosen, dev)
        for name in settings.kp_variants:
            chosen[(f"{transfer_runs.variant_unit(name)} (bn)", augment)] = lrs
        for phase in ("dev", "test"):
            rows = transfer_runs.run_items(
                settings, spec, variant_items(settings, phase, augment, lrs), source, on_done
            )
            (dev if phase == "dev" else test).extend(rows)
        variants = dict(
            augment=augment, lrs=list(lrs), names=list(settings.kp_variants),
            dev_choice=choose_variant(dev, augment, lrs),
        )
    report = dict(
        settings=dataclasses.asdict(settings),
        data=dict(
            name=spec.name,
            old_classes=len(spec.old_classes),
            dev=spec.names(spec.dev_classes),
            test=spec.names(spec.test_classes),
            roles=transfer_data.describe_roles(spec),
            held_out_dev=transfer_runs.num_held_out(spec, spec.dev_classes),
            held_out_test=transfer_runs.num_held_out(spec, spec.test_classes),
        ),
        classifier=classifier,
        source=source_info,
        dev_rows=dev,
        chosen={f"{row}|{augment}": list(lrs) for (row, augment), lrs in chosen.items()},
        test_rows=test,
        kp_variants=variants,
        machine=method_report.machine_info(tf.__version__),
        load_before=list(load_before),
        load_after=list(os.getloadavg()),
        total_seconds=time.time() - start,
    )
    report["affinity"] = transfer_report.affinity_table(spec, test)
    if picture:
        transfer_report.side_by_side(
            settings, spec, test, dev, os.path.join(settings.out_dir, transfer_report.PICTURE)
        )
    transfer_report.write(report, settings.out_dir)
    log(f"wrote {settings.out_dir}")
    return report


def optional_tuple(values, cast=str) -> Optional[tuple]:
    return tuple(cast(v) for v in values) if values else None


# ---- Command line ----------------------------------------------------------------------


def define_flags(flag_values=flags.FLAGS):
    """Defines the command line's flags (only `__main__` calls this)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_bool("quick", False, "CI smoke run: tiny sizes, meaningless numbers.", **fv)
    flags.DEFINE_string("out_dir", "benchmarks/results", "Where the report goes.", **fv)
    flags.DEFINE_string(
        "work_dir", "/tmp/transfer_benchmark", "Data, source, classifier and runs (reused).", **fv
    )
    # The data: the Wesnoth sprites by default, or any TFDS set / pair of image folders.
    flags.DEFINE_string(
        "dataset",
        wesnoth_units.NAME,
        "wesnoth_units (its classes are picked here), another TFDS name, or 'folder'.",
        **fv,
    )
    flags.DEFINE_string(
        "manual_dir", None, "wesnoth_units: the Wesnoth data/core folder (to prepare).", **fv
    )
    flags.DEFINE_string("data_dir", None, "TFDS data directory (default: <work_dir>/tfds).", **fv)
    flags.DEFINE_integer("resolution", 32, "Image size.", **fv)
    flags.DEFINE_integer("num_dev_classes", 8, "wesnoth_units: new dev classes.", **fv)
    flags.DEFINE_integer("num_test_classes", 8, "wesnoth_units: new test classes.", **fv)
    flags.DEFINE_integer("class_seed", 0, "wesnoth_units: the draw of the new classes.", **fv)
    for role in ("old", "dev", "test"):
        flags.DEFINE_list(f"{role}_classes", None, f"Other data: the {role} class ids.", **fv)
    flags.DEFINE_string("train_split", "train", "Other TFDS data: the train split.", **fv)
    flags.DEFINE_string("held_out_split", "test", "Other TFDS data: the held-out split.", **fv)
    flags.DEFINE_string("image_folder", None, "Folder data: the train images.", **fv)
    flags.DEFINE_string("held_out_folder", None, "Folder data: the held-out images.", **fv)
    flags.DEFINE_string(
        "relations", None, 'Other data: JSON {"relations": {new: [old]}, "groups": {id: g}}.', **fv
    )
    # Sizes: None takes the mode's default (Settings for the full run, QUICK for --quick).
    for name in (
        "seeds",
        "train_steps",
        "eval_every",
        "images_per_class",
        "batch_size",
        "source_steps",
        "classifier_epochs",
        "workers",
        "ch",
    ):
        flags.DEFINE_integer(name, None, f"Settings.{name} (None: the mode's default).", **fv)
    flags.DEFINE_list(
        "learning_rates", None, "The sweep's G/D pairs, e.g. 1e-4/4e-4,2e-4/2e-4.", **fv
    )
    flags.DEFINE_list("augments", None, f"D augmentations, of {AUGMENTS}.", **fv)
    flags.DEFINE_list("units", None, f"Units of work, of {UNITS}.", **fv)
    flags.DEFINE_list(
        "kp_variants",
        None,
        "kp_bn variants trained at kp_bn (bn)'s chosen setting, of "
        f"{sorted(transfer_runs.KP_VARIANTS)} (default: all; quick: one; '' for none).",
        **fv,
    )


def _pairs(values):
    try:
        return tuple(tuple(float(x) for x in v.split("/")) for v in values) if values else None
    except ValueError as e:
        raise ValueError(f"--learning_rates wants G/D pairs such as 2e-4/2e-4: {e}") from e


def settings_from_flags(fv, command=""):
    pairs = _pairs(fv.learning_rates)
    if pairs and any(len(p) != 2 for p in pairs):
        raise ValueError("--learning_rates wants G/D pairs such as 2e-4/2e-4.")
    return make_settings(
        fv.work_dir,
        fv.out_dir,
        quick=fv.quick,
        seeds=fv.seeds,
        train_steps=fv.train_steps,
        eval_every=fv.eval_every,
        images_per_class=fv.images_per_class,
        batch_size=fv.batch_size,
        source_steps=fv.source_steps,
        classifier_epochs=fv.classifier_epochs,
        workers=fv.workers,
        ch=fv.ch,
        learning_rates=pairs,
        augments=optional_tuple(fv.augments),
        units=optional_tuple(fv.units),
        kp_variants=None if fv.kp_variants is None else tuple(v for v in fv.kp_variants if v),
        command=command,
    )


def spec_from_flags(fv, settings):
    data_dir = fv.data_dir or os.path.join(settings.work_dir, "tfds")
    if fv.dataset == wesnoth_units.NAME:
        return transfer_data.wesnoth_spec(
            data_dir,
            fv.manual_dir,
            fv.resolution,
            fv.num_dev_classes,
            fv.num_test_classes,
            fv.class_seed,
        )
    if not (fv.old_classes and fv.dev_classes and fv.test_classes):
        raise ValueError("Other data needs --old_classes, --dev_classes and --test_classes.")
    return transfer_data.folder_or_tfds_spec(
        fv.dataset,
        fv.resolution,
        fv.old_classes,
        fv.dev_classes,
        fv.test_classes,
        data_dir=data_dir,
        train_split=fv.train_split,
        held_out_split=fv.held_out_split,
        image_folder=fv.image_folder,
        held_out_folder=fv.held_out_folder,
        relations_file=fv.relations,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    command = shlex.join(["python", "-m", "benchmarks.transfer_benchmark"] + sys.argv[1:])
    try:
        settings = settings_from_flags(flags.FLAGS, command)
        spec = spec_from_flags(flags.FLAGS, settings)
    except (ValueError, errors.UserError) as e:
        raise app.UsageError(str(e)) from e
    run(settings, spec)


if __name__ == "__main__":
    define_flags()
    app.run(main)
