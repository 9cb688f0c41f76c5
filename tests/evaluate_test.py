"""Tests of tf_cgan_transfer.evaluate: classifier loading, metrics, cache, Evaluator, CLI.

The Inception module cannot be downloaded here; `tests/fake_inception.py` writes fake
modules with its interface in both forms (callable TF2 SavedModel, TF1 Hub format). The
metrics are checked against independent float64 NumPy/SciPy computations.
"""

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from unittest import mock

from absl import flags
import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

from tests import fake_inception
from tests import model_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import evaluate

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 3
INCEPTION_URL = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"


# ---- NumPy references ----------------------------------------------------------------


def reference_fid(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2.0 * root)


def reference_fid_gram(a, b):
    """FID through the n_a x n_b cross-Gram matrix, cheap for any width.

    With S_a = A^T A, S_b = B^T B (A, B the centred rows over sqrt(n - 1)), the non-zero
    eigenvalues of S_a S_b are the squared singular values of A B^T, so
    tr (S_a S_b)^(1/2) is the nuclear norm of A B^T.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    cb = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    trace_root = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return mean_term + np.sum(ca * ca) + np.sum(cb * cb) - 2.0 * trace_root


def reference_kid(a, b):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (one block)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1.0) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return (
        (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        - 2.0 * k_ab.mean()
    )


def reference_is(logits):
    p = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
    q = p.mean(axis=0)
    return np.exp(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def reference_kmmd(real, generated, sigma=1.0):
    """The docstring's formula, with every pairwise distance computed explicitly."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)

    def squared(x, y):
        return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

    n = len(real)
    rr = squared(real, real)
    scale = rr.sum() / (n * (n - 1))  # the diagonal is zero
    kernel = lambda d: np.exp(-d / (2.0 * sigma**2 * scale))  # noqa: E731
    return (
        kernel(rr).mean()
        + kernel(squared(generated, generated)).mean()
        - 2.0 * kernel(squared(real, generated)).mean()
    )


# ---- Fixtures ------------------------------------------------------------------------


def smooth_images(n, size, seed):
    """Deterministic images in [-1, 1] with low-frequency structure (visible after pooling)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, size=[n, 4, 4, 3]).astype(np.float32) * 0.8
    images = tf.image.resize(coarse, [size, size], method="bilinear")
    return np.clip(images.numpy(), -1.0, 1.0)


def dataset_fn_of(images, labels, batch=16, counter=None):
    def dataset_fn():
        if counter is not None:
            counter.append(1)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch).repeat()

    return dataset_fn


def tiny_generator(seed=0):
    tf.keras.utils.set_random_seed(seed)
    return biggan.Generator(
        32, ch=8, num_classes=NUM_CLASSES, shared_dim=8, dim_z=8
    ).build_weights()


class _ExportedGenerator(tf.Module):
    """A generator export of the project's serving interface: z, label -> images."""

    def __init__(self, generator, num_classes=None):
        super().__init__()
        # Track the variables, not the Keras model (saving a Keras model traces every layer).
        self.weights = list(generator.variables)
        if num_classes is not None:
            self.num_classes = tf.Variable(num_classes, trainable=False)
        self.serve = tf.function(
            lambda z, label: {"images": generator((z, label), training=False)},
            input_signature=[
                tf.TensorSpec([None, generator.dim_z], tf.float32, name="z"),
                tf.TensorSpec([None], tf.int32, name="label"),
            ],
        )


_CLASSIFIER_DIRS = {}


