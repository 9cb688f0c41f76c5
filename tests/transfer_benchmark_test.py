"""Tests of benchmarks/transfer_benchmark.py: settings, the sweep's choice, --quick end to end."""

import dataclasses
import glob
import json
import os
import shutil
import tempfile

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from benchmarks import transfer_benchmark
from benchmarks import transfer_data
from benchmarks import transfer_report
from benchmarks import transfer_runs
from tests import wesnoth_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import model_io
from tf_cgan_transfer import transfer


def _settings(**overrides):
    return transfer_benchmark.make_settings("/tmp/w", "/tmp/o", **overrides)


def _dev_row(row, augment, lrs, kid):
    return dict(row=row, augment=augment, g_lr=lrs[0], d_lr=lrs[1], final=dict(kid=kid))


class SettingsTest(tf.test.TestCase):
    def test_validation(self):
        with self.assertRaisesRegex(ValueError, "multiple of eval_every"):
            _settings(train_steps=250, eval_every=100)
        with self.assertRaisesRegex(ValueError, "Unknown units"):
            _settings(units=("kp_bn", "gan"))
        with self.assertRaisesRegex(ValueError, "learning_rates must be >= 1"):
            _settings(learning_rates=())
        with self.assertRaisesRegex(ValueError, "Unknown kp_bn variant 'kp_bn@a99'.*a10_p0"):
            _settings(kp_variants=("a99",))
        with self.assertRaisesRegex(ValueError, "add kp_bn to units"):
            _settings(units=("scratch",), kp_variants=("a10",))
        self.assertEqual(_settings(units=("scratch",)).kp_variants, ())  # none by default

    def test_a_variant_changes_only_what_its_name_says(self):
        s = _settings()

        class Spec:  # the parts of a transfer_data spec that transfer_config reads
            held_out_of = train_of = staticmethod(lambda *args: None)

        original = transfer_runs.held_out_evaluation
        transfer_runs.held_out_evaluation = lambda *args: {}
        try:
            config = lambda unit: transfer_runs.transfer_config(
                s, Spec, "/tmp/r", unit, "none", (1e-3, 2e-4), 0, [9], "/src"
            )
            base, variant = config("kp_bn"), config("kp_bn@prior_nosn_a10_p0")
        finally:
            transfer_runs.held_out_evaluation = original
        self.assertEqual((variant.method, variant.stage), ("kp_bn", "bn"))
        self.assertEqual((variant.mixture_init, variant.mixture_spectral_norm), ("prior", False))
        self.assertEqual(variant.optimizer.lr_scales(), dict(a=10.0, r=1.0, p=0.0))
        self.assertEqual(base.optimizer.lr_scales(), dict(a=1.0, r=1.0, p=1.0))
        unchanged = dict(mixture_init="orthogonal", mixture_spectral_norm=True)
        self.assertEqual(
            dataclasses.replace(variant, optimizer=base.optimizer, **unchanged), base
        )
        self.assertEqual(transfer_runs.unit_rows("kp_bn@a10"), ("kp_bn@a10 (bn)",))
        self.assertEqual(transfer_runs.row_unit("kp_bn@a10 (bn)"), "kp_bn@a10")
        self.assertEqual(transfer_runs.row_unit("kp_bn (bn+ft)"), "kp_bn")

    def test_first_stage_is_an_evaluation_step(self):
        s = _settings(train_steps=300, eval_every=100)
        self.assertEqual(s.first_stage_steps("kp_bn"), 200)  # 2/3
        self.assertEqual(s.first_stage_steps("minegan"), 200)  # 1/2 of 300 -> nearest 100
        self.assertEqual(_settings(train_steps=4, eval_every=2).first_stage_steps("minegan"), 2)

    def test_quick_mode_has_one_pair_and_no_dev_phase(self):
        quick = _settings(quick=True)
        self.assertLen(quick.learning_rates, 1)
        self.assertEqual(transfer_benchmark.dev_items(quick), [])
        self.assertEqual(quick.rows(), transfer_runs.ROWS)  # every method, even in a smoke run
        full = _settings()
        self.assertLen(
            transfer_benchmark.dev_items(full),
            len(transfer_runs.UNITS) * len(full.augments) * len(full.learning_rates),
        )

    def test_learning_rate_flag(self):
        fv = flags.FlagValues()
        transfer_benchmark.define_flags(fv)
        fv(["prog", "--learning_rates=1e-4/4e-4,2e-3/2e-4", "--units=kp_bn,scratch"])
        s = transfer_benchmark.settings_from_flags(fv)
        self.assertEqual(s.learning_rates, ((1e-4, 4e-4), (2e-3, 2e-4)))
        self.assertEqual(s.rows(), ("kp_bn (bn)", "kp_bn (bn+ft)", "scratch"))
        fv(["prog", "--learning_rates=1e-4"])
        with self.assertRaisesRegex(ValueError, "G/D pairs"):
            transfer_benchmark.settings_from_flags(fv)


