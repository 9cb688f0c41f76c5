"""Tests of tf_cgan_transfer.data: image folders, mocked TFDS data sets and the demo set.

TFDS data sets are mocked with `tfds.testing.mock_data(policy=USE_CODE)`, which builds
random examples from the builder's feature spec (encoded PNGs for `oxford_flowers102`,
random sizes) and needs no files or network. The mocked dataset comes from a Python
generator, so the iterator checkpoint tests use an image folder and a really prepared
`cgan_demo_shapes/small`.
"""

import dataclasses
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_cgan_transfer import data
from tf_cgan_transfer import demo_data

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (20, 40, 230)


def _write(path, image):
    """Writes a uint8 `[H, W, C]` array as PNG or JPEG (by extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = tf.constant(image, tf.uint8)
    if path.lower().endswith((".jpg", ".jpeg")):
        encoded = tf.io.encode_jpeg(image, quality=100)
    else:
        encoded = tf.io.encode_png(image)
    tf.io.write_file(path, encoded)


def _solid(height, width, rgb, channels=3):
    image = np.empty([height, width, 3], np.uint8)
    image[:] = rgb
    if channels == 1:
        return image[..., :1]
    if channels == 4:
        return np.concatenate([image, np.full([height, width, 1], 128, np.uint8)], -1)
    return image


def _resize_reference(image, size):
    """NumPy antialiased bilinear (triangle-filter) downscale of `[H, W, C]` float64.

    Output pixel j samples input pixels i with weight max(0, 1 - |c_i - c_j| / s), where
    s = in/out is the scale and c are pixel centres in input coordinates; the weights
    are renormalised over the pixels that exist (at the borders).
    """

    def matrix(n_in, n_out):
        scale = n_in / n_out
        centres_in = np.arange(n_in) + 0.5
        centres_out = (np.arange(n_out) + 0.5) * scale
        w = np.maximum(0.0, 1.0 - np.abs(centres_in[None, :] - centres_out[:, None]) / scale)
        return w / w.sum(1, keepdims=True)

    rows, cols = matrix(image.shape[0], size), matrix(image.shape[1], size)
    return np.einsum("ih,jw,hwc->ijc", rows, cols, image)


def _epoch(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        return np.zeros([0]), np.zeros([0], np.int32)
    return np.concatenate(images), np.concatenate(labels)


def _batches(ds, n):
    it = iter(ds)
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


class FolderTest(tf.test.TestCase):
    def _folder(self):
        """Three classes created out of order; mixed formats, sizes and channels."""
        root = self.create_tempdir().full_path
        _write(f"{root}/c_blue/one.png", _solid(40, 30, BLUE))
        _write(f"{root}/c_blue/two.JPG", _solid(17, 50, BLUE))
        _write(f"{root}/a_red/grey.png", _solid(20, 20, (90, 90, 90), channels=1))
        _write(f"{root}/a_red/x.jpeg", _solid(64, 48, RED))
        _write(f"{root}/a_red/y.png", _solid(10, 33, RED, channels=4))
        _write(f"{root}/b_green/z.png", _solid(12, 12, GREEN))
        with open(f"{root}/b_green/notes.txt", "w") as f:
            f.write("not an image")
        _write(f"{root}/b_green/.hidden.png", _solid(5, 5, RED))
        _write(f"{root}/.cache/skip.png", _solid(5, 5, RED))
        return root

    def test_labels_follow_sorted_folder_names(self):
        root = self._folder()
        config = data.DataConfig("folder", 8, image_folder=root, flip=False)
        info = data.validate(config, expected_num_classes=3)
        self.assertEqual(info.class_names, ["a_red", "b_green", "c_blue"])
        self.assertEqual(info.counts, [3, 1, 2])
        self.assertEqual(info.num_examples, 6)

        images, labels = _epoch(data.make_dataset(config, 1, repeat=False, shuffle=False))
        self.assertEqual(images.shape, (6, 8, 8, 3))
        self.assertEqual(images.dtype, np.float32)
        self.assertAllEqual(labels, [0, 0, 0, 1, 2, 2])  # sorted files within a class
        expected = np.array([(90,) * 3, RED, RED, GREEN, BLUE, BLUE], np.float32) / 127.5 - 1
        self.assertAllClose(
            images, np.broadcast_to(expected[:, None, None], images.shape), atol=0.03
        )

    def test_batches_shapes_dtypes_and_range(self):
        config = data.DataConfig("folder", 16, image_folder=self._folder())
        images, labels = next(iter(data.make_dataset(config, 4)))
        self.assertEqual(images.shape, [4, 16, 16, 3])
        self.assertEqual(images.dtype, tf.float32)
        self.assertEqual(labels.shape, [4])
        self.assertEqual(labels.dtype, tf.int32)
        self.assertBetween(float(tf.reduce_min(images)), -1.0, 1.0)
        self.assertBetween(float(tf.reduce_max(images)), -1.0, 1.0)

    def test_centre_crop_without_resize_is_exact(self):
        root = self.create_tempdir().full_path
        rng = np.random.default_rng(0)
        tall = rng.integers(0, 256, [40, 24, 3], dtype=np.uint8)
        wide = rng.integers(0, 256, [24, 37, 3], dtype=np.uint8)
        _write(f"{root}/k/a_tall.png", tall)
        _write(f"{root}/k/b_wide.png", wide)
        config = data.DataConfig("folder", 24, image_folder=root, flip=False)
        images, _ = _epoch(data.make_dataset(config, 2, repeat=False, shuffle=False))
        self.assertAllClose(images[0], tall[8:32] / 127.5 - 1, atol=1e-5, rtol=0)
        self.assertAllClose(images[1], wide[:, 6:30] / 127.5 - 1, atol=1e-5, rtol=0)

    def test_margins_are_cropped_away_before_resizing(self):
        # 20 high x 30 wide: 5-pixel blue margins left and right around a red square.
        image = _solid(20, 30, BLUE)
        image[:, 5:25] = RED
        root = self.create_tempdir().full_path
        _write(f"{root}/k/img.png", image)
        config = data.DataConfig("folder", 8, image_folder=root, flip=False)
        images, _ = _epoch(data.make_dataset(config, 1, repeat=False, shuffle=False))
        red = np.array(RED, np.float32) / 127.5 - 1
        self.assertAllClose(images[0], np.broadcast_to(red, [8, 8, 3]), atol=1e-5, rtol=0)

    def test_resize_matches_numpy_antialiased_bilinear(self):
        rng = np.random.default_rng(1)
        image = rng.integers(0, 256, [36, 48, 3], dtype=np.uint8)  # crop: columns 6..42
        root = self.create_tempdir().full_path
        _write(f"{root}/k/img.png", image)
        for resolution in (12, 9):  # integer and fractional scale
            config = data.DataConfig("folder", resolution, image_folder=root, flip=False)
            images, _ = _epoch(data.make_dataset(config, 1, repeat=False, shuffle=False))
            expected = _resize_reference(image[:, 6:42].astype(np.float64), resolution)
            self.assertAllClose(images[0], expected / 127.5 - 1, atol=1e-4, rtol=0)

    def test_flip_is_seeded_and_only_mirrors(self):
        rng = np.random.default_rng(2)
        root = self.create_tempdir().full_path
        for i in range(12):
            _write(f"{root}/k/{i:02d}.png", rng.integers(0, 256, [8, 8, 3], dtype=np.uint8))
        plain = data.DataConfig("folder", 8, image_folder=root, flip=False)
        flipped = data.DataConfig("folder", 8, image_folder=root, flip=True, seed=3)
        originals, _ = _epoch(data.make_dataset(plain, 4, repeat=False, shuffle=False))
        outputs, _ = _epoch(data.make_dataset(flipped, 4, repeat=False, shuffle=False))
        again, _ = _epoch(data.make_dataset(flipped, 4, repeat=False, shuffle=False))
        self.assertAllEqual(outputs, again)
        mirrored = [np.array_equal(o, x[:, ::-1]) for o, x in zip(outputs, originals)]
        unchanged = [np.array_equal(o, x) for o, x in zip(outputs, originals)]
        self.assertTrue(all(m or u for m, u in zip(mirrored, unchanged)))
        self.assertTrue(any(mirrored) and any(unchanged))

    def test_subset_remap_and_cap(self):
        root = self.create_tempdir().full_path
        for name, rgb, n in (("a", RED, 5), ("b", GREEN, 2), ("c", BLUE, 4)):
            for i in range(n):
                _write(f"{root}/{name}/{i}.png", _solid(6, 6, rgb))
        config = data.DataConfig("folder", 4, image_folder=root, classes=(2, 0), images_per_class=3)
        info = data.validate(config, expected_num_classes=2)
        self.assertEqual(info.class_names, ["c", "a"])
        self.assertEqual(info.counts, [3, 3])
        images, labels = _epoch(data.make_dataset(config, 1, repeat=False))
        self.assertEqual(sorted(labels), [0, 0, 0, 1, 1, 1])
        blue, red = (np.array(c, np.float32) / 127.5 - 1 for c in (BLUE, RED))
        for image, label in zip(images, labels):
            self.assertAllClose(image[0, 0], blue if label == 0 else red, atol=1e-5)


class FolderErrorTest(tf.test.TestCase):
    def test_missing_folder(self):
        config = data.DataConfig("folder", 8, image_folder="/no/such/dir")
        with self.assertRaisesRegex(data.DataError, "Image folder /no/such/dir does not exist"):
            data.validate(config)

    def test_folder_without_class_folders(self):
        root = self.create_tempdir().full_path
        _write(f"{root}/loose.png", _solid(4, 4, RED))
        with self.assertRaisesRegex(data.DataError, "has no class sub-folders"):
            data.describe(data.DataConfig("folder", 8, image_folder=root))

    def test_empty_class_folder_is_named(self):
        root = self.create_tempdir().full_path
        _write(f"{root}/full/a.png", _solid(4, 4, RED))
        os.makedirs(f"{root}/empty")
        with open(f"{root}/empty/readme.txt", "w") as f:
            f.write("no images here")
        config = data.DataConfig("folder", 8, image_folder=root)
        with self.assertRaisesRegex(
            data.DataError, f"Class folder {root}/empty has no images .*add images or remove"
        ):
            data.validate(config)
        # Leaving the empty class out is fine.
        self.assertEqual(data.validate(dataclasses.replace(config, classes=(1,))).counts, [1])

    def test_corrupt_image_is_named(self):
        root = self.create_tempdir().full_path
        _write(f"{root}/k/good.png", _solid(4, 4, RED))
        with open(f"{root}/k/bad.jpg", "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        with self.assertRaisesRegex(
            data.DataError, f"Cannot read image {root}/k/bad.jpg .*replace"
        ):
            data.validate(data.DataConfig("folder", 8, image_folder=root))

    def test_class_count_mismatch(self):
        root = self.create_tempdir().full_path
        for name in "abc":
            _write(f"{root}/{name}/0.png", _solid(4, 4, RED))
        with self.assertRaisesRegex(
            data.DataError, "The model has 5 classes but the data has 3; set --classes"
        ):
            data.validate(data.DataConfig("folder", 8, image_folder=root), expected_num_classes=5)

    def test_ensure_prepared_builds_only_the_demo_set(self):
        empty = self.create_tempdir().full_path
        config = data.DataConfig("cgan_demo_shapes/small", 32, data_dir=empty)
        self.assertTrue(data.ensure_prepared(config))
        self.assertEqual(data.validate(config).num_classes, 16)
        self.assertFalse(data.ensure_prepared(config))  # already there
        self.assertFalse(data.ensure_prepared(data.DataConfig("cifar100", 32, data_dir=empty)))

    def test_class_id_out_of_range(self):
        root = self.create_tempdir().full_path
        for name in "ab":
            _write(f"{root}/{name}/0.png", _solid(4, 4, RED))
        config = data.DataConfig("folder", 8, image_folder=root, classes=(1, 2, 7))
        with self.assertRaisesRegex(data.DataError, r"classes \[2, 7\] out of range: .* 2 classes"):
            data.validate(config)
        with self.assertRaisesRegex(data.DataError, r"out of range"):
            data.make_dataset(config, 2)

    def test_bad_config_values(self):
        with self.assertRaisesRegex(data.DataError, r"classes repeats the id\(s\) \[3\]"):
            data.DataConfig("cifar100", 32, classes=(3, 1, 3))
        with self.assertRaisesRegex(data.DataError, "dataset='folder' needs image_folder"):
            data.DataConfig("folder", 32)
        with self.assertRaisesRegex(
            data.DataError, "image_folder is set but dataset is 'cifar100'"
        ):
            data.DataConfig("cifar100", 32, image_folder="/tmp")
        with self.assertRaisesRegex(data.DataError, "images_per_class must be positive"):
            data.DataConfig("cifar100", 32, images_per_class=0)
        with self.assertRaisesRegex(data.DataError, "resolution must be a positive integer"):
            data.DataConfig("cifar100", 0)
        self.assertEqual(data.DataConfig("cifar100", 32, classes=[4, 2]).classes, (4, 2))

    def test_batch_size_not_divisible_by_replicas(self):
        root = self.create_tempdir().full_path
        _write(f"{root}/a/0.png", _solid(4, 4, RED))
        context = tf.distribute.InputContext(1, 0, num_replicas_in_sync=2)
        with self.assertRaisesRegex(data.DataError, "multiple of the replicas"):
            data.make_dataset(data.DataConfig("folder", 8, image_folder=root), 5, context)


_NUM_MOCK = 240


def _mock():
    return tfds.testing.mock_data(num_examples=_NUM_MOCK, policy=tfds.testing.MockPolicy.USE_CODE)


class MockTfdsTest(tf.test.TestCase):
    """oxford_flowers102 mocked: 102 classes, random-sized PNGs, random labels."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with _mock():
            ds = tfds.load("oxford_flowers102", split="train", shuffle_files=False)
            cls.raw_labels = np.array([int(ex["label"]) for ex in ds])
        cls.raw_counts = np.bincount(cls.raw_labels, minlength=102)
        # The three most frequent classes, least frequent first.
        cls.top = tuple(int(c) for c in np.argsort(cls.raw_counts, kind="stable")[-3:])

    def test_describe_reads_names_and_counts(self):
        with _mock():
            info = data.describe(data.DataConfig("oxford_flowers102", 16))
        self.assertEqual(info.num_classes, 102)
        self.assertEqual(info.class_names[0], "pink primrose")
        self.assertEqual(info.counts, self.raw_counts.tolist())
        self.assertEqual(info.num_examples, _NUM_MOCK)

    def test_batches(self):
        with _mock():
            config = data.DataConfig("oxford_flowers102", 16, split="train+validation")
            images, labels = next(iter(data.make_dataset(config, 8)))
        self.assertEqual(images.shape, [8, 16, 16, 3])
        self.assertEqual(images.dtype, tf.float32)
        self.assertEqual(labels.dtype, tf.int32)
        self.assertBetween(float(tf.reduce_min(images)), -1.0, 1.0)
        self.assertBetween(float(tf.reduce_max(images)), -1.0, 1.0)
        self.assertBetween(int(tf.reduce_min(labels)), 0, 101)

    def test_subset_is_remapped_in_the_given_order(self):
        classes = self.top
        with _mock():
            config = data.DataConfig("oxford_flowers102", 8, classes=classes)
            info = data.validate(config, expected_num_classes=3)
            _, labels = _epoch(data.make_dataset(config, 1, repeat=False, shuffle=False))
        expected = [int(self.raw_counts[c]) for c in classes]
        self.assertEqual(info.counts, expected)
        self.assertEqual(np.bincount(labels, minlength=3).tolist(), expected)
        # Labels appear in record order, mapped through the subset.
        raw_in_subset = [c for c in self.raw_labels if c in classes]
        self.assertAllEqual(labels, [classes.index(c) for c in raw_in_subset])

    def test_per_class_cap(self):
        cap = 2
        with _mock():
            config = data.DataConfig("oxford_flowers102", 8, classes=self.top, images_per_class=cap)
            info = data.describe(config)
            _, labels = _epoch(data.make_dataset(config, 1, repeat=False))
            all_classes = data.DataConfig("oxford_flowers102", 8, images_per_class=cap)
            everything = data.describe(all_classes)
        self.assertEqual(info.counts, [cap] * 3)
        self.assertEqual(np.bincount(labels, minlength=3).tolist(), [cap] * 3)
        self.assertEqual(everything.counts, np.minimum(self.raw_counts, cap).tolist())

    def test_cap_choice_depends_on_the_seed_and_grows_monotonically(self):
        def kept(seed, cap):
            config = data.DataConfig(
                "oxford_flowers102", 8, classes=self.top[-1:], images_per_class=cap, seed=seed
            )
            images, _ = _epoch(data.make_dataset(config, 1, repeat=False, shuffle=False))
            return {img.tobytes() for img in images}

        with _mock():
            two, three = kept(0, 2), kept(0, 3)
            ones = [kept(seed, 1) for seed in range(3)]
        self.assertLen(two, 2)
        self.assertLess(two, three)  # a larger cap keeps a superset
        self.assertGreater(len(set().union(*ones)), 1, "the choice ignores the seed")

    def test_same_seed_same_batches(self):
        with _mock():
            config = data.DataConfig("oxford_flowers102", 8, seed=5)
            first = _batches(data.make_dataset(config, 4), 3)
            second = _batches(data.make_dataset(config, 4), 3)
            other = _batches(
                data.make_dataset(data.DataConfig("oxford_flowers102", 8, seed=6), 4), 3
            )
        for (x1, y1), (x2, y2) in zip(first, second):
            self.assertAllEqual(x1, x2)
            self.assertAllEqual(y1, y2)
        self.assertFalse(all(np.array_equal(a[1], b[1]) for a, b in zip(first, other)))

    def test_two_input_pipelines_split_the_data(self):
        config = data.DataConfig("oxford_flowers102", 8, flip=False)
        with _mock():
            whole, whole_labels = _epoch(data.make_dataset(config, 2, repeat=False))
            shards = []
            for pipeline_id in range(2):
                context = tf.distribute.InputContext(2, pipeline_id, num_replicas_in_sync=2)
                ds = data.make_dataset(config, 2, context, repeat=False)
                self.assertEqual(ds.element_spec[0].shape, [1, 8, 8, 3])  # per-replica batch
                shards.append(_epoch(ds))
        self.assertEqual(len(shards[0][1]) + len(shards[1][1]), _NUM_MOCK)
        key = lambda images: sorted(img.tobytes() for img in images)  # noqa: E731
        self.assertEqual(key(np.concatenate([shards[0][0], shards[1][0]])), key(whole))
        self.assertEmpty(set(key(shards[0][0])) & set(key(shards[1][0])))


