"""Tests of tf_cgan_transfer.wesnoth_units: the Wesnoth unit sprites TFDS builder and pixels.

The game files are the fake `data/core` of `tests/wesnoth_fixtures.py` (its parsing is
`tests/wesnoth_cfg_test.py`'s); the pixels are checked against a NumPy reference.
"""

import math
import os
import shutil
import tempfile
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tests import wesnoth_fixtures
from tf_cgan_transfer import data
from tf_cgan_transfer import wesnoth_units

BG = np.array(wesnoth_units.BACKGROUND, np.float64)


def _triangle_resize(image, size):
    """NumPy antialiased bilinear downscale of `[H, W, C]`: each output pixel averages the
    input pixels within one output pixel width, weighted by a triangle (tent) over the
    distance of their centres, renormalised at the borders."""

    def weights(n_in):
        scale = n_in / size
        centres_in = np.arange(n_in) + 0.5
        centres_out = (np.arange(size) + 0.5) * scale
        distance = np.abs(centres_in[None, :] - centres_out[:, None]) / scale
        w = np.maximum(0.0, 1.0 - distance)
        return w / w.sum(axis=1, keepdims=True)

    return np.einsum("ih,jw,hwc->ijc", weights(image.shape[0]), weights(image.shape[1]), image)


def _reference_image(rgba, size):
    """The pixel rule in NumPy (float64): centre crop/pad to 72, composite, resize, round."""
    height, width = rgba.shape[:2]
    # Pad with transparent pixels to at least 72 on each side, then take the centre 72.
    pad_y, pad_x = max(0, 72 - height), max(0, 72 - width)
    padded = np.pad(
        rgba, [(pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2), (0, 0)]
    )
    top, left = (padded.shape[0] - 72) // 2, (padded.shape[1] - 72) // 2
    fitted = padded[top : top + 72, left : left + 72].astype(np.float64)
    alpha = fitted[..., 3:] / 255.0
    rgb = alpha * fitted[..., :3] + (1.0 - alpha) * BG
    return np.clip(np.round(_triangle_resize(rgb, size)), 0, 255)


class PixelTest(tf.test.TestCase):
    """The pixel rule's parts on arrays."""

    def test_composite_formula(self):
        rgba = np.array([[[200, 40, 10, 0], [200, 40, 10, 128], [200, 40, 10, 255]]], np.uint8)
        alpha = np.array([0.0, 128 / 255, 1.0])[None, :, None]
        expected = alpha * np.array(wesnoth_fixtures.RED) + (1 - alpha) * BG
        self.assertAllClose(wesnoth_units.composite(rgba), expected, atol=1e-4)

    def test_fit_crops_and_pads_around_the_centre(self):
        tall = np.arange(100 * 90 * 4).reshape(100, 90, 4)
        self.assertAllEqual(wesnoth_units.fit(tall), tall[14:86, 9:81])
        small = np.full([70, 71, 4], 7)
        fitted = wesnoth_units.fit(small)
        self.assertAllEqual(fitted[1:71, 0:71], small)
        self.assertEqual(fitted.sum(), small.sum())  # the rest is transparent zeros


