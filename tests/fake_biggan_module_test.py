"""Tests of the fake BigGAN TF-Hub module fixture (tests/fake_biggan_module.py).

The parity tests compare two independent implementations of
docs/tfhub_layout.md sections 1, 3 and 4: the raw-TF graph inside a genuine
TF1 Hub module (loaded with `hub.load`, as a user loads `deepmind/biggan-128/2`)
and the float64 NumPy reference.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from tests import fake_biggan_module as fake

BATCH = 2
NUM_CLASSES = 3
Z_CHUNK = 2


def sample_inputs(resolution, seed=1):
    """Returns z [BATCH, dim_z] and one-hot y [BATCH, NUM_CLASSES], float32."""
    n_chunks = {128: 6, 256: 7, 512: 8}[resolution]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((BATCH, n_chunks * Z_CHUNK)).astype(np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[[0, 2]]
    return z, y


class _HubModuleChecks:
    """Builds, exports and loads one fake module per resolution (once per class)."""

    RESOLUTION = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp_dir = tempfile.mkdtemp()
        cls.module_dir = os.path.join(cls.tmp_dir, "biggan-%d" % cls.RESOLUTION)
        cls.tensors = fake.make_biggan_tensors(
            resolution=cls.RESOLUTION, num_classes=NUM_CLASSES, z_chunk=Z_CHUNK
        )
        fake.build_tf1_hub_module(cls.module_dir, cls.tensors)
        cls.module = hub.load(cls.module_dir)
        cls.z, cls.y = sample_inputs(cls.RESOLUTION)
        cls.outputs = cls.module.signatures["default"](
            z=tf.constant(cls.z), y=tf.constant(cls.y), truncation=tf.constant(1.0)
        )
        cls.expected = fake.reference_forward(cls.tensors, cls.z, cls.y)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp_dir, ignore_errors=True)
        super().tearDownClass()

    def test_signature_output_equals_numpy_reference(self):
        self.assertEqual(list(self.outputs), ["default"])
        image = self.outputs["default"].numpy()
        self.assertEqual(image.shape, (BATCH, self.RESOLUTION, self.RESOLUTION, 3))
        self.assertEqual(image.dtype, np.float32)
        self.assertAllClose(image, self.expected, atol=1e-5, rtol=1e-5)

    def test_checkpoint_keys_equal_tensor_keys(self):
        reader = tf.train.load_checkpoint(os.path.join(self.module_dir, "variables", "variables"))
        shapes = reader.get_variable_to_shape_map()
        self.assertCountEqual(shapes, self.tensors)
        for key, value in self.tensors.items():
            self.assertEqual(shapes[key], list(value.shape), key)
        self.assertEqual(reader.get_variable_to_dtype_map()["global_step"], tf.int64)
        # hub.load sees the same names, with only the ":0" of a tensor name added.
        self.assertCountEqual([v.name for v in self.module.variables], [k + ":0" for k in shapes])

    def test_module_files_and_signature_inputs(self):
        self.assertTrue(os.path.exists(os.path.join(self.module_dir, "tfhub_module.pb")))
        self.assertTrue(os.path.exists(os.path.join(self.module_dir, "saved_model.pb")))
        self.assertFalse(callable(self.module))  # TF1 Hub format: signatures only
        _, inputs = self.module.signatures["default"].structured_input_signature
        self.assertEqual(inputs["z"].shape.as_list(), [None, self.z.shape[1]])
        self.assertEqual(inputs["y"].shape.as_list(), [None, NUM_CLASSES])
        self.assertEqual(inputs["truncation"].shape.as_list(), [])

    def test_output_is_not_saturated(self):
        image = self.expected
        self.assertBetween(image.std(), 0.15, 0.85)
        self.assertLess(np.mean(np.abs(image) > 0.99), 0.2)
        self.assertGreater(image.std(axis=(1, 2)).mean(), 0.05)  # spatial structure
        self.assertGreater(np.abs(image[0] - image[1]).mean(), 0.05)  # depends on z, y


class HubModule128Test(_HubModuleChecks, tf.test.TestCase):
    RESOLUTION = 128


class HubModule256Test(_HubModuleChecks, tf.test.TestCase):
    RESOLUTION = 256


class TensorsTest(tf.test.TestCase):
    def test_biggan_128_inventory_matches_layout(self):
        tensors = fake.make_biggan_tensors(128, extra_keys=False)
        self.assertLen(tensors, 280)  # docs/tfhub_layout.md §6
        core = [
            k
            for k in tensors
            if k.endswith(fake.EMA_SUFFIX) or k.endswith("/u0") or "/accumulat" in k
        ]
        self.assertLen(core, 136)  # Appendix A
        minimal = fake.make_biggan_tensors(128, raw_twins=False, n_u=1, extra_keys=False)
        self.assertCountEqual(minimal, core)
        self.assertTrue(all(v.dtype == np.float32 for v in tensors.values()))

    def test_shapes_follow_key_grammar(self):
        t = fake.make_biggan_tensors(128, ch=4, num_classes=3, emb_dim=8, z_chunk=2)

        def ema(key):
            return t[key + fake.EMA_SUFFIX].shape

        self.assertEqual(ema("linear/w"), (3, 8))
        self.assertEqual(ema("Generator/G_Z/G_linear/w"), (2, 4 * 4 * 64))
        self.assertEqual(t["Generator/G_Z/G_linear/u2"].shape, (1, 1024))
        self.assertEqual(ema("Generator/GBlock_1/HyperBN_1/gamma/w"), (10, 32))
        self.assertEqual(ema("Generator/GBlock_2/conv0/w"), (3, 3, 32, 16))
        self.assertEqual(ema("Generator/GBlock_4/conv_sc/w"), (1, 1, 8, 4))
        self.assertEqual(ema("Generator/attention/theta/w"), (1, 1, 8, 1))
        self.assertEqual(ema("Generator/attention/g/w"), (1, 1, 8, 4))
        self.assertEqual(ema("Generator/attention/o_conv/w"), (1, 1, 4, 8))
        self.assertEqual(ema("Generator/ScaledCrossReplicaBN/gamma"), (1, 1, 1, 4))
        self.assertEqual(ema("Generator/conv_2d/w"), (3, 3, 4, 3))
        stats = "Generator/GBlock_3/CrossReplicaBN_1/"
        self.assertEqual(t[stats + "accumulated_var"].shape, (8,))
        self.assertEqual(t[stats + "accumulation_counter"].shape, ())
        self.assertEqual(t[stats + "accumulation_counter"], fake.COUNTER_VALUE)
        self.assertEqual(t["global_step"].dtype, np.int64)
        self.assertNotIn("Generator/GBlock_5/conv0/w" + fake.EMA_SUFFIX, t)
        flat = fake.make_biggan_tensors(128, final_bn_4d=False)
        self.assertEqual(flat["Generator/ScaledCrossReplicaBN/beta"].shape, (4,))

    def test_block_and_attention_layout_per_resolution(self):
        for resolution, n_blocks, attention_width in ((256, 6, 8), (512, 7, 16)):
            with self.subTest(resolution=resolution):
                t = fake.make_biggan_tensors(resolution)
                blocks = {k.split("/")[1] for k in t if k.startswith("Generator/GBlock")}
                self.assertCountEqual(blocks, [fake.block_name(i) for i in range(n_blocks)])
                self.assertEqual(
                    t["Generator/attention/phi/w" + fake.EMA_SUFFIX].shape,
                    (1, 1, attention_width, attention_width // 8),
                )
        self.assertNotEqual(
            fake.make_biggan_tensors(128, seed=1)["linear/w"].tolist(),
            fake.make_biggan_tensors(128, seed=2)["linear/w"].tolist(),
        )

    def test_raw_twins_differ_from_ema(self):
        t = fake.make_biggan_tensors(128)
        for key in t:
            if key.endswith(fake.EMA_SUFFIX):
                raw = key[: -len(fake.EMA_SUFFIX)]
                self.assertNotAllClose(t[key], t[raw], msg=raw)

    def test_invalid_arguments(self):
        with self.assertRaisesRegex(ValueError, "resolution must be one of"):
            fake.make_biggan_tensors(64)
        with self.assertRaisesRegex(ValueError, "not divisible by 8"):
            fake.make_biggan_tensors(128, ch=2)


class ReferenceForwardTest(tf.test.TestCase):
    """The reference reads EMA tensors, u0 and raw statistics, and nothing else."""

    def setUp(self):
        super().setUp()
        self.tensors = fake.make_biggan_tensors(128)
        self.z, self.y = sample_inputs(128)
        self.expected = fake.reference_forward(self.tensors, self.z, self.y)

    def test_ignores_raw_twins_other_u_and_extra_keys(self):
        minimal = fake.make_biggan_tensors(128, raw_twins=False, n_u=1, extra_keys=False)
        self.assertAllEqual(fake.reference_forward(minimal, self.z, self.y), self.expected)

    def test_final_bn_shape_variant_gives_same_output(self):
        flat = fake.make_biggan_tensors(128, final_bn_4d=False)
        self.assertAllEqual(fake.reference_forward(flat, self.z, self.y), self.expected)

    def test_typical_importer_bugs_move_the_output(self):
        def perturbed(edit):
            tensors = dict(self.tensors)
            for key in list(tensors):
                edit(tensors, key)
            return np.abs(fake.reference_forward(tensors, self.z, self.y) - self.expected).max()

        def use_raw(tensors, key):
            if key.endswith(fake.EMA_SUFFIX):
                tensors[key] = self.tensors[key[: -len(fake.EMA_SUFFIX)]]

        def divide_by_counter(tensors, key):
            if "/accumulated_" in key:
                tensors[key] = self.tensors[key] / fake.COUNTER_VALUE

        def converged_u0(tensors, key):
            if key.endswith("/u0"):
                w = self.tensors[key[:-3] + "/w" + fake.EMA_SUFFIX]
                _, _, vt = np.linalg.svd(w.reshape(-1, w.shape[-1]))
                tensors[key] = vt[:1].astype(np.float32)

        for name, edit in (
            ("raw twins", use_raw),
            ("statistics / counter", divide_by_counter),
            ("converged sigma", converged_u0),
        ):
            with self.subTest(name):
                self.assertGreater(perturbed(edit), 0.05)

    def test_counter_value_is_not_used(self):
        tensors = dict(self.tensors)
        for key in tensors:
            if key.endswith("accumulation_counter"):
                tensors[key] = np.array(1.0, np.float32)
        self.assertAllEqual(fake.reference_forward(tensors, self.z, self.y), self.expected)


class CheckpointOnlyModuleTest(tf.test.TestCase):
    def test_round_trip_including_malformed_modules(self):
        tensors = fake.make_biggan_tensors(128)
        del tensors["Generator/GBlock/conv0/u0"]  # a module missing a key
        tensors["Generator/conv_2d/b" + fake.EMA_SUFFIX] = np.zeros([5], np.float32)
        module_dir = self.create_tempdir().full_path
        fake.write_checkpoint_only_module(module_dir, tensors)
        self.assertCountEqual(os.listdir(module_dir), ["variables"])
        reader = tf.train.load_checkpoint(os.path.join(module_dir, "variables", "variables"))
        self.assertCountEqual(reader.get_variable_to_shape_map(), tensors)
        for key, value in tensors.items():
            stored = reader.get_tensor(key)
            self.assertEqual(stored.dtype, value.dtype, key)
            self.assertAllEqual(stored, value, msg=key)


if __name__ == "__main__":
    tf.test.main()
