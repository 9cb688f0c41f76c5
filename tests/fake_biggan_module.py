"""Miniature BigGAN (biggan-{128,256,512}/2) TF-Hub modules for offline tests.

The fixture follows the key grammar of docs/tfhub_layout.md (§2 and §6) at tiny width,
and provides two forward passes (§1, §3 and §4) at truncation 1.0 that share no code
with `tf_cgan_transfer`:

* `reference_forward`: float64 NumPy.
* the `default` signature of the TF1 Hub module written by `build_tf1_hub_module`,
  in raw float32 TF ops.

Both read only the EMA tensors (`.../ema_b999900`), `u0` and the accumulated BN
statistics (used as they are, never divided by `accumulation_counter`).

Typical use in a test:

    tensors = fake_biggan_module.make_biggan_tensors(resolution=128)
    fake_biggan_module.build_tf1_hub_module(module_dir, tensors)
    expected = fake_biggan_module.reference_forward(tensors, z, y)
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

EMA_SUFFIX = "/ema_b999900"
BN_EPS = 1e-4
SN_EPS = 1e-4
# Stored `accumulation_counter` value. Not 1.0, so an importer that divides the
# statistics by it produces a visibly different output.
COUNTER_VALUE = 7.0
EMA_ATTENTION_GAMMA = 0.5
RAW_ATTENTION_GAMMA = -0.25
# Keys that are no part of the generator; an importer must ignore them.
EXTRA_KEYS = ("global_step", "Generator/some_unknown_thing")

# resolution -> (channel multipliers: input of block 0 ... output of last block,
#                index of the GBlock after which self-attention runs)
_ARCHITECTURES = {
    128: ((16, 16, 8, 4, 2, 1), 3),
    256: ((16, 16, 8, 8, 4, 2, 1), 4),
    512: ((16, 16, 8, 8, 4, 2, 1, 1), 3),
}

# Standard deviations of the fake values. Spectral norm divides every `w` by its
# estimated largest singular value, so the std of a `w` hardly matters (it only
# meets SN_EPS); the scale of the activations is set by what SN leaves alone: the
# biases, the class embedding and the BN statistics (drawn as the layout doc says).
# G_linear's bias is the 4x4 pattern every image grows from, so it gets std 1.0
# (it would otherwise be ~0.04 next to BN mean offsets of 0.1, and the images
# would be nearly flat); other biases are per-channel offsets, which random 3x3
# kernels amplify block after block (DC gain ~1.5), so they are kept small.
# Measured over seeds 0-9 and 128/256/512 with z ~ N(0, 1): output std 0.15-0.7,
# spatial std per image 0.1-0.5, |x| > 0.99 for 0-14% of values (25% at worst).
_W_STD = 0.1
_BIAS_STD = 0.05
_LINEAR_BIAS_STD = 1.0
_EMBEDDING_STD = 0.5
_BN_AFFINE_STD = 0.1
_MEAN_STD = 0.1


def block_name(index):
    """Returns the hub scope name of GBlock `index` (0 -> 'GBlock')."""
    return "GBlock" if index == 0 else "GBlock_%d" % index


def _architecture(resolution):
    if resolution not in _ARCHITECTURES:
        raise ValueError(
            "resolution must be one of %s, got %r" % (sorted(_ARCHITECTURES), resolution)
        )
    return _ARCHITECTURES[resolution]


def make_biggan_tensors(
    resolution=128,
    ch=4,
    num_classes=3,
    emb_dim=8,
    z_chunk=2,
    seed=0,
    raw_twins=True,
    n_u=3,
    final_bn_4d=True,
    extra_keys=True,
):
    """Returns every checkpoint tensor of a tiny biggan-`resolution`/2 generator.

    Args:
        resolution: 128, 256 or 512; selects blocks, multipliers and attention.
        ch: channel width (96 in the real modules). Attention needs 2*ch (128,
            256) or 4*ch (512) divisible by 8.
        num_classes: rows of `linear/w` (1000 in the real modules).
        emb_dim: class-embedding width (128 in the real modules).
        z_chunk: width of each of the n_blocks + 1 z chunks.
        seed: seeds the NumPy generators (together with `resolution`). The values
            the forward pass reads do not depend on raw_twins, n_u,
            final_bn_4d or extra_keys.
        raw_twins: also write the bare (non-EMA) key of every trained tensor,
            with values drawn independently of the EMA ones.
        n_u: number of spectral-norm vectors per SN layer (`u0` ... `u{n_u-1}`).
        final_bn_4d: store the final BN gamma/beta as [1, 1, 1, C] instead of [C].
        extra_keys: add keys an importer must ignore (see EXTRA_KEYS).

    Returns:
        Dict from checkpoint key (no `module/` prefix, no `:0`) to a NumPy array,
        float32 except the int64 `global_step`, in forward-pass order.
    """
    multipliers, attention_after = _architecture(resolution)
    maker = TensorMaker([resolution, seed], raw_twins, n_u, EMA_SUFFIX)
    cond_dim = z_chunk + emb_dim
    maker.trained("linear/w", [num_classes, emb_dim], _EMBEDDING_STD)
    maker.spectral_norm(
        "Generator/G_Z/G_linear",
        [z_chunk, 4 * 4 * multipliers[0] * ch],
        bias=True,
        bias_std=_LINEAR_BIAS_STD,
    )
    for index, (c_in, c_out) in enumerate(zip(multipliers[:-1], multipliers[1:])):
        c_in, c_out = c_in * ch, c_out * ch
        scope = "Generator/" + block_name(index)
        for suffix, channels in (("", c_in), ("_1", c_out)):
            for param in ("gamma", "beta"):
                maker.spectral_norm(
                    "%s/HyperBN%s/%s" % (scope, suffix, param), [cond_dim, channels], bias=False
                )
            maker.statistics("%s/CrossReplicaBN%s" % (scope, suffix), channels)
        maker.spectral_norm(scope + "/conv0", [3, 3, c_in, c_out], bias=True)
        maker.spectral_norm(scope + "/conv1", [3, 3, c_out, c_out], bias=True)
        maker.spectral_norm(scope + "/conv_sc", [1, 1, c_in, c_out], bias=True)
        if index == attention_after:
            maker.attention(c_out)
    channels = multipliers[-1] * ch
    maker.final_bn(
        "Generator/ScaledCrossReplicaBN",
        ("gamma", "beta"),
        "Generator/ScaledCrossReplicaBNbn",
        channels,
        final_bn_4d,
    )
    maker.spectral_norm("Generator/conv_2d", [3, 3, channels, 3], bias=True)
    if extra_keys:
        maker.extra_keys()
    return maker.tensors


class TensorMaker:
    """Draws a fake module's tensors, key by key, into `tensors` (in call order).

    Two streams: what the forward pass reads (EMA tensors, u0, statistics) comes from
    `main`, so it is the same for every `raw_twins` / `n_u` / extra-keys variant; raw
    twins, u1/u2 and extra keys come from `other`.
    """

    def __init__(self, seed_parts, raw_twins=True, n_u=3, suffix=EMA_SUFFIX):
        if not 1 <= n_u <= 3:
            raise ValueError("n_u must be 1, 2 or 3, got %r" % n_u)
        self.main = np.random.default_rng([*seed_parts, 0])
        self.other = np.random.default_rng([*seed_parts, 1])
        self.raw_twins = raw_twins
        self.n_u = n_u
        self.suffix = suffix
        self.tensors = {}

    def normal(self, shape, std, mean=0.0, rng=None):
        rng = rng or self.main
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    def trained(self, key, shape, std, mean=0.0):
        """The EMA tensor (and its raw twin, drawn independently) of a trained weight."""
        self.tensors[key + self.suffix] = self.normal(shape, std, mean)
        if self.raw_twins:
            self.tensors[key] = self.normal(shape, std, mean, rng=self.other)

    def spectral_norm(self, scope, shape, bias, bias_std=_BIAS_STD):
        self.trained(scope + "/w", shape, _W_STD)
        if bias:
            self.trained(scope + "/b", shape[-1:], bias_std)
        for i in range(self.n_u):
            rng = self.other if i else self.main
            self.tensors["%s/u%d" % (scope, i)] = self.normal([1, shape[-1]], 1.0, rng=rng)

    def statistics(self, scope, channels):
        self.tensors[scope + "/accumulated_mean"] = self.normal([channels], _MEAN_STD)
        var = self.main.uniform(0.5, 1.5, [channels]).astype(np.float32)
        self.tensors[scope + "/accumulated_var"] = var
        self.tensors[scope + "/accumulation_counter"] = np.array(COUNTER_VALUE, np.float32)

    def attention(self, channels):
        if channels % 8:
            raise ValueError("attention width %d is not divisible by 8; increase ch" % channels)
        for name, shape in (
            ("theta", [1, 1, channels, channels // 8]),
            ("phi", [1, 1, channels, channels // 8]),
            ("g", [1, 1, channels, channels // 2]),
            ("o_conv", [1, 1, channels // 2, channels]),
        ):
            self.spectral_norm("Generator/attention/" + name, shape, bias=False)
        gamma = "Generator/attention/gamma"
        self.tensors[gamma + self.suffix] = np.array([EMA_ATTENTION_GAMMA], np.float32)
        if self.raw_twins:
            self.tensors[gamma] = np.array([RAW_ATTENTION_GAMMA], np.float32)

    def final_bn(self, affine_scope, names, stats_scope, channels, four_d=True):
        """The final BN's gain (about 1) and bias, stored [1, 1, 1, C] or [C], and stats."""
        shape = [1, 1, 1, channels] if four_d else [channels]
        self.trained("%s/%s" % (affine_scope, names[0]), shape, _BN_AFFINE_STD, mean=1.0)
        self.trained("%s/%s" % (affine_scope, names[1]), shape, _BN_AFFINE_STD)
        self.statistics(stats_scope, channels)

    def extra_keys(self):
        self.tensors["global_step"] = np.array(123456, np.int64)
        self.tensors["Generator/some_unknown_thing"] = self.normal([2], 1.0, rng=self.other)