class ChoiceTest(tf.test.TestCase):
    def test_each_row_takes_its_lowest_dev_kid_and_test_items_serve_both_kp_bn_rows(self):
        a, b = (1e-4, 4e-4), (2e-3, 2e-4)
        s = _settings(units=("kp_bn", "scratch"), augments=("none",), learning_rates=(a, b))
        dev = [
            _dev_row("kp_bn (bn)", "none", a, 0.30),
            _dev_row("kp_bn (bn)", "none", b, 0.10),
            _dev_row("kp_bn (bn+ft)", "none", a, 0.20),
            _dev_row("kp_bn (bn+ft)", "none", b, 0.25),
            _dev_row("scratch", "none", a, float("nan")),  # a diverged run never wins
            _dev_row("scratch", "none", b, 0.90),
        ]
        chosen = transfer_benchmark.choose(s, dev)
        self.assertEqual(
            chosen,
            {("kp_bn (bn)", "none"): b, ("kp_bn (bn+ft)", "none"): a, ("scratch", "none"): b},
        )
        items = transfer_benchmark.test_items(dataclasses.replace(s, seeds=2), chosen)
        self.assertEqual(
            items,
            [
                ("test", "kp_bn", "none", b, 0),
                ("test", "kp_bn", "none", a, 0),
                ("test", "scratch", "none", b, 0),
                ("test", "kp_bn", "none", b, 1),
                ("test", "kp_bn", "none", a, 1),
                ("test", "scratch", "none", b, 1),
            ],
        )
        # Each kp_bn item yields both rows; only the row that chose its pair is kept.
        ran = [
            dict(row=row, augment="none", g_lr=lrs[0], d_lr=lrs[1])
            for lrs in (a, b)
            for row in ("kp_bn (bn)", "kp_bn (bn+ft)")
        ]
        kept = transfer_benchmark.test_rows(ran, chosen)
        self.assertEqual(
            [(r["row"], (r["g_lr"], r["d_lr"])) for r in kept],
            [("kp_bn (bn+ft)", a), ("kp_bn (bn)", b)],
        )


