"""Tests of tf_cgan_transfer.evaluator: the real-statistics cache, the Evaluator, adapters.

Classifiers are the fakes of `tests/fake_inception.py`; the metrics of an evaluation are
checked against the NumPy references of `tests/eval_fixtures.py`.
"""

import hashlib
import json
import os
import types

import numpy as np
import scipy.spatial
import tensorflow as tf

from tests import eval_fixtures
from tf_cgan_transfer import biggan
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import evaluator as evaluator_lib
from tf_cgan_transfer import metrics
from tf_cgan_transfer import real_data

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
        real = first.real_activations()
        pool, labels = real.pool, real.labels
        self.assertEqual(pool.shape, (30, 2048))
        self.assertEqual(pool.dtype, np.float32)
        np.testing.assert_array_equal(labels, self.labels[:30])
        expected = self.classifier(self.images[:30])
        self.assertAllClose(pool, expected["pool_3"], atol=1e-5, rtol=0)
        self.assertAllClose(real.logits, expected["logits"], atol=1e-4, rtol=1e-5)
        # 16x16 images: kept at their size, as uint8 rounded from [-1, 1].
        np.testing.assert_array_equal(
            real.pixels,
            np.round((self.images[:30] + 1.0) * 127.5).astype(np.uint8).reshape(30, -1),
        )
        self.assertIs(first.real_activations(), real)  # in memory
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
        again = second.real_activations()
        self.assertLen(self.calls, 1)  # real_dataset_fn not called again
        for field in ("pool", "logits", "labels", "pixels"):
            np.testing.assert_array_equal(getattr(again, field), getattr(real, field))
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
            *metrics.MEMORISATION_KEYS,
            *("pixel_" + key for key in metrics.MEMORISATION_KEYS),
            "memorisation_note",
            "num_training",
            "num_held_out",
            "real_training_overlap",
            "real_is_training_data",
            "real_set",
            "training_set",
            "per_class",
            "num_real",
            "num_generated",
            "seconds",
            "images_per_second",
        }
        self.assertEqual(set(results), expected_keys)
        for key in ("fid", "kid", "inception_score", "kmmd", "mean_per_class_fid", "seconds"):
            self.assertTrue(np.isfinite(results[key]), key)
        for key in metrics.MANIFOLD_KEYS:
            self.assertTrue(np.isfinite(results[key]), key)
        self.assertTrue(np.isnan(results["kid_std"]))  # one KID block
        # No training images: no memorisation score, and the record says why.
        self.assertTrue(np.isnan(results["memorisation_ratio"]))
        self.assertRegex(results["memorisation_note"], "no training images")
        self.assertIsNone(results["real_is_training_data"])
        self.assertEqual(results["real_set"], dict(dataset="fake"))
        self.assertIsNone(results["training_set"])
        self.assertEqual(sorted(results["per_class_fid"]), list(range(NUM_CLASSES)))
        self.assertTrue(all(np.isfinite(v) for v in results["per_class_fid"].values()))
        self.assertAllClose(
            results["mean_per_class_fid"], np.mean(list(results["per_class_fid"].values()))
        )
        self.assertEqual((results["num_real"], results["num_generated"]), (50, 50))
        self.assertGreater(results["fid"], 0)
        self.assertGreaterEqual(results["inception_score"], 1.0)

        # The numbers are the metric functions of the activations.
        real_set = evaluator.real_activations()
        real, real_labels = real_set.pool, real_set.labels
        generated = evaluator.generated_activations(self.generator)
        pool, logits, labels = generated.pool, generated.logits, generated.labels
        np.testing.assert_array_equal(labels, np.arange(50) % NUM_CLASSES)
        # The generated pixels are the generator's images, area-downsampled 32 -> 32 (kept).
        z = biggan.sample_z(50, self.generator.dim_z, 1.0, 0)
        images = self.generator((z, labels), training=False).numpy()
        expected_pixels = np.round((np.clip(images, -1, 1) + 1.0) * 127.5).reshape(50, -1)
        self.assertLessEqual(np.abs(generated.pixels - expected_pixels).max(), 1)
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
            self.assertAllClose(
                {k: results["per_class"][c][k] for k in metrics.MANIFOLD_KEYS}, expected
            )
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
        pool = base.generated_activations(self.generator).pool
        other_batch = self._evaluator(num_images=20, batch_size=5).generated_activations(
            self.generator
        )
        self.assertAllClose(pool, other_batch.pool, atol=1e-4, rtol=1e-4)
        # Fewer images than one batch (a small held-out set): one padded batch.
        fewer = self._evaluator(num_images=3, batch_size=8).generated_activations(self.generator)
        self.assertAllClose(fewer.pool, pool[:3], atol=1e-4, rtol=1e-4)
        self.assertAllEqual(fewer.labels, np.arange(3) % NUM_CLASSES)
        reseeded = self._evaluator(num_images=20, seed=1).generated_activations(self.generator)
        self.assertGreater(np.abs(reseeded.pool - pool).max(), 1e-3)
        truncated = base.generated_activations(self.generator, truncation=0.5)
        self.assertGreater(np.abs(truncated.pool - pool).max(), 1e-3)

    def test_exported_savedmodel_generator(self):
        directory = self.create_tempdir().full_path
        module = _ExportedGenerator(self.generator, num_classes=NUM_CLASSES)
        tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
        adapter = evaluate.load_model(directory)  # num_classes read from the SavedModel
        self.assertEqual((adapter.dim_z, adapter.num_classes), (8, NUM_CLASSES))
        evaluator = self._evaluator(num_images=12, batch_size=6)
        exported = evaluator.generated_activations(adapter)
        direct = evaluator.generated_activations(self.generator)
        self.assertAllClose(exported.pool, direct.pool, atol=1e-4, rtol=1e-4)

        # An export that does not record its class count needs num_classes.
        loaded = tf.saved_model.load(directory)
        signature_only = types.SimpleNamespace(signatures=loaded.signatures)
        with self.assertRaisesRegex(
            evaluator_lib.EvaluationError, "number of classes.*--num_classes"
        ):
            evaluator_lib.as_generator(signature_only)
        self.assertEqual(evaluator_lib.as_generator(signature_only, num_classes=5).num_classes, 5)

    def test_class_accuracy_by_the_class_map(self):
        evaluator = self._evaluator(num_images=30, batch_size=10, class_map=(5, 7, 9))
        results = evaluator.evaluate(self.generator)
        generated = evaluator.generated_activations(self.generator)
        real = evaluator.real_activations()
        expected = np.array([5, 7, 9])
        self.assertAllClose(
            results["class_accuracy"],
            np.mean(generated.logits.argmax(1) == expected[generated.labels]),
        )
        self.assertAllClose(
            results["real_class_accuracy"], np.mean(real.logits.argmax(1) == expected[real.labels])
        )
        for c in range(NUM_CLASSES):
            mine = generated.labels == c
            self.assertAllClose(
                results["per_class"][c]["class_accuracy"],
                np.mean(generated.logits[mine].argmax(1) == expected[c]),
            )
        same = self._evaluator(num_images=30, batch_size=10, class_map="same")
        self.assertEqual(same.resolved_class_map(NUM_CLASSES), [0, 1, 2])
        with self.assertRaisesRegex(evaluator_lib.EvaluationError, "has 2 entries.*3 classes"):
            self._evaluator(class_map=(1, 2)).evaluate(self.generator)
        with self.assertRaisesRegex(evaluator_lib.EvaluationError, r"outside 0\.\.1007"):
            self._evaluator(class_map=(1, 2, 5000))

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


