"""Miniature BigGAN-deep (biggan-deep-{128,256,512}/1) TF-Hub modules for offline tests.

The key grammar and the forward pass follow docs/tfhub_layout.md §1.2 and §5 (written
from the layout, not from `tf_cgan_transfer.biggan_deep`): `linear/w`,
`Generator/GenZ/G_linear`, per block `BatchNorm{,_1,_2,_3}/{scale,offset}/w` and
`conv{0,1,2,3}`, `Generator/attention` between `GBlock_7` and `GBlock_8`, the final
`Generator/BatchNorm/{scale,offset}` and `conv_to_rgb` (ch -> ch, of which the first
three channels are kept), every trained tensor under the `ema_0.9999` suffix. BN
statistics sit in the scope of their BN's scale/offset (the layout's best guess).

`build_tf1_hub_module` writes a genuine TF1 Hub module whose `default` signature runs
that forward pass in raw TF ops (`fake_biggan_module.GraphOps`), at truncation 1.0.

    tensors = fake_biggan_deep_module.make_deep_tensors(resolution=128)
    fake_biggan_deep_module.build_tf1_hub_module(module_dir, tensors)
"""

import tensorflow as tf

from tests import fake_biggan_module as fake

EMA_SUFFIX = "/ema_0.9999"
# resolution -> channel multipliers, input of block 0 ... output of the last block
# (layout §1.2). Odd blocks upsample; attention follows GBlock_7 (64x64) in all three.
_MULTIPLIERS = {
    128: (16, 16, 16, 16, 8, 8, 4, 4, 2, 2, 1),
    256: (16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 2, 2, 1),
    512: (16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 2, 2, 1, 1, 1),
}
ATTENTION_AFTER = 7
BN_SCOPES = ("BatchNorm", "BatchNorm_1", "BatchNorm_2", "BatchNorm_3")


