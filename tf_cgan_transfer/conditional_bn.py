"""Class-conditional batch norms: BigGAN's HyperBN and the knowledge-propagating BN.

Both normalise with a `layers.StandingBatchNorm` (the `bn` sublayer, which holds the
statistics) and differ only in how the per-example gain and bias are computed from the
class (docs/method.md §1 and §2). `make` picks one from a JSON-able config, which is how
`biggan.GBlock` stores its choice in `get_config`.
"""

import tensorflow as tf

from tf_cgan_transfer.layers import FLOAT32
from tf_cgan_transfer.layers import SNDense
from tf_cgan_transfer.layers import StandingBatchNorm
from tf_cgan_transfer.layers import build_sublayer

# "biggan": pretrained BigGAN BNs; "kp_bn" / "bn_only": transferred to new classes.
CONDITIONINGS = ("biggan", "kp_bn", "bn_only")


def _broadcast_channels(v, rank):
    """`[B, C]` -> `[B, 1, ..., 1, C]` to broadcast over a rank-`rank` activation."""
    return tf.reshape(v, [tf.shape(v)[0]] + [1] * (rank - 2) + [v.shape[-1]])


class _ConditionalNormalization(tf.keras.layers.Layer):
    """What both conditional BNs share: normalise with `bn`, scale and shift per example.

    Subclasses build `self.bn` and implement `gain_and_bias(z_chunk, class_code,
    training) -> (gain [B, C], bias [B, C])`.
    """

    def call(self, x, z_chunk=None, class_code=None, training=False, accumulate=False):
        gain, bias = self.gain_and_bias(z_chunk, class_code, training)
        rank = x.shape.rank
        mean, var = self.bn.moments(x, training, accumulate)
        return self.bn.normalize(
            x, mean, var, _broadcast_channels(gain, rank), _broadcast_channels(bias, rank)
        )


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class ConditionalBatchNorm(_ConditionalNormalization):
    """BigGAN's class-conditional BN (the hub's `HyperBN`).

    Call: `x [B, H, W, C]`, `z_chunk [B, dz]` or None, `class_code [B, d]` ->
    `[B, H, W, C]` computing `BN(x) * (1 + c W_gain) + c W_bias`.

    Two parameterisations, as in BigGAN:
    * `shared_embedding=True` (hub BigGANs): `class_code` is the shared class embedding,
      `c = [z_chunk ; class_code]` and `gamma`/`beta` are spectrally normalised linear
      maps without bias (rows ordered z first, like the hub).
    * `shared_embedding=False` (CIFAR-style): `class_code` is the one-hot label and the
      gain/bias come from this layer's own per-class tables `gamma`/`beta` `[K, C]`
      (an embedding lookup; no SN, no z).

    Statistics live in the `bn` sublayer (the hub's `CrossReplicaBN`). `epsilon` is the
    BN's; `sn_epsilon`/`sn_norm_style` those of the projections' spectral norm.
    """

    def __init__(
        self, shared_embedding=True, epsilon=1e-4, sn_epsilon=1e-4, sn_norm_style="rsqrt", **kwargs
    ):
        super().__init__(**kwargs)
        self.shared_embedding = shared_embedding
        self.epsilon = epsilon
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if self.shared_embedding:
            sn = dict(
                use_bias=False,
                epsilon=self.sn_epsilon,
                norm_style=self.sn_norm_style,
                dtype=FLOAT32,
            )
            self.gamma = SNDense(channels, name="gamma", **sn)
            self.beta = SNDense(channels, name="beta", **sn)
        else:
            # Gains start at 1 + 0 and biases at 0: the BN starts as the identity affine.
            table = dict(use_bias=False, kernel_initializer="zeros", dtype=FLOAT32)
            self.gamma = tf.keras.layers.Dense(channels, name="gamma", **table)
            self.beta = tf.keras.layers.Dense(channels, name="beta", **table)
        self.bn = StandingBatchNorm(epsilon=self.epsilon, name="bn")
        build_sublayer(self.bn, input_shape)  # used via moments()/normalize(), not __call__
        super().build(input_shape)

    def conditioning(self, z_chunk, class_code):
        """The conditioning row `c` fed to the gain and bias projections."""
        if not self.shared_embedding or z_chunk is None:
            return class_code
        return tf.concat([z_chunk, class_code], axis=-1)

    def gain_and_bias(self, z_chunk, class_code, training=False):
        """Per-example `(gain, bias)`, float32 `[B, C]` each."""
        c = tf.cast(self.conditioning(z_chunk, class_code), tf.float32)
        if self.shared_embedding:
            return 1.0 + self.gamma(c, training=training), self.beta(c, training=training)
        return 1.0 + self.gamma(c), self.beta(c)

    def get_config(self):
        config = super().get_config()
        config.update(
            shared_embedding=self.shared_embedding,
            epsilon=self.epsilon,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class KnowledgePropagationBatchNorm(_ConditionalNormalization):
    """Conditional BN for new classes as mixtures of old ones (docs/method.md §2).

    Call: `x [B, H, W, C]`, `z_chunk [B, dz]` or None, `class_code [B, N]` (one-hot over
    the N new classes) -> `[B, H, W, C]` computing `BN(x) * gain + bias` with

        gain = 1 + A_gamma(y) P_gamma + z Wz_gamma + y R_gamma
        bias =     A_beta(y)  P_beta  + z Wz_beta  + y R_beta

    Weights (row layouts, i.e. the transposes of the column notation in docs/method.md):
      P_gamma, P_beta `[K, C]`: row k is old class k's gain/bias offset (prior knowledge).
      Wz_gamma, Wz_beta `[dz, C]`: the pretrained z part (only when `z_dim > 0`).
      A_gamma, A_beta: dense N -> K with bias (zero at init), spectrally normalised
        unless `mixture_spectral_norm=False`; `A(y)` are the new class's mixture weights
        over the old classes. Kernel init (`mixture_init`): "orthogonal" (the
        reference's), "zeros", "uniform" (1/K), "small" (orthogonal x 0.01) or "prior"
        (uniform until `set_mixtures` assigns a data-derived prior).
      R_gamma, R_beta `[N, C]`: per-new-class residuals, zero (default) or orthogonal.
    With `use_mixture=False` there is no P and no A (the BN-only baseline: new per-class
    gains/biases `R` learned from scratch on top of the pretrained z part).

    Args:
      num_old_classes: K. num_new_classes: N. z_dim: width of the z chunk (0: none).
      use_mixture: include P and A. residual_init: 'zeros' or 'orthogonal'.
      mixture_init, mixture_spectral_norm: A's kernel initialiser and whether A is
        spectrally normalised (`check_mixture`: spectral norm divides the scale of the
        kernel out, so "small" would equal "orthogonal" and "zeros" would divide by 0).
      epsilon, sn_epsilon: BN and spectral-norm epsilons (1e-4 like the hub).
      sn_norm_style: the spectral norm's normalisation (`layers.SN_NORM_STYLES`).
    """

    RESIDUAL_INITS = ("zeros", "orthogonal")
    MIXTURE_INITS = ("orthogonal", "zeros", "uniform", "small", "prior")

    def __init__(
        self,
        num_old_classes,
        num_new_classes,
        z_dim=0,
        use_mixture=True,
        residual_init="zeros",
        epsilon=1e-4,
        sn_epsilon=1e-4,
        sn_norm_style="rsqrt",
        mixture_init="orthogonal",
        mixture_spectral_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if residual_init not in self.RESIDUAL_INITS:
            raise ValueError(
                f"Unknown residual_init {residual_init!r}; use one of {self.RESIDUAL_INITS}."
            )
        check_mixture(mixture_init, mixture_spectral_norm)
        self.mixture_init = mixture_init
        self.mixture_spectral_norm = mixture_spectral_norm
        self.num_old_classes = num_old_classes
        self.num_new_classes = num_new_classes
        self.z_dim = z_dim
        self.use_mixture = use_mixture
        self.residual_init = residual_init
        self.epsilon = epsilon
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        channels = int(input_shape[-1])
        k, n = self.num_old_classes, self.num_new_classes
        weight = lambda name, shape, init: self.add_weight(
            name, shape=shape, initializer=init, experimental_autocast=False
        )
        self.P_gamma = self.P_beta = self.A_gamma = self.A_beta = None
        if self.use_mixture:
            self.P_gamma = weight("P_gamma", [k, channels], "zeros")
            self.P_beta = weight("P_beta", [k, channels], "zeros")
            self.A_gamma = self._mixture_layer(k, "A_gamma")
            self.A_beta = self._mixture_layer(k, "A_beta")
            build_sublayer(self.A_gamma, [None, n])
            build_sublayer(self.A_beta, [None, n])
        self.Wz_gamma = self.Wz_beta = None
        if self.z_dim:
            self.Wz_gamma = weight("Wz_gamma", [self.z_dim, channels], "zeros")
            self.Wz_beta = weight("Wz_beta", [self.z_dim, channels], "zeros")
        self.R_gamma = weight("R_gamma", [n, channels], self.residual_init)
        self.R_beta = weight("R_beta", [n, channels], self.residual_init)
        self.bn = StandingBatchNorm(epsilon=self.epsilon, name="bn")
        build_sublayer(self.bn, input_shape)  # used via moments()/normalize(), not __call__
        super().build(input_shape)

    def _mixture_layer(self, k, name):
        initializers = dict(
            orthogonal="orthogonal",
            zeros="zeros",
            uniform=tf.keras.initializers.Constant(1.0 / k),
            small=tf.keras.initializers.Orthogonal(gain=0.01),
            prior=tf.keras.initializers.Constant(1.0 / k),
        )
        common = dict(use_bias=True, kernel_initializer=initializers[self.mixture_init])
        if not self.mixture_spectral_norm:
            return tf.keras.layers.Dense(k, name=name, dtype=FLOAT32, **common)
        sn = dict(epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        return SNDense(k, name=name, dtype=FLOAT32, **sn, **common)

    def set_mixtures(self, weights):
        """Makes A(y_n) = `weights[n]` (float `[N, K]`) for gain and bias at this step.

        Without spectral norm the kernel is `weights` and the bias 0. With it, the
        effective kernel is `weights / sigma(weights)`: the same ranking, at spectral norm
        1 (the layer can represent nothing else).
        """
        weights = tf.convert_to_tensor(weights, tf.float32)
        for a in (self.A_gamma, self.A_beta):
            a.kernel.assign(weights)
            a.bias.assign(tf.zeros_like(a.bias))
            if self.mixture_spectral_norm:
                # The power iteration's u from the top left singular vector: A(y) is then
                # weights / sigma from the first call on, not after a few iterations.
                _, _, v = tf.linalg.svd(weights)
                a.u.assign(tf.reshape(v[:, 0], [1, -1]))

    def mixture_weights(self, y, training=False):
        """`(w_gamma, w_beta)`, each `[B, K]`: the old-class mixtures of classes `y`."""
        return self.A_gamma(y, training=training), self.A_beta(y, training=training)

    def gain_and_bias(self, z_chunk, class_code, training=False):
        """Per-example `(gain, bias)`, float32 `[B, C]` each."""
        y = tf.cast(class_code, tf.float32)
        gain = 1.0 + tf.matmul(y, self.R_gamma)
        bias = tf.matmul(y, self.R_beta)
        if self.use_mixture:
            w_gamma, w_beta = self.mixture_weights(y, training)
            gain += tf.matmul(w_gamma, self.P_gamma)
            bias += tf.matmul(w_beta, self.P_beta)
        if self.z_dim:
            z = tf.cast(z_chunk, tf.float32)
            gain += tf.matmul(z, self.Wz_gamma)
            bias += tf.matmul(z, self.Wz_beta)
        return gain, bias

    def get_config(self):
        config = super().get_config()
        config.update(
            num_old_classes=self.num_old_classes,
            num_new_classes=self.num_new_classes,
            z_dim=self.z_dim,
            use_mixture=self.use_mixture,
            residual_init=self.residual_init,
            epsilon=self.epsilon,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            mixture_init=self.mixture_init,
            mixture_spectral_norm=self.mixture_spectral_norm,
        )
        return config


def check_mixture(mixture_init, spectral_norm):
    """Raises a ValueError unless A's initialiser and spectral norm go together."""
    inits = KnowledgePropagationBatchNorm.MIXTURE_INITS
    if mixture_init not in inits:
        raise ValueError(f"Unknown mixture_init {mixture_init!r}; use one of {inits}.")
    if spectral_norm and mixture_init in ("zeros", "small"):
        why = "divide by a zero norm" if mixture_init == "zeros" else "equal 'orthogonal'"
        raise ValueError(
            f"mixture_init={mixture_init!r} with a spectrally normalised A would {why} "
            "(spectral norm divides the kernel's scale out): turn A's spectral norm off "
            "(mixture_spectral_norm=False, --nomixture_spectral_norm) or use "
            "'orthogonal', 'uniform' or 'prior'."
        )


def make(config, name):
    """A block's conditional BN from `{"type": ..., **constructor arguments}`.

    "biggan": `ConditionalBatchNorm` (hub HyperBN, or per-class tables);
    "kp_bn" / "bn_only": `KnowledgePropagationBatchNorm` with / without the mixture of
    old classes.
    """
    config = dict(config)
    kind = config.pop("type")
    if kind == "biggan":
        return ConditionalBatchNorm(name=name, **config)
    if kind in ("kp_bn", "bn_only"):
        return KnowledgePropagationBatchNorm(name=name, use_mixture=kind == "kp_bn", **config)
    raise ValueError(f"Unknown conditioning {kind!r}; use one of {CONDITIONINGS}.")


def knowledge_propagating(generator):
    """The generator's `KnowledgePropagationBatchNorm`s (kp_bn and bn_only), in order."""
    return [
        bn
        for bn in generator.conditional_batch_norms()
        if isinstance(bn, KnowledgePropagationBatchNorm)
    ]
