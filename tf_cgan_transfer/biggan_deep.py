"""The BigGAN-deep generator (Brock et al. 2019, appendix B) in Keras.

BigGAN-deep differs from BigGAN (`biggan.py`) in four ways (docs/tfhub_layout.md §5.2):
z is not split, and the condition [z ; class embedding] goes to `G_linear` and to every
BN; each block is a bottleneck (1x1 down to a quarter of the channels, two 3x3, 1x1 up)
with four conditional BNs; the shortcut keeps the first Cout channels instead of a 1x1
conv; and only every other block upsamples. Layer names follow the TF-Hub
`biggan-deep-*/1` keys (`GenZ/G_linear`, `BatchNorm_2`, `conv3`, `conv_to_rgb`) so that
`hub_import` is a table. BigGAN-deep's discriminator is in `discriminator_deep.py`.

For new classes (kp_bn, bn_only) the class embedding itself becomes a
`conditional_bn.KnowledgePropagationEmbedding`, because G_linear reads it too: with
one-hot mixtures and zero residuals it is the old class's embedding, so the one-hot
invariant holds as for BigGAN.
"""

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import layers

# Channel multipliers from the input of block 0 to the output of the last block
# (compare_gan's BigGAN-deep tables; 128/256/512 are the hub's). Odd blocks upsample.
DEEP_G_CHANNELS = {
    32: (4,) * 8,
    64: (16, 16, 16, 16, 8, 8, 4, 4, 2),
    128: (16, 16, 16, 16, 8, 8, 4, 4, 2, 2, 1),
    256: (16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 2, 2, 1),
    512: (16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 2, 2, 1, 1, 1),
}
# Self-attention sits after the first block that reaches 64x64 (none at 32).
DEEP_ATTENTION = {32: 0, 64: 64, 128: 64, 256: 64, 512: 64}
DEEP_DIM_Z = {resolution: 128 for resolution in DEEP_G_CHANNELS}
# The bottleneck's width is the wider side's divided by this (compare_gan, the hub).
BOTTLENECK_DIVISOR = 4


def bottleneck_channels(in_channels, out_channels):
    return max(in_channels, out_channels) // BOTTLENECK_DIVISOR