class TfdsErrorTest(tf.test.TestCase):
    def test_unknown_name_lists_close_matches(self):
        with self.assertRaisesRegex(
            data.DataError,
            "Unknown TFDS data set 'oxford_flower102'. Did you mean oxford_flowers102",
        ):
            data.validate(data.DataConfig("oxford_flower102", 32))

    def test_not_prepared_says_tfds_cannot_download(self):
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(
            data.DataError,
            f"'cifar100' is not prepared in {empty}, and TFDS cannot download here.*"
            "tfds build cifar100",
        ):
            data.validate(data.DataConfig("cifar100", 32, data_dir=empty))
        with self.assertRaisesRegex(
            data.DataError, rf"not prepared in {empty}, .*demo_data.prepare\('{empty}', 'default'\)"
        ):
            data.make_dataset(data.DataConfig("cgan_demo_shapes", 32, data_dir=empty), 2)

    def test_class_id_out_of_range(self):
        with _mock():
            config = data.DataConfig("oxford_flowers102", 8, classes=(0, 102))
            with self.assertRaisesRegex(
                data.DataError, r"classes \[102\] out of range: oxford_flowers102 has 102 classes"
            ):
                data.validate(config)

    def test_class_count_mismatch(self):
        with _mock():
            config = data.DataConfig("oxford_flowers102", 8)
            with self.assertRaisesRegex(
                data.DataError, "The model has 100 classes but the data has 102"
            ):
                data.validate(config, expected_num_classes=100)

    def test_class_without_images(self):
        with _mock():
            counts = data.describe(data.DataConfig("oxford_flowers102", 8)).counts
            empty = counts.index(0)  # 240 random labels leave some of the 102 classes empty
            config = data.DataConfig("oxford_flowers102", 8, classes=(empty, counts.index(1)))
            with self.assertRaisesRegex(
                data.DataError,
                f"Class {empty} \\('.*'\\) has no images in split 'train' of "
                "'oxford_flowers102': drop it from --classes",
            ):
                data.validate(config)


