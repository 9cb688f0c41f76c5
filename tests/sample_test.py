"""Tests of sample.py: each mode's PNG size, model/export agreement and flag checks."""

import os
import shutil
import subprocess
import sys
import tempfile

from absl import flags
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import class_names
from tf_cgan_transfer import font
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sample
from tf_cgan_transfer import sampling
from tf_cgan_transfer import serving
from tf_cgan_transfer import sheets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R, PAD = 32, 2


def _grid_size(rows, cols):
    return rows * (R + PAD) + PAD, cols * (R + PAD) + PAD


class SampleTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="sample_test_")
        cls.model_dir = os.path.join(cls.root, "model")
        tf.keras.utils.set_random_seed(0)
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        model_io.save_models(cls.model_dir, g)
        cls.export_dir = os.path.join(cls.root, "export", "1")
        # Keep the checkpoint's statistics so --model and --export sheets must agree.
        serving.save_generator(g, cls.export_dir, ["cat", "dog", "fox"], 1.0, warmup=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def _run(self, name, **kwargs):
        output = os.path.join(self.root, f"{name}.png")
        kwargs.setdefault("model", self.model_dir)
        shape = sample.run(sample.SampleConfig(output=output, **kwargs))
        decoded = tf.io.decode_png(tf.io.read_file(output))
        self.assertEqual(tuple(decoded.shape), shape)
        return decoded.numpy()

    def test_sheet(self):
        sheet = self._run("sheet", classes=("0", "2"), samples_per_class=3)
        self.assertEqual(sheet.shape[:2], _grid_size(2, 3))
        self.assertTrue(np.all(sheet[:PAD] == 0))  # padding rows are black

    def test_export_sheet_matches_model_sheet(self):
        by_model = self._run("by_model", classes=("1", "2"), samples_per_class=2, seed=4)
        by_export = self._run(
            "by_export",
            model=None,
            export=self.export_dir,
            classes=("1", "2"),
            samples_per_class=2,
            seed=4,
            label_rows=False,
        )
        self.assertEqual(by_export.shape[:2], _grid_size(2, 2))
        self.assertLessEqual(np.abs(by_model.astype(int) - by_export).max(), 1)
        by_name = self._run(
            "by_name",
            model=None,
            export=self.export_dir,
            classes=("dog", "fox"),
            samples_per_class=2,
            seed=4,
            label_rows=False,
        )
        self.assertAllEqual(by_name, by_export)
        # By default an export's rows carry its class names, left of the same images.
        labelled = self._run(
            "labelled",
            model=None,
            export=self.export_dir,
            classes=("1", "2"),
            seed=4,
            samples_per_class=2,
        )
        width = font.text_width("dog") + 4
        self.assertEqual(labelled.shape[:2], (_grid_size(2, 2)[0], width + _grid_size(2, 2)[1]))
        self.assertAllEqual(labelled[:, width:], by_export)
        self.assertTrue(np.any(labelled[:, :width] == sheets.INK))

    def test_rows_named_from_a_names_file(self):
        names = os.path.join(self.root, "names.txt")
        with open(names, "w") as f:
            f.write("tulip\nrose\nsunflower\n")
        plain = self._run("plain", classes=("2", "0"), samples_per_class=2)
        named = self._run("named", classes=("2", "0"), samples_per_class=2, class_names=names)
        width = font.text_width("sunflower") + 4
        self.assertEqual(named.shape, (plain.shape[0], width + plain.shape[1], 3))
        self.assertAllEqual(named[:, width:], plain)
        # Row 0 is class 2: "sunflower" is drawn as wide as its text; row 1 "tulip".
        for row, name in enumerate(["sunflower", "tulip"]):
            band = named[PAD + row * (R + PAD) :][:R, :width]
            ink = np.flatnonzero((band == sheets.INK).all(-1).any(axis=0))
            self.assertBetween(
                ink[-1] + 1, 2 + font.text_width(name) - 4, 2 + font.text_width(name)
            )
        # interpolate_class rows are latents: no names. A names file of another count fails.
        grid = self._run(
            "latents", classes=("0", "2"), mode="interpolate_class", steps=3, class_names=names
        )
        self.assertEqual(grid.shape[:2], _grid_size(8, 3))
        short = os.path.join(self.root, "short.txt")
        with open(short, "w") as f:
            f.write("tulip\n")
        with self.assertRaisesRegex(
            class_names.ClassNamesError, f"{short} lists 1 class names, but the model has 3"
        ):
            self._run("short", classes=("0",), class_names=short)

    def test_export_rejects_unknown_name_and_interpolation(self):
        config = dict(model=None, export=self.export_dir, samples_per_class=1)
        with self.assertRaisesRegex(sample.SampleError, "unknown class names"):
            self._run("bad_name", classes=("dog", "unicorn"), **config)
        with self.assertRaisesRegex(sample.SampleError, "label must be in"):
            self._run("bad_label", classes=("5",), **config)
        with self.assertRaisesRegex(sample.SampleError, "exports only draw sheets"):
            self._run("bad_mode", classes=("0",), mode="interpolate_z", **config)

    def test_interpolate_z(self):
        for interpolation in sampling.INTERPOLATIONS:
            grid = self._run(
                f"z_{interpolation}",
                classes=("0", "1", "2"),
                mode="interpolate_z",
                steps=5,
                interpolation=interpolation,
            )
            self.assertEqual(grid.shape[:2], _grid_size(3, 5))

    def test_interpolate_class(self):
        grid = self._run(
            "classes", classes=("0", "2"), mode="interpolate_class", steps=4, samples_per_class=2
        )
        self.assertEqual(grid.shape[:2], _grid_size(2, 4))
        # The first and last columns are the pure classes: a sheet of class 0 / class 2.
        sheet = self._run("pure", classes=("0", "2"), samples_per_class=1)

        def cell(g, r, c):
            return g[PAD + r * (R + PAD) :][:R, PAD + c * (R + PAD) :][:, :R]

        self.assertLessEqual(np.abs(cell(grid, 0, 0).astype(int) - cell(sheet, 0, 0)).max(), 1)

    def test_bad_classes_for_model(self):
        with self.assertRaisesRegex(sample.SampleError, r"--classes \[3\] out of range"):
            self._run("oob", classes=("3",), samples_per_class=1)

    def _parse(self, *args):
        fv = flags.FlagValues()
        sample.define_flags(fv)
        fv(["sample"] + list(args))
        return sample.config_from_flags(fv)

    def test_flags(self):
        out = f"--output={os.path.join(self.root, 'x.png')}"
        config = self._parse(f"--model={self.model_dir}", out, "--classes=0,1", "--seed=3")
        self.assertEqual(config.classes, ("0", "1"))
        self.assertEqual(config.seed, 3)
        # A training run directory (here: one with only its models/) is a --model too.
        run_dir = os.path.join(self.root, "run")
        shutil.copytree(self.model_dir, os.path.join(run_dir, "models"))
        self.assertEqual(self._parse(f"--model={run_dir}", out).model, run_dir)
        bad = [
            [out],  # neither --model nor --export
            [f"--model={self.model_dir}", f"--export={self.export_dir}", out],
            [f"--model={self.root}", out],  # not a model directory
            [f"--model={self.model_dir}", "--output=x.jpg"],
            [f"--model={self.model_dir}", out, "--truncation=1.5"],
            [f"--model={self.model_dir}", out, "--mode=interpolate_class", "--classes=0,1,2"],
            [f"--export={self.export_dir}", out, "--mode=interpolate_z"],
            [f"--model={self.model_dir}", out, "--classes=cat"],
            [f"--model={self.model_dir}", out, "--mode=grid"],
            [f"--model={self.model_dir}", out, "--samples_per_class=0"],
            [f"--model={self.model_dir}", out, "--class_names=/no/such/names.txt"],
        ]
        for args in bad:
            with self.subTest(args=args):
                with self.assertRaises(flags.Error):
                    self._parse(*args)

    def test_cli_fails_fast(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
        cli = [sys.executable, "-m", "tf_cgan_transfer.sample", f"--export={self.export_dir}"]
        result = subprocess.run(
            cli + ["--output=o.png", "--mode=interpolate_class", "--classes=0,1"],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=120,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("Exports only draw sheets", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "o.png")))

    def test_cli_user_error(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
        cli = [sys.executable, "-m", "tf_cgan_transfer.sample", f"--model={self.model_dir}"]
        result = subprocess.run(
            cli + ["--output=oob.png", "--classes=0,3"],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=120,
        )
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        self.assertIn("error: --classes [3] out of range: the model has 3 classes", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "oob.png")))


if __name__ == "__main__":
    tf.test.main()
