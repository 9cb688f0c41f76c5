"""Tests of the tf_cgan_transfer.evaluate command line (flags, JSON output, errors)."""

import dataclasses
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import tensorflow as tf

from tests import eval_fixtures
from tests import fake_inception
from tests import model_fixtures
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import model_io

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CommandLineTest(tf.test.TestCase):
    def _fixture(self):
        root = self.create_tempdir().full_path
        model_dir = os.path.join(root, "model")
        model_io.save_models(model_dir, eval_fixtures.tiny_generator(seed=1))
        npz = os.path.join(root, "real.npz")
        images = (
            ((eval_fixtures.smooth_images(45, 32, seed=6) + 1.0) * 127.5).round().astype(np.uint8)
        )
        np.savez(npz, images=images, labels=np.arange(45) % eval_fixtures.NUM_CLASSES)
        return root, model_dir, npz

    def _run(self, *args, env=None):
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
        return subprocess.run(
            [sys.executable, "-m", "tf_cgan_transfer.evaluate", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def test_writes_json_and_a_summary(self):
        root, model_dir, npz = self._fixture()
        output = os.path.join(root, "eval", "metrics.json")
        cache_dir = os.path.join(root, "cache")
        result = self._run(
            f"--model={model_dir}",
            f"--classifier={eval_fixtures.classifier_dir('tf2')[0]}",
            f"--real_images_npz={npz}",
            "--num_images=40",
            "--batch_size=20",
            "--truncation=0.8",
            f"--cache_dir={cache_dir}",
            f"--output={output}",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^FID [\d.]+  KID .* IS .* -> " + output)
        with open(output) as f:
            record = json.load(f)
        self.assertEqual(sorted(record["per_class_fid"]), ["0", "1", "2"])
        self.assertIsNone(record["kid_std"])  # NaN -> null
        self.assertEqual(record["num_generated"], 40)
        self.assertEqual(record["config"]["truncation"], 0.8)
        for key in ("fid", "kid", "inception_score", "kmmd", "mean_per_class_fid"):
            self.assertTrue(np.isfinite(record[key]), key)
        self.assertLen([f for f in os.listdir(cache_dir) if f.endswith(".npz")], 1)

    def test_bad_flags_fail_before_any_work(self):
        root, model_dir, npz = self._fixture()
        output = os.path.join(root, "metrics.json")
        result = self._run(
            f"--model={model_dir}",
            f"--real_images_npz={npz}",
            f"--output={output}",
            "--num_images=1",
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, r"--num_images=1")
        self.assertFalse(os.path.exists(output))
        self.assertNotIn("Loaded classifier", result.stderr)

    def test_flag_validation_in_process(self):
        _, model_dir, npz = self._fixture()
        good = [f"--model={model_dir}", f"--real_images_npz={npz}", "--output=/tmp/x.json"]
        cases = [
            (["--truncation=1.5"], r"--truncation must be in \(0, 1\]"),
            ([f"--model={npz}"], "--model must be a directory holding generator_config.json"),
            (["--real_images_npz=/no/such.npz"], "--real_images_npz must name an existing"),
            (["--batch_size=0"], "--batch_size=0"),
            ([f"--output={model_dir}"], "--output must be a file path"),
        ]
        for extra, message in cases:
            flag_values = flags.FlagValues()
            evaluate.define_flags(flag_values)
            with self.assertRaisesRegex(flags.IllegalFlagValueError, message):
                flag_values(["evaluate"] + good + extra)
        flag_values = flags.FlagValues()
        evaluate.define_flags(flag_values)
        flag_values(["evaluate"] + good)
        config = evaluate.config_from_flags(flag_values)
        self.assertEqual(config.classifier, eval_fixtures.INCEPTION_URL)
        self.assertEqual(config.num_images, 10000)
        no_data = flags.FlagValues()
        evaluate.define_flags(no_data)
        no_data(["evaluate", f"--model={model_dir}", "--output=/tmp/x.json"])
        with self.assertRaisesRegex(evaluate.EvaluationError, "records no training data"):
            evaluate.config_from_flags(no_data)
        both = flags.FlagValues()
        evaluate.define_flags(both)
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "one of --real_images_npz or"):
            both(["evaluate"] + good + ["--eval_split=test"])
        orphan = flags.FlagValues()
        evaluate.define_flags(orphan)
        orphan(["evaluate", f"--model={model_dir}", "--output=/tmp/x.json", "--eval_split=test"])
        with self.assertRaisesRegex(evaluate.EvaluationError, "does not record.*--dataset"):
            evaluate.config_from_flags(orphan)

    def test_training_data_comes_from_the_run_and_held_out_flags_replace_it(self):
        root = self.create_tempdir().full_path
        run_dir = os.path.join(root, "run")
        for models in ("best", "models"):  # a finished run
            model_io.save_models(os.path.join(run_dir, models), eval_fixtures.tiny_generator())
        recorded = dict(
            dataset="cgan_demo_shapes",
            resolution=32,
            split="train",
            data_dir="/data/tfds",
            image_folder=None,
            classes=[4, 5, 6],
            images_per_class=10,
            flip=True,
            seed=3,
            shuffle_buffer=100,
        )
        model_io.write_json(os.path.join(run_dir, "config.json"), dict(data=recorded, seed=3))
        for model in (run_dir, os.path.join(run_dir, "best")):
            flag_values = flags.FlagValues()
            evaluate.define_flags(flag_values)
            flag_values(
                ["evaluate", f"--model={model}", "--output=/tmp/x.json", "--eval_split=test"]
            )
            config = evaluate.config_from_flags(flag_values)
            expected = data.DataConfig(**dict(recorded, classes=(4, 5, 6), flip=False))
            self.assertEqual(config.data_config, expected)
            self.assertEqual(
                config.eval_data,
                dataclasses.replace(expected, split="test", images_per_class=None),
            )
        # Held-out classes and folders; a TFDS split of folder data is refused.
        flag_values = flags.FlagValues()
        evaluate.define_flags(flag_values)
        flag_values(
            ["evaluate", f"--model={run_dir}", "--output=/tmp/x.json", "--eval_classes=7,8,9"]
        )
        config = evaluate.config_from_flags(flag_values)
        self.assertEqual((config.eval_data.split, config.eval_data.classes), ("train", (7, 8, 9)))
        for extra, message in (
            (["--eval_classes=7,8"], "--eval_classes has 2 classes and --classes 3"),
            (
                ["--dataset=folder", f"--image_folder={root}", "--eval_split=test"],
                "names a TFDS split, but the training data is the image folder",
            ),
        ):
            flag_values = flags.FlagValues()
            evaluate.define_flags(flag_values)
            flag_values(["evaluate", f"--model={run_dir}", "--output=/tmp/x.json", *extra])
            with self.assertRaisesRegex(data.DataError, message):
                evaluate.config_from_flags(flag_values)

    def test_cli_on_image_folders_training_and_held_out(self):
        root, model_dir, _ = self._fixture()
        train = model_fixtures.write_image_folder(os.path.join(root, "train"), per_class=4)
        held_out = model_fixtures.write_image_folder(
            os.path.join(root, "held_out"), per_class=6, seed=1
        )
        classifier = os.path.join(root, "classifier_folder")
        fake_inception.write_tf2_module(classifier)
        common = [
            f"--model={model_dir}",
            "--dataset=folder",
            f"--image_folder={train}",
            f"--classifier={classifier}",
            "--classifier_classes=same",
            "--num_images=12",
            "--batch_size=4",
        ]
        # The training data as the real set: said in the record, on the console, in the line.
        output = os.path.join(root, "train_metrics.json")
        result = self._run(*common, f"--output={output}")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertRegex(result.stderr, "compare with the training images")
        self.assertIn("[real set = training data]", result.stdout)
        with open(output) as f:
            record = json.load(f)
        self.assertIs(record["real_is_training_data"], True)
        self.assertIsNone(record["memorisation_ratio"])
        self.assertEqual(record["real_set"], record["training_set"])
        self.assertEqual(record["num_training"], 12)
        # Held-out images: FID & co. against them, and the memorisation score.
        output = os.path.join(root, "held_out_metrics.json")
        result = self._run(
            *common, f"--eval_image_folder={held_out}", "--num_images=18", f"--output={output}"
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertNotRegex(result.stderr, "compare with the training images")
        self.assertRegex(result.stdout, r"memorisation [\d.]+ \(pixels [\d.]+\)")
        with open(output) as f:
            record = json.load(f)
        self.assertIs(record["real_is_training_data"], False)
        self.assertEqual(record["real_set"]["image_folder"], held_out)
        self.assertEqual(record["training_set"]["image_folder"], train)
        self.assertEqual((record["num_training"], record["num_held_out"]), (12, 18))
        for key in (
            "memorisation_ratio",
            "copy_share",
            "pixel_memorisation_ratio",
            "class_accuracy",
        ):
            self.assertTrue(np.isfinite(record[key]), key)
        self.assertEqual(sorted(record["per_class"]), ["0", "1", "2"])

    def test_offline_default_classifier_is_one_clear_error(self):
        root, model_dir, npz = self._fixture()
        result = self._run(
            f"--model={model_dir}",
            f"--real_images_npz={npz}",
            f"--output={os.path.join(root, 'm.json')}",
            env={"TFHUB_CACHE_DIR": self.create_tempdir().full_path},
        )
        self.assertEqual(result.returncode, 2)
        self.assertRegex(
            result.stderr,
            r"error: Could not fetch classifier .*tf-hub-format=compressed.*"
            "c4be6b55dc0338e82546082d22184ebdc77d76cf",
        )
        self.assertNotIn("Traceback", result.stderr)