def upsamples(index):
    """Whether deep block `index` doubles the resolution (odd blocks do)."""
    return index % 2 == 1


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class DeepGBlock(tf.keras.layers.Layer):
    """BigGAN-deep generator block: `[B, H, W, Cin] -> [B, sH, sW, Cout]`, s = 2 when
    `upsample` else 1, Cout <= Cin.

    With m = Cin / 4 and every BN conditioned on ([z ; class code] or its kp_bn form):
      a = conv0_1x1(relu(BatchNorm(h)))                    Cin -> m
      a = conv1_3x3(up(relu(BatchNorm_1(a))))              m -> m
      a = conv2_3x3(relu(BatchNorm_2(a)))                  m -> m
      a = conv3_1x1(relu(BatchNorm_3(a)))                  m -> Cout
      out = a + up(h[..., :Cout])

    Args:
      out_channels: Cout.
      upsample: double the resolution.
      conditional_bn: the four BNs' config (`conditional_bn.make`).
      sn_epsilon, sn_norm_style: the convolutions' spectral norm.
    """

    BN_NAMES = ("BatchNorm", "BatchNorm_1", "BatchNorm_2", "BatchNorm_3")

    def __init__(
        self,
        out_channels,
        upsample=False,
        conditional_bn=None,
        sn_epsilon=1e-4,
        sn_norm_style="rsqrt",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.upsample = upsample
        self.conditional_bn = dict(conditional_bn or {"type": "biggan"})
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        if in_channels < self.out_channels:
            raise ValueError(
                f"{self.name}: a BigGAN-deep generator block drops channels in its "
                f"shortcut and cannot widen {in_channels} to {self.out_channels}."
            )
        m = bottleneck_channels(in_channels, self.out_channels)
        for name in self.BN_NAMES:
            setattr(self, name, conditional_bn.make(self.conditional_bn, name))
        conv = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv0 = layers.SNConv2D(m, 1, name="conv0", **conv)
        self.conv1 = layers.SNConv2D(m, 3, name="conv1", **conv)
        self.conv2 = layers.SNConv2D(m, 3, name="conv2", **conv)
        self.conv3 = layers.SNConv2D(self.out_channels, 1, name="conv3", **conv)
        super().build(input_shape)

    def batch_norms(self):
        """The block's four conditional BNs, in order."""
        return [getattr(self, name) for name in self.BN_NAMES]

    def convs(self):
        """The block's convolutions, in order."""
        return [self.conv0, self.conv1, self.conv2, self.conv3]

    def _up(self, x):
        return biggan._upsample(x) if self.upsample else x  # pylint: disable=protected-access

    def call(self, h, z_chunk=None, class_code=None, training=False, accumulate=False):
        cond = dict(
            z_chunk=z_chunk, class_code=class_code, training=training, accumulate=accumulate
        )
        bn0, bn1, bn2, bn3 = self.batch_norms()
        a = self.conv0(tf.nn.relu(bn0(h, **cond)), training=training)
        a = self.conv1(self._up(tf.nn.relu(bn1(a, **cond))), training=training)
        a = self.conv2(tf.nn.relu(bn2(a, **cond)), training=training)
        a = self.conv3(tf.nn.relu(bn3(a, **cond)), training=training)
        return a + self._up(h[..., : self.out_channels])

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels,
            upsample=self.upsample,
            conditional_bn=dict(self.conditional_bn),
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class DeepGenerator(biggan.Generator):
    """Class-conditional BigGAN-deep generator.

    Call: `(z [B, dim_z], y)` -> images `[B, R, R, 3]` float32 in [-1, 1], as
    `biggan.Generator`. Computes e = embedding(y), c = [z ; e],
    h = reshape(G_linear(c)), the blocks (each BN conditioned on c), attention after
    the first block at 64x64, then relu(BN(h)), `conv_to_rgb` (as wide as the last
    block, 128 in the hub) and tanh of its first three channels.

    kp_bn / bn_only generators (`conditioning`) keep a class embedding for their new
    classes, a `conditional_bn.KnowledgePropagationEmbedding` over the K old classes'
    embeddings, which feeds G_linear; their BNs read z and the one-hot new label
    (`KnowledgePropagationBatchNorm` with `z_dim = dim_z`).

    Args:
      resolution: 32, 64, 128, 256 or 512 (`DEEP_G_CHANNELS`).
      ch: channel width (128 in the hub modules).
      dim_z: latent width (default 128, the hub's).
      shared_dim: class-embedding width (128); BigGAN-deep needs one (> 0).
      hierarchical_z: must be False (BigGAN-deep never splits z); kept so that configs
        read like `biggan.Generator`'s.
      Every other argument as `biggan.Generator`'s.
    """

    family = "biggan_deep"
    BLOCK = DeepGBlock
    CHANNELS = DEEP_G_CHANNELS
    ATTENTION = DEEP_ATTENTION
    DIM_Z = DEEP_DIM_Z
    EMBEDS_NEW_CLASSES = True

    def __init__(
        self,
        resolution=128,
        ch=128,
        num_classes=1000,
        dim_z=None,
        shared_dim=128,
        hierarchical_z=False,
        name="Generator",
        **kwargs,
    ):
        if hierarchical_z:
            raise ValueError("BigGAN-deep does not split z: hierarchical_z must be False.")
        if not shared_dim:
            raise ValueError(
                "BigGAN-deep feeds a class embedding to G_linear: shared_dim must be > 0."
            )
        super().__init__(
            resolution=resolution,
            ch=ch,
            num_classes=num_classes,
            dim_z=dim_z,
            shared_dim=shared_dim,
            hierarchical_z=False,
            name=name,
            **kwargs,
        )

    @classmethod
    def block_resolutions(cls, resolution):
        sizes, size = [], 4
        for index in range(len(cls.CHANNELS[resolution]) - 1):
            size *= 2 if upsamples(index) else 1
            sizes.append(size)
        return sizes

    def make_embedding(self):
        if self.conditioning in ("biggan", "minegan"):
            return super().make_embedding()
        return conditional_bn.KnowledgePropagationEmbedding(
            self.num_source_classes or 0,
            self.num_classes,
            self.shared_dim,
            use_mixture=self.conditioning == "kp_bn",
            residual_init=self.residual_init,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            mixture_init=self.mixture_init,
            mixture_spectral_norm=self.mixture_spectral_norm,
            name="linear",
            dtype=layers.FLOAT32,
        )

    def block_options(self, index):
        return dict(upsample=upsamples(index))

    def make_head(self, channels):
        self.BatchNorm = layers.StandingBatchNorm(
            epsilon=self.final_bn_epsilon, scale=True, center=True, name="BatchNorm"
        )
        sn = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv_to_rgb = layers.SNConv2D(channels, 3, name="conv_to_rgb", **sn)

    def head_layers(self):
        return self.BatchNorm, self.conv_to_rgb

    def bn_z_width(self):
        return self.dim_z  # every BN reads the whole z

    @layers.without_autograph  # as biggan.Generator.call: it branches on Python only
    def call(self, inputs, training=False, accumulate_stats=False):
        z, y = inputs
        y = biggan.to_one_hot(y, self.num_classes)
        z = tf.cast(z, tf.float32)
        if self.miner is not None:
            z, y = self.miner(z, y)  # z', and y becomes weights over the K old classes
        embedding = self.linear(y, training=training)
        h = self.G_linear(tf.concat([z, embedding], axis=-1), training=training)
        # Pretrained BNs read the embedding (beside z); transferred ones the new label.
        code = embedding if self.conditioning in ("biggan", "minegan") else y
        return self.render(h, [z] * self.num_blocks, code, training, accumulate_stats)


biggan.GENERATOR_FAMILIES[DeepGenerator.family] = DeepGenerator
