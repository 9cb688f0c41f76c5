"""Tests of tf_cgan_transfer.biggan: architecture, parameter counts, config, checkpoints."""

import tensorflow as tf

from tests.model_fixtures import tiny_generator
from tf_cgan_transfer import biggan
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import layers


class ParameterCountTest(tf.test.TestCase):
    """Full-size counts equal compare_gan's (docs/tfhub_layout.md §1, docs/design.md §4)."""

    def test_biggan_128(self):
        g = biggan.Generator(128).build_weights()
        self.assertEqual(biggan.count_parameters(g), 70_433_988)
        self.assertEqual(g.dim_z, 120)
        d = discriminator_lib.Discriminator(128).build_weights()
        self.assertEqual(biggan.count_parameters(d), 87_982_370)

    def test_biggan_256(self):
        g = biggan.Generator(256).build_weights()
        self.assertEqual(biggan.count_parameters(g), 82_097_604)
        self.assertEqual(g.dim_z, 140)


class GeneratorTest(tf.test.TestCase):
    def test_output_shapes_and_range_per_resolution(self):
        for resolution in biggan.RESOLUTIONS:
            with self.subTest(resolution=resolution):
                g = tiny_generator(resolution, ch=8 if resolution == 32 else 4)
                z = biggan.sample_z(2, g.dim_z, seed=resolution)
                x = g((z, tf.constant([0, 2])))
                self.assertEqual(x.shape, [2, resolution, resolution, 3])
                self.assertEqual(x.dtype, tf.float32)
                self.assertAllInRange(x, -1.0, 1.0)
                self.assertLen(g.blocks, len(biggan.G_CHANNELS[resolution]) - 1)

    def test_hub_block_widths_and_attention_place(self):
        g = tiny_generator(256).build_weights()
        self.assertEqual([b.out_channels for b in g.blocks], [64, 32, 32, 16, 8, 4])
        self.assertEqual(g.attention_index, 4)  # after GBlock_4, at 128x128
        self.assertEqual(g.attention.theta.kernel.shape, [1, 1, 8, 1])
        self.assertEqual(g.G_linear.kernel.shape, [2, 4 * 4 * 64])
        self.assertEqual(g.blocks[0].HyperBN.gamma.kernel.shape, [2 + 8, 64])

    def test_int_labels_equal_one_hot_and_mixtures_are_linear(self):
        g = tiny_generator(32, ch=8, dim_z=8)
        z = biggan.sample_z(2, 8, seed=1)
        one_hot = tf.one_hot([1, 2], 3)
        self.assertAllClose(g((z, tf.constant([1, 2]))), g((z, one_hot)))
        # Class codes are linear in y: a 50/50 mixture's embedding is the mean embedding.
        mix = tf.constant([[0.5, 0.5, 0.0]] * 2)
        self.assertAllClose(
            g.class_code(mix),
            0.5 * (g.class_code(tf.one_hot([0, 0], 3)) + g.class_code(tf.one_hot([1, 1], 3))),
        )

    def test_cifar_variant_without_shared_embedding(self):
        g = biggan.Generator(32, ch=8, num_classes=5, shared_dim=0, hierarchical_z=False)
        x = g((biggan.sample_z(2, g.dim_z), tf.constant([0, 4])))
        self.assertEqual(x.shape, [2, 32, 32, 3])
        self.assertFalse(hasattr(g, "linear"))
        self.assertEqual(g.blocks[0].HyperBN.gamma.kernel.shape, [5, 32])  # per-class table
        self.assertEqual(g.G_linear.kernel.shape, [128, 4 * 4 * 32])  # whole z
        self.assertIsNone(g.attention)

    def test_standing_stats_from_one_batch_reproduce_batch_statistics(self):
        g = tiny_generator(64, dim_z=10)
        z, y = biggan.sample_z(4, 10, seed=3), tf.constant([0, 1, 2, 1])
        g.build_weights()
        for bn in g.standing_batch_norms():
            bn.reset_standing_stats()
        with_batch_stats = g((z, y), accumulate_stats=True)
        self.assertAllClose(g((z, y)), with_batch_stats, atol=1e-5)
        self.assertLen(g.standing_batch_norms(), 2 * 4 + 1)
        for bn in g.standing_batch_norms():
            self.assertAllEqual(bn.accumulation_counter, 1.0)

    def test_accumulate_standing_stats_is_deterministic(self):
        g = tiny_generator(32, ch=8, dim_z=8)
        z = biggan.sample_z(3, 8, seed=4)
        outs = []
        for _ in range(2):
            biggan.accumulate_standing_stats(g, num_batches=3, batch_size=4, truncation=0.5)
            outs.append(g((z, tf.constant([0, 1, 2]))))
        self.assertAllEqual(outs[0], outs[1])
        self.assertAllEqual(g.ScaledCrossReplicaBN.accumulation_counter, 3.0)

    def test_training_advances_spectral_norm_vectors_only_in_training(self):
        g = tiny_generator(32, ch=8, dim_z=8)
        z, y = biggan.sample_z(2, 8), tf.constant([0, 1])
        g((z, y))
        u = g.conv_2d.u.numpy()
        g((z, y), accumulate_stats=True)
        self.assertAllEqual(g.conv_2d.u, u)
        g((z, y), training=True)
        self.assertNotAllClose(g.conv_2d.u, u)

    def test_sample_z_is_truncated_and_seeded(self):
        z = biggan.sample_z(1000, 4, truncation=0.5, seed=7)
        self.assertAllInRange(z, -1.0, 1.0)
        self.assertAllEqual(z, biggan.sample_z(1000, 4, truncation=0.5, seed=7))
        self.assertNotAllClose(z, biggan.sample_z(1000, 4, truncation=0.5, seed=8))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Unsupported resolution 100"):
            biggan.Generator(100)
        with self.assertRaisesRegex(ValueError, "dim_z=100 must split into 6 equal chunks"):
            biggan.Generator(128, dim_z=100)
        with self.assertRaisesRegex(ValueError, "attention_resolution=4 is not produced"):
            biggan.Generator(128, attention_resolution=4)
        with self.assertRaisesRegex(ValueError, "needs a shared class embedding"):
            biggan.Generator(32, shared_dim=0, hierarchical_z=True)


class GeneratorSerializationTest(tf.test.TestCase):
    def test_config_round_trip(self):
        g = tiny_generator(128)
        clone = biggan.Generator.from_config(g.get_config())
        self.assertEqual(clone.get_config(), g.get_config())

    def test_source_conventions_reach_every_layer_and_survive_the_config(self):
        g = tiny_generator(
            32,
            attention_resolution=16,
            bn_epsilon=1e-5,
            final_bn_epsilon=1e-5,
            sn_epsilon=1e-6,
            sn_norm_style="clamp",
        ).build_weights()
        sn = [m for m in g.submodules if isinstance(m, layers._SpectralNormLayer)]
        self.assertGreater(len(sn), 10)
        self.assertEqual({(m.epsilon, m.norm_style) for m in sn}, {(1e-6, "clamp")})
        self.assertEqual({bn.epsilon for bn in g.standing_batch_norms()}, {1e-5})
        clone = biggan.Generator.from_config(g.get_config()).build_weights()
        clone.set_weights(g.get_weights())
        z, y = biggan.sample_z(2, g.dim_z, seed=3), tf.constant([1, 0])
        self.assertAllEqual(clone((z, y)), g((z, y)))


if __name__ == "__main__":
    tf.test.main()