def classifier_dir(form, **kwargs):
    """`(directory, weights)` of a fake Inception module, written once per test process.

    Args:
      form: "tf2" (callable SavedModel) or "tf1" (TF1 Hub format).
      **kwargs: `image_size`, `pool_dim`, `logits_dim` for `fake_inception`.
    """
    key = (form, tuple(sorted(kwargs.items())))
    if key not in _CLASSIFIER_DIRS:
        if not _CLASSIFIER_DIRS:
            root = tempfile.mkdtemp(prefix="evaluate_test_")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _CLASSIFIER_DIRS["root"] = root
        path = os.path.join(_CLASSIFIER_DIRS["root"], f"{form}_{len(_CLASSIFIER_DIRS)}")
        write = dict(tf2=fake_inception.write_tf2_module, tf1=fake_inception.write_tf1_hub_module)
        _CLASSIFIER_DIRS[key] = (path, write[form](path, **kwargs))
    return _CLASSIFIER_DIRS[key]


# ---- Classifier ----------------------------------------------------------------------


class ClassifierTest(tf.test.TestCase):
    def test_both_module_forms_give_the_same_activations(self):
        tf2_dir, weights = classifier_dir("tf2")
        tf1_dir, weights1 = classifier_dir("tf1")
        np.testing.assert_array_equal(weights["w1"], weights1["w1"])
        tf2 = evaluate.load_classifier(tf2_dir)
        tf1 = evaluate.load_classifier(tf1_dir)
        self.assertTrue(callable(tf2.module))
        self.assertFalse(callable(tf1.module))  # TF1 Hub format: signatures["default"] only
        for classifier in (tf2, tf1):
            self.assertEqual(classifier.image_size, 299)
            self.assertEqual((classifier.pool_dim, classifier.num_logits), (2048, 1008))

        images = smooth_images(6, 299, seed=1)
        out2, out1 = tf2(images), tf1(images)
        self.assertEqual(out2["pool_3"].shape, [6, 2048])  # flattened from [6, 1, 1, 2048]
        self.assertEqual(out2["logits"].shape, [6, 1008])
        self.assertAllClose(out2["pool_3"], out1["pool_3"], atol=1e-6, rtol=0)
        self.assertAllClose(out2["logits"], out1["logits"], atol=1e-5, rtol=0)
        pool, logits = fake_inception.reference_outputs(images, weights)
        self.assertAllClose(out2["pool_3"], pool, atol=1e-4, rtol=1e-4)
        self.assertAllClose(out2["logits"], logits, atol=1e-3, rtol=1e-4)
        # Different images, different features.
        other = tf2(smooth_images(6, 299, seed=2))["pool_3"]
        self.assertGreater(float(tf.reduce_max(tf.abs(other - out2["pool_3"]))), 0.05)

    def test_loaded_once_per_process(self):
        tf2_dir, _ = classifier_dir("tf2")
        first = evaluate.load_classifier(tf2_dir)
        with mock.patch.object(evaluate.hub, "load", side_effect=AssertionError("reloaded")):
            self.assertIs(evaluate.load_classifier(tf2_dir), first)
            self.assertIs(evaluate.load_classifier(tf2_dir + os.sep), first)
            self.assertIs(evaluate.load_classifier(first), first)

    def test_small_images_are_resized_bilinearly_to_the_input_signature_size(self):
        path, weights = classifier_dir("tf2", image_size=64, pool_dim=32, logits_dim=10)
        classifier = evaluate.load_classifier(path)
        self.assertEqual(classifier.image_size, 64)
        self.assertEqual((classifier.pool_dim, classifier.num_logits), (32, 10))
        images = smooth_images(4, 32, seed=3)
        resized = tf.image.resize(images, [64, 64], method="bilinear").numpy()
        pool, _ = fake_inception.reference_outputs(resized, weights, image_size=64)
        self.assertAllClose(classifier(images)["pool_3"], pool, atol=1e-4, rtol=1e-4)

    def test_a_module_without_the_outputs_is_rejected(self):
        module = tf.Module()
        module.__call__ = tf.function(
            lambda x: {"features": tf.reduce_mean(x, [1, 2])},
            input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)],
        )
        path = self.create_tempdir().full_path
        tf.saved_model.save(module, path)
        with self.assertRaisesRegex(
            evaluate.ClassifierError, r"returns \['features'\].*'pool_3' and 'logits'"
        ):
            evaluate.load_classifier(path)

    def test_bad_handles(self):
        with self.assertRaisesRegex(evaluate.ClassifierError, "neither an existing directory"):
            evaluate.load_classifier("/no/such/dir")
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(evaluate.ClassifierError, "not a SavedModel"):
            evaluate.load_classifier(empty)

    def test_unreachable_handle_offline_says_what_to_download_and_where(self):
        cache = self.create_tempdir().full_path
        digest = hashlib.sha1(INCEPTION_URL.encode()).hexdigest()
        self.assertEqual(digest, "c4be6b55dc0338e82546082d22184ebdc77d76cf")
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": cache}):
            for handle in (evaluate.INCEPTION_HANDLE, "tensorflow/tfgan/eval/inception/1"):
                start = time.time()
                with self.assertRaisesRegex(
                    evaluate.ClassifierError,
                    r"Could not fetch classifier https://tfhub.dev/tensorflow/tfgan/eval/"
                    r"inception/1.*download https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
                    r"\?tf-hub-format=compressed.*--classifier.*" + os.path.join(cache, digest),
                ):
                    evaluate.Evaluator(handle, None, {}, num_images=10)
                self.assertLess(time.time() - start, 5.0)  # fails fast, no retries

    def test_handle_resolves_offline_through_the_hub_cache(self):
        cache = self.create_tempdir().full_path
        digest = hashlib.sha1(INCEPTION_URL.encode()).hexdigest()
        fake_inception.write_tf2_module(os.path.join(cache, digest), pool_dim=16, logits_dim=8)
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": cache}):
            classifier = evaluate.load_classifier(INCEPTION_URL)
        self.assertEqual(classifier.name, INCEPTION_URL)
        self.assertEqual(classifier.path, os.path.join(cache, digest))
        self.assertEqual(classifier.pool_dim, 16)