# ---- Memorisation ---------------------------------------------------------------------


class _PoolGenerator:
    """A generator drawing each image from a fixed pool of its class: `pool[y, i(z)]`.

    With the training images as the pool it copies them; with fresh images of the same
    distribution it is an ideal generator.
    """

    dim_z = 8
    num_classes = NUM_CLASSES

    def __init__(self, pool):
        self.pool = tf.constant(pool)  # [C, n, R, R, 3]

    def __call__(self, z, labels):
        index = tf.cast(tf.floor(tf.abs(z[:, 0]) * 1000.0), tf.int32) % self.pool.shape[1]
        return tf.gather_nd(self.pool, tf.stack([labels, index], axis=1))


def _by_class(images, per_class):
    """`images` sorted by class (label = i % NUM_CLASSES) as `[C, per_class, R, R, 3]`."""
    return np.stack([images[c::NUM_CLASSES][:per_class] for c in range(NUM_CLASSES)])


class MemorisationTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classifier = classifier_lib.load_classifier(eval_fixtures.classifier_dir("tf2")[0])
        cls.train = eval_fixtures.smooth_images(60, 16, seed=10)
        cls.held_out = eval_fixtures.smooth_images(120, 16, seed=11)
        cls.fresh = eval_fixtures.smooth_images(600, 16, seed=12)
        cls.train_labels = np.arange(60) % NUM_CLASSES
        cls.held_out_labels = np.arange(120) % NUM_CLASSES

    def _evaluator(self, real_images, real_labels, num_images=120):
        training = real_data.RealSource(
            dataset_fn_of(self.train, self.train_labels, batch=7), dict(dataset="train"), 60
        )
        return evaluator_lib.Evaluator(
            self.classifier,
            dataset_fn_of(real_images, real_labels),
            dict(dataset="held_out"),
            num_images,
            batch_size=20,
            training=training,
        )

    def test_copies_fresh_images_and_an_independent_computation(self):
        evaluator = self._evaluator(self.held_out, self.held_out_labels)
        copying = _PoolGenerator(_by_class(self.train, 20))
        fresh = _PoolGenerator(_by_class(self.fresh, 200))
        copies = evaluator.evaluate(copying)
        ideal = evaluator.evaluate(fresh)
        for prefix in ("", "pixel_"):
            self.assertLess(copies[prefix + "memorisation_ratio"], 0.1, prefix)
            self.assertGreater(copies[prefix + "copy_share"], 0.9, prefix)
            self.assertBetween(ideal[prefix + "memorisation_ratio"], 0.8, 1.25)
            self.assertLess(ideal[prefix + "copy_share"], 0.15, prefix)
        self.assertLess(copies["pixel_memorisation_ratio"], 1e-5)  # exact copies
        self.assertEqual((copies["num_training"], copies["num_held_out"]), (60, 120))
        self.assertEqual(copies["real_training_overlap"], 0.0)
        self.assertIs(copies["real_is_training_data"], False)
        self.assertIsNone(copies["memorisation_note"])
        self.assertEqual(copies["training_set"], dict(dataset="train"))

        # Feature and pixel distances recomputed with SciPy, per class too.
        train = evaluator.training_activations()
        real = evaluator.real_activations()
        generated = evaluator.generated_activations(fresh)

        def reference(gen, tr, held):
            gen_d = scipy.spatial.distance.cdist(gen, tr).min(1)
            held_d = scipy.spatial.distance.cdist(held, tr).min(1)
            threshold = np.percentile(held_d, 5)
            return np.median(gen_d) / np.median(held_d), np.mean(gen_d < threshold), threshold

        self.assertAllClose(train.pool, self.classifier(self.train)["pool_3"], atol=1e-5, rtol=0)
        for prefix, field, scale in (("", "pool", 1.0), ("pixel_", "pixels", 255.0)):
            pick = lambda a: getattr(a, field).astype(np.float64) / scale  # noqa: E731
            self.assertAllClose(
                [ideal[prefix + k] for k in metrics.MEMORISATION_KEYS],
                reference(pick(generated), pick(train), pick(real)),
                rtol=1e-5,
            )
            for c in range(NUM_CLASSES):
                of = lambda a: pick(a.of_class(c))  # noqa: E731
                expected = reference(of(generated), of(train), of(real))
                self.assertAllClose(
                    [
                        ideal["per_class"][c][prefix + k]
                        for k in ("memorisation_ratio", "copy_share")
                    ],
                    expected[:2],
                    rtol=1e-5,
                )

    def test_real_images_that_are_training_images_are_not_held_out(self):
        real = np.concatenate([self.train[:30], self.held_out[:90]])
        labels = np.concatenate([self.train_labels[:30], self.held_out_labels[:90]])
        evaluator = self._evaluator(real, labels)
        results = evaluator.evaluate(_PoolGenerator(_by_class(self.fresh, 200)))
        self.assertAllClose(results["real_training_overlap"], 30 / 120)
        self.assertIs(results["real_is_training_data"], False)
        self.assertEqual(results["num_held_out"], 90)
        held = evaluator.real_activations().select(np.arange(120) >= 30)
        expected = metrics.memorisation(
            evaluator.generated_activations(_PoolGenerator(_by_class(self.fresh, 200))).pool,
            evaluator.training_activations().pool,
            held.pool,
        )
        self.assertAllClose(
            [results[k] for k in metrics.MEMORISATION_KEYS], list(expected.values())
        )

    def test_the_training_data_as_real_set_is_flagged_and_warned_once(self):
        evaluator = self._evaluator(self.train, self.train_labels, num_images=60)
        generator = _PoolGenerator(_by_class(self.fresh, 200))
        with self.assertLogs("absl", "WARNING") as logs:
            results = evaluator.evaluate(generator)
        self.assertRegex("\n".join(logs.output), "compare with the training images.*--eval_split")
        self.assertIs(results["real_is_training_data"], True)
        self.assertEqual(results["real_training_overlap"], 1.0)
        self.assertEqual(results["num_held_out"], 0)
        self.assertTrue(np.isnan(results["memorisation_ratio"]))
        self.assertTrue(np.isnan(results["pixel_copy_share"]))
        self.assertRegex(results["memorisation_note"], "real set is the training data")
        self.assertIn("[real set = training data]", metrics.summary(results))
        with self.assertLogs("absl", "WARNING") as again:  # once per Evaluator
            evaluator.evaluate(generator)
        self.assertNotRegex("\n".join(again.output), "compare with the training images")
