"""Tests of tf_cgan_transfer.scoring: which real images are training images, and the notes."""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import activations
from tf_cgan_transfer import metrics
from tf_cgan_transfer import scoring


def _set(pixels, labels=None, seed=0):
    pixels = np.asarray(pixels, np.uint8)
    n = len(pixels)
    rng = np.random.default_rng(seed)
    return activations.Activations(
        rng.normal(size=[n, 8]).astype(np.float32),
        rng.normal(size=[n, 3]).astype(np.float32),
        np.zeros(n, np.int32) if labels is None else np.asarray(labels, np.int32),
        pixels,
    )


class ScoringTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(3)
        self.train = _set(rng.integers(0, 256, size=[10, 12]), seed=1)
        self.fresh = _set(rng.integers(0, 256, size=[30, 12]), seed=2)

    def test_training_overlap_is_exact_pixel_equality(self):
        nearly = self.train.pixels[:2].copy()
        nearly[:, 0] ^= 1  # one grey level off: not a training image
        real = _set(np.concatenate([self.train.pixels[3:6], nearly, self.fresh.pixels[:5]]))
        self.assertAllEqual(scoring.training_overlap(real, self.train), [1] * 3 + [0] * 7)

    def test_memorisation_needs_training_and_two_held_out_images(self):
        generated = _set(self.fresh.pixels[:6], seed=4)
        nan = scoring.memorisation(generated, None, None)
        self.assertTrue(all(np.isnan(v) for v in nan.values()))
        self.assertLen(nan, 6)
        one = scoring.memorisation(generated, self.train, self.fresh.select(np.arange(30) < 1))
        self.assertTrue(np.isnan(one["memorisation_ratio"]))
        full = scoring.memorisation(generated, self.train, self.fresh)
        expected = metrics.memorisation(
            generated.pixel_vectors(), self.train.pixel_vectors(), self.fresh.pixel_vectors()
        )
        self.assertAllClose(full["pixel_memorisation_ratio"], expected["memorisation_ratio"])
        self.assertAllClose(
            full["memorisation_ratio"],
            metrics.memorisation(generated.pool, self.train.pool, self.fresh.pool)[
                "memorisation_ratio"
            ],
        )

    def test_the_record_says_which_set_is_missing(self):
        generated = _set(self.fresh.pixels[:12], seed=5)
        real = self.fresh.select(np.arange(30) >= 10)
        cases = (
            (None, real, "no training images were given"),
            (self.train, self.train, "the real set is the training data.*--eval_split"),
            (self.train, real, None),
        )
        for training, real_set, note in cases:
            results = scoring.score(real_set, generated, 1, training=training, per_class=False)
            if note is None:
                self.assertIsNone(results["memorisation_note"])
                self.assertTrue(np.isfinite(results["memorisation_ratio"]))
            else:
                self.assertRegex(results["memorisation_note"], note)
                self.assertTrue(np.isnan(results["memorisation_ratio"]))
        self.assertEqual(results["num_held_out"], 20)
