"""Tests of sampling.py: latents per seed, sheets and interpolations of a generator."""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import sampling

DIM_Z = 8


class LatentsTest(tf.test.TestCase):
    def test_seeded_latents_match_sample_z(self):
        z = sampling.seeded_latents(tf.constant([5, 6, 7], tf.int64), DIM_Z, 0.8)
        self.assertEqual(z.shape, (3, DIM_Z))
        self.assertAllClose(z[1:2], biggan.sample_z(1, DIM_Z, 0.8, 6))
        for i, seed in enumerate([5, 6, 7]):
            self.assertAllClose(z[i : i + 1], biggan.sample_z(1, DIM_Z, 0.8, seed))
        # A truncation per row scales each row alone.
        per_row = sampling.seeded_latents([5, 6], DIM_Z, tf.constant([0.5, 1.0]))
        self.assertAllClose(per_row[0], biggan.sample_z(1, DIM_Z, 0.5, 5)[0])
        self.assertAllClose(per_row[1], biggan.sample_z(1, DIM_Z, 1.0, 6)[0])

    def test_slerp_endpoints_and_norm(self):
        a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
        path = sampling.slerp(a, b, [0.0, 0.5, 1.0])
        self.assertAllClose(path[0], a)
        self.assertAllClose(path[-1], b)
        self.assertAllClose(np.linalg.norm(path, axis=1), [1.0, 1.0, 1.0])
        self.assertAllClose(sampling.lerp(a, b, [0.5])[0], [0.5, 0.5])

    def test_slerp_of_parallel_vectors_is_lerp(self):
        a = np.array([1.0, 2.0])
        self.assertAllClose(sampling.slerp(a, 2 * a, [0.25]), sampling.lerp(a, 2 * a, [0.25]))

    def test_batched_concatenates_every_slice(self):
        calls = []

        def fn(a, b):
            calls.append(len(a))
            return tf.constant(a) + tf.constant(b)

        out = sampling.batched(fn, 3, np.arange(7), 10 * np.arange(7))
        self.assertAllEqual(out, 11 * np.arange(7))
        self.assertEqual(calls, [3, 3, 1])


class SheetTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tf.keras.utils.set_random_seed(0)
        cls.g = biggan.Generator(32, ch=8, num_classes=3, shared_dim=8, dim_z=DIM_Z).build_weights()

    def _one(self, seed, label, truncation=1.0):
        """The image of one seed and label, drawn alone: the independent reference."""
        z = sampling.seeded_latents(tf.constant([seed], tf.int64), DIM_Z, truncation)
        return self.g((z, tf.constant([label])), training=False)[0]

    def test_sheet_rows_are_generator_at_seeded_latents(self):
        classes, per_class, seed, t = [2, 0], 3, 4, 0.7
        # batch_size 4 over 6 images: a partial last batch must not change an image.
        sheet = sampling.sheet(self.g, classes, per_class, truncation=t, seed=seed, batch_size=4)
        self.assertEqual(sheet.shape, (6, 32, 32, 3))
        for row, label in enumerate(classes):
            for col in range(per_class):
                i = row * per_class + col
                with self.subTest(row=row, col=col):
                    self.assertAllClose(sheet[i], self._one(seed + i, label, t), atol=1e-5, rtol=0)
        self.assertGreater(float(tf.reduce_max(tf.abs(sheet[0] - sheet[1]))), 0.0)

    def test_interpolate_z_ends_are_the_two_seeds(self):
        for interpolation in sampling.INTERPOLATIONS:
            with self.subTest(interpolation=interpolation):
                grid = sampling.interpolate_z(
                    self.g, [1, 2], 4, seed=3, interpolation=interpolation, batch_size=3
                )
                self.assertEqual(grid.shape, (8, 32, 32, 3))
                for row, label in enumerate([1, 2]):
                    first, last = grid[row * 4], grid[row * 4 + 3]
                    self.assertAllClose(first, self._one(3, label), atol=1e-5, rtol=0)
                    self.assertAllClose(last, self._one(4, label), atol=1e-5, rtol=0)
        with self.assertRaisesRegex(ValueError, "Unknown interpolation 'cubic'"):
            sampling.interpolate_z(self.g, [0], 3, interpolation="cubic")

    def test_interpolate_class_ends_are_the_pure_classes(self):
        grid = sampling.interpolate_class(self.g, 0, 2, rows=2, steps=3, seed=5)
        self.assertEqual(grid.shape, (6, 32, 32, 3))
        for row in range(2):
            with self.subTest(row=row):
                self.assertAllClose(grid[row * 3], self._one(5 + row, 0), atol=1e-5, rtol=0)
                self.assertAllClose(grid[row * 3 + 2], self._one(5 + row, 2), atol=1e-5, rtol=0)


if __name__ == "__main__":
    tf.test.main()