def _block_widths(multipliers, ch):
    """`[(Cin, bottleneck, Cout)]` per block (bottleneck: Cin / 4)."""
    return [(ch * a, ch * a // 4, ch * b) for a, b in zip(multipliers[:-1], multipliers[1:])]


def make_deep_tensors(
    resolution=128,
    ch=4,
    num_classes=3,
    emb_dim=8,
    dim_z=8,
    seed=0,
    raw_twins=True,
    n_u=3,
    final_bn_4d=True,
    extra_keys=True,
):
    """Every checkpoint tensor of a tiny biggan-deep-`resolution`/1 generator.

    Arguments as `fake_biggan_module.make_biggan_tensors`, with `dim_z` the width of z
    (BigGAN-deep does not split it; the condition [z ; embedding] is dim_z + emb_dim
    wide). Attention at 64x64 needs ch x 2 (128) or ch x 4 (256, 512) divisible by 8.
    """
    multipliers = _MULTIPLIERS[resolution]
    maker = fake.TensorMaker([resolution, seed, 19], raw_twins, n_u, EMA_SUFFIX)
    cond_dim = dim_z + emb_dim
    maker.trained("linear/w", [num_classes, emb_dim], fake._EMBEDDING_STD)
    maker.spectral_norm(
        "Generator/GenZ/G_linear",
        [cond_dim, 16 * ch * multipliers[0]],
        bias=True,
        bias_std=fake._LINEAR_BIAS_STD,
    )
    for index, (c_in, m, c_out) in enumerate(_block_widths(multipliers, ch)):
        scope = "Generator/" + fake.block_name(index)
        for name, channels in zip(BN_SCOPES, (c_in, m, m, m)):
            for param in ("scale", "offset"):
                maker.spectral_norm(f"{scope}/{name}/{param}", [cond_dim, channels], bias=False)
            maker.statistics(f"{scope}/{name}", channels)
        for name, shape in (
            ("conv0", [1, 1, c_in, m]),
            ("conv1", [3, 3, m, m]),
            ("conv2", [3, 3, m, m]),
            ("conv3", [1, 1, m, c_out]),
        ):
            maker.spectral_norm(f"{scope}/{name}", shape, bias=True)
        if index == ATTENTION_AFTER:
            maker.attention(c_out)
    channels = ch * multipliers[-1]
    final = "Generator/BatchNorm"
    maker.final_bn(final, ("scale", "offset"), final, channels, final_bn_4d)
    maker.spectral_norm("Generator/conv_to_rgb", [3, 3, channels, channels], bias=True)
    if extra_keys:
        maker.extra_keys()
    return maker.tensors


def conv_parameters(k, cin, cout):
    return k * k * cin * cout + cout  # kernel and bias


def attention_parameters(c):
    return 2 * (c * c // 8) + 2 * (c * c // 2) + 1  # theta, phi, g, o_conv (no bias); gamma


def parameter_count(resolution, ch, num_classes=1000, dim_z=128, emb_dim=128):
    """The trainable parameters of the generator these rules describe: the sum of the EMA
    tensors' sizes, counted from the shape rules (no tensor is made)."""
    multipliers = _MULTIPLIERS[resolution]
    cond = dim_z + emb_dim
    total = num_classes * emb_dim + conv_parameters(1, cond, 16 * ch * multipliers[0])
    for index, (c_in, m, c_out) in enumerate(_block_widths(multipliers, ch)):
        total += conv_parameters(1, c_in, m) + 2 * conv_parameters(3, m, m)
        total += conv_parameters(1, m, c_out) + 2 * cond * (c_in + 3 * m)  # convs, BN maps
        if index == ATTENTION_AFTER:
            total += attention_parameters(c_out)
    last = ch * multipliers[-1]
    return total + 2 * last + conv_parameters(3, last, last)  # final BN affine, RGB conv


def _num_blocks(tensors):
    n = 0
    while f"Generator/{fake.block_name(n)}/conv0/w{EMA_SUFFIX}" in tensors:
        n += 1
    return n


def _tf_deep_generator(read, z, y, num_blocks):
    """The layout's BigGAN-deep forward pass (§5.2) in raw TF ops."""
    ops = fake.GraphOps(read, EMA_SUFFIX)
    cond = tf.concat([z, tf.matmul(y, ops.ema("linear/w"))], axis=1)  # z first
    h = ops.linear("Generator/GenZ/G_linear", cond)
    h = tf.reshape(h, [-1, 4, 4, h.shape[-1] // 16])
    for index in range(num_blocks):
        scope = "Generator/" + fake.block_name(index)

        def bn_relu(i, x):
            bn = f"{scope}/{BN_SCOPES[i]}"
            return tf.nn.relu(ops.conditional_bn((bn + "/scale", bn + "/offset"), bn, x, cond))

        up = ops.upsample if index % 2 else tf.identity
        a = ops.conv(scope + "/conv0", bn_relu(0, h))
        a = ops.conv(scope + "/conv1", up(bn_relu(1, a)))
        a = ops.conv(scope + "/conv2", bn_relu(2, a))
        a = ops.conv(scope + "/conv3", bn_relu(3, a))
        h = a + up(h[:, :, :, : a.shape[-1]])  # drop the channels the block does not keep
        if index == ATTENTION_AFTER:
            h = ops.attention(h)
    final = "Generator/BatchNorm"
    h = tf.nn.relu(ops.final_bn(final, ("scale", "offset"), final, h))
    return tf.tanh(ops.conv("Generator/conv_to_rgb", h)[:, :, :, :3])


def build_tf1_hub_module(export_dir, tensors, inputs=None):
    """Exports `tensors` (from `make_deep_tensors`) as a TF1 Hub module with the
    `default` signature `(z, y, truncation) -> [B, R, R, 3]` (see
    `fake_biggan_module.build_tf1_hub_module`). With `inputs` = `(z, y)`, returns the
    module's output for them (`fake_biggan_module.export_module`)."""
    num_classes, emb_dim = tensors["linear/w" + EMA_SUFFIX].shape
    dim_z = tensors["Generator/GenZ/G_linear/w" + EMA_SUFFIX].shape[0] - emb_dim
    num_blocks = _num_blocks(tensors)
    return fake.export_module(
        export_dir,
        tensors,
        dim_z,
        num_classes,
        lambda read, z, y: _tf_deep_generator(read, z, y, num_blocks),
        inputs,
    )