def _infer_resolution(tensors):
    """Output resolution, 4 * 2**(number of GBlocks), of a tensors dict."""
    n_blocks = 0
    while ("Generator/%s/conv0/w%s" % (block_name(n_blocks), EMA_SUFFIX)) in tensors:
        n_blocks += 1
    return 4 * 2**n_blocks


# ---------------------------------------------------------------------------
# float64 NumPy reference (docs/tfhub_layout.md §1, §3, §4)
# ---------------------------------------------------------------------------


def _np_spectral_norm(tensors, scope):
    """W / sigma with one power iteration from the stored u0 (section 4)."""
    w = tensors[scope + "/w" + EMA_SUFFIX].astype(np.float64)
    u0 = tensors[scope + "/u0"].astype(np.float64)
    m = w.reshape(-1, w.shape[-1])
    v = u0 @ m.T
    v_hat = v / np.sqrt(np.sum(v**2) + SN_EPS)
    u = v_hat @ m
    u_hat = u / np.sqrt(np.sum(u**2) + SN_EPS)
    sigma = ((v_hat @ m) @ u_hat.T).item()
    return w / sigma


def _np_conv(x, w, bias=None):
    """Stride-1 SAME convolution of NHWC `x` with an HWIO kernel of odd size."""
    kh, kw = w.shape[:2]
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[3],))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i : i + height, j : j + width, :] @ w[i, j]
    return out if bias is None else out + bias


