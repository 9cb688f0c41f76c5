"""The report of `benchmarks.transfer_benchmark`: statistics over seeds, Markdown, plots.

`write` renders the report dict that `transfer_benchmark.run` assembles (settings, data,
classifier, source, dev and test rows); `affinity_table` scores kp_bn's learned class
affinities against the data's relations; `side_by_side` draws the same test classes and
latents from every method's final generator under held-out real images.
"""

import json
import os

import numpy as np

from benchmarks import transfer_data
from benchmarks import transfer_runs
from tf_cgan_transfer import data
from tf_cgan_transfer import images as images_lib
from tf_cgan_transfer import metrics

REPORT = "transfer_benchmark"
CURVES = "transfer_curves.png"
PICTURE = "transfer_samples.png"
SAMPLES_PER_CLASS = 2
PICTURE_SEED = 1234
# Columns of the main table: (key, header, digits, scale).
COLUMNS = (
    ("kid", "KID x100 ↓", 2, 100),
    ("fid", "FID ↓", 1, 1),
    ("precision", "precision", 2, 1),
    ("recall", "recall", 2, 1),
    ("class_accuracy", "class acc.", 2, 1),
    ("memorisation_ratio", "memo. ratio", 2, 1),
    ("copy_share", "copies", 2, 1),
)


def _mean_std(values, digits, scale=1):
    values = np.asarray([v for v in values if v is not None], np.float64) * scale
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.{digits}f}"
    return f"{finite.mean():.{digits}f} ± {finite.std(ddof=1):.{digits}f}"


def groups(rows):
    """{(row, augment): [rows over seeds]} in `transfer_runs.ROWS` order, then the kp_bn
    variants' rows in the order they come."""
    names = list(transfer_runs.ROWS)
    names += sorted({r["row"] for r in rows} - set(names), key=[r["row"] for r in rows].index)
    out = {}
    for name in names:
        for r in rows:
            if r["row"] == name:
                out.setdefault((name, r["augment"]), []).append(r)
    return out


def is_variant(row):
    return "@" in row


def finished(rows):
    """The rows whose training did not stop early (see `transfer_runs._failed_rows`)."""
    return [r for r in rows if not r.get("failed")]


def affinity_table(spec, test_rows):
    """Per kp_bn (row, augment): mean over seeds of `transfer_data.affinity_hits` at top 1
    and top 3, and the first seed's top-3 old class names per test class."""
    table = []
    for (row, augment), group in groups(finished(test_rows)).items():
        group = [r for r in group if r["affinity"] is not None]
        if not row.startswith("kp_bn") or not group:
            continue
        entry = dict(row=row, augment=augment, seeds=len(group))
        for k in (1, 3):
            hits = [
                transfer_data.affinity_hits(spec, spec.test_classes, r["affinity"], k)
                for r in group
            ]
            for key in ("related", "same_group"):
                values = [h[key] for h in hits if h[key] is not None]
                entry[f"{key}_top{k}"] = float(np.mean(values)) if values else None
                entry[f"{key}_top{k}_chance"] = hits[0][f"{key}_chance"]
            entry["counted"] = hits[0]["related_counted"]
        for key in transfer_runs.MIXTURE_STATS:
            values = [(r.get("mixtures") or {}).get(key) for r in group]
            values = [v for v in values if v is not None]
            entry[key] = float(np.mean(values)) if values else None
        entry["top3_seed0"] = {
            spec.class_names[n]: [spec.class_names[spec.old_classes[k]] for k in ranked[:3]]
            for n, ranked in zip(spec.test_classes, group[0]["affinity"])
        }
        table.append(entry)
    return table


def _pct(value, digits=0):
    return "n/a" if value is None else f"{value:.{digits}%}"


