"""The BigGAN generator (Brock et al. 2019) in Keras, its latent prior and standing stats.

Layer and attribute names mirror the TF-Hub `biggan-*/2` keys (`linear`, `G_linear`,
`GBlock_3`, `HyperBN_1`, `conv_sc`, `attention`, `ScaledCrossReplicaBN`, `conv_2d`) so
that `hub_import` is a table. Architecture tables follow docs/tfhub_layout.md §1 for
128/256/512 and BigGAN-PyTorch's for 32/64. The discriminator is in `discriminator.py`;
saving and loading models in `model_io.py`.
"""

import tensorflow as tf

from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import layers
from tf_cgan_transfer import miner as miner_lib
from tf_cgan_transfer import progress

# Generator channel multipliers, from the input of block 0 to the output of the last
# block; every block doubles the resolution, starting from 4x4.
G_CHANNELS = {
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}
# Resolution at which self-attention sits, in G and D (0: none). The hub places it at
# 64 (biggan-128, -512) and 128 (biggan-256); BigGAN-PyTorch's CIFAR model has none.
DEFAULT_ATTENTION = {32: 0, 64: 32, 128: 64, 256: 128, 512: 64}
# Images per batch when accumulating standing statistics (hub_convert, sample, export).
STANDING_STATS_BATCH_SIZE = 64
# Latent width; split into (blocks + 1) equal chunks when hierarchical.
DEFAULT_DIM_Z = {32: 128, 64: 120, 128: 120, 256: 140, 512: 128}
RESOLUTIONS = tuple(sorted(G_CHANNELS))
# The BN conditionings, and "minegan": BigGAN's own BNs behind a miner (`miner.py`).
CONDITIONINGS = (*conditional_bn.CONDITIONINGS, "minegan")
# Generator families (a config's "family"; missing means "biggan"): this module's
# Generator and BigGAN-deep's (`biggan_deep.DeepGenerator`).
FAMILIES = ("biggan", "biggan_deep")


def check_resolution(resolution):
    if resolution not in G_CHANNELS:
        raise ValueError(
            f"Unsupported resolution {resolution}; BigGAN is defined for {RESOLUTIONS}."
        )


def block_name(prefix, index):
    # The hub's first block has no suffix: GBlock, GBlock_1, GBlock_2, ...
    return prefix if index == 0 else f"{prefix}_{index}"


