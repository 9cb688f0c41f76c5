"""Tests of tf_cgan_transfer.discriminator: shapes, the projection head, block layout."""

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import layers


class DiscriminatorTest(tf.test.TestCase):
    def test_shapes_per_resolution(self):
        for resolution in biggan.RESOLUTIONS:
            with self.subTest(resolution=resolution):
                d = discriminator_lib.Discriminator(resolution, ch=8, num_classes=3)
                logits = d((tf.zeros([2, resolution, resolution, 3]), tf.constant([0, 2])))
                self.assertEqual(logits.shape, [2])
                multipliers, down = discriminator_lib.D_CHANNELS[resolution]
                self.assertEqual([b.out_channels for b in d.blocks], [8 * m for m in multipliers])
                self.assertEqual([b.downsample for b in d.blocks], list(down))

    def test_projection(self):
        d = discriminator_lib.Discriminator(32, ch=8, num_classes=4)
        x = tf.random.stateless_uniform([3, 32, 32, 3], [1, 2], -1, 1)
        y = tf.constant([0, 3, 1])
        logits = d((x, y))
        phi = d.features(x)
        embedding = d.embedding.normalized_kernel().numpy()
        w, b = d.linear.normalized_kernel().numpy(), d.linear.bias.numpy()
        expected = (phi.numpy() @ w)[:, 0] + b + np.sum(embedding[y.numpy()] * phi.numpy(), 1)
        self.assertAllClose(logits, expected, rtol=1e-5, atol=1e-4)

    def test_first_block_shortcut_and_last_block_without_shortcut(self):
        d = discriminator_lib.Discriminator(128, ch=8, num_classes=2).build_weights()
        self.assertFalse(d.blocks[0].preactivation)
        self.assertIsNotNone(d.blocks[0].conv_sc)
        self.assertIsNone(d.blocks[-1].conv_sc)  # 16ch -> 16ch, no downsampling
        self.assertEqual(d.attention_index, 0)  # at 64x64, after the first block
        self.assertIsInstance(d.attention, layers.SelfAttention)

    def test_source_conventions_are_configuration(self):
        # BigGAN-PyTorch's 64-px table, clamp-style SN and the embedding's u over classes.
        d = discriminator_lib.Discriminator(
            64,
            ch=8,
            num_classes=3,
            attention_resolution=0,
            sn_epsilon=1e-6,
            sn_norm_style="clamp",
            embedding_u_side="input",
            channel_multipliers=(1, 2, 4, 8, 16),
        ).build_weights()
        self.assertEqual([b.out_channels for b in d.blocks], [8, 16, 32, 64, 128])
        self.assertEqual(d.embedding.u.shape, [1, 3])
        self.assertEqual(d.blocks[2].conv1.norm_style, "clamp")
        self.assertEqual(d.blocks[2].conv1.epsilon, 1e-6)
        clone = discriminator_lib.Discriminator.from_config(d.get_config()).build_weights()
        self.assertEqual(clone.get_config(), d.get_config())
        clone.set_weights(d.get_weights())
        x = tf.random.stateless_uniform([2, 64, 64, 3], [3, 4], -1, 1)
        y = tf.constant([2, 0])
        self.assertAllEqual(clone((x, y)), d((x, y)))
        with self.assertRaisesRegex(ValueError, "needs 5 entries"):
            discriminator_lib.Discriminator(64, channel_multipliers=(1, 2))


if __name__ == "__main__":
    tf.test.main()