def markdown(report):
    s, d = report["settings"], report["data"]
    lines = [f"# Transfer benchmark: {d['name']}", ""]
    if s["quick"]:
        lines += ["**QUICK MODE: a smoke run on tiny sizes; the numbers mean nothing.**", ""]
    src = report["source"]
    held = src.get("held_out", {})
    clf = report["classifier"]
    lines += [
        f"Command: `{s['command']}`",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, TensorFlow "
        f"{report['machine']['tensorflow']}, {report['machine']['date']}; total "
        f"{report['total_seconds'] / 60:.1f} min (load average before "
        f"{report['load_before'][0]:.1f}, after {report['load_after'][0]:.1f}).",
        "",
        "## Setup",
        f"* Data: {d['old_classes']} old classes; new dev classes {', '.join(d['dev'])}; new "
        f"test classes {', '.join(d['test'])}. {s['images_per_class']} training images per new "
        f"class; evaluation against every held-out image of the phase's classes "
        f"({d['held_out_dev']} dev, {d['held_out_test']} test), which no training step and "
        "no feature network saw, with as many generated images.",
        f"* Source: BigGAN-32 (ch {s['ch']}, dim_z {s['dim_z']}, shared embedding "
        f"{s['shared_dim']}) trained from scratch on the old classes for {s['source_steps']} "
        f"steps of batch {s['source_batch_size']} (D augmentation: {s['source_augment']}; "
        f"{_ema(s.get('source_ema_decay'))}). "
        "On the old classes' held-out images: KID "
        f"{_fmt(held.get('kid'), 4)}, FID {_fmt(held.get('fid'), 1)}, class accuracy of its "
        f"samples **{_pct(held.get('class_accuracy'))}** (real held-out images: "
        f"{_pct(held.get('real_class_accuracy'))}; chance {1 / max(1, d['old_classes']):.1%})."
        + _source_curve(report["source"].get("curve")),
        f"* Feature network: a domain classifier trained on the train images of all classes "
        f"({clf.get('num_train')} images, {clf.get('epochs')} epochs); held-out accuracy "
        f"{_pct(clf.get('test_accuracy'))}. KID and FID are in its 64-d pooled features.",
        f"* Every run: {s['train_steps']} iterations of batch {s['batch_size']}, Adam (0, 0.999), "
        f"eps 1e-6, l1 = l2 = 0.01 (kp_bn), evaluations every {s['eval_every']} steps; two-stage "
        "runs switch stage at an evaluation (kp_bn bn+ft: bn for 2/3 of the steps; minegan: "
        "miner alone for 1/2). Learning-rate pairs (G, D) of the sweep: "
        + ", ".join(f"{g:g}/{dd:g}" for g, dd in s["learning_rates"])
        + f"; chosen per row and augmentation by final KID on the dev classes (seed 0). "
        f"{s['seeds']} seed(s) on the test classes; {s['workers']} runs at a time.",
        "",
    ]
    lines += _main_table(report)
    lines += _variant_lines(report)
    lines += _affinity_lines(report)
    lines += _per_class_lines(report)
    lines += ["", f"![KID curves]({CURVES})", "", f"![samples]({PICTURE})", ""]
    return "\n".join(lines) + "\n"


def _source_curve(curve):
    if not curve:
        return ""
    points = ", ".join(
        f"{_pct(r['class_accuracy'], 1)} (KID {_fmt(r['kid'], 3)}) at step {r['step']:,}"
        for r in curve
    )
    return f" During pre-training (its sampling G, the EMA one when kept), class accuracy {points}."


def _ema(decay):
    if not decay:
        return "no EMA: the transfers start from the last G"
    return f"EMA of G with decay {decay:g}, which the transfers start from, with the trained D"


