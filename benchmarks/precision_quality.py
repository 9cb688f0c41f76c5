r"""Does mixed_bfloat16 keep the transfer's quality? kp_bn on the demo, float32 vs bfloat16.

  python -m benchmarks.precision_quality
  python -m benchmarks.precision_quality --seeds=3 --work_dir=/tmp/method_table \
      --output=benchmarks/results/precision_quality.md

Trains benchmarks/method_table.py's `kp_bn` unit (the bn stage, and bn+ft) on the offline
demo with the same source, domain classifier, steps, data and seeds, once per precision,
and compares the final domain-classifier FID: bfloat16 keeps the quality when its mean
lies within the float32 seeds' spread. float32 runs that `method_table` already finished
in the same --work_dir are reused (same directory layout), so run it after the table.
"""

import dataclasses
import os
import shlex
import statistics
import sys
import time

from absl import app
from absl import flags

from benchmarks import domain_classifier
from benchmarks import method_table
from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data

POLICIES = ("float32", "mixed_bfloat16")
ROWS = ("kp_bn (bn)", "kp_bn (bn+ft)")


def measure(work_dir, seeds, progress=print):
    """`{policy: {row: [record per seed]}}` (records as method_table writes them)."""
    settings = method_table.make_settings(work_dir, work_dir)
    data_dir = os.path.join(work_dir, "tfds")
    demo_data.prepare(data_dir)
    new_images = method_table.demo_classes(data_dir, demo_data.NEW_CLASSES)
    settings = dataclasses.replace(settings, eval_num_images=data.describe(new_images).num_examples)
    source, _ = method_table.prepare_source(settings, data_dir)
    domain_classifier.ensure(
        data_dir, method_table.classifier_dir(settings), epochs=settings.classifier_epochs
    )
    results = {}
    for policy in POLICIES:
        policy_settings = dataclasses.replace(settings, mixed_precision=policy)
        rows = results.setdefault(policy, {row: [] for row in ROWS})
        for seed in range(seeds):
            ipc = settings.images_per_class
            records = method_table._finished(policy_settings, "kp_bn", ipc, seed)
            if records is None:
                records = method_table.run_unit(
                    policy_settings, "kp_bn", ipc, seed, source, data_dir
                )
            for record in records:
                rows[record["method"]].append(record)
                progress(
                    f"{policy} {record['method']} seed {seed}: final FID "
                    f"{record['fid'][-1]:.2f} ({record['wall_seconds']:.0f} s)"
                )
    return results, settings


def summarize(results):
    """Markdown lines: final FID and KID mean, std, range and wall time per row."""
    lines = [
        "| precision | method | final FID mean ± std (min–max) | final KID mean | "
        "wall s (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for row in ROWS:
        spread = {}
        for policy in POLICIES:
            records = results[policy][row]
            fids = [r["fid"][-1] for r in records]
            kids = [r["kid"][-1] for r in records]
            std = statistics.stdev(fids) if len(fids) > 1 else 0.0
            spread[policy] = (statistics.mean(fids), min(fids), max(fids))
            lines.append(
                f"| {policy} | {row} | {statistics.mean(fids):.2f} ± {std:.2f} "
                f"({min(fids):.2f}–{max(fids):.2f}) | {statistics.mean(kids):.4f} | "
                f"{statistics.mean(r['wall_seconds'] for r in records):.0f} |"
            )
        mean_bf16 = spread["mixed_bfloat16"][0]
        _, low, high = spread["float32"]
        inside = low <= mean_bf16 <= high
        verdicts.append(
            f"{row}: the bfloat16 mean FID {mean_bf16:.2f} is "
            f"{'inside' if inside else 'outside'} the float32 seeds' range "
            f"{low:.2f}–{high:.2f}."
        )
    return lines, verdicts


_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per precision.", lower_bound=2)
_WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/method_table", "method_table's work dir.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the Markdown here.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    start = time.time()
    command = shlex.join(["python", "-m", "benchmarks.precision_quality"] + sys.argv[1:])
    results, settings = measure(_WORK_DIR.value, _SEEDS.value)
    lines, verdicts = summarize(results)
    text = "\n".join(
        [
            "# float32 vs mixed_bfloat16: kp_bn transfer quality on the offline demo",
            "",
            f"`{command}` ({(time.time() - start) / 60:.0f} min; {settings.train_steps} steps, "
            f"{settings.images_per_class} images per class, FID against all "
            f"{settings.eval_num_images} new-class train images in the domain classifier's "
            "features; see method_table.md for the setup and machine).",
            "",
            *lines,
            "",
            *(f"- {v}" for v in verdicts),
            "",
        ]
    )
    print(text)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            f.write(text)


if __name__ == "__main__":
    app.run(main)