# ---- Metrics -------------------------------------------------------------------------


class MetricsTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(0)

    def test_fid_equals_scipy(self):
        a = self.rng.normal(size=[500, 64])
        b = self.rng.normal(size=[400, 64]) * 1.3 + 0.2
        self.assertAllClose(evaluate.frechet_distance(a, b), reference_fid(a, b), rtol=1e-3)
        self.assertAllClose(reference_fid_gram(a, b), reference_fid(a, b), rtol=1e-6)
        self.assertAllClose(
            evaluate.frechet_distance(a.astype(np.float32), b.astype(np.float32)),
            reference_fid(a.astype(np.float32), b.astype(np.float32)),
            rtol=1e-3,
        )

    def test_fid_with_fewer_points_than_dimensions_is_unchanged_by_the_span_basis(self):
        a = self.rng.normal(size=[60, 300])
        b = self.rng.normal(size=[50, 300]) * 1.2 + 0.3
        tfgan_full = float(
            evaluate.tfgan.eval.frechet_classifier_distance_from_activations(
                tf.constant(a), tf.constant(b)
            )
        )
        fid = evaluate.frechet_distance(a, b)
        self.assertAllClose(fid, tfgan_full, rtol=1e-6)
        self.assertAllClose(fid, reference_fid(a, b), rtol=1e-3)
        self.assertAllClose(fid, reference_fid_gram(a, b), rtol=1e-6)
        self.assertTrue(np.isnan(evaluate.frechet_distance(a[:1], b)))

    def test_kid_equals_unbiased_mmd_with_the_cubic_kernel(self):
        a = self.rng.normal(size=[300, 32])
        b = self.rng.normal(size=[200, 32]) + 0.3
        kid, std = evaluate.kernel_distance(a, b)
        self.assertAllClose(kid, reference_kid(a, b), rtol=1e-3)
        self.assertTrue(np.isnan(std))  # one block
        kid_blocks, std_blocks = evaluate.kernel_distance(a, b, max_block_size=100)
        self.assertTrue(np.isfinite(std_blocks) and std_blocks > 0)
        self.assertAllClose(kid_blocks, kid, rtol=0.5)

    def test_inception_score_from_logits(self):
        logits = self.rng.normal(size=[100, 1008]) * 3.0
        self.assertAllClose(evaluate.inception_score(logits), reference_is(logits), rtol=1e-3)
        self.assertAllClose(evaluate.inception_score(np.zeros([10, 5])), 1.0)

    def test_kmmd_equals_the_documented_formula(self):
        a = self.rng.normal(size=[120, 24])
        b = self.rng.normal(size=[90, 24]) * 1.1 + 0.2
        self.assertAllClose(evaluate.kernel_mmd(a, b), reference_kmmd(a, b), rtol=1e-6)
        self.assertAllClose(
            evaluate.kernel_mmd(a, b, sigma=2.0), reference_kmmd(a, b, sigma=2.0), rtol=1e-6
        )
        self.assertAllClose(evaluate.kernel_mmd(a, a), 0.0, atol=1e-12)
        # More rows than a chunk (1024) exercise the chunked sums.
        big_a, big_b = self.rng.normal(size=[1100, 4]), self.rng.normal(size=[1030, 4]) + 0.1
        self.assertAllClose(
            evaluate.kernel_mmd(big_a, big_b), reference_kmmd(big_a, big_b), rtol=1e-6
        )

    def test_per_class_fid(self):
        real, gen = self.rng.normal(size=[90, 8]), self.rng.normal(size=[60, 8]) + 0.5
        real_labels, gen_labels = np.arange(90) % 3, np.arange(60) % 3
        gen_labels[gen_labels == 2] = 1  # class 2: no generated images
        with self.assertLogs("absl", "WARNING") as logs:
            result = evaluate.per_class_frechet_distance(real, real_labels, gen, gen_labels, 3)
        self.assertIn("classes [2]", "\n".join(logs.output))
        self.assertEqual(sorted(result), [0, 1, 2])
        for c in (0, 1):
            self.assertAllClose(
                result[c], reference_fid(real[real_labels == c], gen[gen_labels == c]), rtol=1e-3
            )
        self.assertTrue(np.isnan(result[2]))

    def test_too_few_images_warning_says_how_many_were_used(self):
        with self.assertLogs("absl", "WARNING") as logs:
            evaluate.warn_if_too_few(500, 400, 2048)
        self.assertRegex(logs.output[0], "500 real and 400 generated images.*fewer than 2048")
        with self.assertLogs("absl", "WARNING") as logs:
            evaluate.warn_if_too_few(3000, 3000, 4096)  # fewer than the feature width
        self.assertRegex(logs.output[0], "3000 real and 3000 generated.*fewer than 4096")
        with self.assertNoLogs("absl", "WARNING"):
            evaluate.warn_if_too_few(2048, 2048, 2048)

    def test_json_safe_reaches_into_lists(self):
        value = {1: [np.float32(0.5), float("nan"), (float("inf"), np.int64(3))]}
        self.assertEqual(evaluate.json_safe(value), {"1": [0.5, None, [None, 3]]})
        json.dumps(evaluate.json_safe(value), allow_nan=False)  # standard JSON


