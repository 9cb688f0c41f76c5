"""Tests of tf_cgan_transfer.hub_import on miniature modules (hub_convert_test: the CLI).

The parity tests build a genuine TF1-Hub-format module (hub.create_module_spec) whose
graph computes the BigGAN forward pass in raw TF ops, independently of our layers, and
compare our imported Generator with the module's own `default` signature.
"""

import hashlib
import os
import sys
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tests import fake_biggan_deep_module as fake_deep
from tests import fake_biggan_module as fake
from tf_cgan_transfer import biggan
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import hub_import


def _inputs(generator_or_dim_z, num_classes, batch=2, seed=0):
    dim_z = getattr(generator_or_dim_z, "dim_z", generator_or_dim_z)
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=[batch, dim_z]), -2, 2).astype(np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)]
    return z, y


class HubParityTest(tf.test.TestCase):
    """docs/design.md §4, invariant 1: our import equals the module's own output."""

    fixture = fake

    def _check_parity(self, resolution, **sizes):
        if self.fixture is fake:
            tensors = fake.make_biggan_tensors(resolution=resolution, seed=resolution, **sizes)
        else:
            tensors = fake_deep.make_deep_tensors(resolution=resolution, seed=resolution, **sizes)
        module_dir = self.create_tempdir().full_path
        if self.fixture is fake:
            self.fixture.build_tf1_hub_module(module_dir, tensors)
            generator, report = hub_import.load_generator(module_dir)
            z, y = _inputs(generator, 3, seed=resolution)
            module = hub.load(module_dir)
            expected = module.signatures["default"](
                z=tf.constant(z), y=tf.constant(y), truncation=tf.constant(1.0)
            )["default"]
        else:
            # The module's own output, from the session that exports it: the same graph
            # and values as a hub.load of the export (the export path is the BigGAN
            # fixture's, which fake_biggan_module_test loads with hub.load), ~10 s less.
            z, y = _inputs(8, 3, seed=resolution)
            expected = self.fixture.build_tf1_hub_module(module_dir, tensors, inputs=(z, y))
            generator, report = hub_import.load_generator(module_dir)
        actual = generator((z, y))
        self.assertEqual(actual.shape, [2, resolution, resolution, 3])
        self.assertAllClose(actual, expected, atol=1e-5, rtol=0)
        print(f"hub parity {self.fixture.__name__} {resolution}: max |diff| "
              f"{float(tf.reduce_max(tf.abs(actual - expected))):.2g}")
        self.assertGreater(float(tf.math.reduce_std(expected)), 0.1)  # not a flat image
        if self.fixture is fake:  # class ids give the same images as one-hot rows
            self.assertAllClose(generator((z, np.argmax(y, 1))), expected, atol=1e-5, rtol=0)
        return generator, report, tensors

    def test_biggan_128_layout(self):
        generator, report, tensors = self._check_parity(128)
        self.assertEqual(
            report.config,
            dict(
                resolution=128,
                ch=4,
                num_classes=3,
                dim_z=12,
                shared_dim=8,
                hierarchical_z=True,
                attention_resolution=64,
            ),
        )
        self.assertEqual(generator.attention_index, 3)
        # Raw twins, u1/u2 and unknown keys are read from the module but ignored.
        self.assertIn("Generator/GBlock/conv0/w", report.ignored_keys)
        self.assertIn("Generator/GBlock/conv0/u1", report.ignored_keys)
        self.assertIn("global_step", report.ignored_keys)
        self.assertIn("Generator/GBlock/conv0/w/ema_b999900", report.loaded_keys)
        self.assertEqual(sorted(report.loaded_keys + report.ignored_keys), sorted(tensors))
        # Standing statistics are used as stored, not divided by the counter.
        self.assertAllClose(
            generator.blocks[0].HyperBN.bn.accumulated_var,
            tensors["Generator/GBlock/CrossReplicaBN/accumulated_var"],
        )

    def test_biggan_256_layout(self):
        generator, report, _ = self._check_parity(256)
        self.assertEqual(report.config["resolution"], 256)
        self.assertEqual(report.config["dim_z"], 14)
        self.assertEqual(report.config["attention_resolution"], 128)
        self.assertEqual(generator.attention_index, 4)


