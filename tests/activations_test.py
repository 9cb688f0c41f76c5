"""Tests of tf_cgan_transfer.activations: small pixel copies, batching, the on-disk cache."""

import os

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import activations


def _arrays(n, seed=0):
    rng = np.random.default_rng(seed)
    return activations.Activations(
        rng.normal(size=[n, 6]).astype(np.float32),
        rng.normal(size=[n, 4]).astype(np.float32),
        (np.arange(n) % 3).astype(np.int32),
        rng.integers(0, 256, size=[n, 12], dtype=np.uint8),
    )


class SmallPixelsTest(tf.test.TestCase):
    def test_area_downsampling_to_32_and_uint8_rounding(self):
        rng = np.random.default_rng(1)
        images = rng.uniform(-1, 1, size=[2, 64, 64, 3]).astype(np.float32)
        pixels = activations.small_pixels(images).numpy()
        self.assertEqual((pixels.shape, pixels.dtype), ((2, 32 * 32 * 3), np.uint8))
        # Independent: the mean of each 2x2 block, then [-1, 1] -> [0, 255].
        blocks = images.reshape(2, 32, 2, 32, 2, 3).mean(axis=(2, 4))
        expected = np.round((blocks + 1.0) * 127.5).reshape(2, -1)
        self.assertLessEqual(np.abs(pixels.astype(int) - expected).max(), 1)

    def test_small_images_keep_their_size_and_out_of_range_values_clip(self):
        images = np.full([1, 8, 8, 3], 1.5, np.float32)
        images[0, 0, 0] = -2.0
        pixels = activations.small_pixels(images).numpy()
        self.assertEqual(pixels.shape, (1, 8 * 8 * 3))
        self.assertAllEqual(pixels[0, :3], [0, 0, 0])
        self.assertAllEqual(pixels[0, 3:], np.full(8 * 8 * 3 - 3, 255))


class ActivationsTest(tf.test.TestCase):
    def test_select_of_class_and_concatenate(self):
        arrays = _arrays(7)
        self.assertLen(arrays, 7)
        of_one = arrays.of_class(1)
        self.assertAllEqual(of_one.labels, [1, 1])
        self.assertAllEqual(of_one.pool, arrays.pool[[1, 4]])
        self.assertAllEqual(of_one.pixels, arrays.pixels[[1, 4]])
        parts = [
            tuple(getattr(arrays, f)[rows] for f in ("pool", "logits", "labels", "pixels"))
            for rows in (slice(0, 3), slice(3, 7))
        ]
        joined = activations.concatenate(parts)
        for field in ("pool", "logits", "labels", "pixels"):
            self.assertAllEqual(getattr(joined, field), getattr(arrays, field))
        self.assertAllClose(arrays.pixel_vectors(), arrays.pixels / 255.0)


class ActivationCacheTest(tf.test.TestCase):
    def test_round_trip_and_every_reason_to_recompute(self):
        cache = activations.ActivationCache(self.create_tempdir().full_path)
        key = dict(data=dict(dataset="x"), num_images=7)
        text = activations.canonical(key)
        self.assertIsNone(cache.get("real", text, 7, 6))  # nothing yet
        arrays = _arrays(7)
        cache.put("real", key, text, arrays)
        again = cache.get("real", text, 7, 6)
        for field in ("pool", "logits", "labels", "pixels"):
            self.assertAllEqual(getattr(again, field), getattr(arrays, field))
        npz, sidecar = cache.paths("real", text)
        self.assertTrue(os.path.basename(npz).startswith("real_"))
        self.assertNotEqual(cache.paths("train", text)[0], npz)  # prefixes keep sets apart
        with self.assertLogs("absl", "WARNING"):
            self.assertIsNone(cache.get("real", text, 8, 6))  # another size
        with open(npz, "wb") as f:
            f.write(b"not an npz")
        with self.assertLogs("absl", "WARNING"):
            self.assertIsNone(cache.get("real", text, 7, 6))
        self.assertIsNone(activations.ActivationCache(None).get("real", text, 7, 6))
