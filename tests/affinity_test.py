"""Tests of tf_cgan_transfer.affinity: the class-affinity report and its command line."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.model_fixtures import MAPPING, OLD_CLASSES, make_source, set_one_hot_mixtures
from tf_cgan_transfer import affinity
from tf_cgan_transfer import biggan
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import sheets
from tf_cgan_transfer import transfer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _kp_bn_generator(source_dir):
    """A tiny kp_bn generator whose new class n copies old class MAPPING[n]."""
    make_source(source_dir)
    g = transfer.build(transfer.TransferConfig("kp_bn", 3), source=source_dir).generator
    set_one_hot_mixtures(g, MAPPING)
    return g


def _expected_heatmap_shape(rows, columns, num_layers):
    """The heat map's size: it depends only on the labels and the title, not the values."""
    title = f"class affinity: mean mixture weight over {num_layers} BN layers"
    return sheets.heatmap(np.zeros([len(rows), len(columns)]), rows, columns, title=title).shape


def _record_run(run, folder, classes, **recorded):
    """Makes `run` a run of ours trained on an image folder with (empty) class folders."""
    for name in classes:
        os.makedirs(os.path.join(folder, name))
    os.makedirs(run, exist_ok=True)
    data = dict(dataset="folder", image_folder=folder, resolution=32)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(dict(data=data, **recorded), f)
    return run


def _image_summaries(logdir, tag):
    """The PNGs of the image summaries `tag` in the event files under `logdir`."""
    found = []
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:  # TF2 image summaries: [width, height, png, ...]
                    found.append(tf.io.decode_png(value.tensor.string_val[2]).numpy())
    return found


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
        json_path, text_path, picture_path = affinity.write_report(report, out)
        with open(json_path) as f:
            self.assertEqual(json.load(f), report)
        with open(text_path) as f:
            text = f.read()
        self.assertIn("tulip: old3 (+1.000)", text)
        self.assertEqual(picture_path, os.path.join(out, affinity.PICTURE_FILE))

    def test_heatmap_columns_are_the_union_of_the_top_old_classes(self):
        g = _kp_bn_generator(self.create_tempdir().full_path)
        scores, _ = affinity.affinity_scores(g)
        report = affinity.class_affinity(g, top_k=2)
        heat = report["heatmap"]
        tops = [[t["old_class"] for t in entry["top"]] for entry in report["classes"]]
        self.assertEqual(heat["old_classes"][:2], tops[0])
        self.assertCountEqual(heat["old_classes"], set(sum(tops, [])))
        self.assertAllClose(heat["scores"], scores[:, heat["old_classes"]])
        self.assertIsNone(heat["old_names"])

    def test_heatmap_png_and_tensorboard_image_of_a_run(self):
        g = _kp_bn_generator(self.create_tempdir().full_path)
        run_dir = self.create_tempdir().full_path
        names = os.path.join(run_dir, "old_names.txt")
        with open(names, "w") as f:
            f.write("".join(f"old{k}\n" for k in range(OLD_CLASSES)))
        writer = tf.summary.create_file_writer(run_dir)
        new_names = ["tulip", "rose", "daisy"]
        report = affinity.write_run_report(
            g, run_dir, new_names, source_names=names, writer=writer, step=7
        )
        writer.flush()
        # Top 5 of 5: every old class, new class 0's first (MAPPING[0], then ranked).
        self.assertEqual(report["heatmap"]["old_classes"][0], MAPPING[0])
        self.assertCountEqual(report["heatmap"]["old_classes"], range(OLD_CLASSES))
        picture = tf.io.decode_png(
            tf.io.read_file(os.path.join(run_dir, affinity.PICTURE_FILE))
        ).numpy()
        columns = [f"{k} old{k}" for k in report["heatmap"]["old_classes"]]
        shape = _expected_heatmap_shape(new_names, columns, report["num_layers"])
        self.assertEqual(picture.shape, shape)
        self.assertAllEqual(picture, affinity.heatmap_picture(report))
        # Each new class's own old class is its darkest cell (weight 1, the others ~0).
        darkness = 255 - picture.min(-1).astype(int)
        self.assertGreater(darkness.max(), 200)
        summaries = _image_summaries(run_dir, affinity.SUMMARY_TAG)
        self.assertLen(summaries, 1)
        self.assertAllEqual(summaries[0], picture)

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
        g = _kp_bn_generator(self.create_tempdir().full_path)
        models = self.create_tempdir().full_path
        model_io.save_models(models, g)
        # The run's record of its initial mixtures, here twice the final ones.
        initial = {k: 2 * v for k, v in mixture_stats.mixtures(g).items()}
        np.savez(os.path.join(models, mixture_stats.INITIAL_FILE), **initial)
        out = self.create_tempdir().full_path
        result = self._run(f"--model={models}", "--top_k=1", f"--output_dir={out}")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn(
            "  overall: change 0.500, correlation 1.000, top-5 share 1.000, entropy 0.000", lines
        )
        self.assertIn(f"top 1 of {OLD_CLASSES} old classes", lines[0])
        # New class n draws on old class MAPPING[n] with weight 1.
        for n, old in enumerate(MAPPING):
            self.assertEqual(lines[1 + n], f"new class {n}: {old} (+1.000)")
        with open(os.path.join(out, affinity.JSON_FILE)) as f:
            report = json.load(f)
        self.assertEqual([c["top"][0]["old_class"] for c in report["classes"]], MAPPING)
        picture = tf.io.decode_png(tf.io.read_file(os.path.join(out, affinity.PICTURE_FILE)))
        rows = [f"new class {n}" for n in range(3)]
        shape = _expected_heatmap_shape(rows, [str(k) for k in MAPPING], report["num_layers"])
        self.assertEqual(tuple(picture.shape), shape)

    def test_names_of_a_run_and_its_recorded_source(self):
        root = self.create_tempdir().full_path
        source = os.path.join(root, "source")
        g = _kp_bn_generator(source)
        # The source and the transfer are runs of ours: their config.json names their data.
        _record_run(source, os.path.join(root, "old_images"), "abcde")
        run = _record_run(
            os.path.join(root, "run"),
            os.path.join(root, "new_images"),
            ["tulip", "rose", "daisy"],
            source=source,
        )
        model_io.save_models(os.path.join(run, "models"), g)
        result = self._run(f"--model={run}", "--top_k=1")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        # Folders sort: daisy, rose, tulip (new); a..e (old).
        old = "abcde"
        for n, name in enumerate(["daisy", "rose", "tulip"]):
            self.assertEqual(lines[1 + n], f"{name}: {old[MAPPING[n]]} (+1.000)")
        # --class_names and --source_class_names win.
        new_file, old_file = os.path.join(root, "new.txt"), os.path.join(root, "old.txt")
        with open(new_file, "w") as f:
            f.write("N0\nN1\nN2\n")
        with open(old_file, "w") as f:
            f.write("O0\nO1\nO2\nO3\nO4\n")
        result = self._run(
            f"--model={run}",
            "--top_k=1",
            f"--class_names={new_file}",
            f"--source_class_names={old_file}",
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[1], f"N0: O{MAPPING[0]} (+1.000)")
        # A names file of the wrong length is one clear error naming both counts.
        result = self._run(f"--model={run}", f"--class_names={old_file}")
        self.assertEqual(result.returncode, 2)
        self.assertIn(f"error: {old_file} lists 5 class names, but the model has 3", result.stderr)

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
