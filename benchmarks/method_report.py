"""The report of `benchmarks.method_table`: statistics over seeds, Markdown, plot, JSON.

Functions of the report dict that `method_table.run` assembles (settings, setup, per-run
records, classifier, source, machine); no training or evaluation happens here.
"""

import datetime
import json
import math
import os
import platform

import numpy as np

from tf_cgan_transfer import metrics

# Rows of the main table, in order, and the rows of the images-per-class sweep.
ROWS = ("kp_bn (bn)", "kp_bn (bn+ft)", "bn_only", "finetune", "freeze_d", "scratch")
SWEEP_ROWS = ("kp_bn (bn)", "finetune")


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


def machine_info(tensorflow_version):
    """CPU model, cores, versions and the date (UTC)."""
    model = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1] for line in f if line.startswith("model name")]
        model = names[0].strip() if names else model
    return dict(
        cpu=model,
        cores=os.cpu_count(),
        tensorflow=tensorflow_version,
        python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _main_rows(report):
    ipc = report["settings"]["images_per_class"]
    rows = [r for r in report["aggregates"] if r["images_per_class"] == ipc]
    return sorted(rows, key=lambda r: ROWS.index(r["method"]))


def _pm(stats, i, digits=2):
    """`mean ± std` of point i (just the mean for one seed)."""
    mean, std = stats["mean"][i], stats["std"][i]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (
        f" ± {std:.{digits}f}" if std is not None and math.isfinite(std) else ""
    )


def _params(params):
    """G and D cells: `[g, d]`, or `[g_bn, d_bn, g_ft, d_ft]` for the two-stage row."""
    if len(params) == 4:
        return f"bn {params[0]:,} / ft {params[2]:,}", f"{params[1]:,} / {params[3]:,}"
    return f"{params[0]:,}", f"{params[1]:,}"


def _load(values):
    return " / ".join(f"{x:.2f}" for x in values)


def markdown(report):
    """The Markdown report: setup, summary table, per-step tables, sweep, run details."""
    s, setup, clf = report["settings"], report["setup"], report["classifier"]
    main = _main_rows(report)
    steps = max((r["steps"] for r in main), key=len)
    lines = ["# Method comparison on cgan_demo_shapes (CPU scale)", ""]
    if s["quick"]:
        lines += [
            "> **QUICK MODE (CI smoke run): a few steps, one seed, a barely trained source and",
            "> classifier. These numbers mean nothing; run without --quick for the comparison.**",
            "",
        ]
    weak = "" if clf["test_accuracy"] > 0.95 else " — **below 95%: these FIDs mean little**"
    bn_steps = report["bn_steps"]
    available = setup["real_images_available"]
    real = "all of them" if s["eval_num_images"] >= available else f"drawn from all {available:,}"
    lines += [
        f"Source: the demo's BigGAN-32 (ch 8), pre-trained {s['source_steps']} steps on the 12 "
        "old classes (configs/demo_source.flags). Transfer to the 4 new classes as "
        f"configs/demo_transfer.flags (batch {setup['batch_size']}, G/D lr {setup['g_lr']:g}/"
        f"{setup['d_lr']:g}, l1 {setup['l1_scale']:g}, l2 {setup['l2_scale']:g}) for "
        f"{s['train_steps']} steps, {s['images_per_class']} training images per class, "
        + (f"seeds 0–{s['seeds'] - 1}" if s["seeds"] > 1 else "seed 0")
        + f". kp_bn (bn+ft): the bn stage for {bn_steps} steps, then the ft "
        f"stage for {s['train_steps'] - bn_steps} steps from its models.",
        "",
        f"FID, KID and mean per-class FID: {s['eval_num_images']} generated images against "
        f"{s['eval_num_images']} real train images of the new classes ({real}, not only the "
        f"training subset), in the {setup['classifier_features']}-d penultimate features "
        "of a domain classifier (benchmarks/domain_classifier.py) whose test accuracy on all "
        f"16 classes is **{clf['test_accuracy']:.2%}** ({clf['num_test']} images){weak}. "
        "Cells are mean ± std over seeds; lower is better.",
        "",
        "| method | trainable G | trainable D | final FID | final KID | final per-class FID "
        "| wall time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in main:
        g, d = _params(r["params"])
        lines.append(
            f"| {r['method']} | {g} | {d} | {_pm(r['fid'], -1)} | {_pm(r['kid'], -1, 3)} | "
            f"{_pm(r['mean_per_class_fid'], -1)} | {_pm(r['wall_seconds'], 0, 0)} |"
        )
    lines += [
        "",
        "Wall time: model building, tracing, training and the periodic evaluations of the "
        "row's runs"
        + (
            f", with {s['workers']} runs sharing the CPU at a time"
            if s["workers"] > 1
            else ", one run at a time"
        )
        + ". kp_bn (bn) includes one extra build and trace: it pauses at the bn+ft stage "
        "boundary and resumes. The machine is shared (see the load below): times are "
        "indicative.",
        "",
    ]
    for key, title, digits in (
        ("fid", "FID", 2),
        ("kid", "KID", 3),
        ("mean_per_class_fid", "Mean per-class FID", 2),
    ):
        lines += [
            f"### {title} by step",
            "",
            "| method | " + " | ".join(str(step) for step in steps) + " |",
            "| --- |" + " ---: |" * len(steps),
        ]
        for r in main:
            cells = [
                _pm(r[key], r["steps"].index(step), digits) if step in r["steps"] else "–"
                for step in steps
            ]
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines.append("")
    sweep = sorted(s["sweep_images_per_class"])
    shared = (
        f" ({s['seeds']} at {s['images_per_class']}: the main table's runs)"
        if s["images_per_class"] in sweep
        else ""
    )
    lines += [
        f"### Images per class: FID after {s['train_steps']} steps",
        "",
        f"Seeds: {s['sweep_seeds']}{shared}.",
        "",
        "| method | " + " | ".join(f"{k} / class" for k in sweep) + " |",
        "| --- |" + " ---: |" * len(sweep),
    ]
    for method in SWEEP_ROWS:
        cells = {
            r["images_per_class"]: _pm(r["fid"], -1)
            for r in report["aggregates"]
            if r["method"] == method
        }
        lines.append(f"| {method} | " + " | ".join(cells.get(k, "–") for k in sweep) + " |")
    m, src = report["machine"], report["source"]
    source_time = "reused" if src["reused"] else f"{src['seconds']:.0f} s"
    classifier_time = "reused" if clf["reused"] else f"{clf['seconds']:.0f} s"
    lines += [
        "",
        "### Run",
        "",
        f"Command: `{s['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; TensorFlow {m['tensorflow']}, Python "
        f"{m['python']}; {m['date']}. Load average (1/5/15 min) before "
        f"{_load(report['load_before'])}, after {_load(report['load_after'])}.",
        "",
        f"Total {report['total_seconds'] / 60:.1f} min (source pre-training {source_time}, "
        f"domain classifier {classifier_time}). Raw numbers: method_table.json; plot: "
        "method_table.png.",
        "",
    ]
    return "\n".join(lines)


def plot(report, path):
    """FID vs steps per method (mean line, min–max band) and the images-per-class sweep."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    s = report["settings"]
    colours = {label: f"C{i}" for i, label in enumerate(ROWS)}  # the same in both panels
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in _main_rows(report):
        colour = colours[r["method"]]
        left.plot(r["steps"], r["fid"]["mean"], marker="o", ms=3, color=colour, label=r["method"])
        left.fill_between(r["steps"], r["fid"]["min"], r["fid"]["max"], color=colour, alpha=0.2)
    left.axvline(report["bn_steps"], color="grey", ls=":", lw=1)
    left.text(report["bn_steps"], left.get_ylim()[1], " bn → ft", va="top", fontsize=8)
    left.set(
        xlabel="step",
        ylabel="FID (domain classifier)",
        title=f"{s['images_per_class']} images/class, {s['seeds']} seed(s); band: min–max",
    )
    left.legend(fontsize=8)
    for method in SWEEP_ROWS:
        rows = sorted(
            (r for r in report["aggregates"] if r["method"] == method),
            key=lambda r: r["images_per_class"],
        )
        mean = np.array([r["fid"]["mean"][-1] for r in rows])
        low = mean - np.array([r["fid"]["min"][-1] for r in rows])
        high = np.array([r["fid"]["max"][-1] for r in rows]) - mean
        right.errorbar(
            [r["images_per_class"] for r in rows],
            mean,
            yerr=[low, high],
            marker="o",
            capsize=3,
            color=colours[method],
            label=method,
        )
    sweep = sorted(s["sweep_images_per_class"])
    right.set_xscale("log")
    right.set_xticks(sweep, [str(k) for k in sweep])
    right.minorticks_off()
    right.set(
        xlabel="images per class",
        ylabel=f"FID at step {s['train_steps']}",
        title="images-per-class sweep; bars: min–max over seeds",
    )
    right.legend(fontsize=8)
    if s["quick"]:
        figure.suptitle("QUICK MODE: a smoke run, the numbers mean nothing", color="red")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(report, out_dir):
    """Writes method_table.{json,md,png} into `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"method_table.{ext}") for ext in ("json", "md", "png")]
    with open(paths[0], "w") as f:
        json.dump(metrics.json_safe(report), f, indent=2)
    with open(paths[1], "w") as f:
        f.write(markdown(report))
    plot(report, paths[2])
    return paths