class DeepHubParityTest(HubParityTest):
    """The same for biggan-deep modules: a TF1 Hub module of the layout's deep forward
    pass (tests/fake_biggan_deep_module.py), imported as a `DeepGenerator`."""

    fixture = fake_deep

    def _check_deep(self, resolution, ch=4, **variant):
        generator, report, tensors = self._check_parity(resolution, ch=ch, **variant)
        self.assertIsInstance(generator, biggan_deep.DeepGenerator)
        self.assertEqual(
            report.config,
            dict(
                family="biggan_deep",
                resolution=resolution,
                ch=ch,
                num_classes=3,
                dim_z=8,
                shared_dim=8,
                hierarchical_z=False,
                attention_resolution=64,
            ),
        )
        self.assertEqual(generator.attention_index, fake_deep.ATTENTION_AFTER)
        # Parameters: the module's EMA tensors, the built model and the shape rules agree.
        ema = sum(v.size for k, v in tensors.items() if k.endswith(fake_deep.EMA_SUFFIX))
        expected = fake_deep.parameter_count(resolution, ch, num_classes=3, dim_z=8, emb_dim=8)
        self.assertEqual(biggan.count_parameters(generator), expected)
        self.assertEqual(ema, expected)
        self.assertIn("Generator/GBlock/BatchNorm_2/scale/w/ema_0.9999", report.loaded_keys)
        self.assertEqual(sorted(report.loaded_keys + report.ignored_keys), sorted(tensors))
        return report

    def test_biggan_128_layout(self):
        # Raw twins (drawn apart from the EMA values) and unknown keys are in the module
        # and ignored. (u1/u2 are left out: the importer's rule for them is the BigGAN
        # one, and the module builds faster without.)
        report = self._check_deep(128, n_u=1)
        self.assertIn("Generator/GBlock/BatchNorm_2/scale/w", report.ignored_keys)
        self.assertIn("Generator/GBlock_9/conv3/b", report.ignored_keys)
        self.assertIn("global_step", report.ignored_keys)

    def test_biggan_256_layout(self):
        # EMA tensors and u0 only (a module of a third of the keys builds in half the
        # time), and the final BN's scale/offset stored as [C] instead of [1, 1, 1, C].
        report = self._check_deep(256, raw_twins=False, n_u=1, extra_keys=False, final_bn_4d=False)
        self.assertEqual(report.ignored_keys, [])


class ModuleVariantsTest(tf.test.TestCase):
    def _write(self, tensors):
        module_dir = self.create_tempdir().full_path
        fake.write_checkpoint_only_module(module_dir, tensors)
        return module_dir

    def test_ema_only_u0_only_and_vector_final_bn(self):
        tensors = fake.make_biggan_tensors(
            resolution=128, seed=3, raw_twins=False, n_u=1, final_bn_4d=False, extra_keys=False
        )
        generator, report = hub_import.load_generator(self._write(tensors))
        self.assertEqual(report.ignored_keys, [])
        z, y = _inputs(generator, 3, seed=3)
        self.assertAllClose(
            generator((z, y)), fake.reference_forward(tensors, z, y), atol=1e-5, rtol=0
        )

    def test_bare_keys_are_used_when_there_is_no_ema_twin(self):
        tensors = fake.make_biggan_tensors(resolution=128, seed=4, raw_twins=False)
        bare = {k.replace("/ema_b999900", ""): v for k, v in tensors.items()}
        generator, _ = hub_import.load_generator(self._write(bare))
        z, y = _inputs(generator, 3, seed=4)
        self.assertAllClose(
            generator((z, y)), fake.reference_forward(tensors, z, y), atol=1e-5, rtol=0
        )

    def test_infers_biggan_512_layout(self):
        tensors = fake.make_biggan_tensors(resolution=512, z_chunk=3)
        shapes = {k: list(np.shape(v)) for k, v in tensors.items()}
        self.assertEqual(
            hub_import.infer_config(shapes),
            dict(
                resolution=512,
                ch=4,
                num_classes=3,
                dim_z=24,
                shared_dim=8,
                hierarchical_z=True,
                attention_resolution=64,
            ),
        )


class HandleResolutionTest(tf.test.TestCase):
    def test_url_short_and_kaggle_handles_resolve_through_the_hub_cache(self):
        cache = self.create_tempdir().full_path
        url = "https://tfhub.dev/deepmind/biggan-128/2"
        cached = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
        tensors = fake.make_biggan_tensors(resolution=128, seed=5)
        fake.write_checkpoint_only_module(cached, tensors)  # resolution needs only variables/
        z, y = _inputs(12, 3, seed=5)
        expected = fake.reference_forward(tensors, z, y)
        os.environ["TFHUB_CACHE_DIR"] = cache
        try:
            # The Kaggle Models twin names the same cache directory (tfhub_test: the rest).
            for handle in (url, "deepmind/biggan-128/2", "deepmind/biggan/TensorFlow1/128/2"):
                generator, report = hub_import.load_generator(handle)
                self.assertEqual(report.module_path, cached)
                self.assertAllClose(generator((z, y)), expected, atol=1e-5, rtol=0)
        finally:
            del os.environ["TFHUB_CACHE_DIR"]

    def test_uncached_url_offline_says_what_to_download(self):
        cache = self.create_tempdir().full_path
        # No kagglehub, even where it is installed: the real TF-Hub download fails offline.
        with mock.patch.dict(os.environ, {"TFHUB_CACHE_DIR": cache}), mock.patch.dict(
            sys.modules, {"kagglehub": None}
        ):
            with self.assertRaisesRegex(
                hub_import.HubImportError,
                r"Could not fetch TF-Hub module https://tfhub.dev/deepmind/biggan-256/2 .*"
                r"pip install kagglehub.* deepmind/biggan/tensorFlow1/256/2.*"
                r"download https://tfhub.dev/deepmind/biggan-256/2\?tf-hub-format=compressed.*"
                + hashlib.sha1(b"https://tfhub.dev/deepmind/biggan-256/2").hexdigest(),
            ):
                hub_import.load_generator("https://tfhub.dev/deepmind/biggan-256/2")

    def test_resolution_of_known_handles_without_download(self):
        for handle, resolution in (
            ("deepmind/biggan-256/2", 256),
            ("https://tfhub.dev/deepmind/biggan-512/2/", 512),
            ("deepmind/biggan/tensorFlow1/128/2", 128),
            ("https://www.kaggle.com/models/deepmind/biggan/TensorFlow1/256/1", 256),
            ("deepmind/biggan-deep-128/1", 128),
            ("https://tfhub.dev/deepmind/biggan-deep-512/1", 512),
            ("deepmind/biggan-deep/tensorFlow1/256/1", 256),
            ("deepmind/biggan/tensorFlow1/128", None),  # malformed: loading says why
            ("someone/else/tensorFlow1/128/2", None),
        ):
            self.assertEqual(hub_import.resolution_without_download(handle), resolution, handle)


