"""BigGAN building blocks as Keras layers: spectral norm, standing BN, self-attention.

Everything here follows docs/tfhub_layout.md so that TF-Hub BigGAN weights load without
transposes: dense kernels are (in, out), conv kernels HWIO, and spectral
normalisation divides the stored raw weight by sigma at every call (sigma from one
power iteration from the stored `u`, eps 1e-4 inside the rsqrt). The SN normalisation
style and epsilon, and the side of a dense kernel that `u` lives on, are configuration,
so that BigGAN-PyTorch weights compute what the author's code computes
(docs/pytorch_layout.md).

Variables whose values never differ between replicas (`u`, standing BN statistics) are
ON_READ with ONLY_FIRST_REPLICA aggregation: each replica updates its own copy without
synchronising (which also works inside loops in `strategy.run`, where a synchronising
assign is not allowed), and every replica computes the same value anyway.
"""

import inspect

import tensorflow as tf

_SYNC_AGG = dict(
    synchronization=tf.VariableSynchronization.ON_READ,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
)
# Conditioning layers (class embeddings, BN gain/bias projections, mixtures) are tiny
# matmuls whose outputs scale every activation: float32 under any mixed-precision policy.
FLOAT32 = "float32"


def without_autograph(call):
    """Marks a model's `call` as plain Python for AutoGraph, keeping its signature.

    Inside a `tf.function`, Keras runs every subclassed layer's `call` through AutoGraph,
    which rewrites the Python source of each layer it reaches: about a third of the
    trace of a training step, paid again by every run and every process. Our layers
    branch and loop only on Python values (configuration, `training`), never on
    tensors, so the conversion changes nothing but the cost. The mark disables
    AutoGraph for everything the call reaches, so the top-level models carry it. Keras
    reads the call's signature (`training`, the inputs argument): it is kept.
    """
    wrapped = tf.autograph.experimental.do_not_convert(call)
    wrapped.__signature__ = inspect.signature(call)
    return wrapped


def build_sublayer(layer, input_shape):
    """Builds a sublayer outside `__call__` with its variables named under its own scope."""
    with tf.name_scope(layer.name):
        layer.build(input_shape)


# How a power-iteration vector is scaled to unit length:
#   "rsqrt": x * rsqrt(sum(x^2) + eps)  (the TF-Hub graph; eps 1e-4)
#   "clamp": x / max(||x||, eps)        (BigGAN-PyTorch's F.normalize; eps 1e-6 there)
SN_NORM_STYLES = ("rsqrt", "clamp")
# Which side of a dense kernel `[in, out]` its SN vector `u` lives on: "output" (`[1, out]`,
# every layer here and in the hub) or "input" (`[1, in]`: BigGAN-PyTorch's SN embedding,
# whose u runs over the classes).
SN_U_SIDES = ("output", "input")


def check_sn_norm_style(style):
    if style not in SN_NORM_STYLES:
        raise ValueError(f"Unknown spectral-norm style {style!r}; use one of {SN_NORM_STYLES}.")


def _unit(x, epsilon, style):
    if style == "clamp":
        return x / tf.maximum(tf.norm(x), epsilon)
    return x * tf.math.rsqrt(tf.reduce_sum(tf.square(x)) + epsilon)


