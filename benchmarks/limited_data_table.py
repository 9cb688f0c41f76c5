r"""Does DiffAugment (and LeCam) help the demo transfer? kp_bn and finetune, 3 seeds.

  python -m benchmarks.limited_data_table --work_dir=/tmp/limited_data
  python -m benchmarks.limited_data_table --train_steps=20 --seeds=1 --out_dir=/tmp/ld_smoke

Setup: `benchmarks.method_table`'s source (the demo BigGAN-32 pre-trained on the 12 old
classes of `cgan_demo_shapes`) and domain classifier (reused from --work_dir when
there), then configs/demo_transfer.flags' transfer to the 4 new classes with 50 training
images per class, for kp_bn (bn stage) and finetune, under three variants of D's
training (`VARIANTS`): none, DiffAugment (color,translation,cutout) and DiffAugment with
LeCam (weight 0.3, decay 0.99: the LeCam authors' BigGAN CIFAR-10 setting). Nothing was
tuned on these data: there is no dev split to tune on, and the settings are the
published ones.

FID and KID are measured against the new classes' *test* split (50 images per class,
200 in all), which neither the transfer nor the domain classifier saw, with as many
generated images, every --train_steps / 2 steps. The report also gives D's final mean
output on real and generated images: the gap D opens when it memorises the real ones.

Finished runs are reused (one JSON per run under --work_dir/runs), so an interrupted
benchmark continues where it stopped. It writes limited_data_table.{md,json} to --out_dir.
"""

import dataclasses
import json
import os
import shlex
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from benchmarks import domain_classifier
from benchmarks import method_report
from benchmarks import method_table
from tf_cgan_transfer import demo_data
from tf_cgan_transfer import precision
from tf_cgan_transfer import trainer

METHODS = ("kp_bn", "finetune")
VARIANTS = {
    "none": dict(augment="none", lecam_weight=0.0),
    "diffaugment": dict(augment="diffaugment", lecam_weight=0.0),
    "diffaugment + LeCam": dict(augment="diffaugment", lecam_weight=0.3),
}
TEST_PER_CLASS = 50  # cgan_demo_shapes' test split, per class
LAST_METRICS = ("d_loss_real", "d_loss_fake", "d_real", "d_fake")


def held_out_data(data_dir):
    """The new classes' test split: seen by no transfer and not by the classifier."""
    config = method_table.demo_classes(data_dir, demo_data.NEW_CLASSES)
    return dataclasses.replace(config, split="test")


def run_config(settings, method, variant, seed, source, data_dir):
    """configs/demo_transfer.flags for `method` with `variant`'s aids, evaluated on the
    held-out test split."""
    model_dir = os.path.join(
        settings.work_dir,
        "runs",
        f"T{settings.train_steps}_{settings.mixed_precision}",
        method,
        variant.replace(" ", ""),
        f"seed{seed}",
    )
    base = method_table.transfer_config(
        settings, model_dir, method, source, data_dir, settings.images_per_class, seed
    )
    return dataclasses.replace(
        base,
        eval_data=held_out_data(data_dir),
        eval_num_images=TEST_PER_CLASS * len(demo_data.NEW_CLASSES),
        eval_every=settings.train_steps // 2,
        eval_cache_dir=os.path.join(settings.work_dir, "eval_cache_test"),
        sample_every=settings.train_steps,
        **VARIANTS[variant],
    )


def run_one(config):
    """Trains one run (reusing a finished one); returns its record."""
    result_file = os.path.join(config.model_dir, "benchmark_result.json")
    if os.path.exists(result_file):
        with open(result_file) as f:
            return json.load(f)
    shutil.rmtree(config.model_dir, ignore_errors=True)  # left by an interrupted run
    start = time.time()
    run = trainer.Trainer(config)
    last = run.train()
    curve = method_table.read_evals(config.model_dir)
    record = dict(
        wall_seconds=time.time() - start,
        last={k: last[k] for k in LAST_METRICS},
        **curve,
    )
    with open(result_file, "w") as f:
        json.dump(record, f, indent=2)
    tf.keras.backend.clear_session()
    return record


def _cell(values, digits=2):
    values = np.asarray(values, np.float64)
    if len(values) > 1:
        return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"
    return f"{values.mean():.{digits}f}"


