"""Tests of the hub_convert command line on a miniature TF-Hub BigGAN module."""

import dataclasses
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import tensorflow as tf

from tests import fake_biggan_deep_module as fake_deep
from tests import fake_biggan_module as fake
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import class_names
from tf_cgan_transfer import font
from tf_cgan_transfer import hub_convert
from tf_cgan_transfer import images
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sampling
from tf_cgan_transfer import sheets

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R, PAD = 128, 2


def _inputs(generator, num_classes, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=[batch, generator.dim_z]), -2, 2).astype(np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)]
    return z, y


def _cell(grid, row, col):
    top, left = PAD + row * (R + PAD), PAD + col * (R + PAD)
    return grid[top : top + R, left : left + R]


class HubConvertCliTest(tf.test.TestCase):
    def _run(self, *args):
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        return subprocess.run(
            [sys.executable, "-m", "tf_cgan_transfer.hub_convert", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def test_converts_samples_and_refuses_to_overwrite(self):
        tensors = fake.make_biggan_tensors(resolution=128, seed=6)
        module_dir = self.create_tempdir().full_path
        fake.write_checkpoint_only_module(module_dir, tensors)
        out = os.path.join(self.create_tempdir().full_path, "converted")
        args = [
            f"--module={module_dir}",
            f"--output_dir={out}",
            "--class_ids=2,0",
            "--samples_per_class=3",
        ]
        result = self._run(*args)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("keys loaded", result.stdout)

        sheet = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples.png")))
        self.assertEqual(sheet.shape, [2 * 130 + 2, 3 * 130 + 2, 3])
        with open(os.path.join(out, "import_report.json")) as f:
            self.assertEqual(json.load(f)["config"]["resolution"], 128)
        restored, _ = model_io.restore_models(out)
        z, y = _inputs(restored, 3, seed=6)
        self.assertAllClose(
            restored((z, y)), fake.reference_forward(tensors, z, y), atol=1e-5, rtol=0
        )
        # samples.png is sampling.sheet's: image i (row-major) at the latent of seed 0 + i,
        # computed here by the NumPy reference from the module's own tensors.
        labels = np.repeat([2, 0], 3)
        z = sampling.seeded_latents(np.arange(6, dtype=np.int64), restored.dim_z, 1.0).numpy()
        expected = images.to_uint8(fake.reference_forward(tensors, z, np.eye(3)[labels])).numpy()
        for i in range(6):
            with self.subTest(image=i):
                cell = _cell(sheet.numpy(), i // 3, i % 3).astype(int)
                self.assertLessEqual(np.abs(cell - expected[i]).max(), 1)

        again = self._run(*args)
        self.assertEqual(again.returncode, 2, again.stderr)
        self.assertIn("already holds a converted generator; pass --overwrite", again.stderr)

    def test_class_id_out_of_range(self):
        module_dir = self.create_tempdir().full_path
        fake.write_checkpoint_only_module(module_dir, fake.make_biggan_tensors(resolution=128))
        out = self.create_tempdir().full_path
        result = self._run(f"--module={module_dir}", f"--output_dir={out}", "--class_ids=1,5")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--class_ids [5] out of range: the model has 3 classes", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "generator_config.json")))


class HubConvertNamesTest(tf.test.TestCase):
    def test_rows_named_from_a_names_file(self):
        root = self.create_tempdir().full_path
        module_dir = os.path.join(root, "module")
        fake.write_checkpoint_only_module(module_dir, fake.make_biggan_tensors(resolution=128))
        names = os.path.join(root, "names.txt")
        with open(names, "w") as f:
            f.write("goldfish\ntench\nshark\n")
        out = os.path.join(root, "converted")
        config = hub_convert.ConvertConfig(
            module_dir, out, class_ids=(2, 0), samples_per_class=1, class_names=names
        )
        hub_convert.convert(config)
        sheet = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples.png"))).numpy()
        restored, _ = model_io.restore_models(out)
        plain = images.make_grid(sampling.sheet(restored, [2, 0], 1), rows=2).numpy()
        width = sheet.shape[1] - plain.shape[1]
        # 128-pixel rows: scale 3; the widest name is "goldfish", but rows are shark, goldfish.
        self.assertEqual(width, font.text_width("goldfish", 3) + 2 * 6)
        self.assertLessEqual(np.abs(sheet[:, width:].astype(int) - plain).max(), 1)
        self.assertTrue(np.any(sheet[PAD : PAD + R, :width] == sheets.INK))
        # A names file of another count fails before anything is written.
        short = os.path.join(root, "short.txt")
        with open(short, "w") as f:
            f.write("goldfish\n")
        other = os.path.join(root, "other")
        with self.assertRaisesRegex(
            class_names.ClassNamesError, f"{short} lists 1 class names, but the model has 3"
        ):
            hub_convert.convert(dataclasses.replace(config, output_dir=other, class_names=short))
        self.assertFalse(os.path.exists(other))


class HubConvertDeepTest(tf.test.TestCase):
    def test_converts_a_biggan_deep_module(self):
        root = self.create_tempdir().full_path
        module_dir = os.path.join(root, "module")
        tensors = fake_deep.make_deep_tensors(resolution=128, raw_twins=False, n_u=1)
        fake.write_checkpoint_only_module(module_dir, tensors)
        out = os.path.join(root, "converted")
        config = hub_convert.ConvertConfig(module_dir, out, class_ids=(2,), samples_per_class=2)
        # Eagerly: tracing the deep G for the sheet would cost ~10 s (hub_import_test
        # checks the deep import's numerics; this, that the command takes the module).
        tf.config.run_functions_eagerly(True)
        try:
            hub_convert.convert(config)
        finally:
            tf.config.run_functions_eagerly(False)
        with open(os.path.join(out, "import_report.json")) as f:
            self.assertEqual(json.load(f)["config"]["family"], "biggan_deep")
        restored, _ = model_io.restore_models(out)
        self.assertIsInstance(restored, biggan_deep.DeepGenerator)
        sheet = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples.png")))
        self.assertEqual(sheet.shape[1], 2 * (R + PAD) + PAD)  # two 128 px samples, no names


class HubConvertFlagsTest(tf.test.TestCase):
    def _parse(self, *args):
        fv = flags.FlagValues()
        hub_convert.define_flags(fv)
        fv(["hub_convert"] + list(args))
        return hub_convert.config_from_flags(fv)

    def test_flags(self):
        required = ["--module=m", "--output_dir=o"]
        config = self._parse(*required, "--class_ids=3,1", "--seed=2", "--truncation=0.5")
        self.assertEqual(config.class_ids, (3, 1))
        self.assertEqual((config.seed, config.truncation), (2, 0.5))
        self.assertEqual(self._parse(*required), hub_convert.ConvertConfig("m", "o"))
        bad = [
            ["--module=m"],
            ["--output_dir=o"],
            required + ["--class_ids=1,cat"],
            required + ["--truncation=0"],
            required + ["--truncation=1.5"],
            required + ["--samples_per_class=-1"],
            required + ["--standing_stats_batches=-1"],
            required + ["--class_names=/no/such/names.txt"],
        ]
        for args in bad:
            with self.subTest(args=args):
                with self.assertRaises(flags.Error):
                    self._parse(*args)


if __name__ == "__main__":
    tf.test.main()