def _np_sn_conv(tensors, scope, x, bias=True):
    b = tensors[scope + "/b" + EMA_SUFFIX].astype(np.float64) if bias else None
    return _np_conv(x, _np_spectral_norm(tensors, scope), b)


def _np_batch_norm(tensors, stats_scope, x, gain, bias):
    mean = tensors[stats_scope + "/accumulated_mean"].astype(np.float64)
    var = tensors[stats_scope + "/accumulated_var"].astype(np.float64)
    return (x - mean) / np.sqrt(var + BN_EPS) * gain + bias


def _np_conditional_bn(tensors, block, suffix, x, cond):
    hyper = "Generator/%s/HyperBN%s/" % (block, suffix)
    gain = 1.0 + cond @ _np_spectral_norm(tensors, hyper + "gamma")
    bias = cond @ _np_spectral_norm(tensors, hyper + "beta")
    return _np_batch_norm(
        tensors,
        "Generator/%s/CrossReplicaBN%s" % (block, suffix),
        x,
        gain[:, None, None, :],
        bias[:, None, None, :],
    )


def _np_upsample(x):
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def _np_max_pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _np_attention(tensors, x, query_chunk=2048):
    scope = "Generator/attention/"
    b, h, w, c = x.shape

    def project(name):
        return x @ _np_spectral_norm(tensors, scope + name)[0, 0]

    theta = project("theta").reshape(b, h * w, -1)
    phi = _np_max_pool(project("phi")).reshape(b, h * w // 4, -1)
    g = _np_max_pool(project("g")).reshape(b, h * w // 4, -1)
    o = np.empty((b, h * w, g.shape[-1]))
    for start in range(0, h * w, query_chunk):  # bounds memory at 256x256
        logits = theta[:, start : start + query_chunk] @ phi.transpose(0, 2, 1)
        logits -= logits.max(axis=-1, keepdims=True)
        att = np.exp(logits)
        att /= att.sum(axis=-1, keepdims=True)
        o[:, start : start + query_chunk] = att @ g
    o = o.reshape(b, h, w, -1) @ _np_spectral_norm(tensors, scope + "o_conv")[0, 0]
    gamma = tensors[scope + "gamma" + EMA_SUFFIX].astype(np.float64).item()
    return x + gamma * o


def reference_forward(tensors, z, y):
    """Float64 NumPy forward pass of the generator at truncation 1.0.

    Args:
        tensors: dict from `make_biggan_tensors` (only EMA tensors, `u0` and
            accumulated statistics are read).
        z: [B, (n_blocks + 1) * z_chunk] latent.
        y: [B, num_classes] one-hot (or mixed) class vector.

    Returns:
        float64 array [B, R, R, 3] in [-1, 1].
    """
    multipliers, attention_after = _architecture(_infer_resolution(tensors))
    n_blocks = len(multipliers) - 1
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    emb = y @ tensors["linear/w" + EMA_SUFFIX].astype(np.float64)
    chunks = np.split(z, n_blocks + 1, axis=1)
    linear = "Generator/G_Z/G_linear"
    h = chunks[0] @ _np_spectral_norm(tensors, linear)
    h = h + tensors[linear + "/b" + EMA_SUFFIX]
    h = h.reshape(z.shape[0], 4, 4, -1)
    for index in range(n_blocks):
        block = block_name(index)
        scope = "Generator/" + block
        cond = np.concatenate([chunks[index + 1], emb], axis=1)
        a = np.maximum(_np_conditional_bn(tensors, block, "", h, cond), 0.0)
        a = _np_sn_conv(tensors, scope + "/conv0", _np_upsample(a))
        a = np.maximum(_np_conditional_bn(tensors, block, "_1", a, cond), 0.0)
        a = _np_sn_conv(tensors, scope + "/conv1", a)
        h = a + _np_sn_conv(tensors, scope + "/conv_sc", _np_upsample(h))
        if index == attention_after:
            h = _np_attention(tensors, h)
    gamma = tensors["Generator/ScaledCrossReplicaBN/gamma" + EMA_SUFFIX].reshape(-1)
    beta = tensors["Generator/ScaledCrossReplicaBN/beta" + EMA_SUFFIX].reshape(-1)
    h = _np_batch_norm(
        tensors,
        "Generator/ScaledCrossReplicaBNbn",
        h,
        gamma.astype(np.float64),
        beta.astype(np.float64),
    )
    return np.tanh(_np_sn_conv(tensors, "Generator/conv_2d", np.maximum(h, 0.0)))


# ---------------------------------------------------------------------------
# Genuine TF1 Hub module (raw float32 TF ops, graph mode)
# ---------------------------------------------------------------------------


class GraphOps:
    """Raw-TF float32 ops of the hub graph (docs/tfhub_layout.md §1.3, §3, §4) reading
    module variables through `read(key)`; `suffix` is the family's EMA suffix."""

    def __init__(self, read, suffix=EMA_SUFFIX):
        self.read = read
        self.suffix = suffix

    def ema(self, key):
        return self.read(key + self.suffix)

    def spectral_norm(self, scope):
        w = self.ema(scope + "/w")
        m = tf.reshape(w, [-1, w.shape[-1]])
        v = tf.matmul(self.read(scope + "/u0"), m, transpose_b=True)
        v = v * tf.math.rsqrt(tf.reduce_sum(tf.square(v)) + SN_EPS)
        u = tf.matmul(v, m)
        u_hat = u * tf.math.rsqrt(tf.reduce_sum(tf.square(u)) + SN_EPS)
        sigma = tf.matmul(tf.matmul(v, m), u_hat, transpose_b=True)
        return w / tf.reshape(sigma, [])

    def linear(self, scope, x):
        return tf.matmul(x, self.spectral_norm(scope)) + self.ema(scope + "/b")

    def conv(self, scope, x, bias=True):
        out = tf.nn.conv2d(x, self.spectral_norm(scope), strides=1, padding="SAME")
        return out + self.ema(scope + "/b") if bias else out

    def batch_norm(self, stats_scope, x, gain, bias):
        return tf.nn.batch_normalization(
            x,
            self.read(stats_scope + "/accumulated_mean"),
            self.read(stats_scope + "/accumulated_var"),
            offset=bias,
            scale=gain,
            variance_epsilon=BN_EPS,
        )

    def conditional_bn(self, projections, stats_scope, x, cond):
        """BN with gain 1 + c W_gain, bias c W_bias; `projections` = (gain, bias) scopes."""
        gain = 1.0 + tf.matmul(cond, self.spectral_norm(projections[0]))
        bias = tf.matmul(cond, self.spectral_norm(projections[1]))
        return self.batch_norm(stats_scope, x, gain[:, None, None, :], bias[:, None, None, :])

    def final_bn(self, affine_scope, names, stats_scope, x):
        """The unconditional final BN; its affine may be stored [C] or [1, 1, 1, C]."""
        gain, bias = (tf.reshape(self.ema(affine_scope + "/" + n), [-1]) for n in names)
        return self.batch_norm(stats_scope, x, gain, bias)

    @staticmethod
    def upsample(x):  # four channel copies, then depth_to_space: nearest x2
        return tf.nn.depth_to_space(tf.concat([x] * 4, axis=-1), 2)

    def attention(self, x):
        scope = "Generator/attention/"
        _, height, width, _ = x.shape.as_list()
        batch = tf.shape(x)[0]
        theta = self.conv(scope + "theta", x, bias=False)
        phi = tf.nn.max_pool2d(self.conv(scope + "phi", x, bias=False), 2, 2, "VALID")
        g = tf.nn.max_pool2d(self.conv(scope + "g", x, bias=False), 2, 2, "VALID")
        theta = tf.reshape(theta, [batch, height * width, theta.shape[-1]])
        phi = tf.reshape(phi, [batch, height * width // 4, phi.shape[-1]])
        g = tf.reshape(g, [batch, height * width // 4, g.shape[-1]])
        att = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True), axis=-1)
        o = tf.reshape(tf.matmul(att, g), [batch, height, width, g.shape[-1]])
        o = self.conv(scope + "o_conv", o, bias=False)
        return x + self.ema(scope + "gamma")[0] * o


def _tf_generator(read, z, y, resolution):
    """Graph-mode forward pass; `read(key)` returns the variable's value."""
    multipliers, attention_after = _architecture(resolution)
    n_blocks = len(multipliers) - 1
    ops = GraphOps(read)

    def conditional_bn(block, suffix, x, cond):
        hyper = "Generator/%s/HyperBN%s/" % (block, suffix)
        stats = "Generator/%s/CrossReplicaBN%s" % (block, suffix)
        return ops.conditional_bn((hyper + "gamma", hyper + "beta"), stats, x, cond)

    emb = tf.matmul(y, ops.ema("linear/w"))
    chunks = tf.split(z, n_blocks + 1, axis=1)
    h = ops.linear("Generator/G_Z/G_linear", chunks[0])
    h = tf.reshape(h, [-1, 4, 4, h.shape[-1] // 16])
    for index in range(n_blocks):
        block = block_name(index)
        scope = "Generator/" + block
        cond = tf.concat([chunks[index + 1], emb], axis=1)
        a = tf.nn.relu(conditional_bn(block, "", h, cond))
        a = ops.conv(scope + "/conv0", ops.upsample(a))
        a = tf.nn.relu(conditional_bn(block, "_1", a, cond))
        a = ops.conv(scope + "/conv1", a)
        h = a + ops.conv(scope + "/conv_sc", ops.upsample(h))
        if index == attention_after:
            h = ops.attention(h)
    h = ops.final_bn(
        "Generator/ScaledCrossReplicaBN", ("gamma", "beta"), "Generator/ScaledCrossReplicaBNbn", h
    )
    return tf.tanh(ops.conv("Generator/conv_2d", tf.nn.relu(h)))


def build_tf1_hub_module(export_dir, tensors):
    """Exports `tensors` as a TF1 Hub format module with a `default` signature.

    The module has one variable per key of `tensors`, named exactly by the key,
    and one signature `default` with inputs `z` [None, dim_z], `y`
    [None, num_classes], `truncation` [] (all float32; `truncation` is accepted
    and ignored, i.e. the graph is the truncation-1.0 generator) and output
    `default` [None, R, R, 3]. The graph does not write `u0` back.

    Args:
        export_dir: directory to create; must not exist or be empty.
        tensors: dict from `make_biggan_tensors`.

    Raises:
        AssertionError: the exported checkpoint's keys or values differ from
            `tensors`.
    """
    resolution = _infer_resolution(tensors)
    n_chunks = len(_architecture(resolution)[0])  # n_blocks + 1
    dim_z = n_chunks * tensors["Generator/G_Z/G_linear/w" + EMA_SUFFIX].shape[0]
    num_classes = tensors["linear/w" + EMA_SUFFIX].shape[0]
    export_module(
        export_dir,
        tensors,
        dim_z,
        num_classes,
        lambda read, z, y: _tf_generator(read, z, y, resolution),
    )


def export_module(export_dir, tensors, dim_z, num_classes, graph_fn, inputs=None):
    """`build_tf1_hub_module` for any graph: `graph_fn(read, z, y)` -> output, where
    `read(key)` gives a module variable's value.

    With `inputs` = `(z, y)` NumPy arrays, also returns the module's `default` output
    for them (truncation 1.0), computed in the session that exports the module (cheaper
    than loading the export again: the same graph and variable values).
    """

    def module_fn():
        variables = {}
        for key, value in tensors.items():
            # Zeros here; the values are loaded into the instantiated module
            # below, so the graph does not embed every tensor as a constant.
            variables[key] = tf.compat.v1.get_variable(
                key,
                shape=value.shape,
                dtype=tf.as_dtype(value.dtype),
                initializer=tf.compat.v1.zeros_initializer(),
                trainable=value.dtype != np.int64,
            )
        z = tf.compat.v1.placeholder(tf.float32, [None, dim_z], name="z")
        y = tf.compat.v1.placeholder(tf.float32, [None, num_classes], name="y")
        truncation = tf.compat.v1.placeholder(tf.float32, [], name="truncation")
        output = graph_fn(lambda key: tf.convert_to_tensor(variables[key]), z, y)
        hub.add_signature(
            inputs={"z": z, "y": y, "truncation": truncation}, outputs={"default": output}
        )

    with tf.Graph().as_default():
        spec = hub.create_module_spec(module_fn, tags_and_args=[(set(), {})])
        module = hub.Module(spec)
        feeds, assigns = {}, []
        for key, value in tensors.items():
            variable = module.variable_map[key]
            placeholder = tf.compat.v1.placeholder(variable.dtype.base_dtype, value.shape)
            feeds[placeholder] = value
            assigns.append(variable.assign(placeholder))
        output = None
        if inputs is not None:
            z, y = (tf.constant(v, tf.float32) for v in inputs)
            output = module(dict(z=z, y=y, truncation=tf.constant(1.0)))
        with tf.compat.v1.Session() as session:
            session.run(assigns, feeds)  # one run: every variable of the module
            module.export(export_dir, session)
            if output is not None:
                output = session.run(output)

    reader = tf.train.load_checkpoint(os.path.join(export_dir, "variables", "variables"))
    stored = reader.get_variable_to_shape_map()
    if set(stored) != set(tensors):
        raise AssertionError(
            "checkpoint keys differ: missing %s, unexpected %s"
            % (sorted(set(tensors) - set(stored)), sorted(set(stored) - set(tensors)))
        )
    for key, value in tensors.items():
        np.testing.assert_array_equal(reader.get_tensor(key), value, err_msg=key)
    return output


def write_checkpoint_only_module(export_dir, tensors):
    """Writes only `<export_dir>/variables/variables` holding `tensors` (eager).

    Uses `tf.raw_ops.SaveV2`, so any key, shape or dtype can be written: meant for
    malformed modules (a missing key, a wrong shape) that no graph could be built
    from.

    Args:
        export_dir: module directory; created if needed.
        tensors: dict from key to NumPy array.
    """
    if not tf.executing_eagerly():
        raise RuntimeError("write_checkpoint_only_module needs eager execution")
    variables_dir = os.path.join(export_dir, "variables")
    os.makedirs(variables_dir, exist_ok=True)
    keys = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=os.path.join(variables_dir, "variables"),
        tensor_names=keys,
        shape_and_slices=[""] * len(keys),
        tensors=[tf.constant(tensors[key]) for key in keys],
    )