def _upsample(x):
    """Nearest-neighbour x2: `[B, H, W, C] -> [B, 2H, 2W, C]`."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def to_one_hot(labels, num_classes, dtype=tf.float32):
    """Integer labels `[B]` -> one-hot `[B, K]`; float `[B, K]` (mixtures) pass through."""
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_integer:
        return tf.one_hot(labels, num_classes, dtype=dtype)
    return tf.cast(labels, dtype)


# Stateless draws name their algorithm: the default ("auto_select") may pick another one
# on another device, and a seed should give the same latents everywhere. (XLA's truncated
# normal still differs, so the trainer draws latents outside its compiled functions.)
RNG_ALG = "philox"


def sample_z(batch_size, dim_z, truncation=1.0, seed=0):
    """Truncated latents as the hub examples draw them: N(0,1) cut to [-2, 2], times t.

    `seed` is an int or a `[2]` int tensor (stateless, so results are reproducible).
    """
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    z = tf.random.stateless_truncated_normal([batch_size, dim_z], seed=seed, alg=RNG_ALG)
    return z * truncation


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class GBlock(tf.keras.layers.Layer):
    """Generator residual block: `[B, H, W, Cin] -> [B, 2H, 2W, Cout]`.

    a = conv1(relu(HyperBN_1(conv0(up(relu(HyperBN(h))))))), out = a + conv_sc(up(h)).
    Each BN is conditioned on this block's z chunk and the class code.

    Args:
      out_channels: Cout.
      conditional_bn: `{"type": "biggan" | "kp_bn" | "bn_only", **BN arguments}` for
        both conditional BNs (see `conditional_bn.make`).
      sn_epsilon, sn_norm_style: spectral norm of the convolutions (`layers.spectral_normalize`).
    """

    def __init__(
        self, out_channels, conditional_bn=None, sn_epsilon=1e-4, sn_norm_style="rsqrt", **kwargs
    ):
        super().__init__(**kwargs)
        self.out_channels = out_channels
        self.conditional_bn = dict(conditional_bn or {"type": "biggan"})
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        self.HyperBN = conditional_bn.make(self.conditional_bn, "HyperBN")
        self.HyperBN_1 = conditional_bn.make(self.conditional_bn, "HyperBN_1")
        conv = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv0 = layers.SNConv2D(self.out_channels, 3, name="conv0", **conv)
        self.conv1 = layers.SNConv2D(self.out_channels, 3, name="conv1", **conv)
        self.conv_sc = layers.SNConv2D(self.out_channels, 1, name="conv_sc", **conv)
        super().build(input_shape)

    def batch_norms(self):
        """The block's conditional BNs, in order."""
        return [self.HyperBN, self.HyperBN_1]

    def convs(self):
        """The block's convolutions, in order."""
        return [self.conv0, self.conv1, self.conv_sc]

    def call(self, h, z_chunk=None, class_code=None, training=False, accumulate=False):
        cond = dict(
            z_chunk=z_chunk, class_code=class_code, training=training, accumulate=accumulate
        )
        a = tf.nn.relu(self.HyperBN(h, **cond))
        a = self.conv0(_upsample(a), training=training)
        a = tf.nn.relu(self.HyperBN_1(a, **cond))
        a = self.conv1(a, training=training)
        # A 1x1 conv commutes with nearest upsampling: convolve at the low resolution.
        return a + _upsample(self.conv_sc(h, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(
            out_channels=self.out_channels,
            conditional_bn=dict(self.conditional_bn),
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class Generator(tf.keras.Model):
    """Class-conditional BigGAN generator (`biggan_deep.DeepGenerator`: BigGAN-deep's).

    Call: `(z [B, dim_z], y)` -> images `[B, R, R, 3]` float32 in [-1, 1], where `y` is
    int labels `[B]` or one-hot/mixture weights `[B, num_classes]`. A "minegan" generator
    first maps `(z, y)` through its `miner` to `(z', old-class weights [B, K])`, which the
    pretrained body renders as a BigGAN over the K old classes would.
    `training=True` uses batch statistics (all-reduced across replicas) and advances the
    spectral-norm vectors; `accumulate_stats=True` uses batch statistics and folds them
    into the standing statistics (see `accumulate_standing_stats`).

    Args:
      resolution: output size, one of 32, 64, 128, 256, 512.
      ch: channel width (96 for the hub models); block widths are multiples of it.
      num_classes: number of classes K.
      dim_z: latent width; defaults per resolution (120 / 140 / 128 for the hub).
      shared_dim: width of the shared class embedding (hub: 128). 0 gives BigGAN's
        CIFAR variant: per-BN class tables and no shared embedding.
      hierarchical_z: split z into blocks + 1 chunks (first to `G_linear`, one per
        block's BN conditioning). Requires a shared embedding.
      attention_resolution: where self-attention sits; None = the table default,
        0 = no attention.
      bn_epsilon, final_bn_epsilon, sn_epsilon: the hub uses 1e-4 for all three;
        BigGAN-PyTorch 1e-5, 1e-5 and 1e-6 (docs/pytorch_layout.md).
      sn_norm_style: how spectral norm scales its vectors, "rsqrt" (the hub) or "clamp"
        (BigGAN-PyTorch); see `layers.spectral_normalize`.
      conditioning: "biggan" (pretrained BigGAN BNs), or, for generators transferred to
        new classes (`transfer.py`), "kp_bn" (knowledge-propagating BN: mixtures of
        `num_source_classes` old classes), "bn_only" (new per-class gains/biases) or
        "minegan" (a `miner.Miner` in front of BigGAN's body over the old classes).
        kp_bn/bn_only generators take one-hot labels over their `num_classes` new
        classes directly (no shared embedding) and keep z chunks when hierarchical;
        minegan keeps the source's class conditioning (shared embedding or per-BN tables
        over K classes), fed with the miner's old-class weights.
      num_source_classes: K, the old classes' count ("kp_bn" and "minegan").
      residual_init: initialiser of the per-class residuals R ("zeros", "orthogonal").
      mixture_init, mixture_spectral_norm: kp_bn's mixtures A: kernel initialiser and
        spectral norm (`conditional_bn.KnowledgePropagationBatchNorm`).
      miner_hidden_dim: width of the miner's hidden layers ("minegan" only).
    """

    def __init__(
        self,
        resolution=128,
        ch=96,
        num_classes=1000,
        dim_z=None,
        shared_dim=128,
        hierarchical_z=True,
        attention_resolution=None,
        bn_epsilon=1e-4,
        final_bn_epsilon=1e-4,
        sn_epsilon=1e-4,
        sn_norm_style="rsqrt",
        conditioning="biggan",
        num_source_classes=None,
        residual_init="zeros",
        mixture_init="orthogonal",
        mixture_spectral_norm=True,
        miner_hidden_dim=miner_lib.DEFAULT_HIDDEN_DIM,
        name="Generator",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.check_resolution(resolution)
        multipliers = self.CHANNELS[resolution]
        self.num_blocks = len(multipliers) - 1
        if dim_z is None:
            dim_z = self.DIM_Z[resolution]
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"Unknown conditioning {conditioning!r}; use one of {CONDITIONINGS}.")
        # BigGAN's own BNs (biggan, minegan) see z chunks only beside a shared embedding.
        biggan_bns = conditioning in ("biggan", "minegan")
        if biggan_bns and hierarchical_z and not shared_dim:
            raise ValueError("hierarchical_z=True needs a shared class embedding (shared_dim > 0).")
        if not biggan_bns and not self.EMBEDS_NEW_CLASSES:
            shared_dim = 0  # kp_bn / bn_only: the class code is the one-hot new label
        if conditioning in ("kp_bn", "minegan") and not num_source_classes:
            raise ValueError(
                f"conditioning={conditioning!r} needs num_source_classes (old classes K)."
            )
        if hierarchical_z and dim_z % (self.num_blocks + 1):
            raise ValueError(
                f"dim_z={dim_z} must split into {self.num_blocks + 1} equal chunks "
                f"(blocks + 1) at resolution {resolution}."
            )
        if attention_resolution is None:
            attention_resolution = self.ATTENTION[resolution]
        block_resolutions = self.block_resolutions(resolution)
        if attention_resolution and attention_resolution not in block_resolutions:
            raise ValueError(
                f"attention_resolution={attention_resolution} is not produced by any "
                f"generator block at resolution {resolution} ({block_resolutions}); use 0 for none."
            )
        self.resolution = resolution
        self.ch = ch
        self.num_classes = num_classes
        self.dim_z = dim_z
        self.shared_dim = shared_dim
        self.hierarchical_z = hierarchical_z
        self.attention_resolution = attention_resolution
        self.bn_epsilon = bn_epsilon
        self.final_bn_epsilon = final_bn_epsilon
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style
        self.conditioning = conditioning
        self.num_source_classes = num_source_classes
        self.residual_init = residual_init
        self.mixture_init = mixture_init
        self.mixture_spectral_norm = mixture_spectral_norm
        self.miner_hidden_dim = miner_hidden_dim
        self.attention_index = (
            block_resolutions.index(attention_resolution) if attention_resolution else None
        )

        self.miner = None  # minegan: maps (z, new label) to (z', old-class weights)
        if conditioning == "minegan":
            sizes = (num_classes, num_source_classes, miner_hidden_dim)
            self.miner = miner_lib.Miner(*sizes, name="miner", dtype=layers.FLOAT32)
        if shared_dim:
            self.linear = self.make_embedding()
        sn = dict(epsilon=sn_epsilon, norm_style=sn_norm_style)
        self.G_linear = layers.SNDense(4 * 4 * ch * multipliers[0], name="G_linear", **sn)
        self.blocks = [self.make_block(i, ch * multipliers[i + 1]) for i in range(self.num_blocks)]
        self.attention = (
            layers.SelfAttention(
                sn_epsilon=sn_epsilon, sn_norm_style=sn_norm_style, name="attention"
            )
            if attention_resolution
            else None
        )
        self.make_head(ch * multipliers[-1])

    # ---- What a family defines (BigGAN-deep overrides these; `biggan_deep.py`) ----

    family = "biggan"
    BLOCK = GBlock
    CHANNELS = G_CHANNELS
    ATTENTION = DEFAULT_ATTENTION
    DIM_Z = DEFAULT_DIM_Z
    # Whether kp_bn / bn_only keep a class embedding for the new classes (BigGAN-deep:
    # G_linear reads it) rather than feeding the one-hot label to the BNs only.
    EMBEDS_NEW_CLASSES = False

    @classmethod
    def check_resolution(cls, resolution):
        if resolution not in cls.CHANNELS:
            raise ValueError(
                f"Unsupported resolution {resolution}; {cls.family} is defined for "
                f"{tuple(sorted(cls.CHANNELS))}."
            )

    @classmethod
    def block_resolutions(cls, resolution):
        """The spatial size after each block (every BigGAN block doubles it)."""
        return [8 * 2**i for i in range(len(cls.CHANNELS[resolution]) - 1)]

    def make_embedding(self):
        # The hub's `linear/w` [K, d]: a plain (not SN) linear map of the one-hot label.
        return tf.keras.layers.Dense(
            self.shared_dim, use_bias=False, name="linear", dtype=layers.FLOAT32
        )

    def block_options(self, index):
        """Constructor arguments of block `index` beyond what every family's block takes."""
        del index
        return {}

    def make_block(self, index, out_channels):
        return self.BLOCK(
            out_channels,
            conditional_bn=self._conditional_bn_config(),
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            name=block_name("GBlock", index),
            **self.block_options(index),
        )

    def make_head(self, channels):
        """The unconditional final BN and the RGB conv (hub names)."""
        del channels  # the RGB conv reads whatever the last block gives
        self.ScaledCrossReplicaBN = layers.StandingBatchNorm(
            epsilon=self.final_bn_epsilon, scale=True, center=True, name="ScaledCrossReplicaBN"
        )
        sn = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        self.conv_2d = layers.SNConv2D(3, 3, name="conv_2d", **sn)

    def head_layers(self):
        """`(final BN, RGB conv)`."""
        return self.ScaledCrossReplicaBN, self.conv_2d

    def bn_z_width(self):
        """Width of the z part a transferred BN reads (a chunk, or 0 without z)."""
        return self.dim_z // (self.num_blocks + 1) if self.hierarchical_z else 0

    def _conditional_bn_config(self):
        common = dict(
            epsilon=self.bn_epsilon, sn_epsilon=self.sn_epsilon, sn_norm_style=self.sn_norm_style
        )
        if self.conditioning in ("biggan", "minegan"):
            return dict(type="biggan", shared_embedding=bool(self.shared_dim), **common)
        z_chunk = self.bn_z_width()
        if self.conditioning == "kp_bn":
            common.update(
                mixture_init=self.mixture_init, mixture_spectral_norm=self.mixture_spectral_norm
            )
        return dict(
            type=self.conditioning,
            num_old_classes=self.num_source_classes or 0,
            num_new_classes=self.num_classes,
            z_dim=z_chunk,
            residual_init=self.residual_init,
            **common,
        )

    def conditional_batch_norms(self):
        """Every block's conditional BN, in order (HyperBN, HyperBN_1 per block)."""
        return [bn for block in self.blocks for bn in block.batch_norms()]

    def labelled_class_layers(self):
        """`[(label, layer)]` of every layer that reads the class: the class embedding
        (`linear`, when there is one) and each block's BNs (`<block>/<bn>`)."""
        found = [("linear", self.linear)] if getattr(self, "linear", None) is not None else []
        return found + [
            (f"{block.name}/{bn.name}", bn) for block in self.blocks for bn in block.batch_norms()
        ]

    def body_layers(self):
        """The layers whose weights do not depend on the class set, in order: what a
        transfer copies from the source unchanged (`transfer.py`)."""
        convs = [conv for block in self.blocks for conv in block.convs()]
        statistics = [bn.bn for bn in self.conditional_batch_norms()]
        attention = [self.attention] if self.attention is not None else []
        return [self.G_linear, *convs, *statistics, *attention, *self.head_layers()]

    def class_code(self, y):
        """What every conditional BN sees of the class: the shared embedding or one-hot y
        (over `num_classes`; for minegan, the miner's weights over the K old classes)."""
        if self.shared_dim:
            return self.linear(y)
        return y

    def split_z(self, z):
        """`(z for G_linear, [z chunk per block])`; chunks are None when not hierarchical."""
        if not self.hierarchical_z:
            return z, [None] * self.num_blocks
        chunks = tf.split(z, self.num_blocks + 1, axis=1)
        return chunks[0], chunks[1:]

    @layers.without_autograph
    def call(self, inputs, training=False, accumulate_stats=False):
        z, y = inputs
        y = to_one_hot(y, self.num_classes)
        z = tf.cast(z, tf.float32)
        if self.miner is not None:
            z, y = self.miner(z, y)  # z', and y becomes weights over the K old classes
        code = self.class_code(y)
        z0, chunks = self.split_z(z)
        h = self.G_linear(z0, training=training)
        return self.render(h, chunks, code, training, accumulate_stats)

    def render(self, h, z_chunks, code, training=False, accumulate_stats=False):
        """G_linear's output `[B, 16 * C0]` -> images: the blocks (block i's BNs see
        `z_chunks[i]` and `code`), attention and the head."""
        h = tf.reshape(h, [-1, 4, 4, self.G_linear.units // 16])  # NHWC, as the hub
        h = tf.cast(h, self.compute_dtype)
        for i, block in enumerate(self.blocks):
            h = block(
                h,
                z_chunk=z_chunks[i],
                class_code=code,
                training=training,
                accumulate=accumulate_stats,
            )
            if i == self.attention_index:
                h = self.attention(h, training=training)
        final_bn, to_rgb = self.head_layers()
        h = tf.nn.relu(final_bn(h, training=training, accumulate=accumulate_stats))
        # BigGAN-deep's RGB conv has more outputs than colours; the first three are kept.
        return tf.cast(tf.tanh(to_rgb(h, training=training)[..., :3]), tf.float32)

    def build_weights(self):
        """Creates every variable by one eager call on a batch of one; returns self.

        (An eager call, even of the full-size model, is several times faster than a trace.)
        """
        if not self.built:
            with tf.init_scope():
                self((tf.zeros([1, self.dim_z]), tf.zeros([1], tf.int32)))
        return self

    def standing_batch_norms(self):
        return [m for m in self.submodules if isinstance(m, layers.StandingBatchNorm)]

    def get_config(self):
        return dict(
            resolution=self.resolution,
            ch=self.ch,
            num_classes=self.num_classes,
            dim_z=self.dim_z,
            shared_dim=self.shared_dim,
            hierarchical_z=self.hierarchical_z,
            attention_resolution=self.attention_resolution,
            bn_epsilon=self.bn_epsilon,
            final_bn_epsilon=self.final_bn_epsilon,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            conditioning=self.conditioning,
            num_source_classes=self.num_source_classes,
            residual_init=self.residual_init,
            mixture_init=self.mixture_init,
            mixture_spectral_norm=self.mixture_spectral_norm,
            miner_hidden_dim=self.miner_hidden_dim,
            family=self.family,
            name=self.name,
        )

    @classmethod
    def from_config(cls, config):
        """The generator of `config`'s family ("biggan" when it names none)."""
        return from_family_config(config, GENERATOR_FAMILIES, "generator")


# Family -> generator class. `biggan_deep` adds its class when imported (`model_io`,
# which every loader goes through, imports it), so this module does not depend on it.
GENERATOR_FAMILIES = {"biggan": Generator}


def from_family_config(config, classes, what):
    """`classes[family](**config)` for `config`'s "family" ("biggan" when missing, as in
    configs saved before BigGAN-deep); `classes` maps the families to their classes."""
    config = dict(config)
    family = config.pop("family", "biggan")
    if family not in FAMILIES:
        raise ValueError(f"Unknown {what} family {family!r}; use one of {FAMILIES}.")
    if family not in classes:
        raise ValueError(
            f"The {what} family {family!r} is not loaded: import tf_cgan_transfer.model_io "
            "(or the family's module) first."
        )
    return classes[family](**config)


def accumulate_standing_stats(
    generator, num_batches=16, batch_size=STANDING_STATS_BATCH_SIZE, truncation=1.0, seed=0
):
    """Replaces every BN's standing statistics by averages over generated batches.

    BigGAN's "standing statistics": sample z (at `truncation`) and uniform labels,
    run G with batch statistics, and average the per-batch moments. Deterministic in
    `seed`. Returns the generator.
    """
    generator.build_weights()
    for bn in generator.standing_batch_norms():
        bn.reset_standing_stats()
    # One traced function per generator and batch size, reused by every later call
    # (periodic evaluation and sample sheets call this often; a trace costs seconds).
    cache = generator.__dict__.setdefault("_standing_stats_steps", {})
    if batch_size not in cache:

        @tf.function
        def step(seed, i, truncation):
            z = sample_z(batch_size, generator.dim_z, truncation, seed=tf.stack([seed, i]))
            y = tf.random.stateless_uniform(
                [batch_size],
                tf.stack([seed, i + 1_000_003]),
                0,
                generator.num_classes,
                tf.int32,
                alg=RNG_ALG,
            )
            generator((z, y), training=False, accumulate_stats=True)

        cache[batch_size] = step
    seed = tf.constant(seed, tf.int64)
    truncation = tf.constant(truncation, tf.float32)
    for i in progress.track(range(num_batches), "standing statistics", unit="batches"):
        cache[batch_size](seed, tf.constant(i, tf.int64), truncation)
    return generator


def count_parameters(model_or_variables):
    """Number of scalars: a model's trainable variables (what BigGAN papers and compare_gan
    report), or a list of variables (e.g. the ones a transfer method trains)."""
    variables = getattr(model_or_variables, "trainable_variables", model_or_variables)
    return int(sum(v.shape.num_elements() for v in variables))