def spectral_normalize(kernel, u, epsilon=1e-4, norm_style="rsqrt"):
    """One power iteration from `u`, as the TF-Hub BigGAN graph does it (docs/tfhub_layout.md §4).

    Args:
      kernel: weight of any rank; the last axis is the output axis.
      u: `[1, out]` left singular vector estimate.
      epsilon: the normalisation floor: added to the squared norm inside the rsqrt
        ("rsqrt"), or the least norm divided by ("clamp").
      norm_style: one of `SN_NORM_STYLES`.

    Returns:
      `(kernel / sigma, u_new, sigma)`; `u_new` and the `v` used for sigma carry no
      gradient, so sigma's gradient flows through the weight only (BigGAN's rule).
    """
    check_sn_norm_style(norm_style)
    kernel = tf.convert_to_tensor(kernel)
    out = tf.shape(kernel)[-1]
    matrix = tf.reshape(kernel, [-1, out])  # [K, out]
    v = tf.matmul(u, matrix, transpose_b=True)  # [1, K]
    v = _unit(v, epsilon, norm_style)
    u_new = tf.matmul(v, matrix)  # [1, out]
    u_new = _unit(u_new, epsilon, norm_style)
    v = tf.stop_gradient(v)
    u_new = tf.stop_gradient(u_new)
    sigma = tf.matmul(tf.matmul(v, matrix), u_new, transpose_b=True)[0, 0]
    return kernel / sigma, u_new, sigma


class _SpectralNormLayer(tf.keras.layers.Layer):
    """Shared machinery: raw kernel + optional bias + stored `u`, normalised per call.

    `epsilon` and `norm_style` are those of `spectral_normalize`.
    """

    def __init__(
        self,
        use_bias=True,
        epsilon=1e-4,
        kernel_initializer="glorot_uniform",
        norm_style="rsqrt",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_sn_norm_style(norm_style)
        self.use_bias = use_bias
        self.epsilon = epsilon
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.norm_style = norm_style

    def _kernel_shape(self, input_shape):
        raise NotImplementedError

    def _apply(self, inputs, kernel):
        raise NotImplementedError

    def _u_size(self, kernel_shape):
        return kernel_shape[-1]

    def _normalize(self):
        """`(kernel / sigma, u_new, sigma)` from the stored kernel and `u`."""
        return spectral_normalize(self.kernel, self.u, self.epsilon, self.norm_style)

    def build(self, input_shape):
        shape = self._kernel_shape(tf.TensorShape(input_shape))
        # SN is computed in float32 even under mixed precision, hence no autocast.
        self.kernel = self.add_weight(
            "kernel", shape=shape, initializer=self.kernel_initializer, experimental_autocast=False
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", shape=[shape[-1]], initializer="zeros", experimental_autocast=False
            )
        self.u = self.add_weight(
            "u",
            shape=[1, self._u_size(shape)],
            initializer=tf.keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            experimental_autocast=False,
            **_SYNC_AGG,
        )
        super().build(input_shape)

    def normalized_kernel(self):
        """The effective weight W / sigma(W, u), without touching `u`."""
        return self._normalize()[0]

    def call(self, inputs, training=False):
        kernel, u_new, sigma = self._normalize()
        if training:
            self.u.assign(u_new)
        dtype = self.compute_dtype
        # x (W / sigma) = (x W) / sigma: divide whichever is smaller. Low-resolution
        # layers have kernels far larger than their outputs (BigGAN-128's 4x4 and 8x8
        # blocks: 21M weights, 0.8M outputs at batch 8), and the division and its
        # gradient are weight-sized memory traffic on every call. (The unused tensor is
        # pruned from the graph.)
        outputs_size = inputs.shape[:-1].num_elements()
        if (
            outputs_size is not None
            and outputs_size * kernel.shape[-1] < kernel.shape.num_elements()
        ):
            outputs = self._apply(inputs, tf.cast(self.kernel, dtype)) / tf.cast(sigma, dtype)
        else:
            outputs = self._apply(inputs, tf.cast(kernel, dtype))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, self.compute_dtype))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            use_bias=self.use_bias,
            epsilon=self.epsilon,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            norm_style=self.norm_style,
        )
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class SNDense(_SpectralNormLayer):
    """Spectrally normalised dense layer: `[B, in] -> [B, units]`, y = x W_SN + b.

    Weights: `kernel [in, units]` (raw, pre-normalisation), `bias [units]`,
    `u [1, units]` (not trainable; advanced one power-iteration step per training call).
    With `u_side="input"`, `u` is `[1, in]` and the power iteration runs on the
    transposed kernel (sigma is the same top singular value; only the stored vector
    differs): BigGAN-PyTorch's SN embedding `[classes, dim]` keeps u over the classes.
    """

    def __init__(self, units, u_side="output", **kwargs):
        super().__init__(**kwargs)
        if u_side not in SN_U_SIDES:
            raise ValueError(f"Unknown u_side {u_side!r}; use one of {SN_U_SIDES}.")
        self.units = units
        self.u_side = u_side

    def _kernel_shape(self, input_shape):
        return [input_shape[-1], self.units]

    def _u_size(self, kernel_shape):
        return kernel_shape[0] if self.u_side == "input" else kernel_shape[-1]

    def _normalize(self):
        if self.u_side == "output":
            return super()._normalize()
        kernel_t, u_new, sigma = spectral_normalize(
            tf.transpose(self.kernel), self.u, self.epsilon, self.norm_style
        )
        return tf.transpose(kernel_t), u_new, sigma

    def _apply(self, inputs, kernel):
        return tf.matmul(inputs, kernel)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, u_side=self.u_side)
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class SNConv2D(_SpectralNormLayer):
    """Spectrally normalised 2-D convolution, stride 1, SAME padding, NHWC.

    `[B, H, W, Cin] -> [B, H, W, filters]`; kernel HWIO `[k, k, Cin, filters]`, SN over
    its `[k*k*Cin, filters]` matrix view.
    """

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size

    def _kernel_shape(self, input_shape):
        k = self.kernel_size
        return [k, k, input_shape[-1], self.filters]

    def _apply(self, inputs, kernel):
        return tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size)
        return config


