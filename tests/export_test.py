"""Tests of export.py: what `run` and the command line write (serving_test: the model)."""

import dataclasses
import json
import os
import shutil
import sys
import tempfile

from absl import flags
import numpy as np
import tensorflow as tf

from tests import commands
from tf_cgan_transfer import biggan
from tf_cgan_transfer import export
from tf_cgan_transfer import model_io
from tf_cgan_transfer import serving

REPO = commands.REPO_ROOT
NAMES = ["cat", "dog", "fox"]
STATS = dict(num_batches=2, batch_size=64, truncation=0.8, seed=3)


def _write_stopped_run(run_dir, g, ema):
    """A run stopped before it finished: only its checkpoints (with an EMA generator)."""
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, model_io.GENERATOR_CONFIG_FILE), "w") as f:
        json.dump(g.get_config(), f)
    tf.train.Checkpoint(generator=g, ema_generator=ema).write(
        os.path.join(run_dir, "ckpt", "ckpt-3")
    )
    with open(os.path.join(run_dir, "ckpt", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-3"\n')


class ExportTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="export_test_")
        cls.model_dir = os.path.join(cls.root, "model")
        cls.export_root = os.path.join(cls.root, "exports")
        tf.keras.utils.set_random_seed(0)
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        model_io.save_models(cls.model_dir, g)
        names_file = os.path.join(cls.root, "names.txt")
        with open(names_file, "w") as f:
            f.write("\n".join(NAMES) + "\n\n")
        cls.version_dir = export.run(
            export.ExportConfig(
                model=cls.model_dir,
                name="tiny",
                export_root=cls.export_root,
                class_names_file=names_file,
                truncation=STATS["truncation"],
                standing_stats_batches=STATS["num_batches"],
                seed=STATS["seed"],
            )
        )
        # The Python reference: the same checkpoint with the same standing statistics.
        cls.generator, _ = model_io.restore_models(cls.model_dir)
        biggan.accumulate_standing_stats(cls.generator, **STATS)
        rng = np.random.default_rng(1)
        cls.z = rng.standard_normal([4, 8]).astype(np.float32)
        cls.labels = np.array([0, 2, 1, 2], np.int32)
        cls.expected = cls.generator((cls.z, cls.labels), training=False).numpy()
        cls.loaded = tf.saved_model.load(cls.version_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_layout(self):
        self.assertEqual(self.version_dir, os.path.join(self.export_root, "tiny", "1"))
        for path in ("saved_model.pb", "variables", "assets/class_names.txt", serving.WARMUP_FILE):
            self.assertTrue(os.path.exists(os.path.join(self.version_dir, path)), path)
        self.assertEqual(sorted(os.listdir(os.path.join(self.export_root, "tiny"))), ["1"])
        self.assertTrue(os.path.exists(os.path.join(self.export_root, serving.MODELS_CONFIG_FILE)))

    def test_matches_the_checkpoint_with_standing_statistics(self):
        images = self.loaded.signatures["serving_default"](
            label=tf.constant(self.labels), z=tf.constant(self.z)
        )["images"]
        self.assertAllClose(images, self.expected, atol=1e-5, rtol=0)
        self.assertAllClose(self.loaded.truncation, STATS["truncation"])
        names = self.loaded.signatures["label_for_name"](class_name=tf.constant(NAMES))
        self.assertAllEqual(names["label"], [0, 1, 2])

    def test_mixed_bfloat16_export(self):
        version_dir = export.run(
            export.ExportConfig(
                model=self.model_dir,
                name="tiny_bf16",
                export_root=os.path.join(self.root, "exports_bf16"),
                truncation=STATS["truncation"],
                standing_stats_batches=STATS["num_batches"],
                seed=STATS["seed"],
                warmup=False,
                mixed_precision="mixed_bfloat16",
            )
        )
        loaded = tf.saved_model.load(version_dir)
        images = loaded.signatures["serving_default"](
            label=tf.constant(self.labels), z=tf.constant(self.z)
        )["images"]
        self.assertEqual(images.dtype, tf.float32)
        # bfloat16 convolutions: the float32 images up to bf16 rounding, not bit-equal.
        self.assertAllClose(images, self.expected, atol=0.25, rtol=0)
        self.assertLess(float(tf.reduce_mean(tf.abs(images - self.expected))), 0.02)
        self.assertGreater(float(tf.reduce_max(tf.abs(images - self.expected))), 0.0)
        ops = {
            node.attr["T"].type
            for f in loaded.signatures["serving_default"].graph.as_graph_def().library.function
            for node in f.node_def
            if node.op == "Conv2D"
        }
        self.assertEqual(ops, {tf.bfloat16.as_datatype_enum})
        self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")

    def test_run_directory_resolves_to_the_ema_generator(self):
        run_dir = os.path.join(self.root, "run")
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        ema = biggan.Generator.from_config(g.get_config()).build_weights()
        z, y = biggan.sample_z(2, 8, seed=3), tf.constant([0, 2])
        _write_stopped_run(run_dir, g, ema)
        self.assertAllEqual(model_io.load_generator(run_dir)((z, y)), ema((z, y)))
        # A finished run: its final models, the EMA generator first.
        model_io.save_models(os.path.join(run_dir, "models"), g)
        self.assertAllEqual(model_io.load_generator(run_dir)((z, y)), g((z, y)))
        model_io.save_models(os.path.join(run_dir, "models_ema"), ema)
        self.assertAllEqual(model_io.load_generator(run_dir)((z, y)), ema((z, y)))
        with self.assertRaisesRegex(model_io.ModelError, "neither a model directory"):
            model_io.load_generator(os.path.join(self.root, "nothing"))

    def test_bad_name_and_existing_version(self):
        config = export.ExportConfig(
            model=self.model_dir, name="tiny", export_root=self.export_root
        )
        for name in ("", ".hidden", os.path.join("a", "b")):
            with self.subTest(name=name):
                with self.assertRaisesRegex(serving.ExportError, "plain directory name"):
                    export.run(export.ExportConfig(model=self.model_dir, name=name))
        existing = dataclasses.replace(config, version=1)
        with self.assertRaisesRegex(serving.ExportError, "already exists.*next free: 2"):
            export.run(existing)

    def _parse(self, *args):
        fv = flags.FlagValues()
        export.define_flags(fv)
        fv(["export"] + list(args))
        return export.config_from_flags(fv)

    def test_flags(self):
        stopped = os.path.join(self.root, "stopped_run")
        g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=8).build_weights()
        _write_stopped_run(stopped, g, g)
        # A run directory with only ckpt/ and generator_config.json is a model.
        for model in (self.model_dir, stopped):
            config = self._parse(f"--model={model}", "--name=tiny", "--version=4", "--nowarmup")
            self.assertEqual((config.model, config.version, config.warmup), (model, 4, False))
        bad = [
            ["--name=tiny"],  # no --model
            [f"--model={self.model_dir}"],  # no --name
            [f"--model={self.root}", "--name=tiny"],  # not a model directory
            [f"--model={self.model_dir}", "--name=.tiny"],
            [f"--model={self.model_dir}", "--name=tiny", "--truncation=0"],
            [f"--model={self.model_dir}", "--name=tiny", "--version=-1"],
            [f"--model={self.model_dir}", "--name=tiny", "--standing_stats_batches=-1"],
            [f"--model={self.model_dir}", "--name=tiny", "--mixed_precision=int8"],
        ]
        for args in bad:
            with self.subTest(args=args):
                with self.assertRaises(flags.Error):
                    self._parse(*args)

    def test_cli_versions(self):
        root = os.path.join(self.root, "cli_exports")
        shutil.copytree(os.path.join(self.export_root, "tiny"), os.path.join(root, "tiny"))
        cli = [sys.executable, "-m", "tf_cgan_transfer.export", f"--model={self.model_dir}"]
        cli += ["--name=tiny", f"--export_root={root}", "--standing_stats_batches=1"]
        result = commands.run(cli, cwd=REPO)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(os.path.join(root, "tiny", "2"), result.stdout)
        self.assertEqual(serving.list_versions(os.path.join(root, "tiny")), [1, 2])
        self.assertTrue(os.path.exists(os.path.join(root, "tiny", "2", serving.WARMUP_FILE)))
        self.assertTrue(os.path.exists(os.path.join(root, "models.config")))

        result = commands.run(cli + ["--version=1"], cwd=REPO)
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        self.assertRegex(result.stderr, r"error: .*tiny/1 already exists.*next free: 3")
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(serving.list_versions(os.path.join(root, "tiny")), [1, 2])
        self.assertEqual(sorted(os.listdir(os.path.join(root, "tiny"))), ["1", "2"])


if __name__ == "__main__":
    tf.test.main()
