"""Tests of the demo method comparison: its report code on the committed run, its configs."""

import dataclasses
import json
import os

from absl import flags
import tensorflow as tf

from benchmarks import method_report
from benchmarks import method_table
from tf_cgan_transfer import metrics
from tf_cgan_transfer import train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO_ROOT, "benchmarks", "results")


class CommittedReportTest(tf.test.TestCase):
    """The report code against the committed full run (benchmarks/results/method_table.*).

    The demo comparison's end-to-end run is `python -m benchmarks.method_table --quick`
    (two minutes here); CI runs the real-data benchmark's quick mode instead
    (tests/transfer_benchmark_test.py), which exercises the same kind of two-stage,
    pause-and-resume runs.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(os.path.join(RESULTS, "method_table.json")) as f:
            cls.report = json.load(f)

    def test_renders_the_committed_markdown(self):
        with open(os.path.join(RESULTS, "method_table.md")) as f:
            self.assertEqual(method_report.markdown(self.report), f.read())

    def test_aggregates_are_the_records_statistics(self):
        again = method_report.aggregate(self.report["records"])
        self.assertEqual(
            json.dumps(metrics.json_safe(again), sort_keys=True),
            json.dumps(self.report["aggregates"], sort_keys=True),
        )
        rows = {r["method"] for r in again}
        self.assertEqual(rows, set(method_report.ROWS))

    def test_writes_json_markdown_and_plot(self):
        out = self.create_tempdir().full_path
        for path in method_report.write(self.report, out):
            self.assertGreater(os.path.getsize(path), 0, path)
        with open(os.path.join(out, "method_table.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


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
