"""Tests of tf_cgan_transfer.class_names: names files, data set names, runs and ImageNet."""

import dataclasses
import json
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from tests import model_fixtures
from tf_cgan_transfer import class_names
from tf_cgan_transfer import data
from tf_cgan_transfer import model_io


def _write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _record_run(run_dir, data_config, **fields):
    """A run directory's config.json as `train.main` writes it."""
    os.makedirs(run_dir, exist_ok=True)
    config = dict(data=dataclasses.asdict(data_config), **fields)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(config, f)
    return run_dir


class ReadFileTest(tf.test.TestCase):
    def test_one_name_per_line_trailing_blank_lines_ignored(self):
        path = _write(self.create_tempdir().full_path, "names.txt", " tulip \nrose\ndaisy\n\n\n")
        self.assertEqual(class_names.read_file(path), ["tulip", "rose", "daisy"])
        self.assertEqual(class_names.read_file(path, 3), ["tulip", "rose", "daisy"])

    def test_count_mismatch_names_both_counts_and_the_file(self):
        path = _write(self.create_tempdir().full_path, "names.txt", "tulip\nrose\n")
        with self.assertRaisesRegex(
            class_names.ClassNamesError,
            f"{path} lists 2 class names, but the model has 3 classes",
        ):
            class_names.read_file(path, 3)

    def test_blank_line_between_names_is_an_error(self):
        path = _write(self.create_tempdir().full_path, "names.txt", "tulip\n\nrose\n")
        with self.assertRaisesRegex(class_names.ClassNamesError, "line 2 is empty"):
            class_names.read_file(path)

    def test_empty_and_missing_files(self):
        directory = self.create_tempdir().full_path
        empty = _write(directory, "empty.txt", "\n \n")
        with self.assertRaisesRegex(class_names.ClassNamesError, "holds no names"):
            class_names.read_file(empty)
        with self.assertRaisesRegex(class_names.ClassNamesError, "does not exist"):
            class_names.read_file(os.path.join(directory, "missing.txt"))


class DataNamesTest(tf.test.TestCase):
    def test_tfds_label_names(self):
        with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
            every = class_names.of_data(data.DataConfig("oxford_flowers102", 16))
            subset = class_names.of_data(data.DataConfig("oxford_flowers102", 16, classes=(3, 0)))
        self.assertLen(every, 102)
        self.assertEqual(every[0], "pink primrose")
        self.assertEqual(subset, [every[3], every[0]])

    def test_folder_names_and_a_recorded_run(self):
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"), per_class=1)
        config = data.DataConfig("folder", 8, image_folder=folder, classes=(2, 0))
        self.assertEqual(class_names.of_data(config), ["class_2", "class_0"])
        run = _record_run(os.path.join(root, "run"), config)
        # The run and its models directories know their classes (no image is read).
        self.assertEqual(class_names.of_run(run), ["class_2", "class_0"])
        self.assertEqual(class_names.of_run(os.path.join(run, "models")), ["class_2", "class_0"])
        self.assertIsNone(class_names.of_run(folder))  # not a run
        # A recorded names file wins over the data's names.
        names = _write(root, "names.txt", "fox\ncat\n")
        _record_run(run, config, class_names=names)
        self.assertEqual(class_names.of_run(run), ["fox", "cat"])

    def test_moved_data_gives_no_names(self):
        missing = os.path.join(self.create_tempdir().full_path, "gone")
        self.assertIsNone(
            class_names.of_data(dict(dataset="folder", image_folder=missing, resolution=8))
        )


class ResolveTest(tf.test.TestCase):
    def test_first_source_with_the_right_count_wins(self):
        root = self.create_tempdir().full_path
        folder = model_fixtures.write_image_folder(os.path.join(root, "images"), per_class=1)
        run = _record_run(
            os.path.join(root, "run"), data.DataConfig("folder", 8, image_folder=folder)
        )
        names = _write(root, "names.txt", "a\nb\nc\n")
        self.assertEqual(class_names.resolve(names, 3, ["x", "y", "z"], run), ["a", "b", "c"])
        self.assertEqual(class_names.resolve(None, 3, ["x", "y", "z"], run), ["x", "y", "z"])
        self.assertEqual(class_names.resolve(None, 3, path=run), ["class_0", "class_1", "class_2"])
        # Names of another count are passed over (with a warning), not used.
        self.assertEqual(
            class_names.resolve(None, 3, ["x"], run), ["class_0", "class_1", "class_2"]
        )
        self.assertIsNone(class_names.resolve(None, 4, path=run))
        self.assertIsNone(class_names.resolve(None, 3))
        # A file of another count is the user's mistake: an error.
        with self.assertRaisesRegex(class_names.ClassNamesError, "lists 3 class names.*has 2"):
            class_names.resolve(names, 2, ["x", "y"])

    def test_imagenet_for_1000_classes(self):
        names = class_names.imagenet()
        self.assertLen(names, 1000)
        self.assertEqual(names[0], "n01440764")  # tench, BigGAN class 0
        self.assertEqual(class_names.resolve(None, 1000), names)
        self.assertIsNone(class_names.resolve(None, 999))

    def test_recorded_config(self):
        root = self.create_tempdir().full_path
        run = _record_run(
            os.path.join(root, "run"), data.DataConfig("folder", 8, image_folder=root), source="s"
        )
        self.assertEqual(model_io.recorded_config(os.path.join(run, "best"))["source"], "s")
        self.assertIsNone(model_io.recorded_config(root))
        self.assertIsNone(model_io.recorded_config("https://tfhub.dev/deepmind/biggan-128/2"))
        self.assertIsNone(model_io.recorded_config(None))


if __name__ == "__main__":
    tf.test.main()
