"""BigGAN-deep's projection discriminator (compare_gan's: 34,590,210 parameters at 128).

TF-Hub ships generators only, so this D is what a deep run trains from scratch, or the
D of a deep source of ours. It differs from BigGAN's (`discriminator.py`) as the
generator does: a 3x3 stem conv, bottleneck blocks of which every other one halves the
resolution, shortcuts that keep their input and append the missing channels from a
1x1 conv (`add_channels`), and attention after the last block at 64x64.
"""

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import biggan_deep
from tf_cgan_transfer import discriminator
from tf_cgan_transfer import layers

# Per resolution: (the stem's multiplier, the blocks' output multipliers, whether each
# block halves the resolution) from compare_gan's BigGAN-deep D tables; even blocks
# downsample.
_DEEP_D_MULTIPLIERS = {
    32: (2,) * 8,
    64: (2, 4, 4, 8, 8, 16, 16, 16, 16),
    128: (1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 16),
    256: (1, 2, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16),
    512: (1, 1, 1, 2, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16),
}
DEEP_D_STEM = {r: m[0] for r, m in _DEEP_D_MULTIPLIERS.items()}
DEEP_D_CHANNELS = {
    r: (m[1:], tuple(i % 2 == 0 for i in range(len(m) - 1)))
    for r, m in _DEEP_D_MULTIPLIERS.items()
}


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class DeepDBlock(tf.keras.layers.Layer):
    """BigGAN-deep discriminator block: `[B, H, W, Cin] -> [B, H/s, W/s, Cout]`, s = 2
    when `downsample` else 1, Cout >= Cin.

    With m = Cout / 4: a = conv0_1x1(relu(h)) (Cin -> m), a = conv1_3x3(relu(a)),
    a = conv2_3x3(relu(a)), a = conv3_1x1(pool(relu(a))) (m -> Cout); the shortcut is
    pool(h), with `add_channels`(pool(h)) (1x1, Cin -> Cout - Cin) appended when
    Cout > Cin. Pooling is 2x2 average pooling when downsampling.
    """

    def __init__(
        self, out_channels, downsample=True, sn_epsilon=1e-4, sn_norm_style="rsqrt", **kwargs
    ):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.downsample = downsample
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if in_channels > self.out_channels:
            raise ValueError(
                f"{self.name}: a BigGAN-deep discriminator block cannot narrow "
                f"{in_channels} channels to {self.out_channels}."
            )
        m = biggan_deep.bottleneck_channels(in_channels, self.out_channels)
        conv = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv0 = layers.SNConv2D(m, 1, name="conv0", **conv)
        self.conv1 = layers.SNConv2D(m, 3, name="conv1", **conv)
        self.conv2 = layers.SNConv2D(m, 3, name="conv2", **conv)
        self.conv3 = layers.SNConv2D(self.out_channels, 1, name="conv3", **conv)
        missing = self.out_channels - in_channels
        self.add_channels = (
            layers.SNConv2D(missing, 1, name="add_channels", **conv) if missing else None
        )
        super().build(input_shape)

    def _pool(self, x):
        return tf.nn.avg_pool2d(x, 2, 2, "VALID") if self.downsample else x

    def call(self, x, training=False):
        a = self.conv0(tf.nn.relu(x), training=training)
        a = self.conv1(tf.nn.relu(a), training=training)
        a = self.conv2(tf.nn.relu(a), training=training)
        a = self.conv3(self._pool(tf.nn.relu(a)), training=training)
        s = self._pool(x)
        if self.add_channels is not None:
            s = tf.concat([s, self.add_channels(s, training=training)], axis=-1)
        return a + s

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels,
            downsample=self.downsample,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class DeepDiscriminator(discriminator.Discriminator):
    """BigGAN-deep projection discriminator.

    Call: `(x [B, R, R, 3] in [-1, 1], y)` -> logits `[B]`, as `Discriminator`:
    phi(x) = sum over space of relu(blocks(conv_in(x))), logit = linear(phi) +
    <embedding(y), phi>. Arguments as `Discriminator`'s (tables: `DEEP_D_CHANNELS`,
    `DEEP_D_STEM`; ch = 128 in the paper).
    """

    family = "biggan_deep"
    CHANNELS = DEEP_D_CHANNELS
    # At 64x64 after the block that keeps that size; the 64 px D never has one.
    ATTENTION = {32: 0, 64: 0, 128: 64, 256: 64, 512: 64}

    def __init__(self, resolution=128, ch=128, name="Discriminator", **kwargs):
        super().__init__(resolution=resolution, ch=ch, name=name, **kwargs)

    def attention_block(self, block_resolutions, attention_resolution):
        # After the second block at that size (the one that keeps it), as compare_gan.
        return len(block_resolutions) - 1 - block_resolutions[::-1].index(attention_resolution)

    def make_stem(self):
        sn = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        width = self.ch * DEEP_D_STEM[self.resolution]
        self.conv_in = layers.SNConv2D(width, 3, name="conv_in", **sn)

    def stem(self, x, training=False):
        return self.conv_in(x, training=training)

    def make_block(self, index, out_channels, downsample):
        return DeepDBlock(
            out_channels,
            downsample=downsample,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            name=biggan.block_name("DBlock", index),
        )


discriminator.DISCRIMINATOR_FAMILIES[DeepDiscriminator.family] = DeepDiscriminator
