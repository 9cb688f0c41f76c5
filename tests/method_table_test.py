"""Tests of the method-comparison benchmark: its --quick mode end to end, and its configs.

The quick run (every method, one seed, a few steps) is shared by the tests of one class:
it is the expensive part (~2 minutes on 2 CPU cores).
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time

from absl import flags
import tensorflow as tf

from benchmarks import method_report
from benchmarks import method_table
from tf_cgan_transfer import biggan
from tf_cgan_transfer import train
from tf_cgan_transfer import transfer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class QuickModeTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.settings = method_table.make_settings(
            os.path.join(cls.root, "work"),
            os.path.join(cls.root, "out"),
            quick=True,
            command="tests/method_table_test.py (quick)",
        )
        cls.report = method_table.run(cls.settings)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def _main_rows(self):
        ipc = self.settings.images_per_class
        return {r["method"]: r for r in self.report["aggregates"] if r["images_per_class"] == ipc}

    def test_writes_markdown_plot_and_json(self):
        out = self.settings.out_dir
        for name in ("method_table.md", "method_table.png", "method_table.json"):
            self.assertGreater(os.path.getsize(os.path.join(out, name)), 0, name)
        with open(os.path.join(out, "method_table.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(os.path.join(out, "method_table.json")) as f:
            saved = json.load(f)  # standard JSON: no NaN literals
        self.assertEqual(saved["settings"]["command"], "tests/method_table_test.py (quick)")
        with open(os.path.join(out, "method_table.md")) as f:
            text = f.read()
        self.assertIn("QUICK MODE", text)
        for label in method_report.ROWS:
            self.assertIn(f"| {label} |", text)

    def test_every_method_has_a_finite_fid_at_every_evaluation(self):
        rows = self._main_rows()
        self.assertCountEqual(rows, method_report.ROWS)
        steps = list(range(0, self.settings.train_steps + 1, self.settings.eval_every))
        for label, row in rows.items():
            self.assertEqual(row["steps"], steps, label)
            for key in ("fid", "kid"):
                self.assertTrue(all(map(math.isfinite, row[key]["mean"])), (label, key))
        # bn+ft is the bn run up to the stage boundary, then its own ft stage.
        bn, bn_ft = rows["kp_bn (bn)"]["fid"]["mean"], rows["kp_bn (bn+ft)"]["fid"]["mean"]
        boundary = steps.index(self.report["bn_steps"])
        self.assertEqual(bn[: boundary + 1], bn_ft[: boundary + 1])
        self.assertNotEqual(bn[-1], bn_ft[-1])

    def test_sweep_covers_kp_bn_and_finetune(self):
        for method in method_report.SWEEP_ROWS:
            covered = {
                r["images_per_class"] for r in self.report["aggregates"] if r["method"] == method
            }
            self.assertEqual(covered, set(self.settings.sweep_images_per_class), method)

    def test_parameter_counts_match_an_independent_count(self):
        source = os.path.join(self.settings.work_dir, f"source_{self.settings.source_steps}")
        counts = {}
        for method, stage in (("kp_bn", "bn"), ("finetune", None), ("freeze_d", None)):
            models = transfer.build(transfer.TransferConfig(method, 4, stage=stage), source=source)
            counts[method] = [
                biggan.count_parameters(models.g_variables),
                biggan.count_parameters(models.d_variables),
            ]
            if method == "kp_bn":
                config = transfer.TransferConfig(method, 4, stage="ft")
                ft = transfer.trainable_variables(models.generator, models.discriminator, config)
                counts["kp_bn_ft"] = [biggan.count_parameters(v) for v in ft]
        rows = self._main_rows()
        self.assertEqual(rows["kp_bn (bn)"]["params"], counts["kp_bn"])
        self.assertEqual(rows["kp_bn (bn+ft)"]["params"], counts["kp_bn"] + counts["kp_bn_ft"])
        self.assertEqual(rows["finetune"]["params"], counts["finetune"])
        self.assertEqual(rows["freeze_d"]["params"], counts["freeze_d"])
        # The paper's point: the bn stage trains a small fraction of G.
        self.assertLess(5 * counts["kp_bn"][0], counts["finetune"][0])
        self.assertLess(counts["freeze_d"][1], counts["finetune"][1])

    def test_classifier_accuracy_is_recorded(self):
        classifier = self.report["classifier"]
        self.assertBetween(classifier["test_accuracy"], 0.0, 1.0)
        self.assertEqual(classifier["num_test"], 800)
        with open(os.path.join(self.settings.out_dir, "method_table.md")) as f:
            self.assertIn(f"{classifier['test_accuracy']:.2%}", f.read())

    def test_a_second_run_reuses_the_finished_work(self):
        out_dir = os.path.join(self.root, "again")
        start = time.time()
        again = method_table.run(dataclasses.replace(self.settings, out_dir=out_dir))
        self.assertLess(time.time() - start, 30)  # no training, no evaluation
        self.assertTrue(again["source"]["reused"])
        self.assertTrue(again["classifier"]["reused"])
        self.assertEqual(
            json.dumps(again["records"], sort_keys=True),
            json.dumps(self.report["records"], sort_keys=True),
        )


class ConfigsTest(tf.test.TestCase):
    """The benchmark's typed configs are the demo's flagfiles (no drift between them)."""

    def _from_flagfile(self, name):
        flag_values = flags.FlagValues()
        train.define_flags(flag_values)
        flag_values(
            [
                "train",
                f"--flagfile={os.path.join(REPO_ROOT, 'configs', name)}",
                "--mixed_precision=float32",
            ]
        )
        return train.config_from_flags(flag_values)

    def test_source_is_demo_source_flags(self):
        expected = self._from_flagfile("demo_source.flags")
        settings = method_table.make_settings("/work", "/out")
        config = method_table.source_config(settings, "/data")
        self.assertEqual(config.data.data_dir, "/data")
        config = dataclasses.replace(
            config,
            model_dir=expected.model_dir,
            data=dataclasses.replace(config.data, data_dir=expected.data.data_dir),
        )
        self.assertEqual(config, expected)

    def test_transfer_is_demo_transfer_flags(self):
        expected = self._from_flagfile("demo_transfer.flags")
        settings = method_table.make_settings("/work", "/out")
        config = method_table.transfer_config(
            settings, "/run", "kp_bn", "/src", "/data", settings.images_per_class, 0
        )
        # FID against every train image of the new classes, not just the training subset.
        self.assertIsNone(config.eval_data.images_per_class)
        self.assertEqual(config.eval_data.classes, config.data.classes)
        # What the benchmark sets itself: paths, run length, cadence and evaluation.
        own = (
            "model_dir",
            "source",
            "architecture",
            "train_steps",
            "checkpoint_every",
            "sample_every",
            "log_every",
            "eval_every",
            "eval_num_images",
            "classifier",
            "eval_cache_dir",
            "eval_data",
        )
        config = dataclasses.replace(
            config,
            data=dataclasses.replace(config.data, data_dir=expected.data.data_dir),
            **{name: getattr(expected, name) for name in own},
        )
        self.assertEqual(config, expected)

    def test_scratch_has_no_source_and_the_source_architecture(self):
        settings = method_table.make_settings("/work", "/out")
        config = method_table.transfer_config(settings, "/run", "scratch", "/src", "/data", 50, 1)
        source = method_table.source_config(settings, "/data")
        self.assertIsNone(config.source)
        self.assertEqual(config.architecture, source.architecture)
        self.assertEqual(config.seed, 1)
        self.assertEqual(config.data.seed, 1)

    def test_command_line_takes_the_mode_defaults_then_the_flags(self):
        flag_values = flags.FlagValues()
        method_table.define_flags(flag_values)
        flag_values(["method_table", "--quick", "--seeds=2", "--sweep_images_per_class=5,7"])
        settings = method_table.settings_from_flags(flag_values, command="cmd")
        self.assertTrue(settings.quick)
        self.assertEqual(settings.seeds, 2)
        self.assertEqual(settings.sweep_images_per_class, (5, 7))
        self.assertEqual(settings.train_steps, method_table.QUICK["train_steps"])
        self.assertEqual(settings.command, "cmd")
        flag_values = flags.FlagValues()
        method_table.define_flags(flag_values)
        flag_values(["method_table"])
        self.assertEqual(
            method_table.settings_from_flags(flag_values),
            method_table.Settings("/tmp/method_table", "benchmarks/results"),
        )

    def test_work_list_reuses_the_main_runs_in_the_sweep(self):
        settings = method_table.make_settings("/w", "/o")  # 3 seeds, sweep 10,50,200 x 1 seed
        work = method_table.work_list(settings)
        main = [(unit, 50, seed) for seed in range(3) for unit in method_table.UNITS]
        sweep = [(unit, k, 0) for k in (10, 200) for unit in ("kp_bn_bn", "finetune")]
        self.assertEqual(work, main + sweep)

    def test_settings_are_validated(self):
        with self.assertRaisesRegex(ValueError, "multiple of eval_every"):
            method_table.make_settings("/w", "/o", train_steps=100, eval_every=30)
        settings = method_table.make_settings("/w", "/o", train_steps=900, eval_every=150)
        self.assertEqual(settings.bn_steps, 600)


if __name__ == "__main__":
    tf.test.main()