class FakeCoreTest(tf.test.TestCase):
    """The builder on the fake game files, prepared once (`wesnoth_units/32`)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.core = wesnoth_fixtures.write_fake_core(cls.root)
        cls.data_dir = os.path.join(cls.root, "tfds")
        cls.builder = wesnoth_units.prepare(cls.data_dir, cls.core, "32")
        cls.loaded = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def _load(self, split):
        """A new builder (everything must come back from the prepared files) and the split's
        examples in file order: `{feature: [values]}`, images and scalars stacked. Cached."""
        if split not in self.loaded:
            self.loaded[split] = self._read(split)
        return self.loaded[split]

    def _read(self, split):
        builder = tfds.builder("wesnoth_units/32", data_dir=self.data_dir)
        ds = builder.as_dataset(split=split, shuffle_files=False)
        examples = list(tfds.as_numpy(ds))  # one by one: sequences are not padded
        columns = {key: [ex[key] for ex in examples] for key in examples[0]}
        for key in ("image", "label", "race", "level", "frame"):
            columns[key] = np.stack(columns[key])
        return builder, columns

    def test_splits_follow_the_crc_rule(self):
        names = self.builder.info.features["label"].names
        self.assertEqual(names, wesnoth_fixtures.CLASSES)
        for split in ("train", "test"):
            _, ex = self._load(split)
            got = {(names[label], frame.decode()) for label, frame in zip(ex["label"], ex["frame"])}
            expected = set()
            for unit_id in wesnoth_fixtures.CLASSES:
                paths = wesnoth_fixtures.frame_paths(unit_id)
                ranked = sorted(paths, key=lambda p: (zlib.crc32(p.encode()), p))
                num_test = math.ceil(0.3 * len(paths))
                chosen = ranked[:num_test] if split == "test" else ranked[num_test:]
                expected |= {(unit_id, p) for p in chosen}
            self.assertEqual(got, expected, split)
        self.assertEqual(self.builder.info.splits["test"].num_examples, 7 * 5)
        self.assertEqual(self.builder.info.splits["train"].num_examples, 7 * 11)

    def test_features_read_back(self):
        builder, ex = self._load("train")
        features = builder.info.features
        self.assertEqual(str(builder.info.version), "1.0.0")
        self.assertEqual(builder.info.supervised_keys, ("image", "label"))
        self.assertEqual(features["race"].names, ["dunefolk", "elf", "troll", "wose"])
        self.assertEqual(ex["image"].shape[1:], (32, 32, 3))
        self.assertEqual(ex["image"].dtype, np.uint8)
        for i, frame in enumerate(ex["frame"]):
            name = wesnoth_fixtures.CLASSES[ex["label"][i]]
            if name == "Elvish Hero":
                self.assertEqual(features["race"].int2str(ex["race"][i]), "elf")
                self.assertEqual(ex["level"][i], 2)
                self.assertEqual(
                    [p.decode() for p in ex["parents"][i]], ["Elvish Fighter", "Elvish Shaman"]
                )
                self.assertEqual(list(ex["advances_to"][i]), [])
            if name == "Elvish Fighter":
                self.assertEqual(
                    [c.decode() for c in ex["advances_to"][i]], ["Elvish Captain", "Elvish Hero"]
                )
                self.assertEqual(list(ex["parents"][i]), [])
            self.assertIn(frame.decode(), wesnoth_fixtures.frame_paths(name))

    def test_metadata_table(self):
        builder = tfds.builder("wesnoth_units/32", data_dir=self.data_dir)
        metadata = builder.info.metadata
        self.assertEqual(list(metadata["units"]), wesnoth_fixtures.CLASSES)
        self.assertEqual(
            metadata["units"]["Wose"],
            {
                "race": "wose",
                "level": 1,
                "parents": [],
                "advances_to": ["Ancient Wose"],
                "num_frames": 16,
                "image": "units/woses/wose.png",
            },
        )
        self.assertEqual(metadata["units"]["Dune Rider"]["advances_to"], ["Dune Raider"])
        self.assertEqual(metadata["dropped"]["Elvish Shaman"], 3)
        self.assertEqual(metadata["dropped"]["Walking Corpse"], "no image")
        self.assertEqual(metadata["min_frames"], 15)
        self.assertEqual(metadata["background"], [128, 128, 128])

    def test_relations(self):
        ids = {name: i for i, name in enumerate(wesnoth_fixtures.CLASSES)}
        links = wesnoth_units.relations(tfds.builder("wesnoth_units/32", data_dir=self.data_dir))
        self.assertEqual(sorted(links), list(range(len(wesnoth_fixtures.CLASSES))))
        fighter = links[ids["Elvish Fighter"]]
        self.assertEqual(
            fighter,
            {
                "name": "Elvish Fighter",
                "race": "elf",
                "level": 1,
                "parents": [],
                "children": [ids["Elvish Captain"], ids["Elvish Hero"]],
            },
        )
        # Shaman is a parent of Hero, but not a class.
        self.assertEqual(links[ids["Elvish Hero"]]["parents"], [ids["Elvish Fighter"]])
        self.assertEqual(links[ids["Ancient Wose"]]["parents"], [ids["Wose"]])
        self.assertEqual(links[ids["Dune Rider"]]["children"], [])  # Dune Raider was dropped
        related = wesnoth_units.related_classes(
            self.builder,
            new_class_ids=[ids["Elvish Fighter"], ids["Ancient Wose"], ids["Great Troll"]],
            old_class_ids=[ids["Elvish Hero"], ids["Elvish Captain"], ids["Dune Rider"]]
            + [ids["Wose"]],
        )
        self.assertEqual(
            related,
            {
                ids["Elvish Fighter"]: [ids["Elvish Captain"], ids["Elvish Hero"]],
                ids["Ancient Wose"]: [ids["Wose"]],
                ids["Great Troll"]: [],
            },
        )

    def _stored(self, frame):
        _, ex = self._load("train+test")
        (index,) = np.flatnonzero(ex["frame"] == frame.encode())
        return ex["image"][index].astype(np.float64)

    def test_compositing_of_transparent_half_and_opaque_pixels(self):
        image = self._stored(wesnoth_fixtures.BANDS)
        # Output column j covers input columns 2.25 j .. 2.25 (j + 1) +- 2.25: columns 4,
        # 16 and 27 see one band only.
        half = 128 / 255 * np.array(wesnoth_fixtures.RED) + (1 - 128 / 255) * BG
        self.assertAllClose(image[10, 4], BG, atol=0.5)  # its magenta does not leak
        self.assertAllClose(image[10, 16], np.round(half), atol=0.5)
        self.assertAllClose(image[10, 27], wesnoth_fixtures.RED, atol=0.5)
        self.assertAllClose(image, _reference_image(wesnoth_fixtures.bands(), 32), atol=1.0)

    def test_larger_and_smaller_sprites_are_centred(self):
        for path, (height, width) in (
            (wesnoth_fixtures.CROPPED, (100, 90)),
            (wesnoth_fixtures.PADDED, (70, 70)),
        ):
            with open(os.path.join(self.core, "images", path), "rb") as f:
                rgba = tf.io.decode_png(f.read(), channels=4).numpy()
            self.assertEqual(rgba.shape, (height, width, 4))
            expected = _reference_image(rgba.astype(np.float64), 32)
            self.assertAllClose(self._stored(path), expected, atol=1.0, msg=path)
            encoded = tf.io.encode_png(rgba).numpy()
            self.assertAllClose(wesnoth_units.sprite_image(encoded, 32), expected, atol=1.0)
        # The cropped frame loses its corner mark; the padded one keeps it, inside grey.
        self.assertAllClose(self._stored(wesnoth_fixtures.CROPPED)[0, 0], BG, atol=0.5)
        self.assertGreater(self._stored(wesnoth_fixtures.PADDED)[0, 0].mean(), 128)

    def test_make_dataset_reads_a_class_subset(self):
        ids = {name: i for i, name in enumerate(wesnoth_fixtures.CLASSES)}
        config = data.DataConfig(
            dataset="wesnoth_units/32",
            resolution=32,
            data_dir=self.data_dir,
            classes=[ids["Wose"], ids["Elvish Fighter"]],
            flip=False,
        )
        info = data.validate(config, expected_num_classes=2)
        self.assertEqual(info.class_names, ["Wose", "Elvish Fighter"])
        self.assertEqual(info.counts, [11, 11])
        images, labels = [], []
        for x, y in data.make_dataset(config, 2, repeat=False, shuffle=False):
            self.assertEqual(x.shape, [2, 32, 32, 3])
            images.append(x.numpy())
            labels.append(y.numpy())
        images, labels = np.concatenate(images), np.concatenate(labels)
        self.assertEqual(np.bincount(labels).tolist(), [11, 11])
        # Same pixels as stored ([-1, 1]; a 32 -> 32 resize changes nothing).
        _, ex = self._load("train")
        keep = np.isin(ex["label"], [ids["Wose"], ids["Elvish Fighter"]])
        self.assertAllClose(images, ex["image"][keep] / 127.5 - 1.0, atol=1e-5)
        self.assertAllEqual(labels, (ex["label"][keep] == ids["Elvish Fighter"]).astype(int))

    def test_custom_config(self):
        config = wesnoth_units.WesnothUnitsConfig(name="min3_8", resolution=8, min_frames=3)
        builder = wesnoth_units.prepare(os.path.join(self.data_dir, "custom"), self.core, config)
        self.assertIn("Elvish Shaman", builder.info.features["label"].names)
        batch = builder.as_dataset(split="test", batch_size=-1)
        self.assertEqual(batch["image"].shape[1:], (8, 8, 3))
        self.assertNotIn("Elvish Shaman", builder.info.metadata["dropped"])


class ErrorTest(tf.test.TestCase):
    def test_missing_manual_dir_names_the_folder_and_the_fix(self):
        data_dir = self.create_tempdir().full_path
        for bad in ("/no/such/wesnoth", data_dir, None):
            with self.assertRaisesRegex(
                wesnoth_units.WesnothDataError,
                r"not found in manual_dir .*data/core folder of Battle for Wesnoth 1\.16, "
                r"holding units/ .* and images/units/ .*apt-get download wesnoth-1\.16-data",
            ):
                wesnoth_units.prepare(os.path.join(data_dir, "tfds"), bad)

    def test_plain_tfds_build_raises_the_same_error(self):
        data_dir = self.create_tempdir().full_path
        builder = tfds.builder("wesnoth_units/64", data_dir=data_dir)
        not_core = self.create_tempdir().full_path
        with open(os.path.join(not_core, "README"), "w") as f:
            f.write("not the game files")  # TFDS itself rejects empty manual dirs
        for manual_dir in ("/no/such/wesnoth", not_core):
            download_config = tfds.download.DownloadConfig(
                manual_dir=manual_dir, try_download_gcs=False
            )
            with self.assertRaisesRegex(wesnoth_units.WesnothDataError, "images/units/"):
                builder.download_and_prepare(download_config=download_config)

    def test_not_prepared_says_how_to_prepare(self):
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(
            data.DataError,
            rf"'wesnoth_units/32' is not prepared in {empty}, .*"
            rf"wesnoth_units.prepare\('{empty}', <manual_dir>, '32'\).*data/core",
        ):
            data.validate(data.DataConfig("wesnoth_units/32", 32, data_dir=empty))
        with self.assertRaisesRegex(wesnoth_units.WesnothDataError, "not prepared"):
            wesnoth_units.relations(tfds.builder("wesnoth_units/32", data_dir=empty))


if __name__ == "__main__":
    tf.test.main()