class DemoDataPipelineTest(tf.test.TestCase):
    """A really prepared TFDS data set: `cgan_demo_shapes/small` (20 train images/class)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = tempfile.mkdtemp()
        demo_data.prepare(cls.data_dir, "small")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.data_dir, ignore_errors=True)
        super().tearDownClass()

    def _config(self, **kwargs):
        return data.DataConfig("cgan_demo_shapes/small", 16, data_dir=self.data_dir, **kwargs)

    def test_new_classes_with_cap(self):
        config = self._config(classes=demo_data.NEW_CLASSES, images_per_class=7)
        info = data.validate(config, expected_num_classes=4)
        self.assertEqual(
            info.class_names, [demo_data.CLASS_NAMES[c] for c in demo_data.NEW_CLASSES]
        )
        self.assertEqual(info.counts, [7] * 4)
        _, labels = _epoch(data.make_dataset(config, 4, repeat=False))
        self.assertEqual(np.bincount(labels).tolist(), [7] * 4)

    def test_unknown_split(self):
        with self.assertRaisesRegex(data.DataError, "Split 'train\\+validation' .*Unknown split"):
            data.describe(self._config(split="train+validation"))

    def _check_iterator_round_trip(self, config):
        ds = data.make_dataset(config, 4)
        iterator = iter(ds)
        for _ in range(3):
            next(iterator)
        checkpoint = tf.train.Checkpoint(iterator=iterator)
        path = checkpoint.save(os.path.join(self.create_tempdir().full_path, "ckpt"))
        expected = [tuple(t.numpy() for t in next(iterator)) for _ in range(8)]

        fresh = iter(data.make_dataset(config, 4))
        tf.train.Checkpoint(iterator=fresh).restore(path).assert_consumed()
        for images, labels in expected:
            got_images, got_labels = next(fresh)
            self.assertAllEqual(got_images, images)
            self.assertAllEqual(got_labels, labels)

    def test_tfds_iterator_checkpoint_round_trip(self):
        # 12 old classes x 3 images = 36 examples: restored batches 4-11 cross an epoch.
        self._check_iterator_round_trip(
            self._config(classes=demo_data.OLD_CLASSES, images_per_class=3, seed=4)
        )

    def test_folder_iterator_checkpoint_round_trip(self):
        root = self.create_tempdir().full_path
        rng = np.random.default_rng(3)
        for i in range(10):
            _write(f"{root}/c{i % 3}/{i}.png", rng.integers(0, 256, [9, 12, 3], dtype=np.uint8))
        self._check_iterator_round_trip(data.DataConfig("folder", 8, image_folder=root, seed=1))

    def test_skip_batches_resumes_the_same_stream(self):
        config = self._config(classes=demo_data.OLD_CLASSES, images_per_class=3, seed=2)
        expected = _batches(data.make_dataset(config, 4), 12)[5:]
        resumed = _batches(data.make_dataset(config, 4, skip_batches=5), 7)
        for (x1, y1), (x2, y2) in zip(expected, resumed):
            self.assertAllEqual(x1, x2)
            self.assertAllEqual(y1, y2)

    def test_distribute_datasets_from_function(self):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        config = self._config()
        dist = strategy.distribute_datasets_from_function(
            lambda context: data.make_dataset(config, 8, context)
        )
        images, labels = next(iter(dist))
        per_replica = strategy.experimental_local_results(images)
        self.assertLen(per_replica, 2)
        self.assertEqual(per_replica[0].shape, [4, 16, 16, 3])
        self.assertEqual(strategy.experimental_local_results(labels)[1].shape, [4])


if __name__ == "__main__":
    tf.test.main()
