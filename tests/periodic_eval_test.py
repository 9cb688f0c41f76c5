"""Tests of tf_cgan_transfer.periodic_eval: records, TensorBoard, best models by a metric.

No training here (the trainer's own tests run the loop with evaluation): the generators
are tiny untrained ones of different seeds, so their metrics differ.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf

from tests import eval_fixtures
from tests import model_fixtures
from tf_cgan_transfer import data
from tf_cgan_transfer import model_io
from tf_cgan_transfer import periodic_eval
from tf_cgan_transfer import train_config
from tf_cgan_transfer.real_data import EvaluationError


def _scalars(log_dir):
    """`{tag: {step: value}}` of the TensorBoard events under `log_dir`."""
    values = {}
    for path in glob.glob(os.path.join(log_dir, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, {})[event.step] = number
    return values


class PeriodicEvaluationTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.generators = [eval_fixtures.tiny_generator(seed=s) for s in range(3)]

    def setUp(self):
        super().setUp()
        self.root = self.create_tempdir().full_path
        self.train = model_fixtures.write_image_folder(
            os.path.join(self.root, "train"), per_class=4
        )
        self.held_out = model_fixtures.write_image_folder(
            os.path.join(self.root, "held_out"), per_class=5, seed=1
        )
        self.data = data.DataConfig(dataset="folder", image_folder=self.train, resolution=32)
        self.classifier = eval_fixtures.classifier_dir("tf2")[0]

    def _config(self, **overrides):
        values = dict(
            model_dir=os.path.join(self.root, "run"),
            data=self.data,
            eval_every=1,
            eval_num_images=15,
            eval_batch_size=5,
            classifier=self.classifier,
            eval_data=data.DataConfig(
                dataset="folder", image_folder=self.held_out, resolution=32, flip=False
            ),
        )
        values.update(overrides)
        return train_config.TrainConfig(**values)

    def _evaluation(self, config, best=None):
        best = best if best is not None else tf.Variable(float("inf"))
        return (
            periodic_eval.PeriodicEvaluation(
                config, lambda: data.validate(config.data), config.layout, best
            ),
            best,
        )

    def test_keeps_the_best_by_the_chosen_metric(self):
        config = self._config(best_metric="kid", classifier_classes="same")
        evaluation, best = self._evaluation(config)
        writer = tf.summary.create_file_writer(config.layout.root)
        results = [evaluation(step, g, None, writer) for step, g in enumerate(self.generators)]
        writer.flush()
        kids = [r["kid"] for r in results]
        self.assertAllClose(float(best.numpy()), min(kids))
        with open(config.layout.best_metrics_file) as f:
            recorded = json.load(f)
        self.assertEqual(recorded["best_metric"], "kid")
        self.assertEqual(recorded["step"], int(np.argmin(kids)))
        # best/ holds the generator of that step.
        restored, _ = model_io.restore_models(config.layout.best_dir)
        winner = self.generators[int(np.argmin(kids))]
        for a, b in zip(restored.variables, winner.variables):
            self.assertAllEqual(a, b)
        # Every evaluation is on disk, against the held-out folder, with the memorisation
        # score (the training folder takes part) and class accuracy.
        for step in range(3):
            with open(config.layout.eval_file(step)) as f:
                record = json.load(f)
            self.assertEqual((record["step"], record["best_metric"]), (step, "kid"))
            self.assertEqual(record["real_set"]["image_folder"], self.held_out)
            self.assertEqual(record["training_set"]["image_folder"], self.train)
            self.assertIs(record["real_is_training_data"], False)
            self.assertTrue(np.isfinite(record["memorisation_ratio"]))
            self.assertTrue(np.isfinite(record["class_accuracy"]))
        scalars = _scalars(config.layout.root)
        self.assertAllClose([scalars["eval/kid"][s] for s in range(3)], kids)
        self.assertIn("eval/pixel_copy_share", scalars)

    def test_the_training_data_as_real_set_warns_and_skips_nan_scalars(self):
        config = self._config(eval_data=None, eval_num_images=12)
        with self.assertLogs("absl", "WARNING") as logs:
            evaluation, _ = self._evaluation(config)
        self.assertRegex("\n".join(logs.output), "compares with the training images.*--eval_split")
        writer = tf.summary.create_file_writer(config.layout.root)
        results = evaluation(1, self.generators[0], None, writer)
        writer.flush()
        self.assertIs(results["real_is_training_data"], True)
        scalars = _scalars(config.layout.root)
        self.assertIn("eval/fid", scalars)
        self.assertNotIn("eval/memorisation_ratio", scalars)  # NaN is not written
        self.assertNotIn("eval/class_accuracy", scalars)  # no class map

    def test_a_run_cannot_switch_its_best_metric(self):
        config = self._config()
        evaluation, best = self._evaluation(config)
        evaluation(1, self.generators[0], None)
        before = os.stat(config.layout.best_metrics_file).st_mtime_ns
        with self.assertRaisesRegex(
            EvaluationError, "best models by fid; resume with --best_metric=fid"
        ):
            self._evaluation(self._config(best_metric="kid"), best)
        self.assertEqual(os.stat(config.layout.best_metrics_file).st_mtime_ns, before)
        self._evaluation(config, best)  # the same metric resumes

    def test_bad_settings_fail_at_construction(self):
        with self.assertRaisesRegex(EvaluationError, "best_metric='is' is not one of fid, kid"):
            self._evaluation(self._config(best_metric="is"))
        two_classes = model_fixtures.write_image_folder(
            os.path.join(self.root, "two"), classes=2, per_class=4
        )
        other = data.DataConfig(dataset="folder", image_folder=two_classes, resolution=32)
        with self.assertRaisesRegex(EvaluationError, "held-out images have 2 classes.*3"):
            self._evaluation(self._config(eval_data=other))
        with self.assertRaisesRegex(EvaluationError, "has 2 entries but the generator has 3"):
            self._evaluation(self._config(classifier_classes=(0, 1)))
