"""BigGAN's projection discriminator (compare_gan's BigGAN D: 87,982,370 parameters at 128).

Call: images `[B, R, R, 3]` and labels -> logits `[B]`; see `Discriminator`.
"""

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import layers

# Discriminator output-channel multipliers per block and whether the block halves the
# resolution (all but the last, except at 32 where BigGAN keeps 8x8 for two blocks).
D_CHANNELS = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((2, 4, 8, 16, 16), (True,) * 4 + (False,)),
    128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
    512: ((1, 1, 2, 4, 8, 8, 16, 16), (True,) * 7 + (False,)),
}


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class DBlock(tf.keras.layers.Layer):
    """Discriminator residual block: `[B, H, W, Cin] -> [B, H/2 or H, W/2 or W, Cout]`.

    a = conv2(relu(conv1(relu(h)))) (the first block skips the leading ReLU), then 2x2
    average pooling when downsampling; the shortcut is a 1x1 conv (only when Cin != Cout
    or downsampling), pooled after the conv except in the first block (BigGAN's order).
    `sn_epsilon`/`sn_norm_style`: the convolutions' spectral norm.
    """

    def __init__(
        self,
        out_channels,
        downsample=True,
        preactivation=True,
        sn_epsilon=1e-4,
        sn_norm_style="rsqrt",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.downsample = downsample
        self.preactivation = preactivation
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        conv = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv1 = layers.SNConv2D(self.out_channels, 3, name="conv1", **conv)
        self.conv2 = layers.SNConv2D(self.out_channels, 3, name="conv2", **conv)
        self.learnable_sc = in_channels != self.out_channels or self.downsample
        self.conv_sc = (
            layers.SNConv2D(self.out_channels, 1, name="conv_sc", **conv)
            if self.learnable_sc
            else None
        )
        super().build(input_shape)

    def _pool(self, x):
        return tf.nn.avg_pool2d(x, 2, 2, "VALID") if self.downsample else x

    def call(self, x, training=False):
        h = tf.nn.relu(x) if self.preactivation else x
        h = self.conv1(h, training=training)
        h = self._pool(self.conv2(tf.nn.relu(h), training=training))
        s = x
        if self.preactivation:
            if self.learnable_sc:
                s = self.conv_sc(s, training=training)
            s = self._pool(s)
        else:
            s = self._pool(s)
            if self.learnable_sc:
                s = self.conv_sc(s, training=training)
        return h + s

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels,
            downsample=self.downsample,
            preactivation=self.preactivation,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class Discriminator(tf.keras.Model):
    """BigGAN projection discriminator.

    Call: `(x [B, R, R, 3] in [-1, 1], y)` -> logits `[B]` float32, with `y` int labels
    `[B]` or one-hot `[B, K]`: logit = linear(phi(x)) + <embedding(y), phi(x)>, where
    phi(x) is the ReLU'd, spatially summed output of the last block.

    Args:
      resolution: input size, one of 32, 64, 128, 256, 512.
      ch: channel width (96 for BigGAN-128).
      num_classes: K rows of the projection embedding.
      attention_resolution: None = the table default (same place as G's), 0 = none.
      sn_epsilon, sn_norm_style: spectral norm everywhere (`layers.spectral_normalize`).
      embedding_u_side: "output" keeps the projection embedding's SN vector over the
        features (`[1, C]`, our default), "input" over the classes (`[1, K]`, as
        BigGAN-PyTorch's SN embedding does).
      channel_multipliers: output-channel multipliers per block; None = `D_CHANNELS`.
        Imports set it where another code's table differs (BigGAN-PyTorch at 64 px:
        (1, 2, 4, 8, 16)); the downsampling pattern is always the table's.
    """

    def __init__(
        self,
        resolution=128,
        ch=96,
        num_classes=1000,
        attention_resolution=None,
        sn_epsilon=1e-4,
        sn_norm_style="rsqrt",
        embedding_u_side="output",
        channel_multipliers=None,
        name="Discriminator",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if resolution not in self.CHANNELS:
            raise ValueError(
                f"Unsupported resolution {resolution}; the {self.family} discriminator is "
                f"defined for {tuple(sorted(self.CHANNELS))}."
            )
        multipliers, downsample = self.CHANNELS[resolution]
        if channel_multipliers is not None:
            channel_multipliers = tuple(int(m) for m in channel_multipliers)
            if len(channel_multipliers) != len(multipliers):
                raise ValueError(
                    f"channel_multipliers={channel_multipliers} needs {len(multipliers)} "
                    f"entries (one per block) at resolution {resolution}."
                )
            multipliers = channel_multipliers
        if attention_resolution is None:
            attention_resolution = self.ATTENTION[resolution]
        block_resolutions, size = [], resolution
        for down in downsample:
            size = size // 2 if down else size
            block_resolutions.append(size)
        if attention_resolution and attention_resolution not in block_resolutions:
            raise ValueError(
                f"attention_resolution={attention_resolution} is not produced by any "
                f"discriminator block at resolution {resolution} ({block_resolutions}); "
                "use 0 for none."
            )
        self.resolution = resolution
        self.ch = ch
        self.num_classes = num_classes
        self.attention_resolution = attention_resolution
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style
        self.embedding_u_side = embedding_u_side
        self.channel_multipliers = channel_multipliers
        self.attention_index = (
            self.attention_block(block_resolutions, attention_resolution)
            if attention_resolution
            else None
        )
        self.make_stem()
        self.blocks = [
            self.make_block(i, ch * m, down)
            for i, (m, down) in enumerate(zip(multipliers, downsample))
        ]
        self.attention = (
            layers.SelfAttention(
                sn_epsilon=sn_epsilon, sn_norm_style=sn_norm_style, name="attention"
            )
            if attention_resolution
            else None
        )
        # The projection head is tiny and feeds the loss: float32 under any policy.
        sn = dict(epsilon=sn_epsilon, norm_style=sn_norm_style, dtype=layers.FLOAT32)
        self.linear = layers.SNDense(1, name="linear", **sn)
        self.embedding = layers.SNDense(
            ch * multipliers[-1], use_bias=False, u_side=embedding_u_side, name="embedding", **sn
        )

    # ---- What a family defines (BigGAN-deep overrides these; `discriminator_deep.py`) ----

    family = "biggan"
    CHANNELS = D_CHANNELS
    ATTENTION = biggan.DEFAULT_ATTENTION

    def attention_block(self, block_resolutions, attention_resolution):
        """The block after which attention runs: the first at its resolution."""
        return block_resolutions.index(attention_resolution)

    def make_stem(self):
        """Layers before the first block (none: BigGAN's first block reads the image)."""

    def stem(self, x, training=False):
        del training
        return x

    def make_block(self, index, out_channels, downsample):
        return DBlock(
            out_channels,
            downsample=downsample,
            preactivation=index > 0,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            name=biggan.block_name("DBlock", index),
        )

    def features(self, x, training=False):
        """phi(x): `[B, C]` ReLU'd, spatially summed features of the last block."""
        h = self.stem(tf.cast(x, self.compute_dtype), training=training)
        for i, block in enumerate(self.blocks):
            h = block(h, training=training)
            if i == self.attention_index:
                h = self.attention(h, training=training)
        return tf.reduce_sum(tf.cast(tf.nn.relu(h), tf.float32), axis=[1, 2])

    @layers.without_autograph
    def call(self, inputs, training=False):
        x, y = inputs
        phi = self.features(x, training=training)
        y = biggan.to_one_hot(y, self.num_classes)
        projection = tf.reduce_sum(self.embedding(y, training=training) * phi, axis=1)
        logits = self.linear(phi, training=training)[:, 0] + projection
        return tf.cast(logits, tf.float32)  # losses in float32 under mixed precision

    def build_weights(self):
        """Creates every variable by one eager call on a batch of one; returns self."""
        if not self.built:
            r = self.resolution
            with tf.init_scope():
                self((tf.zeros([1, r, r, 3]), tf.zeros([1], tf.int32)))
        return self

    def get_config(self):
        return dict(
            resolution=self.resolution,
            ch=self.ch,
            num_classes=self.num_classes,
            attention_resolution=self.attention_resolution,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            embedding_u_side=self.embedding_u_side,
            channel_multipliers=self.channel_multipliers,
            family=self.family,
            name=self.name,
        )

    @classmethod
    def from_config(cls, config):
        """The discriminator of `config`'s family ("biggan" when it names none)."""
        return biggan.from_family_config(config, DISCRIMINATOR_FAMILIES, "discriminator")


# Family -> discriminator class; `discriminator_deep` adds its own when imported.
DISCRIMINATOR_FAMILIES = {"biggan": Discriminator}