class VariantChoiceTest(tf.test.TestCase):
    def test_variants_train_at_kp_bn_bn_s_better_dev_setting_and_the_lowest_dev_kid_wins(self):
        a, b = (1e-4, 4e-4), (2e-3, 2e-4)
        s = _settings(units=("kp_bn",), learning_rates=(a, b), kp_variants=("a10", "prior"))
        chosen = {("kp_bn (bn)", "none"): a, ("kp_bn (bn)", "diffaugment"): b}
        dev = [
            _dev_row("kp_bn (bn)", "none", a, 0.30),
            _dev_row("kp_bn (bn)", "none", b, 0.05),  # not chosen: its pair lost on "none"?
            _dev_row("kp_bn (bn)", "diffaugment", b, 0.20),
        ]
        dev[1]["final"]["kid"] = 0.35  # (choose() picked a for "none")
        augment, lrs = transfer_benchmark.variant_setting(s, chosen, dev)
        self.assertEqual((augment, lrs), ("diffaugment", b))
        self.assertEqual(
            transfer_benchmark.variant_items(s, "dev", augment, lrs),
            [("dev", "kp_bn@a10", "diffaugment", b, 0), ("dev", "kp_bn@prior", "diffaugment", b, 0)],
        )
        self.assertLen(transfer_benchmark.variant_items(s, "test", augment, lrs), 2 * s.seeds)
        quick = _settings(quick=True)
        self.assertEqual(transfer_benchmark.variant_items(quick, "dev", "none", a), [])
        for row in dev:
            row["unit"] = transfer_runs.row_unit(row["row"])
        ran = [dict(_dev_row(f"kp_bn@{v} (bn)", augment, b, k), unit=f"kp_bn@{v}")
               for v, k in (("a10", 0.15), ("prior", float("nan")))]
        self.assertEqual(
            transfer_benchmark.choose_variant(dev + ran, augment, b), "kp_bn@a10 (bn)"
        )
        ran[0]["final"]["kid"] = 0.25
        self.assertEqual(transfer_benchmark.choose_variant(dev + ran, augment, b), "kp_bn (bn)")
        self.assertIsNone(transfer_benchmark.choose_variant([], augment, b))


class SummaryTest(tf.test.TestCase):
    def test_final_and_best_of_evaluation_records(self):
        evals = [
            dict(step=0, kid=0.5, fid=9.0),
            dict(step=2, kid=0.2, fid=7.0, class_accuracy=0.5),
            dict(step=4, kid=0.3, fid=6.0),
        ]
        curve, final, best = transfer_runs._summary(evals)
        self.assertEqual(curve["steps"], [0, 2, 4])
        self.assertEqual(curve["kid"], [0.5, 0.2, 0.3])
        self.assertEqual((final["step"], final["fid"]), (4, 6.0))
        self.assertTrue(np.isnan(final["class_accuracy"]))
        self.assertEqual((best["step"], best["class_accuracy"]), (2, 0.5))


