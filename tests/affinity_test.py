"""Tests of tf_cgan_transfer.affinity: the class-affinity report and its command line."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from tests.model_fixtures import MAPPING, OLD_CLASSES, make_source, set_one_hot_mixtures
from tf_cgan_transfer import affinity
from tf_cgan_transfer import biggan
from tf_cgan_transfer import model_io
from tf_cgan_transfer import transfer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ClassAffinityTest(tf.test.TestCase):
    def test_report_ranks_the_mixed_in_old_classes(self):
        directory = self.create_tempdir().full_path
        make_source(directory)
        g = transfer.build(transfer.TransferConfig("kp_bn", 3), source=directory).generator
        set_one_hot_mixtures(g, MAPPING)
        old_names = [f"old{k}" for k in range(OLD_CLASSES)]
        report = affinity.class_affinity(
            g, top_k=2, old_names=old_names, new_names=["tulip", "rose", "daisy"]
        )
        self.assertEqual([c["top"][0]["old_class"] for c in report["classes"]], MAPPING)
        self.assertAllClose(report["classes"][0]["top"][0]["score"], 1.0, atol=1e-4)
        self.assertEqual(report["classes"][1]["top"][0]["name"], "old0")
        out = self.create_tempdir().full_path
        json_path, text_path = affinity.write_report(report, out)
        with open(json_path) as f:
            self.assertEqual(json.load(f), report)
        with open(text_path) as f:
            text = f.read()
        self.assertIn("tulip: old3 (+1.000)", text)

    def test_imagenet_names_from_tfds(self):
        names = affinity.imagenet_class_names()
        self.assertLen(names, 1000)
        self.assertEqual(names[0], "n01440764")  # tench, BigGAN class 0

    def test_needs_a_kp_bn_generator(self):
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        with self.assertRaisesRegex(affinity.AffinityError, "needs a kp_bn generator"):
            affinity.class_affinity(g)


class CommandLineTest(tf.test.TestCase):
    def _run(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "tf_cgan_transfer.affinity", *args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=300,
        )

    def test_prints_the_report_of_a_models_directory(self):
        source = self.create_tempdir().full_path
        make_source(source)
        g = transfer.build(transfer.TransferConfig("kp_bn", 3), source=source).generator
        set_one_hot_mixtures(g, MAPPING)
        models = self.create_tempdir().full_path
        model_io.save_models(models, g)
        out = self.create_tempdir().full_path
        result = self._run(f"--model={models}", "--top_k=1", f"--output_dir={out}")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn(f"top 1 of {OLD_CLASSES} old classes", lines[0])
        # New class n draws on old class MAPPING[n] with weight 1.
        for n, old in enumerate(MAPPING):
            self.assertEqual(lines[1 + n], f"new class {n}: {old} (+1.000)")
        with open(os.path.join(out, affinity.JSON_FILE)) as f:
            self.assertEqual([c["top"][0]["old_class"] for c in json.load(f)["classes"]], MAPPING)

    def test_a_model_without_mixtures_is_one_clear_error(self):
        models = self.create_tempdir().full_path
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        model_io.save_models(models, g)
        result = self._run(f"--model={models}")
        self.assertEqual(result.returncode, 2)
        self.assertIn("error: A class-affinity report needs a kp_bn generator", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
    tf.test.main()
