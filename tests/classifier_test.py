"""Tests of tf_cgan_transfer.classifier: resolving, loading and calling classifiers.

The Inception module cannot be downloaded here; `tests/fake_inception.py` writes fake
modules with its interface in both forms (callable TF2 SavedModel, TF1 Hub format).
"""

import hashlib
import os
import sys
import time
from unittest import mock

import numpy as np
import tensorflow as tf

from tests import eval_fixtures
from tests import fake_inception
from tf_cgan_transfer import classifier as classifier_lib
from tf_cgan_transfer import evaluator as evaluator_lib


class ClassifierTest(tf.test.TestCase):
    def test_both_module_forms_give_the_same_activations(self):
        tf2_dir, weights = eval_fixtures.classifier_dir("tf2")
        tf1_dir, weights1 = eval_fixtures.classifier_dir("tf1")
        np.testing.assert_array_equal(weights["w1"], weights1["w1"])
        tf2 = classifier_lib.load_classifier(tf2_dir)
        tf1 = classifier_lib.load_classifier(tf1_dir)
        self.assertTrue(callable(tf2.module))
        self.assertFalse(callable(tf1.module))  # TF1 Hub format: signatures["default"] only
        for classifier in (tf2, tf1):
            self.assertEqual(classifier.image_size, 299)
            self.assertEqual((classifier.pool_dim, classifier.num_logits), (2048, 1008))

        images = eval_fixtures.smooth_images(6, 299, seed=1)
        out2, out1 = tf2(images), tf1(images)
        self.assertEqual(out2["pool_3"].shape, [6, 2048])  # flattened from [6, 1, 1, 2048]
        self.assertEqual(out2["logits"].shape, [6, 1008])
        self.assertAllClose(out2["pool_3"], out1["pool_3"], atol=1e-6, rtol=0)
        self.assertAllClose(out2["logits"], out1["logits"], atol=1e-5, rtol=0)
        pool, logits = fake_inception.reference_outputs(images, weights)
        self.assertAllClose(out2["pool_3"], pool, atol=1e-4, rtol=1e-4)
        self.assertAllClose(out2["logits"], logits, atol=1e-3, rtol=1e-4)
        # Different images, different features.
        other = tf2(eval_fixtures.smooth_images(6, 299, seed=2))["pool_3"]
        self.assertGreater(float(tf.reduce_max(tf.abs(other - out2["pool_3"]))), 0.05)

    def test_loaded_once_per_process(self):
        tf2_dir, _ = eval_fixtures.classifier_dir("tf2")
        first = classifier_lib.load_classifier(tf2_dir)
        with mock.patch.object(classifier_lib.hub, "load", side_effect=AssertionError("reloaded")):
            self.assertIs(classifier_lib.load_classifier(tf2_dir), first)
            self.assertIs(classifier_lib.load_classifier(tf2_dir + os.sep), first)
            self.assertIs(classifier_lib.load_classifier(first), first)

    def test_small_images_are_resized_bilinearly_to_the_input_signature_size(self):
        path, weights = eval_fixtures.classifier_dir(
            "tf2", image_size=64, pool_dim=32, logits_dim=10
        )
        classifier = classifier_lib.load_classifier(path)
        self.assertEqual(classifier.image_size, 64)
        self.assertEqual((classifier.pool_dim, classifier.num_logits), (32, 10))
        images = eval_fixtures.smooth_images(4, 32, seed=3)
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
            classifier_lib.ClassifierError, r"returns \['features'\].*'pool_3' and 'logits'"
        ):
            classifier_lib.load_classifier(path)

    def test_bad_handles(self):
        with self.assertRaisesRegex(
            classifier_lib.ClassifierError, "neither an existing directory"
        ):
            classifier_lib.load_classifier("/no/such/dir")
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(classifier_lib.ClassifierError, "not a SavedModel"):
            classifier_lib.load_classifier(empty)

    def test_unreachable_handle_offline_says_what_to_download_and_where(self):
        cache = self.create_tempdir().full_path
        digest = hashlib.sha1(eval_fixtures.INCEPTION_URL.encode()).hexdigest()
        self.assertEqual(digest, "c4be6b55dc0338e82546082d22184ebdc77d76cf")
        kaggle = "tensorflow/inception/TensorFlow1/tfgan-eval-inception/1"
        # No kagglehub, even where it is installed: the real TF-Hub download fails offline.
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": cache}), mock.patch.dict(
            sys.modules, {"kagglehub": None}
        ):
            for handle in (
                classifier_lib.INCEPTION_HANDLE,
                "tensorflow/tfgan/eval/inception/1",
                kaggle,
            ):
                start = time.time()
                with self.assertRaisesRegex(
                    classifier_lib.ClassifierError,
                    r"Could not fetch classifier https://tfhub.dev/tensorflow/tfgan/eval/"
                    r"inception/1.*download https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
                    r"\?tf-hub-format=compressed.*--classifier.*" + os.path.join(cache, digest),
                ):
                    evaluator_lib.Evaluator(handle, None, {}, num_images=10)
                self.assertLess(time.time() - start, 5.0)  # fails fast, no retries

    def test_handle_resolves_offline_through_the_hub_cache(self):
        cache = self.create_tempdir().full_path
        digest = hashlib.sha1(eval_fixtures.INCEPTION_URL.encode()).hexdigest()
        fake_inception.write_tf2_module(os.path.join(cache, digest), pool_dim=16, logits_dim=8)
        kaggle = (
            "https://www.kaggle.com/models/tensorflow/inception/TensorFlow1/tfgan-eval-inception/1"
        )
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": cache}):
            classifier = classifier_lib.load_classifier(eval_fixtures.INCEPTION_URL)
            # The Kaggle twin is the same module: one load, one name.
            self.assertIs(classifier_lib.load_classifier(kaggle), classifier)
        self.assertEqual(classifier.name, eval_fixtures.INCEPTION_URL)
        self.assertEqual(classifier.path, os.path.join(cache, digest))
        self.assertEqual(classifier.pool_dim, 16)