class BadModuleTest(tf.test.TestCase):
    def _write(self, tensors):
        module_dir = self.create_tempdir().full_path
        fake.write_checkpoint_only_module(module_dir, tensors)
        return module_dir

    def test_directory_that_is_not_a_module(self):
        empty = self.create_tempdir().full_path
        with self.assertRaisesRegex(
            hub_import.HubImportError,
            "is not a TF-Hub module directory: .*variables/variables.index is missing",
        ):
            hub_import.load_generator(empty)

    def test_path_that_does_not_exist(self):
        with self.assertRaisesRegex(
            hub_import.HubImportError, "neither an existing directory nor a TF-Hub handle"
        ):
            hub_import.load_generator("/no/such/module")

    def test_module_of_another_model(self):
        other = {
            "InceptionV3/Conv2d_1a_3x3/weights": np.zeros([3, 3, 3, 32], np.float32),
            "global_step": np.array(1, np.int64),
        }
        with self.assertRaisesRegex(
            hub_import.HubImportError, "Not a BigGAN generator module: key 'linear/w' is missing"
        ):
            hub_import.load_generator(self._write(other))

    def test_incomplete_biggan_deep_module(self):
        deep = {
            "linear/w/ema_0.9999": np.zeros([3, 8], np.float32),
            "Generator/GenZ/G_linear/w/ema_0.9999": np.zeros([16, 64], np.float32),
        }
        with self.assertRaisesRegex(
            hub_import.HubImportError, "key 'Generator/conv_to_rgb/w' is missing"
        ):
            hub_import.load_generator(self._write(deep))

    def test_infers_deep_512_layout(self):
        # 512 from shapes alone: its graph is the 256 one with two more blocks.
        tensors = fake_deep.make_deep_tensors(resolution=512, ch=2, raw_twins=False, n_u=1)
        shapes = {k: list(np.shape(v)) for k, v in tensors.items()}
        config = hub_import.infer_config(shapes)
        self.assertEqual((config["resolution"], config["ch"], config["dim_z"]), (512, 2, 8))
        self.assertEqual((config["family"], config["attention_resolution"]), ("biggan_deep", 64))

    def test_missing_key_is_named_with_expected_shape(self):
        tensors = fake.make_biggan_tensors(resolution=128)
        del tensors["Generator/GBlock_2/conv1/u0"]
        with self.assertRaisesRegex(
            hub_import.HubImportError,
            r"(?s)1 problem.*missing key Generator/GBlock_2/conv1/u0: expected shape \[1, 16\]",
        ):
            hub_import.load_generator(self._write(tensors))

    def test_misshaped_key_is_named_with_both_shapes(self):
        tensors = fake.make_biggan_tensors(resolution=128)
        tensors["Generator/GBlock_1/conv0/w/ema_b999900"] = np.zeros([3, 3, 64, 16], np.float32)
        with self.assertRaisesRegex(
            hub_import.HubImportError,
            r"key Generator/GBlock_1/conv0/w/ema_b999900: expected shape \[3, 3, 64, 32\], "
            r"found \[3, 3, 64, 16\]",
        ):
            hub_import.load_generator(self._write(tensors))

    def test_width_mismatch_between_linear_and_output_conv(self):
        tensors = fake.make_biggan_tensors(resolution=128)
        tensors["Generator/conv_2d/w/ema_b999900"] = np.zeros([3, 3, 8, 3], np.float32)
        with self.assertRaisesRegex(
            hub_import.HubImportError, "G_linear/w has 1024 outputs.*ch=8.*needs 2048"
        ):
            hub_import.load_generator(self._write(tensors))


if __name__ == "__main__":
    tf.test.main()
