"""Tests of tf_cgan_transfer.mixture_stats: how far kp_bn's class mixtures moved."""

import glob
import os
import tempfile

import numpy as np
from scipy import stats as scipy_stats
import tensorflow as tf

from tests.model_fixtures import MAPPING, OLD_CLASSES, make_source, set_one_hot_mixtures
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import transfer


def _numpy_stats(a, a0, top):
    """The four statistics, computed directly from their definitions."""
    change = np.sqrt(np.sum((a - a0) ** 2)) / np.sqrt(np.sum(a0**2))
    correlation = np.corrcoef(a.ravel(), a0.ravel())[0, 1]
    shares, entropies = [], []
    for row in np.abs(a):
        shares.append(sum(sorted(row, reverse=True)[:top]) / row.sum())
        entropies.append(scipy_stats.entropy(row / row.sum()) / np.log(len(row)))
    return change, correlation, np.array(shares), np.array(entropies)


class DiagnosticsTest(tf.test.TestCase):
    def test_statistics_match_their_definitions(self):
        rng = np.random.default_rng(0)
        a0 = {"b/bn/gain": rng.normal(size=[3, 7]), "b/bn/bias": rng.normal(size=[3, 7])}
        a = {k: v + rng.normal(scale=0.3, size=v.shape) for k, v in a0.items()}
        result = mixture_stats.diagnostics(a, a0, top=2)
        self.assertTrue(result["has_initial"])
        self.assertEqual([e["layer"] for e in result["layers"]], ["b/bn/gain", "b/bn/bias"])
        for entry in result["layers"]:
            change, correlation, shares, entropies = _numpy_stats(
                a[entry["layer"]], a0[entry["layer"]], 2
            )
            self.assertAllClose(entry["relative_change"], change)
            self.assertAllClose(entry["correlation"], correlation)
            self.assertAllClose(entry["top_share"], shares)
            self.assertAllClose(entry["entropy"], entropies)
            self.assertAllClose(entry["mean_entropy"], entropies.mean())
        overall = result["overall"]
        self.assertAllClose(
            overall["correlation"], np.mean([e["correlation"] for e in result["layers"]])
        )
        self.assertAllClose(
            overall["top_share"], np.mean([e["top_share"] for e in result["layers"]], axis=0)
        )

    def test_extremes_one_old_class_and_uniform(self):
        one_hot = np.eye(4)[[2, 0]]
        uniform = np.full([2, 4], 0.25)
        result = mixture_stats.diagnostics({"x": one_hot, "y": uniform}, top=1)
        one, flat = result["layers"]
        self.assertAllClose(one["top_share"], [1.0, 1.0])
        self.assertAllClose(one["entropy"], [0.0, 0.0])
        self.assertAllClose(flat["top_share"], [0.25, 0.25])
        self.assertAllClose(flat["entropy"], [1.0, 1.0])
        # Without an initial record there is nothing to compare with.
        self.assertIsNone(one["relative_change"])
        self.assertIsNone(result["overall"]["correlation"])
        self.assertIn("change n/a", mixture_stats.format_diagnostics(result))
        # A rescaled mixture moved but kept its pattern: correlation 1.
        moved = mixture_stats.diagnostics({"x": 3 * (uniform + one_hot)}, {"x": uniform + one_hot})
        self.assertAllClose(moved["layers"][0]["correlation"], 1.0)
        self.assertAllClose(moved["layers"][0]["relative_change"], 2.0)

    def test_initial_of_another_model_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "another model"):
            mixture_stats.diagnostics({"x": np.eye(3)}, {"y": np.eye(3)})
        with self.assertRaisesRegex(ValueError, r"x: initial mixtures \(2, 3\)"):
            mixture_stats.diagnostics({"x": np.eye(3)}, {"x": np.eye(3)[:2]})


class GeneratorMixturesTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.source = os.path.join(tempfile.mkdtemp(prefix="mixture_stats_test_"), "source")
        make_source(cls.source)

    def _generator(self, method="kp_bn"):
        return transfer.build(transfer.TransferConfig(method, 3), source=self.source).generator

    def test_mixtures_are_every_layer_gain_and_bias_after_spectral_norm(self):
        g = self._generator()
        set_one_hot_mixtures(g, MAPPING)
        found = mixture_stats.mixtures(g)
        self.assertLen(found, 2 * len(g.conditional_batch_norms()))
        self.assertEqual(len(set(found)), len(found))  # labels name block and layer
        for label, a in found.items():
            self.assertEqual(a.shape, (3, OLD_CLASSES))
            self.assertAllClose(a, np.eye(OLD_CLASSES)[MAPPING], atol=1e-4, msg=label)
        self.assertEqual(mixture_stats.mixtures(self._generator("bn_only")), {})

    def test_record_initial_keeps_the_first_record(self):
        run = self.create_tempdir().full_path
        g = self._generator()
        before = mixture_stats.mixtures(g)
        recorded = mixture_stats.record_initial(run, g)
        self.assertAllClose(recorded, before)
        set_one_hot_mixtures(g, MAPPING)  # training moved the mixtures; then a resume:
        again = mixture_stats.record_initial(run, g)
        self.assertAllClose(again, before)
        self.assertEqual(os.listdir(run), [mixture_stats.INITIAL_FILE])
        result = mixture_stats.diagnostics(mixture_stats.mixtures(g), again)
        self.assertGreater(result["overall"]["relative_change"], 0.5)
        # A second stage copies the first stage's record (found from its models dir) ...
        second = self.create_tempdir().full_path
        copied = mixture_stats.record_initial(second, g, os.path.join(run, "models"))
        self.assertAllClose(copied, before)
        # ... and records nothing when the first stage has none: its mixtures are learned.
        third = self.create_tempdir().full_path
        self.assertIsNone(mixture_stats.record_initial(third, g, second + "_missing"))
        self.assertEqual(os.listdir(third), [])
        self.assertIsNone(mixture_stats.record_initial(third, self._generator("bn_only")))

    def test_summaries_per_layer_and_overall(self):
        g = self._generator()
        initial = mixture_stats.mixtures(g)
        set_one_hot_mixtures(g, MAPPING)
        logdir = self.create_tempdir().full_path
        writer = tf.summary.create_file_writer(logdir)
        mixture_stats.log_summaries(g, initial, writer, 7)
        writer.flush()
        tags = {
            v.tag
            for path in glob.glob(os.path.join(logdir, "events.*"))
            for e in tf.compat.v1.train.summary_iterator(path)
            for v in e.summary.value
            if e.step == 7
        }
        first = next(iter(initial))
        for name in ("relative_change", "correlation", "mean_top_share", "mean_entropy"):
            self.assertIn(f"mixtures/{name}", tags)
            self.assertIn(f"mixtures/{first}/{name}", tags)
        self.assertLen(tags, 4 * (len(initial) + 1))


if __name__ == "__main__":
    tf.test.main()