def _fmt(value, digits):
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _main_table(report):
    header = ["method", "aug.", "lr G/D"] + [c[1] for c in COLUMNS]
    header += ["best KID x100 (step)", "trainable G / D", "wall s"]
    lines = [
        "## Test classes: final step (mean ± std over seeds)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for (row, augment), group in groups(report["test_rows"]).items():
        failed = len(group) - len(finished(group))
        label = f"{row} ({failed} of {len(group)} diverged)" if failed else row
        cells = [label, augment, f"{group[0]['g_lr']:g}/{group[0]['d_lr']:g}"]
        for key, _, digits, scale in COLUMNS:
            cells.append(_mean_std([r["final"][key] for r in group], digits, scale))
        best = [r["best"]["kid"] for r in group]
        steps = sorted({r["best"]["step"] for r in finished(group)})
        cells.append(f"{_mean_std(best, 2, 100)} ({', '.join(str(x) for x in steps)})")
        params = next((r["params"] for r in group if r["params"]), None)
        text = "n/a" if params is None else f"{params[0]:,} / {params[1]:,}"
        if params and len(params) == 4:  # two stages
            text += f", then {params[2]:,} / {params[3]:,}"
        cells.append(text)
        cells.append(_mean_std([r["wall_seconds"] for r in group], 0))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Best KID is the lowest over the run's evaluations on the same held-out images: "
        "an optimistic figure, as the step is chosen on the data it is reported on. "
        "Memo. ratio: median distance of generated images to their nearest training image "
        "over that of held-out real images (below 1: closer to the training images than "
        "real data is); copies: share of generated images nearer a training image than "
        "any held-out image is.",
        "",
    ]
    dev = report["dev_rows"]
    if dev:
        lines += ["## Dev classes: the learning-rate sweep (final KID x100, seed 0)", ""]
        pairs = sorted({(r["g_lr"], r["d_lr"]) for r in dev})
        lines += ["| method | aug. | " + " | ".join(f"{g:g}/{d:g}" for g, d in pairs) + " |"]
        lines += ["|---|---|" + "---|" * len(pairs)]
        for (row, augment), group in groups(dev).items():
            by_pair = {(r["g_lr"], r["d_lr"]): r["final"]["kid"] for r in group}
            chosen = tuple(report["chosen"][f"{row}|{augment}"])
            cells = []
            for pair in pairs:
                text = _fmt(by_pair.get(pair, float("nan")) * 100, 2)
                cells.append(f"**{text}**" if pair == chosen else text)
            lines.append(f"| {row} | {augment} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _variant_lines(report):
    variants = report.get("kp_variants")
    if not variants:
        return []
    g, d = variants["lrs"]
    lines = [
        "## kp_bn variants: what makes the mixtures learn",
        "",
        f"Each `kp_bn@NAME (bn)` row trains the bn stage alone for the whole budget at the "
        f"setting `kp_bn (bn)` chose on dev ({variants['augment']}, lr {g:g}/{d:g}), with "
        "these changes: "
        + "; ".join(
            f"{name}: "
            + ", ".join(f"{k}={v}" for k, v in transfer_runs.KP_VARIANTS[name].items())
            for name in variants["names"]
        )
        + ". In the tables above and below. Lowest final KID on the dev classes (seed 0): "
        f"**{variants['dev_choice'] or 'n/a (no dev phase)'}**.",
        "",
    ]
    return lines


def _affinity_lines(report):
    table = report.get("affinity") or []
    if not table:
        return []
    lines = [
        "## kp_bn: do the learned affinities point at related old classes?",
        "",
        "Share of test classes whose top-1 / top-3 learned affinity (mean mixture weight "
        "over all BN layers) is an upgrade parent or child (related), or of the same race; "
        "chance in brackets. Did the mixtures learn at all: ‖A − A₀‖/‖A₀‖ and the "
        "correlation of A with its initialisation A₀ (1: unchanged pattern), the share of "
        "each class's mixture mass in its top 5 old classes and the entropy (units of log K).",
        "",
        "| row | aug. | related top-1 | related top-3 | same race top-1 | same race top-3 "
        "| change | corr. with A₀ | top-5 share | entropy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    number = lambda v: "n/a" if v is None else f"{v:.3f}"
    for e in table:
        cells = [e["row"], e["augment"]]
        for key in ("related_top1", "related_top3", "same_group_top1", "same_group_top3"):
            cells.append(f"{_pct(e[key])} ({_pct(e[key + '_chance'])})")
        cells += [number(e.get(key)) for key in transfer_runs.MIXTURE_STATS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Seed 0's top 3 (first row): "]
    for name, tops in table[0]["top3_seed0"].items():
        lines.append(f"* {name}: {', '.join(tops)}")
    return lines + [""]


def _per_class_lines(report):
    rows = groups(report["test_rows"])
    if not rows:
        return []
    classes = report["data"]["test"]
    lines = [
        "## Class accuracy of samples per test class (final step, mean over seeds)",
        "",
        "| method | aug. | " + " | ".join(classes) + " |",
        "|---|---|" + "---|" * len(classes),
    ]
    for (row, augment), group in rows.items():
        cells = []
        for i in range(len(classes)):
            values = []
            for r in group:
                per_class = r["final"].get("per_class") or {}
                entry = per_class.get(str(i)) or per_class.get(i) or {}
                values.append(entry.get("class_accuracy", entry.get("accuracy")))
            cells.append(_mean_std(values, 2))
        lines.append(f"| {row} | {augment} | " + " | ".join(cells) + " |")
    return lines + [""]


def plot_curves(report, path):
    """KID vs step of every row (mean over seeds), one panel per augmentation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    augments = report["settings"]["augments"]
    figure, axes = plt.subplots(1, len(augments), figsize=(6 * len(augments), 4.5), squeeze=False)
    colours = {}
    for (row, augment), group in groups(finished(report["test_rows"])).items():
        ax = axes[0][augments.index(augment)]
        colour = colours.setdefault(row, f"C{len(colours) % 10}")
        steps = group[0]["curve"]["steps"]
        kid = np.array([r["curve"]["kid"] for r in group], np.float64) * 100
        style = "--" if is_variant(row) else "-"  # (colours repeat after ten rows)
        ax.plot(steps, np.nanmean(kid, 0), style, marker="o", ms=3, color=colour, label=row)
        if len(group) > 1 and not is_variant(row):
            ax.fill_between(steps, np.nanmin(kid, 0), np.nanmax(kid, 0), color=colour, alpha=0.15)
    for ax, augment in zip(axes[0], augments):
        ax.set(
            xlabel="step", ylabel="KID x100 (test classes, held out)", title=f"D aug.: {augment}"
        )
        ax.legend(fontsize=7)
    if report["settings"]["quick"]:
        figure.suptitle("QUICK MODE: a smoke run, the numbers mean nothing", color="red")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _picture_rows(test_rows, dev_rows):
    """Per method row (not the kp_bn variants), the seed-0 test record of its augmentation
    with the lower dev KID (the first augmentation when there was no dev phase)."""
    chosen = {}
    for (row, augment), group in groups(finished(test_rows)).items():
        if is_variant(row):
            continue
        dev = [r["final"]["kid"] for r in dev_rows if r["row"] == row and r["augment"] == augment]
        score = min((k for k in dev if k == k), default=float("inf"))
        seed0 = min(group, key=lambda r: r["seed"])
        if row not in chosen or score < chosen[row][0]:
            chosen[row] = (score, seed0)
    return [(row, record) for row, (_, record) in chosen.items()]


def held_out_examples(spec, classes, per_class):
    """The first `per_class` held-out images of each class, uint8 `[N, per_class, R, R, 3]`."""
    import tensorflow as tf

    config = spec.held_out_of(classes)
    plan = data.validate(config)
    dataset = data.make_dataset(plan, 1, repeat=False, shuffle=False)
    found = {i: [] for i in range(len(classes))}
    for image, label in dataset:
        bucket = found[int(label[0])]
        if len(bucket) < per_class:
            bucket.append(images_lib.to_uint8(image[0]).numpy())
    blank = np.zeros([config.resolution, config.resolution, 3], np.uint8)
    rows = [[found[i][j] if j < len(found[i]) else blank for j in range(per_class)] for i in found]
    return tf.constant(np.array(rows, np.uint8))


def side_by_side(settings, spec, test_rows, dev_rows, path):
    """One row of images per method (its final generator, seed 0), the same test classes
    and latents, under a row of held-out real images; row labels on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from tf_cgan_transfer import model_io
    from tf_cgan_transfer import sampling

    n, k = len(spec.test_classes), SAMPLES_PER_CLASS
    labels = np.repeat(np.arange(n), k).astype(np.int32)
    strips = [
        (
            "held-out real",
            tf.reshape(
                held_out_examples(spec, spec.test_classes, k),
                [-1, *[spec.held_out.resolution] * 2, 3],
            ),
        )
    ]
    for row, record in _picture_rows(test_rows, dev_rows):
        generator = model_io.load_generator(record["run_dir"])
        z = sampling.seeded_latents(PICTURE_SEED + np.arange(n * k), generator.dim_z, 1.0)
        strips.append(
            (
                f"{row} ({record['augment']})",
                images_lib.to_uint8(sampling.generate(generator, z, labels)),
            )
        )
        tf.keras.backend.clear_session()
    grid = images_lib.make_grid(tf.concat([s for _, s in strips], 0), len(strips)).numpy()
    height = grid.shape[0] / grid.shape[1] * 12
    figure, ax = plt.subplots(figsize=(12, max(3.0, height + 1.0)))
    ax.imshow(grid, interpolation="nearest")
    cell = grid.shape[0] / len(strips)
    ax.set_yticks(
        [cell * (i + 0.5) for i in range(len(strips))], [s for s, _ in strips], fontsize=8
    )
    width = grid.shape[1] / n
    ax.set_xticks(
        [width * (i + 0.5) for i in range(n)],
        spec.names(spec.test_classes),
        fontsize=7,
        rotation=20,
    )
    ax.tick_params(length=0)
    title = f"test classes, {k} latents each (seed {PICTURE_SEED}); final generators, seed 0"
    if settings.quick:
        title = "QUICK MODE: meaningless. " + title
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def write(report, out_dir):
    """Writes transfer_benchmark.{json,md} and the curves into `out_dir`; returns paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{REPORT}.json")
    md_path = os.path.join(out_dir, f"{REPORT}.md")
    with open(json_path, "w") as f:
        json.dump(metrics.json_safe(report), f, indent=1)
    with open(md_path, "w") as f:
        f.write(markdown(report))
    plot_curves(report, os.path.join(out_dir, CURVES))
    return json_path, md_path
