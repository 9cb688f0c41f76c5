"""Tests of tf_cgan_transfer.evaluator: the real-statistics cache, the Evaluator, adapters.

Classifiers are the fakes of `tests/fake_inception.py`; the metrics of an evaluation are
checked against the NumPy references of `tests/eval_fixtures.py`.
"""

import hashlib
import json
import os
import types

import numpy as np
import tensorflow as tf

from tests import eval_fixtures
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import evaluator as evaluator_lib
from tf_cgan_transfer import metrics

NUM_CLASSES = eval_fixtures.NUM_CLASSES


def dataset_fn_of(images, labels, batch=16, counter=None):
    def dataset_fn():
        if counter is not None:
            counter.append(1)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch).repeat()

    return dataset_fn


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


# ---- Real statistics cache -------------------------------------------------------------


class CacheTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.images = eval_fixtures.smooth_images(40, 16, seed=4)
        self.labels = np.arange(40) % NUM_CLASSES
        self.classifier = classifier_lib.load_classifier(eval_fixtures.classifier_dir("tf2")[0])
        self.cache_dir = self.create_tempdir().full_path
        self.calls = []
        self.key = dict(dataset="fake", split="train", classes=[0, 1, 2], resolution=16)

    def _evaluator(self, key=None, num_images=30, classifier=None):
        return evaluator_lib.Evaluator(
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
        other_classifier = classifier_lib.load_classifier(eval_fixtures.classifier_dir("tf1")[0])
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
        cls.classifier = classifier_lib.load_classifier(eval_fixtures.classifier_dir("tf2")[0])
        cls.generator = eval_fixtures.tiny_generator()
        cls.real_images = eval_fixtures.smooth_images(60, 32, seed=5)
        cls.real_labels = np.arange(60) % NUM_CLASSES

    def _evaluator(self, num_images=50, batch_size=16, **kwargs):
        return evaluator_lib.Evaluator(
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
            "precision",
            "recall",
            "density",
            "coverage",
            "per_class_manifold",
            "num_real",
            "num_generated",
            "seconds",
            "images_per_second",
        }
        self.assertEqual(set(results), expected_keys)
        for key in expected_keys - {"kid_std", "per_class_fid", "per_class_manifold"}:
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
        self.assertAllClose(results["fid"], eval_fixtures.reference_fid_gram(real, pool), rtol=1e-3)
        self.assertAllClose(results["kid"], eval_fixtures.reference_kid(real, pool), rtol=1e-3)
        self.assertAllClose(
            results["inception_score"], eval_fixtures.reference_is(logits), rtol=1e-3
        )
        self.assertAllClose(results["kmmd"], eval_fixtures.reference_kmmd(real, pool), rtol=1e-5)
        # Nearest-neighbour metrics of the same features (the functions are tested against
        # SciPy in tests/metrics_test.py).
        self.assertAllClose(
            [results[k] for k in metrics.MANIFOLD_KEYS],
            list(metrics.precision_recall(real, pool)) + list(metrics.density_coverage(real, pool)),
        )
        for c in range(NUM_CLASSES):
            expected = metrics.manifold_metrics(real[real_labels == c], pool[labels == c])
            self.assertAllClose(results["per_class_manifold"][c], expected)
        for c in range(NUM_CLASSES):
            self.assertAllClose(
                results["per_class_fid"][c],
                eval_fixtures.reference_fid_gram(real[real_labels == c], pool[labels == c]),
                rtol=1e-3,
            )

        # 50 images in batches of 16 (the last one padded): one trace, reused.
        self.assertEqual(evaluator.generation_trace_count(), 1)
        again = evaluator.evaluate(self.generator)
        self.assertEqual(evaluator.generation_trace_count(), 1)
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
        with self.assertRaisesRegex(
            evaluator_lib.EvaluationError, "number of classes.*--num_classes"
        ):
            evaluator_lib.as_generator(signature_only)
        self.assertEqual(evaluator_lib.as_generator(signature_only, num_classes=5).num_classes, 5)

    def test_bad_real_data(self):
        uint8 = lambda: tf.data.Dataset.from_tensor_slices(  # noqa: E731
            (np.zeros([4, 8, 8, 3], np.uint8), np.zeros([4], np.int32))
        ).batch(2)
        with self.assertRaisesRegex(evaluator_lib.EvaluationError, "float images.*element_spec"):
            evaluator_lib.Evaluator(self.classifier, uint8, {}, 4).real_activations()
        pixels = dataset_fn_of(self.real_images * 127.5 + 127.5, self.real_labels)
        with self.assertRaisesRegex(
            evaluator_lib.EvaluationError, r"span \[28.*229.*\]; scale them"
        ):
            evaluator_lib.Evaluator(self.classifier, pixels, {}, 4).real_activations()
        short = dataset_fn_of(self.real_images[:10], self.real_labels[:10])
        finite = lambda: short().take(1)  # noqa: E731
        with self.assertRaisesRegex(
            evaluator_lib.EvaluationError, "yielded 10 images.*num_images=20"
        ):
            evaluator_lib.Evaluator(self.classifier, finite, {}, 20).real_activations()
        with self.assertRaisesRegex(evaluator_lib.EvaluationError, "num_images must be >= 2"):
            evaluator_lib.Evaluator(self.classifier, short, {}, 1)
        with self.assertRaisesRegex(evaluator_lib.EvaluationError, "JSON-serialisable"):
            evaluator_lib.Evaluator(self.classifier, short, {"x": object()}, 10)
