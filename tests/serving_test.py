"""Tests of serving.py: the SavedModel as TF Serving would load and run it."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import tensorflow as tf

from tests import commands
from tf_cgan_transfer import biggan
from tf_cgan_transfer import errors
from tf_cgan_transfer import sampling
from tf_cgan_transfer import serving

REPO = commands.REPO_ROOT
SERVE_CHECK_CC = os.path.join(REPO, "tests", "serve_check.cc")
NAMES = ["cat", "dog", "fox"]
STATS = dict(num_batches=2, batch_size=64, truncation=0.8, seed=3)
MAX_BATCH = 8  # the export's --max_batch


def _bad_requests():
    """`(label, z, error regex)` for serving_default: each must be INVALID_ARGUMENT."""
    z, nan, inf = np.zeros([1, 8], np.float32), np.float32("nan"), np.float32("inf")
    return [
        ([0], np.where(np.arange(8) == 3, nan, z), r"z must be finite \(no NaN or Inf\)"),
        ([0], np.where(np.arange(8) == 0, -inf, z), r"z must be finite"),
        ([0], np.zeros([1, 8, 1], np.float32), r"z must have shape \[N, 8\]"),
        ([0], np.zeros([1, 5], np.float32), r"z must have shape \[N, 8\]"),
        ([3], z, r"label must be in \[0, 3\)"),
        ([-1], z, r"label must be in \[0, 3\)"),
        ([], np.zeros([0, 8], np.float32), r"label: the batch is empty"),
        ([0] * 9, np.zeros([9, 8], np.float32), r"label: batch over max_batch=8"),
        ([0, 1], z, r"z and label must have the same batch size"),
    ]


def _write_serve_check_input(path, labels, z):
    """serve_check's input: "N D" for labels [N] and z [N, D], else "N dims of z"."""
    with open(path, "w") as f:
        if z.ndim == 2 and z.shape[0] == len(labels):
            f.write(f"{z.shape[0]} {z.shape[1]}\n")
        else:
            f.write(" ".join(str(d) for d in (len(labels), *z.shape)) + "\n")
        f.write(" ".join(str(int(v)) for v in labels) + "\n")
        f.write(" ".join(repr(float(v)) for v in z.ravel()) + "\n")


def _read_serve_check_output(path):
    with open(path) as f:
        header = [int(v) for v in f.readline().split()]
        values = np.array([float(line) for line in f], np.float32)
    return values.reshape(header[1:])


class ServingTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="serving_test_")
        cls.serve_check = cls.build = None
        if shutil.which("g++"):  # builds (~10 s, one core) while the export is written
            tf_dir = os.path.dirname(tf.__file__)
            cls.serve_check = os.path.join(cls.root, "serve_check")
            cls.build = subprocess.Popen(
                ["g++", "-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=1", "-DEIGEN_MAX_ALIGN_BYTES=64"]
                + [f"-I{tf_dir}/include", SERVE_CHECK_CC, "-o", cls.serve_check, f"-L{tf_dir}"]
                + ["-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2"]
                + [f"-Wl,-rpath,{tf_dir}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        cls.export_root = os.path.join(cls.root, "exports")
        tf.keras.utils.set_random_seed(0)
        # The Python reference is the very generator saved, statistics already set.
        cls.generator = biggan.Generator(
            32, ch=8, num_classes=3, shared_dim=8, dim_z=8
        ).build_weights()
        biggan.accumulate_standing_stats(cls.generator, **STATS)
        cls.version_dir = serving.save_generator(
            cls.generator,
            os.path.join(cls.export_root, "tiny", "1"),
            NAMES,
            STATS["truncation"],
            model_name="tiny",
            max_batch=MAX_BATCH,
        )
        serving.write_models_config(cls.export_root)
        rng = np.random.default_rng(1)
        cls.z = rng.standard_normal([4, 8]).astype(np.float32)
        cls.labels = np.array([0, 2, 1, 2], np.int32)
        cls.expected = cls.generator((cls.z, cls.labels), training=False).numpy()
        cls.loaded = tf.saved_model.load(cls.version_dir)

    @classmethod
    def tearDownClass(cls):
        if cls.build is not None and cls.build.poll() is None:
            cls.build.kill()
            cls.build.wait()
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_fresh_process_matches_python(self):
        np.save(os.path.join(self.root, "z.npy"), self.z)
        np.save(os.path.join(self.root, "label.npy"), self.labels)
        script = textwrap.dedent(f"""
            import os, sys
            import numpy as np, tensorflow as tf
            root = {self.root!r}
            m = tf.saved_model.load({self.version_dir!r})
            out = m.signatures["serving_default"](
                label=tf.constant(np.load(os.path.join(root, "label.npy"))),
                z=tf.constant(np.load(os.path.join(root, "z.npy"))))
            assert sorted(out) == ["images"], sorted(out)
            np.save(os.path.join(root, "fresh.npy"), out["images"].numpy())
            import tensorflow_hub as hub
            h = hub.load({self.version_dir!r})
            again = h.signatures["serving_default"](
                label=tf.constant(np.load(os.path.join(root, "label.npy"))),
                z=tf.constant(np.load(os.path.join(root, "z.npy"))))["images"].numpy()
            np.testing.assert_array_equal(again, out["images"].numpy())
            assert not any(k.startswith("tf_cgan_transfer") for k in sys.modules)
            """)
        result = commands.run([sys.executable, "-c", script], cwd=self.root)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        fresh = np.load(os.path.join(self.root, "fresh.npy"))
        self.assertEqual(fresh.shape, (4, 32, 32, 3))
        self.assertAllClose(fresh, self.expected, atol=1e-5, rtol=0)

    def test_output_independent_of_batch(self):
        serve = self.loaded.signatures["serving_default"]
        batch = serve(label=tf.constant(self.labels), z=tf.constant(self.z))["images"]
        alone = serve(label=tf.constant(self.labels[1:2]), z=tf.constant(self.z[1:2]))["images"]
        self.assertAllClose(batch[1:2], alone, atol=1e-5, rtol=0)
        self.assertAllInRange(batch, -1.0, 1.0)

    def test_saved_model_cli_lists_images(self):
        result = commands.run(
            [
                "saved_model_cli",
                "show",
                "--dir",
                self.version_dir,
                "--tag_set",
                "serve",
                "--signature_def",
                "serving_default",
            ]
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("outputs['images']", result.stdout)
        self.assertIn("inputs['z']", result.stdout)
        self.assertIn("tensorflow/serving/predict", result.stdout)

    def test_saved_model_cli_run(self):
        z_path, label_path = os.path.join(self.root, "cli_z.npy"), os.path.join(
            self.root, "cli_label.npy"
        )
        np.save(z_path, self.z)
        np.save(label_path, self.labels)
        out_dir = os.path.join(self.root, "cli_out")
        result = commands.run(
            [
                "saved_model_cli",
                "run",
                "--dir",
                self.version_dir,
                "--tag_set",
                "serve",
                "--signature_def",
                "serving_default",
                "--inputs",
                f"z={z_path};label={label_path}",
                "--outdir",
                out_dir,
            ]
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertAllClose(
            np.load(os.path.join(out_dir, "images.npy")), self.expected, atol=1e-5, rtol=0
        )

    def test_no_python_ops(self):
        self.assertEqual(serving.python_ops(self.version_dir), [])

    def test_op_scan_catches_py_function(self):
        module = tf.Module()
        module.f = tf.function(
            lambda x: {"y": tf.py_function(lambda v: v * 2.0, [x], tf.float32)},
            input_signature=[tf.TensorSpec([None], tf.float32)],
        )
        path = os.path.join(self.root, "pyfunc")
        tf.saved_model.save(module, path, signatures=module.f.get_concrete_function())
        self.assertEqual([op for op, _ in serving.python_ops(path)], ["EagerPyFunc"])

    def test_cpp_load_saved_model(self):
        if self.build is None:
            self.skipTest("g++ is not installed: cannot build tests/serve_check.cc")
        _, build_errors = self.build.communicate(timeout=300)
        self.assertEqual(self.build.returncode, 0, build_errors[-3000:])
        binary = self.serve_check

        def serve(labels, z):
            stem = os.path.join(self.root, f"cc_{len(labels)}_{z.shape[1]}_{labels[0]}")
            _write_serve_check_input(stem + ".in", labels, z)
            result = commands.run([binary, self.version_dir, stem + ".in", stem + ".out"])
            return result, stem + ".out"

        result, out = serve(self.labels, self.z)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertAllClose(_read_serve_check_output(out), self.expected, atol=1e-5, rtol=0)

        # Every bad request, then a good one, through one loaded model (as a server
        # gets them): each bad one is INVALID_ARGUMENT naming its input, the process
        # survives them and the good one still gets the right images.
        requests, bad = [], _bad_requests()
        for i, (labels, z, _) in enumerate(bad + [(self.labels, self.z, None)]):
            stem = os.path.join(self.root, f"cc_bad_{i}")
            _write_serve_check_input(stem + ".in", np.array(labels, np.int32), z)
            requests += [stem + ".in", stem + ".out"]
        result = commands.run([binary, self.version_dir, *requests])
        self.assertEqual(result.returncode, 3, result.stderr[-3000:])
        lines = [line for line in result.stderr.splitlines() if line.startswith("request ")]
        self.assertLen(lines, len(bad) + 1)
        for i, (line, (_, _, message)) in enumerate(zip(lines, bad)):
            self.assertRegex(line, rf"^request {i}: INVALID_ARGUMENT: .*{message}")
        self.assertEqual(lines[-1], f"request {len(bad)}: OK")
        self.assertAllClose(_read_serve_check_output(requests[-1]), self.expected, atol=1e-5)

    def test_sample_signature(self):
        sample = self.loaded.signatures["sample"]

        def draw(seeds):
            n = len(seeds)
            return sample(
                label=tf.constant([2, 0, 1][:n], tf.int32),
                seed=tf.constant(seeds, tf.int64),
                truncation=tf.fill([n], 0.8),
            )

        first, again, other = draw([5, 6, 7]), draw([5, 6, 7]), draw([8, 9, 10])
        self.assertEqual(first["images"].dtype, tf.uint8)
        self.assertEqual(first["images"].shape, (3, 32, 32, 3))
        self.assertAllEqual(first["images"], again["images"])
        self.assertGreater(
            np.abs(first["images"].numpy().astype(int) - other["images"].numpy()).max(), 0
        )
        # Per example: the same seed gives the same image in any batch.
        self.assertAllEqual(draw([5])["images"][0], first["images"][0])
        for png, pixels in zip(first["png_bytes"].numpy(), first["images"].numpy()):
            self.assertAllEqual(tf.io.decode_png(png), pixels)
        # z_i is sampling.seeded_latents (biggan.sample_z per seed, see sampling_test):
        # the Python model agrees.
        z = sampling.seeded_latents(tf.constant([5, 6, 7], tf.int64), 8, 0.8)
        reference = self.generator((z, tf.constant([2, 0, 1])), training=False)
        pixels = tf.cast(tf.round((reference + 1.0) * 127.5), tf.int32)
        self.assertLessEqual(np.abs(pixels - tf.cast(first["images"], tf.int32)).max(), 1)

    def test_label_for_name(self):
        lookup = self.loaded.signatures["label_for_name"]
        out = lookup(class_name=tf.constant(["fox", "cat", "dog"]))
        self.assertAllEqual(out["label"], [2, 0, 1])
        self.assertEqual(out["label"].dtype, tf.int32)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "unknown class names"):
            lookup(class_name=tf.constant(["cat", "unicorn"]))

    def test_bad_inputs_are_invalid_argument(self):
        serve = self.loaded.signatures["serving_default"]
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"label must be in \[0, 3\)"):
            serve(label=tf.constant([7]), z=tf.zeros([1, 8]))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"label must be in \[0, 3\)"):
            serve(label=tf.constant([-1]), z=tf.zeros([1, 8]))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"z must have shape \[N, 8\]"):
            serve(label=tf.constant([1]), z=tf.zeros([1, 5]))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "same batch size"):
            serve(label=tf.constant([1, 2]), z=tf.zeros([1, 8]))
        for label, z, message in _bad_requests():
            with self.subTest(message=message, label=label, z=z.shape):
                with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
                    serve(label=tf.constant(label, tf.int32), z=tf.constant(z))
        for label, z, message in (
            ([[0]], tf.zeros([1, 8]), r"label must have shape \[N\]"),
            ([0], tf.zeros([8]), r"z must have shape \[N, 8\]"),
        ):
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
                serve(label=tf.constant(label), z=z)

        sample = self.loaded.signatures["sample"]

        def draw(label=(0,), seed=(0,), truncation=(0.5,)):
            return sample(
                label=tf.constant(label, tf.int32),
                seed=tf.constant(seed, tf.int64),
                truncation=tf.constant(truncation, tf.float32),
            )

        for args, message in (
            (dict(label=[3]), r"label must be in \[0, 3\)"),
            (dict(label=[-2]), r"label must be in \[0, 3\)"),
            (dict(truncation=[0.0]), r"truncation must be in \(0, 1\]"),
            (dict(truncation=[-1.0]), r"truncation must be in \(0, 1\]"),
            (dict(truncation=[1.5]), r"truncation must be in \(0, 1\]"),
            (dict(truncation=[float("nan")]), r"truncation must be in \(0, 1\]"),
            (dict(seed=[[0]]), r"seed must have shape \[N\]"),
            (dict(label=[], seed=[], truncation=[]), r"label: the batch is empty"),
            (dict(label=[0] * 9, seed=[0] * 9, truncation=[1.0] * 9), "label: batch over max"),
            (dict(seed=[0, 1]), "label, seed and truncation must have the same size"),
        ):
            with self.subTest(message=message, args=args):
                with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
                    draw(**args)
        self.assertEqual(draw(truncation=[1.0])["images"].shape, (1, 32, 32, 3))

        lookup = self.loaded.signatures["label_for_name"]
        for names, message in (
            (["cat", "unicorn"], "unknown class names"),
            ([], "class_name: the batch is empty"),
            (["cat"] * 9, "class_name: batch over max_batch=8"),
        ):
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
                lookup(class_name=tf.constant(names, tf.string))
        # Still serving after every bad request.
        self.assertAllEqual(lookup(class_name=tf.constant(["dog"]))["label"], [1])

    def test_warmup_and_models_config(self):
        from google.protobuf import text_format
        from tensorflow_serving.apis import prediction_log_pb2
        from tensorflow_serving.config import model_server_config_pb2

        path = os.path.join(self.version_dir, serving.WARMUP_FILE)
        logs = []
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record.numpy())
            logs.append(log)
        signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
        self.assertEqual(signatures, ["serving_default", "sample", "label_for_name"])
        # Every signature is warmed up: a new one needs its warmup example too.
        self.assertCountEqual(signatures, self.loaded.signatures.keys())
        request = logs[0].predict_log.request
        self.assertEqual(request.model_spec.name, "tiny")
        self.assertEqual(tf.make_ndarray(request.inputs["z"]).shape, (1, 8))
        # The warmup requests run against the export.
        for log in logs:
            request = log.predict_log.request
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            self.loaded.signatures[request.model_spec.signature_name](**inputs)

        with open(os.path.join(self.export_root, serving.MODELS_CONFIG_FILE)) as f:
            config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        (entry,) = config.model_config_list.config
        self.assertEqual(entry.name, "tiny")
        self.assertEqual(entry.base_path, os.path.abspath(os.path.join(self.export_root, "tiny")))
        self.assertEqual(entry.model_platform, "tensorflow")

        prefixed = serving.write_models_config(self.export_root, base_path_prefix="/models")
        with open(prefixed) as f:
            config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        self.assertEqual(config.model_config_list.config[0].base_path, "/models/tiny")
        serving.write_models_config(self.export_root)  # restore the absolute paths

    def test_list_versions(self):
        self.assertEqual(serving.list_versions(os.path.join(self.export_root, "tiny")), [1])
        self.assertEqual(serving.list_versions(os.path.join(self.export_root, "none")), [])

    def test_class_names_file_errors(self):
        path = os.path.join(self.root, "two.txt")
        with open(path, "w") as f:
            f.write("a\nb\n")
        with self.assertRaisesRegex(serving.ExportError, "lists 2 class names.*3 classes"):
            serving.read_class_names(path, 3)
        with open(path, "w") as f:
            f.write("a\nb\na\n")
        with self.assertRaisesRegex(serving.ExportError, r"repeats class names \['a'\]"):
            serving.read_class_names(path, 3)
        self.assertEqual(serving.default_class_names(2), ["class_0", "class_1"])
        self.assertTrue(issubclass(serving.ExportError, errors.UserError))

    def test_save_generator_rejects_bad_class_names(self):
        target = os.path.join(self.root, "bad_names")
        for names in (["a", "b"], ["a", "b\nc", "d"], ["a", " b", "c"]):
            with self.subTest(names=names):
                with self.assertRaisesRegex(serving.ExportError, "Need 3 non-empty"):
                    serving.save_generator(self.generator, target, names, 1.0, warmup=False)
        self.assertFalse(os.path.exists(target))


if __name__ == "__main__":
    tf.test.main()
