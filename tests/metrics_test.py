"""Tests of tf_cgan_transfer.metrics against independent float64 NumPy/SciPy references."""

import json

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
import tensorflow as tf

from tests import eval_fixtures
from tf_cgan_transfer import metrics


class MetricsTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(0)

    def test_fid_equals_scipy(self):
        a = self.rng.normal(size=[500, 64])
        b = self.rng.normal(size=[400, 64]) * 1.3 + 0.2
        self.assertAllClose(
            metrics.frechet_distance(a, b), eval_fixtures.reference_fid(a, b), rtol=1e-3
        )
        self.assertAllClose(
            eval_fixtures.reference_fid_gram(a, b), eval_fixtures.reference_fid(a, b), rtol=1e-6
        )
        self.assertAllClose(
            metrics.frechet_distance(a.astype(np.float32), b.astype(np.float32)),
            eval_fixtures.reference_fid(a.astype(np.float32), b.astype(np.float32)),
            rtol=1e-3,
        )

    def test_small_sets_take_the_cross_gram_route_and_equal_tfgan(self):
        a = self.rng.normal(size=[60, 300])
        b = self.rng.normal(size=[50, 300]) * 1.2 + 0.3
        tfgan_full = float(
            metrics.tfgan.eval.frechet_classifier_distance_from_activations(
                tf.constant(a), tf.constant(b)
            )
        )
        fid = metrics.frechet_distance(a, b)
        self.assertAllClose(fid, tfgan_full, rtol=1e-6)
        self.assertAllClose(fid, eval_fixtures.reference_fid(a, b), rtol=1e-3)
        self.assertAllClose(fid, eval_fixtures.reference_fid_gram(a, b), rtol=1e-6)
        self.assertTrue(np.isnan(metrics.frechet_distance(a[:1], b)))

    def test_cross_gram_route_is_chosen_by_cost(self):
        self.assertTrue(metrics.cross_gram_pays(1000, 1000, 2048))  # a periodic evaluation
        self.assertTrue(metrics.cross_gram_pays(2048, 2048, 2048))
        self.assertFalse(metrics.cross_gram_pays(2049, 2049, 2048))
        self.assertFalse(metrics.cross_gram_pays(50_000, 10_000, 2048))
        self.assertTrue(metrics.cross_gram_pays(50_000, 50, 2048))  # one small set suffices
        # Both routes agree where either could run: the cross-Gram form at a size where
        # TF-GAN's route is taken.
        a = self.rng.normal(size=[300, 16]) ** 2
        b = self.rng.normal(size=[200, 16]) ** 2 * 1.5
        self.assertFalse(metrics.cross_gram_pays(300, 200, 16))
        self.assertAllClose(metrics._cross_gram_fid(a, b), metrics.frechet_distance(a, b), rtol=1e-9)

    def test_kid_equals_unbiased_mmd_with_the_cubic_kernel(self):
        a = self.rng.normal(size=[300, 32])
        b = self.rng.normal(size=[200, 32]) + 0.3
        kid, std = metrics.kernel_distance(a, b)
        self.assertAllClose(kid, eval_fixtures.reference_kid(a, b), rtol=1e-3)
        self.assertTrue(np.isnan(std))  # one block
        kid_blocks, std_blocks = metrics.kernel_distance(a, b, max_block_size=100)
        self.assertTrue(np.isfinite(std_blocks) and std_blocks > 0)
        self.assertAllClose(kid_blocks, kid, rtol=0.5)

    def test_inception_score_from_logits(self):
        logits = self.rng.normal(size=[100, 1008]) * 3.0
        self.assertAllClose(
            metrics.inception_score(logits), eval_fixtures.reference_is(logits), rtol=1e-3
        )
        self.assertAllClose(metrics.inception_score(np.zeros([10, 5])), 1.0)

    def test_kmmd_equals_the_documented_formula(self):
        a = self.rng.normal(size=[120, 24])
        b = self.rng.normal(size=[90, 24]) * 1.1 + 0.2
        self.assertAllClose(metrics.kernel_mmd(a, b), eval_fixtures.reference_kmmd(a, b), rtol=1e-6)
        self.assertAllClose(
            metrics.kernel_mmd(a, b, sigma=2.0),
            eval_fixtures.reference_kmmd(a, b, sigma=2.0),
            rtol=1e-6,
        )
        self.assertAllClose(metrics.kernel_mmd(a, a), 0.0, atol=1e-12)
        # More rows than a chunk (1024) exercise the chunked sums.
        big_a, big_b = self.rng.normal(size=[1100, 4]), self.rng.normal(size=[1030, 4]) + 0.1
        self.assertAllClose(
            metrics.kernel_mmd(big_a, big_b), eval_fixtures.reference_kmmd(big_a, big_b), rtol=1e-6
        )

    def test_per_class_fid(self):
        real, gen = self.rng.normal(size=[90, 8]), self.rng.normal(size=[60, 8]) + 0.5
        real_labels, gen_labels = np.arange(90) % 3, np.arange(60) % 3
        gen_labels[gen_labels == 2] = 1  # class 2: no generated images
        with self.assertLogs("absl", "WARNING") as logs:
            result = metrics.per_class_frechet_distance(real, real_labels, gen, gen_labels, 3)
        self.assertIn("classes [2]", "\n".join(logs.output))
        self.assertEqual(sorted(result), [0, 1, 2])
        for c in (0, 1):
            self.assertAllClose(
                result[c],
                eval_fixtures.reference_fid(real[real_labels == c], gen[gen_labels == c]),
                rtol=1e-3,
            )
        self.assertTrue(np.isnan(result[2]))

    def test_too_few_images_warning_says_how_many_were_used(self):
        with self.assertLogs("absl", "WARNING") as logs:
            metrics.warn_if_too_few(500, 400, 2048)
        self.assertRegex(logs.output[0], "500 real and 400 generated images.*fewer than 2048")
        with self.assertLogs("absl", "WARNING") as logs:
            metrics.warn_if_too_few(3000, 3000, 4096)  # fewer than the feature width
        self.assertRegex(logs.output[0], "3000 real and 3000 generated.*fewer than 4096")
        with self.assertNoLogs("absl", "WARNING"):
            metrics.warn_if_too_few(2048, 2048, 2048)

    def test_class_accuracy(self):
        logits = np.array([[0.0, 2.0, 1.0, 0.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        # Generator classes 0, 1 -> classifier classes 1, 3.
        self.assertAllClose(metrics.class_accuracy(logits, [0, 1, 1], [1, 3]), 2 / 3)
        self.assertAllClose(metrics.class_accuracy(logits, [1, 0, 0], [1, 3]), 0.0)
        self.assertTrue(np.isnan(metrics.class_accuracy(logits[:0], [], [1, 3])))

    def test_summary_shows_what_the_results_hold(self):
        results = dict(
            fid=1.5,
            kid=0.01,
            inception_score=2.0,
            kmmd=0.1,
            num_generated=10,
            num_real=12,
            images_per_second=5.0,
            seconds=2.0,
        )
        line = metrics.summary(results)
        self.assertRegex(line, r"^FID 1.500  KID 0.01000  IS 2.000  KMMD 0.10000  \(10 generated")
        results.update(
            memorisation_ratio=0.9,
            pixel_memorisation_ratio=0.8,
            copy_share=0.04,
            class_accuracy=0.75,
            real_is_training_data=True,
        )
        self.assertRegex(
            metrics.summary(results),
            r"memorisation 0.900 \(pixels 0.800\)  copies 0.040  class accuracy 0.750"
            r"  \[real set = training data\]",
        )
        results["memorisation_ratio"] = float("nan")
        self.assertNotIn("memorisation", metrics.summary(results))

    def test_json_safe_reaches_into_lists(self):
        value = {1: [np.float32(0.5), float("nan"), (float("inf"), np.int64(3))]}
        self.assertEqual(metrics.json_safe(value), {"1": [0.5, None, [None, 3]]})
        json.dumps(metrics.json_safe(value), allow_nan=False)  # standard JSON


def _scipy_radii(x, k):
    # The k+1-th neighbour of a point in its own set (the first is the point itself).
    distances, _ = cKDTree(x).query(x, k=k + 1)
    return distances[:, k]


class NearestNeighbourMetricsTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.real = rng.normal(size=[300, 8])
        self.generated = rng.normal(0.3, 1.2, size=[250, 8])

    def test_precision_recall_equals_a_scipy_implementation(self):
        real, gen = self.real, self.generated
        cross = cdist(gen, real)
        precision = np.mean([np.any(row <= _scipy_radii(real, 3)) for row in cross])
        recall = np.mean([np.any(col <= _scipy_radii(gen, 3)) for col in cross.T])
        self.assertAllClose(metrics.precision_recall(real, gen), (precision, recall))
        expected_k7 = np.mean(np.any(cross <= _scipy_radii(real, 7)[None], axis=1))
        self.assertAllClose(metrics.precision_recall(real, gen, k=7)[0], expected_k7)

    def test_density_coverage_equals_a_scipy_implementation(self):
        real, gen = self.real, self.generated
        radii = _scipy_radii(real, 5)
        counts = [sum(np.linalg.norm(g - r) <= radii[i] for i, r in enumerate(real)) for g in gen]
        density = np.sum(counts) / (5 * len(gen))
        coverage = np.mean([np.min(cdist(gen, r[None])) <= radii[i] for i, r in enumerate(real)])
        self.assertAllClose(metrics.density_coverage(real, gen), (density, coverage))

    def test_fixed_points(self):
        # Identical sets: every point lies in its own ball.
        self.assertAllClose(metrics.precision_recall(self.real, self.real), (1.0, 1.0))
        self.assertAllClose(metrics.density_coverage(self.real, self.real)[1], 1.0)
        # Two large samples of one distribution: density near 1.
        rng = np.random.default_rng(1)
        a, b = rng.normal(size=[2000, 4]), rng.normal(size=[2000, 4])
        self.assertAllClose(metrics.density_coverage(a, b)[0], 1.0, atol=0.1)
        # Far, disjoint sets: nothing is inside anything.
        far = self.real + 100.0
        self.assertAllEqual(metrics.precision_recall(self.real, far), (0.0, 0.0))
        self.assertAllEqual(metrics.density_coverage(self.real, far), (0.0, 0.0))

    def test_a_collapsed_generator_has_no_recall(self):
        collapsed = np.repeat(self.real[:1], 250, axis=0) + 1e-6 * self.generated
        precision, recall = metrics.precision_recall(self.real, collapsed)
        self.assertEqual(precision, 1.0)  # its one image is realistic
        self.assertLess(recall, 0.02)
        self.assertLess(metrics.density_coverage(self.real, collapsed)[1], 0.05)

    def test_too_few_points_for_k(self):
        with self.assertRaisesRegex(ValueError, "k=3 needs more than 3 points"):
            metrics.precision_recall(self.real[:3], self.generated)

    def test_memorisation_of_copies_and_of_fresh_images(self):
        rng = np.random.default_rng(2)
        train, held_out = rng.normal(size=[200, 16]), rng.normal(size=[2000, 16])
        copies = train[rng.integers(0, 200, 1000)] + 1e-3 * rng.normal(size=[1000, 16])
        copied = metrics.memorisation(copies, train, held_out)
        self.assertLess(copied["memorisation_ratio"], 0.1)
        self.assertGreater(copied["copy_share"], 0.9)
        fresh = metrics.memorisation(rng.normal(size=[2000, 16]), train, held_out)
        self.assertAllClose(fresh["memorisation_ratio"], 1.0, atol=0.05)
        self.assertAllClose(fresh["copy_share"], 0.05, atol=0.02)
        # Against SciPy: nearest-training-image distances and the held-out percentile.
        d_gen = cKDTree(train).query(copies)[0]
        d_held = cKDTree(train).query(held_out)[0]
        self.assertAllClose(copied["memorisation_ratio"], np.median(d_gen) / np.median(d_held))
        self.assertAllClose(copied["copy_threshold"], np.percentile(d_held, 5))
        self.assertAllClose(copied["copy_share"], np.mean(d_gen < np.percentile(d_held, 5)))

    def test_manifold_metrics_are_nan_for_sets_too_small_for_k(self):
        small = metrics.manifold_metrics(self.real[:4], self.generated[:2])
        self.assertEqual(set(small), set(metrics.MANIFOLD_KEYS))
        self.assertTrue(np.isnan(small["precision"]) and np.isnan(small["recall"]))
        self.assertTrue(np.isnan(small["density"]))  # 4 real points: too few for k=5
        full = metrics.manifold_metrics(self.real, self.generated)
        self.assertAllClose(
            [full[k] for k in metrics.MANIFOLD_KEYS],
            [
                *metrics.precision_recall(self.real, self.generated),
                *metrics.density_coverage(self.real, self.generated),
            ],
        )
