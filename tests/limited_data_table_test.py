"""Tests of benchmarks/limited_data_table.py: its run configs and its report (no training)."""

import tensorflow as tf

from benchmarks import limited_data_table as benchmark
from benchmarks import method_table
from tf_cgan_transfer import demo_data


class ConfigTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.settings = method_table.make_settings(
            "/work_dir", "/out", train_steps=400, eval_every=200
        )

    def test_variants_differ_only_in_d_aids_and_evaluate_on_held_out_images(self):
        configs = {
            variant: benchmark.run_config(self.settings, "kp_bn", variant, 1, "/src", "/tfds")
            for variant in benchmark.VARIANTS
        }
        self.assertEqual(
            {v: (c.augment, c.lecam_weight) for v, c in configs.items()},
            {
                "none": ("none", 0.0),
                "diffaugment": ("diffaugment", 0.0),
                "diffaugment + LeCam": ("diffaugment", 0.3),
            },
        )
        base = configs["none"]
        for config in configs.values():
            # Training: the demo transfer's 50 images per class, picked by the seed.
            self.assertEqual(config.data.split, "train")
            self.assertEqual(config.data.images_per_class, 50)
            self.assertEqual((config.seed, config.data.seed), (1, 1))
            self.assertEqual((config.method, config.stage, config.source), ("kp_bn", "bn", "/src"))
            # Evaluation: all 200 test images of the new classes, at half and at the end.
            self.assertEqual(config.eval_data.split, "test")
            self.assertEqual(config.eval_data.classes, demo_data.NEW_CLASSES)
            self.assertIsNone(config.eval_data.images_per_class)
            self.assertEqual((config.eval_num_images, config.eval_every), (200, 200))
            self.assertEqual(config.optimizer, base.optimizer)
            self.assertEqual(config.train_steps, 400)
        # Every run has a directory of its own.
        self.assertLen({c.model_dir for c in configs.values()}, 3)
        finetune = benchmark.run_config(self.settings, "finetune", "none", 1, "/src", "/tfds")
        self.assertIsNone(finetune.stage)
        self.assertNotIn(finetune.model_dir, {c.model_dir for c in configs.values()})

    def test_markdown_reports_every_row_with_its_spread(self):
        def record(fid, kid):
            return dict(
                fid=[fid + 1, fid],
                kid=[kid, kid],
                wall_seconds=100.0,
                last=dict(d_loss_real=0.1, d_loss_fake=0.2, d_real=1.5, d_fake=-1.0),
            )

        report = dict(
            command="python -m benchmarks.limited_data",
            settings=dict(
                source_steps=2500,
                train_steps=400,
                images_per_class=50,
                seeds=2,
                mixed_precision="float32",
            ),
            eval_images=200,
            classifier=dict(test_accuracy=1.0),
            rows=[
                dict(method="kp_bn", variant="none", records=[record(10, 0.2), record(12, 0.4)]),
                dict(method="finetune", variant="diffaugment", records=[record(5, 0.1)] * 2),
            ],
            machine=dict(cpu="cpu", cores=2, tensorflow="2.15.1", date="today"),
            total_seconds=600,
        )
        text = benchmark.markdown(report)
        self.assertIn("| kp_bn | none | 11.00 ± 1.41 | 0.300 ± 0.141 | 12.00 ± 1.41 |", text)
        self.assertIn("| finetune | diffaugment | 5.00 ± 0.00 |", text)
        self.assertIn("kp_bn, none: seed 0: 10.00 / 0.200, seed 1: 12.00 / 0.400", text)
        self.assertIn("**test split**", text)


if __name__ == "__main__":
    tf.test.main()