def cross_replica_moments(x, axes):
    """Mean and (biased) variance over `axes` and over every replica in sync.

    Two all-reduces (mean first, then centred squares) keep the variance as accurate as a
    single-device `tf.nn.moments`. Outside a multi-replica step this is plain moments.
    """
    x = tf.cast(x, tf.float32)
    ctx = tf.distribute.get_replica_context()
    n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float32)
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.nn.moments(x, axes)
    total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.reduce_sum(x, axes), n])
    mean = total / count
    sq = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(x - mean), axes))
    return mean, sq / count


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class StandingBatchNorm(tf.keras.layers.Layer):
    """Batch norm with cross-replica batch statistics and standing statistics.

    `[B, H, W, C] -> [B, H, W, C]` (any rank; normalises over all axes but the last).
    Training (or `accumulate=True`) normalises with the batch's moments, all-reduced
    over replicas (BigGAN's cross-replica BN). Inference normalises with the standing
    statistics `accumulated_mean`/`accumulated_var` (TF-Hub names), which hold *means*
    ready to use; `accumulation_counter` counts the batches averaged into them.
    `accumulate=True` folds the batch moments into that running average, so standing
    statistics are gathered by `reset_standing_stats()` then N accumulate calls.

    With `scale`/`center` the layer has a plain affine `gamma`/`beta` (used directly,
    no 1 + gamma), as in the generator's final `ScaledCrossReplicaBN`.
    """

    def __init__(self, epsilon=1e-4, scale=False, center=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.scale = scale
        self.center = center

    def build(self, input_shape):
        channels = int(input_shape[-1])
        stat = dict(trainable=False, experimental_autocast=False, **_SYNC_AGG)
        self.accumulated_mean = self.add_weight(
            "accumulated_mean", shape=[channels], initializer="zeros", **stat
        )
        self.accumulated_var = self.add_weight(
            "accumulated_var", shape=[channels], initializer="ones", **stat
        )
        self.accumulation_counter = self.add_weight(
            "accumulation_counter", shape=[], initializer="zeros", **stat
        )
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                "gamma", shape=[channels], initializer="ones", experimental_autocast=False
            )
        if self.center:
            self.beta = self.add_weight(
                "beta", shape=[channels], initializer="zeros", experimental_autocast=False
            )
        super().build(input_shape)

    def reset_standing_stats(self):
        self.accumulation_counter.assign(0.0)

    def moments(self, inputs, training=False, accumulate=False):
        """The (mean, variance) this call normalises with, float32 `[C]` each."""
        if not (training or accumulate):
            return self.accumulated_mean, self.accumulated_var
        axes = list(range(inputs.shape.rank - 1))
        mean, var = cross_replica_moments(inputs, axes)
        if accumulate:
            count = self.accumulation_counter + 1.0
            # The first batch after a reset is copied exactly (old + (new - old) rounds).
            fresh = self.accumulation_counter <= 0.0
            for acc, value in ((self.accumulated_mean, mean), (self.accumulated_var, var)):
                acc.assign(tf.where(fresh, value, acc + (value - acc) / count))
            self.accumulation_counter.assign(count)
        return mean, var

    def normalize(self, inputs, mean, var, gain=None, bias=None):
        """(x - mean) / sqrt(var + eps) * gain + bias, in the layer's compute dtype.

        `gain`/`bias` broadcast against `inputs` (e.g. `[B, 1, 1, C]` per example).
        """
        inv = tf.math.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        shift = -mean * inv
        if self.beta is not None:
            shift = shift + self.beta
        dtype = self.compute_dtype
        out = inputs * tf.cast(inv, dtype) + tf.cast(shift, dtype)
        if gain is not None:
            out = out * tf.cast(gain, dtype)
        if bias is not None:
            out = out + tf.cast(bias, dtype)
        return out

    def call(self, inputs, training=False, accumulate=False):
        mean, var = self.moments(inputs, training, accumulate)
        return self.normalize(inputs, mean, var)

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, scale=self.scale, center=self.center)
        return config


