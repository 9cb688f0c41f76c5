"""Tests of tf_cgan_transfer.demo_data: the offline `cgan_demo_shapes` TFDS data set."""

import shutil
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_cgan_transfer import demo_data


def _load(builder, split):
    """All `(images [N, 32, 32, 3] uint8, labels, colours, shapes)` of a split, in file order."""
    batch = builder.as_dataset(split=split, shuffle_files=False, batch_size=-1)  # tensors
    return tuple(batch[k].numpy() for k in ("image", "label", "colour", "shape"))


class ClassTableTest(tf.test.TestCase):
    def test_sixteen_named_classes(self):
        self.assertLen(demo_data.CLASS_NAMES, 16)
        self.assertLen(set(demo_data.CLASS_NAMES), 16)
        self.assertEqual(demo_data.CLASS_NAMES[0], "red_disk")
        self.assertEqual(demo_data.CLASS_NAMES[demo_data.class_id("blue", "ring")], "blue_ring")
        for label, name in enumerate(demo_data.CLASS_NAMES):
            self.assertEqual("_".join(demo_data.attributes(label)), name)

    def test_new_classes_borrow_every_attribute_from_old_classes(self):
        old, new = set(demo_data.OLD_CLASSES), set(demo_data.NEW_CLASSES)
        self.assertLen(new, 4)
        self.assertLen(old, 12)
        self.assertEmpty(old & new)
        self.assertEqual(old | new, set(range(16)))
        old_colours = {demo_data.attributes(c)[0] for c in old}
        old_shapes = {demo_data.attributes(c)[1] for c in old}
        new_pairs = [demo_data.attributes(c) for c in demo_data.NEW_CLASSES]
        for colour, shape in new_pairs:
            self.assertIn(colour, old_colours)
            self.assertIn(shape, old_shapes)
        # One new class per colour and per shape (a transversal of the 4x4 square).
        self.assertCountEqual([c for c, _ in new_pairs], demo_data.COLOURS)
        self.assertCountEqual([s for _, s in new_pairs], demo_data.SHAPES)

    def test_png_encoder_round_trips(self):
        images = demo_data.generate(7, 3)
        for image in images:
            decoded = tf.io.decode_png(demo_data.encode_png(image))
            self.assertAllEqual(decoded, image)

    def test_generation_is_a_deterministic_prefix(self):
        self.assertAllEqual(demo_data.generate(5, 4), demo_data.generate(5, 10)[:4])
        self.assertNotAllEqual(demo_data.generate(5, 4), demo_data.generate(5, 4, "test"))


class BuiltDataSetTest(tf.test.TestCase):
    """The default config (300 train / 50 test images per class), built once offline."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = tempfile.mkdtemp()
        # No download may happen: any DownloadManager call fails the build.
        with mock.patch.object(
            tfds.download.DownloadManager, "download", side_effect=AssertionError("download")
        ), mock.patch.object(
            tfds.download.DownloadManager,
            "download_and_extract",
            side_effect=AssertionError("download"),
        ):
            cls.builder = demo_data.prepare(cls.data_dir)
        cls.images, cls.labels, cls.colours, cls.shapes = _load(cls.builder, "train")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        super().tearDownClass()

    def test_registered_and_reloadable_by_name(self):
        builder = tfds.builder("cgan_demo_shapes", data_dir=self.data_dir)
        self.assertTrue(builder.is_prepared())
        self.assertEqual(str(builder.info.version), "1.0.0")
        self.assertEqual(builder.info.features["label"].names, list(demo_data.CLASS_NAMES))

    def test_images_per_class(self):
        self.assertEqual(self.images.shape, (16 * 300, 32, 32, 3))
        self.assertEqual(self.images.dtype, np.uint8)
        self.assertEqual(np.bincount(self.labels).tolist(), [300] * 16)
        _, test_labels, _, _ = _load(self.builder, "test")
        self.assertEqual(np.bincount(test_labels).tolist(), [50] * 16)

    def test_attribute_features_agree_with_labels(self):
        for label, colour, shape in zip(self.labels[:200], self.colours, self.shapes):
            self.assertEqual(
                demo_data.attributes(label),
                (demo_data.COLOURS[colour], demo_data.SHAPES[shape]),
            )

    def test_images_show_the_class_colour(self):
        names = list(demo_data.RGB)
        palette = np.array([demo_data.RGB[c] for c in names], np.float32)
        pixels = self.images.astype(np.float32)
        saturated = pixels.max(-1) - pixels.min(-1) > 80  # the shape; backgrounds are grey
        for label in range(16):
            colour, _ = demo_data.attributes(label)
            mask = saturated[self.labels == label]
            self.assertGreater(mask.mean(), 0.05, demo_data.CLASS_NAMES[label])
            mean = pixels[self.labels == label][mask].mean(0)
            nearest = names[int(np.argmin(np.linalg.norm(palette - mean, axis=1)))]
            self.assertEqual(nearest, colour, f"{demo_data.CLASS_NAMES[label]}: mean {mean}")
            self.assertLess(np.linalg.norm(mean - demo_data.RGB[colour]), 45)

    def test_images_of_a_class_differ(self):
        for label in range(16):
            images = self.images[self.labels == label].reshape(300, -1)
            self.assertLen(np.unique(images, axis=0), 300)
            self.assertGreater(images.astype(np.float32).std(0).mean(), 10)

    def test_shapes_differ_in_area(self):
        # Fraction of shape pixels per shape, averaged over colours: the disk covers more
        # than the ring (a disk with a hole) and the triangle least.
        pixels = self.images.astype(np.int16)
        area = (pixels.max(-1) - pixels.min(-1) > 80).mean((1, 2))
        by_shape = [area[self.shapes == s].mean() for s in range(len(demo_data.SHAPES))]
        disk, _, triangle, ring = by_shape
        self.assertGreater(disk, ring)
        self.assertGreater(ring, triangle)

    def test_builds_are_identical(self):
        other = tempfile.mkdtemp()
        try:
            small_a = _load(demo_data.prepare(other, "small"), "train")
            third = tempfile.mkdtemp()
            try:
                small_b = _load(demo_data.prepare(third, "small"), "train")
            finally:
                shutil.rmtree(third, ignore_errors=True)
        finally:
            shutil.rmtree(other, ignore_errors=True)
        for a, b in zip(small_a, small_b):
            self.assertAllEqual(a, b)
        self.assertEqual(np.bincount(small_a[1]).tolist(), [20] * 16)
        # The small config's images are the first images of each class of the default one.
        for label in (0, 9):
            small = small_a[0][small_a[1] == label]
            full = self.images[self.labels == label]
            full_rows = {image.tobytes() for image in full}
            self.assertTrue(all(image.tobytes() in full_rows for image in small))


if __name__ == "__main__":
    tf.test.main()