class QuickModeTest(tf.test.TestCase):
    """--quick on the fake Wesnoth data (7 classes): one source, every stage kind."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        core = wesnoth_fixtures.write_fake_core(os.path.join(cls.root, "game"))
        cls.spec = transfer_data.wesnoth_spec(
            os.path.join(cls.root, "tfds"), core, 32, num_dev=1, num_test=1
        )
        # kp_bn alone, the richest path (two stages, a pause and a resume, affinities):
        # every run costs a model build and a trace (~40 s here), and the other units
        # differ only in the method name the trainer gets (their models and trainable
        # sets are transfer_test's).
        cls.settings = transfer_benchmark.make_settings(
            os.path.join(cls.root, "work"),
            os.path.join(cls.root, "out"),
            quick=True,
            units=("kp_bn",),
            command="tests/transfer_benchmark_test.py (quick)",
        )
        cls.report = transfer_benchmark.run(cls.settings, cls.spec, progress=logging.info)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_roles_of_the_fake_data(self):
        spec = self.spec
        self.assertLen(spec.old_classes, 5)
        new = spec.dev_classes + spec.test_classes
        for c in new:  # each new class keeps a related old class (its upgrade parent)
            self.assertNotEmpty(spec.relations[c])
            self.assertTrue(set(spec.relations[c]) <= set(spec.old_classes))

    def test_writes_the_report_files(self):
        out = self.settings.out_dir
        for name in ("transfer_benchmark.md", "transfer_benchmark.json", transfer_report.CURVES):
            self.assertTrue(os.path.exists(os.path.join(out, name)), name)
        with open(os.path.join(out, "transfer_benchmark.md")) as f:
            text = f.read()
        self.assertIn("QUICK MODE", text)
        self.assertIn("tests/transfer_benchmark_test.py (quick)", text)
        for row in self.settings.rows() + ("kp_bn@prior_nosn_a10_p0 (bn)",):
            self.assertIn(f"| {row} | diffaugment |", text)
        self.assertIn("## kp_bn variants", text)
        picture = tf.io.decode_png(tf.io.read_file(os.path.join(out, transfer_report.PICTURE)))
        self.assertEqual(picture.shape[-1], 4)  # matplotlib's RGBA
        with open(os.path.join(out, "transfer_benchmark.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["data"]["test"], self.spec.names(self.spec.test_classes))

    def test_every_row_is_evaluated_at_every_step(self):
        rows = self.report["test_rows"]
        variant = "kp_bn@prior_nosn_a10_p0 (bn)"  # quick mode's one variant
        self.assertEqual(sorted(r["row"] for r in rows), sorted(self.settings.rows() + (variant,)))
        for r in rows:
            self.assertEqual(r["curve"]["steps"], [0, 2, 4], r["row"])
            self.assertTrue(np.all(np.isfinite(r["curve"]["kid"])), r["row"])
            self.assertBetween(r["final"]["class_accuracy"], 0.0, 1.0)
            self.assertEqual(r["final"]["step"], 4)
        by_row = {r["row"]: r for r in rows}
        # bn then ft: the first 2 steps are the bn run's (the same evaluations).
        bn, bn_ft = by_row["kp_bn (bn)"]["curve"]["kid"], by_row["kp_bn (bn+ft)"]["curve"]["kid"]
        self.assertEqual(bn[:2], bn_ft[:2])
        self.assertNotEqual(bn[2], bn_ft[2])

    def test_the_full_source_keeps_an_ema_and_a_held_out_curve(self):
        full = dataclasses.replace(
            self.settings, source_steps=16000, source_ema_decay=0.999, source_eval_every=2000
        )
        config = transfer_runs.source_config(full, self.spec)
        old = self.spec.old_classes
        self.assertEqual(config.ema_decay, 0.999)
        self.assertEqual(config.eval_every, 2000)
        self.assertEqual(config.eval_data, self.spec.held_out_of(old))
        self.assertEqual(config.classifier_classes, tuple(old))
        self.assertEqual(config.eval_num_images, transfer_runs.num_held_out(self.spec, old))
        self.assertIn("_s16000_b32_diffaugment_ema0.999_", config.model_dir)
        last_iterate = dataclasses.replace(full, source_ema_decay=0.0)
        self.assertNotIn("_ema", transfer_runs.source_dir(last_iterate))
        text = transfer_report._source_curve(
            [dict(step=2000, kid=0.5, fid=3.0, class_accuracy=0.123)]
        )
        self.assertIn("12.3% (KID 0.500) at step 2,000", text)

    def test_transfers_start_from_the_ema_generator_and_the_trained_d(self):
        layout = model_io.RunLayout(transfer_runs.source_dir(self.settings))
        g, d = model_io.restore_models(os.path.join(layout.root, transfer_runs.TRANSFER_SOURCE))
        ema_g, _ = model_io.restore_models(layout.ema_models_dir)
        last_g, trained_d = model_io.restore_models(layout.models_dir)
        self.assertEqual([w.name for w in g.weights], [w.name for w in ema_g.weights])
        for ours, theirs in zip(g.weights + d.weights, ema_g.weights + trained_d.weights):
            self.assertAllEqual(ours, theirs)
        moved = [not np.array_equal(a, b) for a, b in zip(g.weights, last_g.weights)]
        self.assertTrue(any(moved))  # the average is not the last iterate

    def test_parameter_counts_match_an_independent_count(self):
        source = transfer_runs.source_dir(self.settings)
        n = len(self.spec.test_classes)
        bn = transfer.build(transfer.TransferConfig("kp_bn", n, stage="bn"), source=source)
        ft = transfer.trainable_variables(
            bn.generator, bn.discriminator, transfer.TransferConfig("kp_bn", n, stage="ft")
        )
        counts = [biggan.count_parameters(v) for v in (bn.g_variables, bn.d_variables, *ft)]
        by_row = {r["row"]: r for r in self.report["test_rows"]}
        self.assertEqual(by_row["kp_bn (bn)"]["params"], counts[:2])
        self.assertEqual(by_row["kp_bn (bn+ft)"]["params"], counts)
        self.assertLess(counts[0], counts[2])  # the bn stage trains a fraction of G
        # The variant freezes P (p_lr_scale 0): a zero-rate variable is not trained at all.
        self.assertLess(by_row["kp_bn@prior_nosn_a10_p0 (bn)"]["params"][0], counts[0])

    def test_source_and_classifier_are_scored_on_held_out_images(self):
        held_out = self.report["source"]["held_out"]
        self.assertBetween(held_out["class_accuracy"], 0.0, 1.0)
        self.assertEqual(
            held_out["num_real"], transfer_runs.num_held_out(self.spec, self.spec.old_classes)
        )
        self.assertBetween(self.report["classifier"]["test_accuracy"], 0.0, 1.0)
        self.assertEqual(self.report["source"]["curve"], [])  # quick: no source curve

    def test_affinity_rows_name_old_classes(self):
        table = self.report["affinity"]
        self.assertEqual(
            [e["row"] for e in table],
            ["kp_bn (bn)", "kp_bn (bn+ft)", "kp_bn@prior_nosn_a10_p0 (bn)"],
        )
        old_names = set(self.spec.names(self.spec.old_classes))
        for entry in table:
            self.assertEqual(entry["counted"], 1)
            for tops in entry["top3_seed0"].values():
                self.assertLen(tops, 3)
                self.assertTrue(set(tops) <= old_names)
            self.assertIn(entry["related_top1"], (0.0, 1.0))
            # The mixtures of 4 steps moved a little from the run's recorded initial ones.
            self.assertBetween(entry["correlation"], 0.5, 1.0)
            self.assertGreater(entry["relative_change"], 0.0)

    def test_a_second_run_reuses_every_finished_run(self):
        results = glob.glob(
            os.path.join(self.settings.work_dir, "runs", "**", "result.json"), recursive=True
        )
        self.assertLen(results, 2)  # kp_bn and its variant
        before = {p: os.path.getmtime(p) for p in results}
        again = transfer_benchmark.run(
            self.settings, self.spec, progress=logging.info, picture=False
        )
        self.assertEqual({p: os.path.getmtime(p) for p in results}, before)
        self.assertEqual(
            [r["curve"] for r in again["test_rows"]], [r["curve"] for r in self.report["test_rows"]]
        )


def _test_row(row, seed, kid, failed=False, augment="none", lrs=(2e-4, 2e-4)):
    """A test-phase row as `transfer_runs` writes it (two evaluations, steps 0 and 4)."""
    if failed:
        item = ("test", transfer_runs.row_unit(row), augment, lrs, seed)
        return [
            r for r in transfer_runs._failed_rows(item, "Non-finite d_loss") if r["row"] == row
        ][0]
    record = dict(
        step=4, kid=kid, fid=10 * kid, class_accuracy=0.5, per_class={"0": {"class_accuracy": 1.0}}
    )
    curve, final, best = transfer_runs._summary([dict(step=0, kid=2 * kid), record])
    return dict(
        row=row,
        phase="test",
        unit=transfer_runs.row_unit(row),
        augment=augment,
        g_lr=lrs[0],
        d_lr=lrs[1],
        seed=seed,
        wall_seconds=10.0,
        params=[5, 7, 9, 7] if row.startswith("kp_bn") else [9, 7],
        curve=curve,
        final=final,
        best=best,
        run_dir=None,
        affinity=[[0, 1, 2]],
        mixtures=dict(
            relative_change=0.1 * (seed + 1), correlation=0.9, mean_top_share=0.5, mean_entropy=0.8
        ),
        failed=None,
    )


class FailedRunTest(tf.test.TestCase):
    def test_a_diverged_unit_is_recorded_not_raised(self):
        settings = transfer_benchmark.make_settings(
            self.create_tempdir().full_path, "/tmp/o", quick=True
        )
        item = ("test", "kp_bn", "none", (2e-4, 2e-4), 0)

        def diverge(*args):
            raise transfer_runs.trainer.TrainingError("Non-finite g_loss at step 3")

        original = transfer_runs._train_unit
        transfer_runs._train_unit = diverge
        try:
            rows = transfer_runs.run_unit(settings, None, item, "unused")
        finally:
            transfer_runs._train_unit = original
        self.assertEqual([r["row"] for r in rows], ["kp_bn (bn)", "kp_bn (bn+ft)"])
        self.assertTrue(all("Non-finite g_loss" in r["failed"] for r in rows))
        with open(os.path.join(transfer_runs.run_dir(settings, *item), "result.json")) as f:
            self.assertEqual(len(json.load(f)), 2)  # finished: a rerun reuses it

    def test_report_means_skip_failed_runs_and_say_so(self):
        spec = transfer_data.DataSpec(
            name="toy",
            train=transfer_data.data.DataConfig(dataset="folder", image_folder="x", resolution=32),
            held_out=transfer_data.data.DataConfig(
                dataset="folder", image_folder="y", resolution=32
            ),
            old_classes=(0, 1, 2),
            dev_classes=(3,),
            test_classes=(4,),
            class_names=tuple("abcde"),
            relations={4: (1,)},
            groups={},
        )
        rows = [
            _test_row("kp_bn (bn)", 0, 0.10),
            _test_row("kp_bn (bn)", 1, 0.20),
            _test_row("kp_bn (bn)", 2, 0.0, failed=True),
            _test_row("scratch", 0, 0.50),
        ]
        report = dict(
            settings=dataclasses.asdict(_settings(units=("kp_bn", "scratch"), augments=("none",))),
            data=dict(
                name="toy",
                old_classes=3,
                dev=["d"],
                test=["e"],
                roles=[],
                held_out_dev=5,
                held_out_test=5,
            ),
            classifier=dict(test_accuracy=0.9, num_train=10, epochs=1),
            source=dict(
                held_out=dict(kid=0.1, fid=1.0, class_accuracy=0.5, real_class_accuracy=0.9)
            ),
            dev_rows=[],
            chosen={},
            test_rows=rows,
            machine=dict(cpu="cpu", cores=2, tensorflow="2.15", date="now"),
            load_before=[1.0],
            load_after=[1.0],
            total_seconds=60.0,
        )
        report["affinity"] = transfer_report.affinity_table(spec, rows)
        text = transfer_report.markdown(report)
        # KID x100 of the two finished seeds: mean 15, std 7.07; the failed one is counted.
        self.assertIn(
            "| kp_bn (bn) (1 of 3 diverged) | none | 0.0002/0.0002 | 15.00 ± 7.07 |", text
        )
        self.assertIn("| scratch | none | 0.0002/0.0002 | 50.00 |", text)
        self.assertIn("5 / 7, then 9 / 7", text)
        self.assertEqual(report["affinity"][0]["seeds"], 2)
        self.assertEqual(report["affinity"][0]["related_top3"], 1.0)  # old index 1 is class 1
        self.assertAllClose(report["affinity"][0]["relative_change"], 0.15)  # seeds 0 and 1
        self.assertIn("| 0.150 | 0.900 | 0.500 | 0.800 |", text)
        transfer_report.plot_curves(report, os.path.join(self.create_tempdir().full_path, "c.png"))
