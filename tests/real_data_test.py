"""Tests of tf_cgan_transfer.real_data: real images from an .npz or a data set."""

import dataclasses
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tests import model_fixtures
from tf_cgan_transfer import data
from tf_cgan_transfer import errors
from tf_cgan_transfer import real_data


class NpzRealSourceTest(tf.test.TestCase):
    def _write(self, **arrays):
        path = os.path.join(self.create_tempdir().full_path, "real.npz")
        np.savez(path, **arrays)
        return path

    def test_images_scaled_to_minus_one_one_with_labels(self):
        images = np.arange(5 * 4 * 4 * 3).reshape([5, 4, 4, 3]).astype(np.uint8)
        path = self._write(images=images, labels=np.array([2, 0, 1, 0, 2]))
        source = real_data.npz_real_source(path, batch_size=2)
        self.assertEqual(source.num_images, 5)
        batches = list(source.dataset_fn())
        self.assertEqual([len(y) for _, y in batches], [2, 2, 1])
        x = np.concatenate([b[0] for b in batches])
        self.assertAllClose(x, images / 127.5 - 1.0)
        self.assertEqual(batches[0][1].dtype, tf.int32)
        key = source.cache_key
        self.assertEqual(key["dataset"], "npz:" + os.path.abspath(path))
        self.assertEqual((key["classes"], key["resolution"]), ([0, 1, 2], 4))
        self.assertEqual(key["file_bytes"], os.path.getsize(path))

    def test_bad_files_are_evaluation_errors(self):
        self.assertTrue(issubclass(real_data.EvaluationError, errors.UserError))
        cases = [
            (dict(images=np.zeros([2, 4, 4, 3], np.uint8)), "not an .npz with `images`"),
            (
                dict(images=np.zeros([2, 4, 4, 3], np.float32), labels=np.zeros([2], int)),
                "`images` must be uint8",
            ),
            (
                dict(images=np.zeros([2, 4, 4, 3], np.uint8), labels=np.zeros([3], int)),
                r"`labels` must be int \[2\]",
            ),
        ]
        for arrays, message in cases:
            with self.assertRaisesRegex(real_data.EvaluationError, message):
                real_data.npz_real_source(self._write(**arrays))


class FromDataConfigTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(root, classes=3, per_class=4)
        self.config = data.DataConfig(
            dataset="folder", resolution=16, image_folder=folder, classes=(2, 0)
        )

    def test_unflipped_selection_with_its_cache_key(self):
        source = real_data.from_data_config(self.config, batch_size=3)
        self.assertEqual(source.num_images, 8)
        self.assertEqual(
            source.cache_key,
            dict(
                dataset="folder",
                split="train",
                image_folder=os.path.abspath(self.config.image_folder),
                classes=[2, 0],
                images_per_class=None,
                resolution=16,
            ),
        )
        images, labels = next(iter(source.dataset_fn()))
        self.assertEqual(images.shape, [3, 16, 16, 3])
        self.assertTrue(set(labels.numpy()) <= {0, 1})
        # flip=True in the config (the training default) still gives unflipped images.
        self.assertTrue(self.config.flip)
        unflipped = dataclasses.replace(self.config, flip=False)
        expected, _ = next(iter(real_data.from_data_config(unflipped, 3).dataset_fn()))
        self.assertAllEqual(images, expected)

    def test_a_given_plan_is_reused_not_reread(self):
        plan = data.validate(self.config)  # flip=True, as a trainer's plan
        with mock.patch.object(data, "plan", side_effect=AssertionError("labels re-read")):
            source = real_data.from_data_config(self.config, batch_size=4, plan=plan)
            self.assertEqual(source.num_images, plan.num_examples)
            images, _ = next(iter(source.dataset_fn()))
        self.assertEqual(images.shape, [4, 16, 16, 3])