@tf.keras.utils.register_keras_serializable("tf_cgan_transfer")
class SelfAttention(tf.keras.layers.Layer):
    """BigGAN's non-local block: `[B, H, W, C] -> [B, H, W, C]` (H, W even, C % 8 == 0).

    theta = x W_theta (C/8), phi/g = maxpool2(x W_phi (C/8) / x W_g (C/2)),
    att = softmax(theta phi^T) over the pooled positions, out = x + gamma * (att g) W_o.
    All four 1x1 projections are spectrally normalised (`sn_epsilon`, `sn_norm_style`)
    and have no bias.
    """

    def __init__(self, sn_epsilon=1e-4, sn_norm_style="rsqrt", **kwargs):
        super().__init__(**kwargs)
        self.sn_epsilon = sn_epsilon
        self.sn_norm_style = sn_norm_style

    def build(self, input_shape):
        c = int(input_shape[-1])
        if c % 8:
            raise ValueError(
                f"SelfAttention needs channels divisible by 8, got {c}: raise the model's "
                "ch or move/disable attention (attention_resolution=0)."
            )
        sn = dict(use_bias=False, epsilon=self.sn_epsilon, norm_style=self.sn_norm_style)
        conv = lambda n, name: SNConv2D(n, 1, name=name, **sn)
        self.theta = conv(c // 8, "theta")
        self.phi = conv(c // 8, "phi")
        self.g = conv(c // 2, "g")
        self.o_conv = conv(c, "o_conv")
        self.gamma = self.add_weight(
            "gamma", shape=[], initializer="zeros", experimental_autocast=False
        )
        super().build(input_shape)

    def call(self, x, training=False):
        b, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
        pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")
        theta = tf.reshape(self.theta(x, training=training), [b, h * w, c // 8])
        phi = tf.reshape(pool(self.phi(x, training=training)), [b, -1, c // 8])
        g = tf.reshape(pool(self.g(x, training=training)), [b, -1, c // 2])
        att = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True), axis=-1)  # [B, HW, HW/4]
        o = tf.reshape(tf.matmul(att, g), [b, h, w, c // 2])
        return x + tf.cast(self.gamma, x.dtype) * self.o_conv(o, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(sn_epsilon=self.sn_epsilon, sn_norm_style=self.sn_norm_style)
        return config
