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


class _KnowledgePropagation(tf.keras.layers.Layer):
    """What the knowledge-propagating layers share: the old-class mixtures A, the old
    classes' offsets P and the new classes' residuals R (docs/method.md §2).

    A layer with parts `PARTS` holds, per part p, `A_p` (a dense N -> K map, see
    `mixture_layer`), `P_p [K, C]` and `R_p [N, C]`, and computes `A_p(y) P_p + y R_p`
    (`propagate`). Without `use_mixture` there is no A and no P.
    """

    RESIDUAL_INITS = ("zeros", "orthogonal")
    MIXTURE_INITS = ("orthogonal", "zeros", "uniform", "small", "prior")
    PARTS = ()
    # Names of the parts in mixture reports (`mixture_stats`); one per entry of PARTS.
    PART_LABELS = ()

    def __init__(
        self,
        num_old_classes,
        num_new_classes,
        use_mixture=True,
        residual_init="zeros",
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
        self.num_old_classes = num_old_classes
        self.num_new_classes = num_new_classes
        self.use_mixture = use_mixture
        self.residual_init = residual_init
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style
        self.mixture_init = mixture_init
        self.mixture_spectral_norm = mixture_spectral_norm

    def _kp_weight(self, name, shape, initializer):
        return self.add_weight(
            name, shape=shape, initializer=initializer, experimental_autocast=False
        )

    def _build_parts(self, channels):
        """Creates A_p, P_p (with `use_mixture`) and R_p of width `channels` per part."""
        k, n = self.num_old_classes, self.num_new_classes
        for part in self.PARTS:
            a = p = None
            if self.use_mixture:
                p = self._kp_weight(f"P_{part}", [k, channels], "zeros")
                a = mixture_layer(
                    k,
                    f"A_{part}",
                    self.mixture_init,
                    self.mixture_spectral_norm,
                    self.sn_epsilon,
                    self.sn_norm_style,
                )
                build_sublayer(a, [None, n])
            setattr(self, f"A_{part}", a)
            setattr(self, f"P_{part}", p)
            r = self._kp_weight(f"R_{part}", [n, channels], self.residual_init)
            setattr(self, f"R_{part}", r)

    def mixtures(self):
        """The mixture layers A, one per part ([] without `use_mixture`)."""
        return [getattr(self, f"A_{p}") for p in self.PARTS] if self.use_mixture else []

    def offsets(self):
        """The old classes' offsets P, one per part ([] without `use_mixture`)."""
        return [getattr(self, f"P_{p}") for p in self.PARTS] if self.use_mixture else []

    def residuals(self):
        """The new classes' residuals R, one per part."""
        return [getattr(self, f"R_{p}") for p in self.PARTS]

    def mixture_weights(self, y, training=False):
        """`A_p(y)` per part, each `[B, K]`: the old-class mixtures of classes `y`."""
        return tuple(a(y, training=training) for a in self.mixtures())

    def propagate(self, y, training=False):
        """`A_p(y) P_p + y R_p` per part, float32 `[B, C]` each."""
        y = tf.cast(y, tf.float32)
        out = [tf.matmul(y, r) for r in self.residuals()]
        if self.use_mixture:
            weights = self.mixture_weights(y, training)
            out = [o + tf.matmul(w, p) for o, w, p in zip(out, weights, self.offsets())]
        return out

    def set_mixtures(self, weights):
        """Makes A_p(y_n) = `weights[n]` (float `[N, K]`) for every part at this step.

        Without spectral norm the kernel is `weights` and the bias 0. With it, the
        effective kernel is `weights / sigma(weights)`: the same ranking, at spectral norm
        1 (the layer can represent nothing else).
        """
        set_mixture_weights(self.mixtures(), weights, self.mixture_spectral_norm)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_old_classes=self.num_old_classes,
            num_new_classes=self.num_new_classes,
            use_mixture=self.use_mixture,
            residual_init=self.residual_init,
            sn_epsilon=self.sn_epsilon,
            sn_norm_style=self.sn_norm_style,
            mixture_init=self.mixture_init,
            mixture_spectral_norm=self.mixture_spectral_norm,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class KnowledgePropagationBatchNorm(_ConditionalNormalization, _KnowledgePropagation):
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

    PARTS = ("gamma", "beta")
    PART_LABELS = ("gain", "bias")

    def __init__(self, num_old_classes, num_new_classes, z_dim=0, epsilon=1e-4, **kwargs):
        super().__init__(num_old_classes, num_new_classes, **kwargs)
        self.z_dim = z_dim
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self._build_parts(channels)
        self.Wz_gamma = self.Wz_beta = None
        if self.z_dim:
            self.Wz_gamma = self._kp_weight("Wz_gamma", [self.z_dim, channels], "zeros")
            self.Wz_beta = self._kp_weight("Wz_beta", [self.z_dim, channels], "zeros")
        self.bn = StandingBatchNorm(epsilon=self.epsilon, name="bn")
        build_sublayer(self.bn, input_shape)  # used via moments()/normalize(), not __call__
        super().build(input_shape)

    def gain_and_bias(self, z_chunk, class_code, training=False):
        """Per-example `(gain, bias)`, float32 `[B, C]` each."""
        gain, bias = self.propagate(class_code, training)
        gain += 1.0
        if self.z_dim:
            z = tf.cast(z_chunk, tf.float32)
            gain += tf.matmul(z, self.Wz_gamma)
            bias += tf.matmul(z, self.Wz_beta)
        return gain, bias

    def get_config(self):
        config = super().get_config()
        config.update(z_dim=self.z_dim, epsilon=self.epsilon)
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class KnowledgePropagationEmbedding(_KnowledgePropagation):
    """The class embedding of new classes as mixtures of the old classes' embeddings.

    Call: `y [B, N]` (one-hot over the N new classes) -> `[B, D]`, `A(y) P + y R`, where
    row k of `P [K, D]` is old class k's embedding, `A` the new class's mixture over the
    old classes (as in `KnowledgePropagationBatchNorm`) and `R [N, D]` its residual.
    BigGAN-deep feeds the class embedding to `G_linear` as well as to the BNs, so a
    transferred deep G needs the embedding itself for new classes: with A = one-hot(k)
    and R = 0 it is old class k's. Weights: `A_code`, `P_code`, `R_code`.

    Args:
      num_old_classes: K. num_new_classes: N. units: D, the embedding width.
      Other arguments as `KnowledgePropagationBatchNorm`'s.
    """

    PARTS = ("code",)
    PART_LABELS = ("code",)

    def __init__(self, num_old_classes, num_new_classes, units, **kwargs):
        super().__init__(num_old_classes, num_new_classes, **kwargs)
        self.units = units

    def build(self, input_shape):
        self._build_parts(self.units)
        super().build(input_shape)

    def call(self, y, training=False):
        return self.propagate(y, training)[0]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


def mixture_layer(k, name, mixture_init, spectral_norm, sn_epsilon=1e-4, sn_norm_style="rsqrt"):
    """A dense N -> K mixture map with bias (float32), spectrally normalised or not."""
    initializers = dict(
        orthogonal="orthogonal",
        zeros="zeros",
        uniform=tf.keras.initializers.Constant(1.0 / k),
        small=tf.keras.initializers.Orthogonal(gain=0.01),
        prior=tf.keras.initializers.Constant(1.0 / k),
    )
    common = dict(use_bias=True, kernel_initializer=initializers[mixture_init])
    if not spectral_norm:
        return tf.keras.layers.Dense(k, name=name, dtype=FLOAT32, **common)
    sn = dict(epsilon=sn_epsilon, norm_style=sn_norm_style)
    return SNDense(k, name=name, dtype=FLOAT32, **sn, **common)


def set_mixture_weights(mixture_layers, weights, spectral_norm):
    """Sets each of `mixture_layers` to map y_n to `weights[n]` (`[N, K]`; divided by
    its top singular value when `spectral_norm`), bias 0."""
    weights = tf.convert_to_tensor(weights, tf.float32)
    for a in mixture_layers:
        a.kernel.assign(weights)
        a.bias.assign(tf.zeros_like(a.bias))
        if spectral_norm:
            # The power iteration's u from the top left singular vector: A(y) is then
            # weights / sigma from the first call on, not after a few iterations.
            _, _, v = tf.linalg.svd(weights)
            a.u.assign(tf.reshape(v[:, 0], [1, -1]))


def check_mixture(mixture_init, spectral_norm):
    """Raises a ValueError unless A's initialiser and spectral norm go together."""
    inits = _KnowledgePropagation.MIXTURE_INITS
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
    """The generator's knowledge-propagating layers (kp_bn and bn_only), in order: its
    `KnowledgePropagationBatchNorm`s and, in BigGAN-deep, the class embedding."""
    return [layer for _, layer in labelled_knowledge_propagating(generator)]


def labelled_knowledge_propagating(generator):
    """`[(label, layer)]` of `knowledge_propagating`: `<block>/<bn>` for the BNs and
    `linear` for BigGAN-deep's `KnowledgePropagationEmbedding`."""
    return [
        (label, layer)
        for label, layer in generator.labelled_class_layers()
        if isinstance(layer, _KnowledgePropagation)
    ]