# ---- Real statistics cache -------------------------------------------------------------


class CacheTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.images = smooth_images(40, 16, seed=4)
        self.labels = np.arange(40) % NUM_CLASSES
        self.classifier = evaluate.load_classifier(classifier_dir("tf2")[0])
        self.cache_dir = self.create_tempdir().full_path
        self.calls = []
        self.key = dict(dataset="fake", split="train", classes=[0, 1, 2], resolution=16)

    def _evaluator(self, key=None, num_images=30, classifier=None):
        return evaluate.Evaluator(
            classifier or self.classifier,
            dataset_fn_of(self.images, self.labels, counter=self.calls),
            dict(key or self.key),
            num_images,
            batch_size=8,
            cache_dir=self.cache_dir,
        )

    def test_reused_when_the_key_matches(self):
        first = self._evaluator()
        pool, labels = first.real_activations()
        self.assertEqual(pool.shape, (30, 2048))
        self.assertEqual(pool.dtype, np.float32)
        np.testing.assert_array_equal(labels, self.labels[:30])
        expected = self.classifier(self.images[:30])["pool_3"]
        self.assertAllClose(pool, expected, atol=1e-5, rtol=0)
        self.assertIs(first.real_activations()[0], pool)  # in memory
        self.assertLen(self.calls, 1)

        npz_path, json_path = first.cache_paths()
        digest = hashlib.sha1(
            json.dumps(first.cache_key, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        self.assertEqual(os.path.basename(npz_path), f"real_{digest}.npz")
        with open(json_path) as f:
            self.assertEqual(json.load(f)["key"]["data"], self.key)
        mtime = os.stat(npz_path).st_mtime_ns

        # Another Evaluator, the same key in another order: read from disk.
        reordered = dict(reversed(list(self.key.items())))
        second = self._evaluator(key=reordered)
        self.assertEqual(second.cache_paths(), first.cache_paths())
        pool2, labels2 = second.real_activations()
        self.assertLen(self.calls, 1)  # real_dataset_fn not called again
        np.testing.assert_array_equal(pool2, pool)
        np.testing.assert_array_equal(labels2, labels)
        self.assertEqual(os.stat(npz_path).st_mtime_ns, mtime)

    def test_recomputed_when_any_part_of_the_key_differs(self):
        paths = {self._evaluator().cache_paths()}
        self._evaluator().real_activations()
        other_classifier = evaluate.load_classifier(classifier_dir("tf1")[0])
        variants = [
            self._evaluator(key=dict(self.key, split="test")),
            self._evaluator(key=dict(self.key, classes=[0, 1])),
            self._evaluator(key=dict(self.key, resolution=32)),
            self._evaluator(num_images=31),
            self._evaluator(classifier=other_classifier),
        ]
        for i, evaluator in enumerate(variants):
            paths.add(evaluator.cache_paths())
            evaluator.real_activations()
            self.assertLen(self.calls, 2 + i)
        self.assertLen(paths, 1 + len(variants))

    def test_a_sidecar_with_another_key_is_not_trusted(self):
        evaluator = self._evaluator()
        evaluator.real_activations()
        _, json_path = evaluator.cache_paths()
        with open(json_path, "w") as f:
            json.dump(dict(key=dict(something="else")), f)
        with self.assertLogs("absl", "WARNING"):
            self._evaluator().real_activations()
        self.assertLen(self.calls, 2)


# ---- Evaluator -------------------------------------------------------------------------


class EvaluatorTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classifier = evaluate.load_classifier(classifier_dir("tf2")[0])
        cls.generator = tiny_generator()
        cls.real_images = smooth_images(60, 32, seed=5)
        cls.real_labels = np.arange(60) % NUM_CLASSES

    def _evaluator(self, num_images=50, batch_size=16, **kwargs):
        return evaluate.Evaluator(
            self.classifier,
            dataset_fn_of(self.real_images, self.real_labels),
            dict(dataset="fake"),
            num_images,
            batch_size=batch_size,
            **kwargs,
        )

    def test_evaluate_end_to_end(self):
        evaluator = self._evaluator()
        with self.assertLogs("absl", "WARNING") as logs:
            results = evaluator.evaluate(self.generator)
        self.assertRegex("\n".join(logs.output), "50 real and 50 generated images")
        expected_keys = {
            "fid",
            "kid",
            "kid_std",
            "inception_score",
            "kmmd",
            "per_class_fid",
            "mean_per_class_fid",
            "num_real",
            "num_generated",
            "seconds",
            "images_per_second",
        }
        self.assertEqual(set(results), expected_keys)
        for key in expected_keys - {"kid_std", "per_class_fid"}:
            self.assertTrue(np.isfinite(results[key]), key)
        self.assertTrue(np.isnan(results["kid_std"]))  # one KID block
        self.assertEqual(sorted(results["per_class_fid"]), list(range(NUM_CLASSES)))
        self.assertTrue(all(np.isfinite(v) for v in results["per_class_fid"].values()))
        self.assertAllClose(
            results["mean_per_class_fid"], np.mean(list(results["per_class_fid"].values()))
        )
        self.assertEqual((results["num_real"], results["num_generated"]), (50, 50))
        self.assertGreater(results["fid"], 0)
        self.assertGreaterEqual(results["inception_score"], 1.0)

        # The numbers are the metric functions of the activations.
        real, real_labels = evaluator.real_activations()
        pool, logits, labels = evaluator.generated_activations(self.generator)
        np.testing.assert_array_equal(labels, np.arange(50) % NUM_CLASSES)
        # (2048-wide features: the cross-Gram reference; scipy's sqrtm would take minutes.)
        self.assertAllClose(results["fid"], reference_fid_gram(real, pool), rtol=1e-3)
        self.assertAllClose(results["kid"], reference_kid(real, pool), rtol=1e-3)
        self.assertAllClose(results["inception_score"], reference_is(logits), rtol=1e-3)
        self.assertAllClose(results["kmmd"], reference_kmmd(real, pool), rtol=1e-5)
        for c in range(NUM_CLASSES):
            self.assertAllClose(
                results["per_class_fid"][c],
                reference_fid_gram(real[real_labels == c], pool[labels == c]),
                rtol=1e-3,
            )

        # 50 images in batches of 16 (the last one padded): one trace, reused.
        self.assertEqual(evaluator.generation_traces, 1)
        again = evaluator.evaluate(self.generator)
        self.assertEqual(evaluator.generation_traces, 1)
        self.assertAllClose(again["fid"], results["fid"], rtol=1e-6)

    def test_generated_images_depend_on_the_seed_and_truncation_only(self):
        base = self._evaluator(num_images=20, batch_size=8)
        pool, _, _ = base.generated_activations(self.generator)
        other_batch, _, _ = self._evaluator(num_images=20, batch_size=5).generated_activations(
            self.generator
        )
        self.assertAllClose(pool, other_batch, atol=1e-4, rtol=1e-4)
        reseeded, _, _ = self._evaluator(num_images=20, seed=1).generated_activations(
            self.generator
        )
        self.assertGreater(np.abs(reseeded - pool).max(), 1e-3)
        truncated, _, _ = base.generated_activations(self.generator, truncation=0.5)
        self.assertGreater(np.abs(truncated - pool).max(), 1e-3)

    def test_exported_savedmodel_generator(self):
        directory = self.create_tempdir().full_path
        module = _ExportedGenerator(self.generator, num_classes=NUM_CLASSES)
        tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
        adapter = evaluate.load_model(directory)  # num_classes read from the SavedModel
        self.assertEqual((adapter.dim_z, adapter.num_classes), (8, NUM_CLASSES))
        evaluator = self._evaluator(num_images=12, batch_size=6)
        exported, _, _ = evaluator.generated_activations(adapter)
        direct, _, _ = evaluator.generated_activations(self.generator)
        self.assertAllClose(exported, direct, atol=1e-4, rtol=1e-4)

        # An export that does not record its class count needs num_classes.
        loaded = tf.saved_model.load(directory)
        signature_only = types.SimpleNamespace(signatures=loaded.signatures)
        with self.assertRaisesRegex(evaluate.EvaluationError, "number of classes.*--num_classes"):
            evaluate.as_generator(signature_only)
        self.assertEqual(evaluate.as_generator(signature_only, num_classes=5).num_classes, 5)

    def test_bad_real_data(self):
        uint8 = lambda: tf.data.Dataset.from_tensor_slices(  # noqa: E731
            (np.zeros([4, 8, 8, 3], np.uint8), np.zeros([4], np.int32))
        ).batch(2)
        with self.assertRaisesRegex(evaluate.EvaluationError, "float images.*element_spec"):
            evaluate.Evaluator(self.classifier, uint8, {}, 4).real_activations()
        pixels = dataset_fn_of(self.real_images * 127.5 + 127.5, self.real_labels)
        with self.assertRaisesRegex(evaluate.EvaluationError, r"span \[28.*229.*\]; scale them"):
            evaluate.Evaluator(self.classifier, pixels, {}, 4).real_activations()
        short = dataset_fn_of(self.real_images[:10], self.real_labels[:10])
        finite = lambda: short().take(1)  # noqa: E731
        with self.assertRaisesRegex(evaluate.EvaluationError, "yielded 10 images.*num_images=20"):
            evaluate.Evaluator(self.classifier, finite, {}, 20).real_activations()
        with self.assertRaisesRegex(evaluate.EvaluationError, "num_images must be >= 2"):
            evaluate.Evaluator(self.classifier, short, {}, 1)
        with self.assertRaisesRegex(evaluate.EvaluationError, "JSON-serialisable"):
            evaluate.Evaluator(self.classifier, short, {"x": object()}, 10)


# ---- Command line ----------------------------------------------------------------------


class CommandLineTest(tf.test.TestCase):
    def _fixture(self):
        root = self.create_tempdir().full_path
        model_dir = os.path.join(root, "model")
        biggan.save_models(model_dir, tiny_generator(seed=1))
        npz = os.path.join(root, "real.npz")
        images = ((smooth_images(45, 32, seed=6) + 1.0) * 127.5).round().astype(np.uint8)
        np.savez(npz, images=images, labels=np.arange(45) % NUM_CLASSES)
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
            f"--classifier={classifier_dir('tf2')[0]}",
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
        self.assertEqual(config.classifier, INCEPTION_URL)
        self.assertEqual(config.num_images, 10000)
        no_data = flags.FlagValues()
        evaluate.define_flags(no_data)
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "exactly one of --dataset"):
            no_data(["evaluate", f"--model={model_dir}", "--output=/tmp/x.json"])
        both = flags.FlagValues()
        evaluate.define_flags(both)
        with self.assertRaisesRegex(flags.IllegalFlagValueError, "exactly one of --dataset"):
            both(["evaluate"] + good + ["--dataset=cifar100"])

    def test_cli_on_an_image_folder_data_set(self):
        root, model_dir, _ = self._fixture()
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"), per_class=4)
        classifier = os.path.join(root, "classifier_folder")
        fake_inception.write_tf2_module(classifier)
        output = os.path.join(root, "folder_metrics.json")
        result = self._run(
            f"--model={model_dir}",
            "--dataset=folder",
            f"--image_folder={folder}",
            f"--classifier={classifier}",
            "--num_images=12",
            "--batch_size=4",
            f"--output={output}",
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        with open(output) as f:
            record = json.load(f)
        self.assertIn("fid", json.dumps(record))

    def test_offline_default_classifier_is_one_clear_error(self):
        root, model_dir, npz = self._fixture()
        result = self._run(
            f"--model={model_dir}",
            f"--real_images_npz={npz}",
            f"--output={os.path.join(root, 'm.json')}",
            env={"TFHUB_CACHE_DIR": self.create_tempdir().full_path},
        )
        self.assertEqual(result.returncode, 1)
        self.assertRegex(
            result.stderr,
            r"error: Could not fetch classifier .*tf-hub-format=compressed.*"
            "c4be6b55dc0338e82546082d22184ebdc77d76cf",
        )
        self.assertNotIn("Traceback", result.stderr)