def markdown(report):
    s = report["settings"]
    lines = [
        "# Limited-data aids on the demo transfer (CPU scale)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Source: the demo BigGAN-32 pre-trained {s['source_steps']} steps on the 12 old "
        "classes (benchmarks/method_table.py). Transfer to the 4 new classes as "
        f"configs/demo_transfer.flags for {s['train_steps']} steps in {s['mixed_precision']}, "
        f"{s['images_per_class']} training images per class, seeds 0–{s['seeds'] - 1} "
        "(the seed also picks the training images). DiffAugment: color,translation,cutout; "
        "LeCam: weight 0.3, decay 0.99. Nothing tuned.",
        "",
        f"FID and KID: {report['eval_images']} generated images against the "
        f"{report['eval_images']} images of the new classes' **test split** (seen by no "
        "transfer and not by the feature network), in the 64-d features of the domain "
        f"classifier (test accuracy {report['classifier']['test_accuracy']:.2%}). With 200 "
        "real images FID is biased upwards; KID is not, and is the one to read. Cells: "
        "mean ± std over seeds; lower is better. D real / D fake: D's mean output on the "
        "(augmented) real and generated images of the last step.",
        "",
        "| method | D's aids | FID | KID | FID at half | D real | D fake | wall time (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        recs = row["records"]
        lines.append(
            f"| {row['method']} | {row['variant']} | {_cell([r['fid'][-1] for r in recs])} | "
            f"{_cell([r['kid'][-1] for r in recs], 3)} | "
            f"{_cell([r['fid'][-2] for r in recs])} | "
            f"{_cell([r['last']['d_real'] for r in recs])} | "
            f"{_cell([r['last']['d_fake'] for r in recs])} | "
            f"{_cell([r['wall_seconds'] for r in recs], 0)} |"
        )
    lines += ["", "Per seed (final FID / KID):", ""]
    for row in report["rows"]:
        per_seed = ", ".join(
            f"seed {seed}: {r['fid'][-1]:.2f} / {r['kid'][-1]:.3f}"
            for seed, r in enumerate(row["records"])
        )
        lines.append(f"- {row['method']}, {row['variant']}: {per_seed}")
    m = report["machine"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, TF {m['tensorflow']}, {m['date']}; "
        f"total {report['total_seconds'] / 60:.0f} min.",
        "",
    ]
    return "\n".join(lines)


def run(settings, command=""):
    start = time.time()
    data_dir = os.path.join(settings.work_dir, "tfds")
    demo_data.prepare(data_dir)
    source, _ = method_table.prepare_source(settings, data_dir)
    classifier = domain_classifier.ensure(
        data_dir, method_table.classifier_dir(settings), epochs=settings.classifier_epochs
    )
    # Seed-major order: an interrupted benchmark has every row at its first seeds.
    records = {(m, v): [] for m in METHODS for v in VARIANTS}
    for seed in range(settings.seeds):
        for (method, variant), row_records in records.items():
            config = run_config(settings, method, variant, seed, source, data_dir)
            record = run_one(config)
            row_records.append(record)
            fids = " ".join(f"{x:.2f}" for x in record["fid"])
            print(
                f"[{(time.time() - start) / 60:5.1f} min] {method}, {variant}, seed {seed}: "
                f"FID {fids}, KID {record['kid'][-1]:.3f} ({record['wall_seconds']:.0f} s)",
                flush=True,
            )
    rows = [dict(method=m, variant=v, records=r) for (m, v), r in records.items()]
    report = dict(
        command=command,
        settings=dataclasses.asdict(settings),
        eval_images=TEST_PER_CLASS * len(demo_data.NEW_CLASSES),
        classifier=classifier,
        rows=rows,
        machine=method_report.machine_info(tf.__version__),
        total_seconds=time.time() - start,
    )
    os.makedirs(settings.out_dir, exist_ok=True)
    with open(os.path.join(settings.out_dir, "limited_data_table.json"), "w") as f:
        json.dump(report, f, indent=2, default=lambda x: None)
    with open(os.path.join(settings.out_dir, "limited_data_table.md"), "w") as f:
        f.write(markdown(report))
    return report


def define_flags(fv=flags.FLAGS):
    flags.DEFINE_string(
        "work_dir", "/tmp/limited_data", "Source, classifier, runs.", flag_values=fv
    )
    flags.DEFINE_string("out_dir", "benchmarks/results", "Where the md/json go.", flag_values=fv)
    flags.DEFINE_integer("seeds", 3, "Seeds per method and variant.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer(
        "train_steps",
        400,
        "Steps per run (even: evaluated at half and at the end).",
        lower_bound=2,
        flag_values=fv,
    )
    flags.register_validator(
        "train_steps", lambda v: v % 2 == 0, "--train_steps must be even.", flag_values=fv
    )
    flags.DEFINE_enum(
        "mixed_precision",
        precision.AUTO,
        [precision.AUTO, *precision.POLICIES],
        "The transfers' precision (auto: as train.py, bfloat16 where the hardware runs it).",
        flag_values=fv,
    )


def main(argv):
    del argv
    fv = flags.FLAGS
    settings = method_table.make_settings(
        fv.work_dir,
        fv.out_dir,
        seeds=fv.seeds,
        train_steps=fv.train_steps,
        eval_every=fv.train_steps // 2,
        mixed_precision=precision.resolve(fv.mixed_precision),
    )
    report = run(
        settings,
        command=shlex.join(["python", "-m", "benchmarks.limited_data_table", *sys.argv[1:]]),
    )
    print(markdown(report))


if __name__ == "__main__":
    define_flags()
    logging.set_verbosity(logging.INFO)
    app.run(main)
