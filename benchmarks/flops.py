r"""Analytic FLOP counts of BigGAN G and D and of one transfer training iteration.

  python -m benchmarks.flops                        (the TF-Hub architectures, batch 8)
  python -m benchmarks.throughput --preset=demo     (the counts with measured speeds)

A count is the sum of the model's matrix products, 2 FLOPs per multiply-add, per image:
every `SNConv2D` (2 * H_out * W_out * kh * kw * Cin * Cout), every `SNDense` and plain
Keras `Dense` (2 * in * out), the two matmuls of self-attention (theta . phi^T and
attention . g) and the per-example matmuls of the knowledge-propagation BN (y R, A(y) P,
z W^z). Elementwise work is ignored: batch norm, ReLU, tanh, softmax, pooling, upsampling,
bias adds, residual sums, and the spectral-norm power iteration, which runs once per call
rather than per image (about 4 FLOPs per weight per call: 0.3 GFLOP a call for
biggan-128's G, under 0.1% of a batch-8 forward pass).

The counts are of this implementation: `biggan.GBlock` applies its 1x1 shortcut conv
before upsampling (it commutes with nearest upsampling), where the TF-Hub graph applies
it after, at 4x the cost: biggan-128's G forward is 40.2 GFLOP/image here, 42.2 there.

Two ways to get the products of a model:

* `traced_products(model)`: one eager call on a batch of one with every product's layer
  wrapped to record its input shape (nothing of the model is changed or updated). Needs a
  built model (`build_weights()`); each product keeps the variables it multiplies by, so
  the weight-gradient cost can follow the variables a method really trains.
* `analytic_products(model)`: the same list from the architecture attributes alone
  (`G_CHANNELS`/`D_CHANNELS`, widths, attention place), without building anything, so it
  is instant even for biggan-512. The tests check that both agree.

`iteration_flops` turns them into the cost of one training iteration (one D and one G
update, as `trainer.Trainer.train_step` runs it).
"""

import dataclasses
import math
from typing import Callable, Tuple

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import layers
from tf_cgan_transfer import miner as miner_lib

# Product kinds. "attention" multiplies two activations (no weights); "kp_bn" is every
# product of a knowledge-propagation BN (A, P, W^z, R); "miner" every product of a
# minegan generator's miner.
KINDS = ("conv", "dense", "attention", "kp_bn", "miner")


@dataclasses.dataclass(frozen=True)
class Product:
    """One matrix product of a forward pass.

    Attributes:
      name: where it sits, e.g. "GBlock_2/conv0" or "attention/theta_phi".
      kind: one of KINDS.
      flops: forward FLOPs per image.
      variables: the weights it multiplies by (traced products only; empty for
        attention matmuls and for analytic products).
    """

    name: str
    kind: str
    flops: int
    variables: Tuple[tf.Variable, ...] = dataclasses.field(default=(), compare=False)


def total(products):
    """Forward FLOPs per image of a list of products."""
    return sum(p.flops for p in products)


# ---- Products from the architecture -------------------------------------------------


def _conv(name, size, k, cin, cout):
    return Product(name, "conv", 2 * size * size * k * k * cin * cout)


def _dense(name, cin, cout, kind="dense"):
    return Product(name, kind, 2 * cin * cout)


def _attention(name, size, c):
    """The four 1x1 projections and the two matmuls of `layers.SelfAttention` at size^2."""
    return [
        _conv(f"{name}/theta", size, 1, c, c // 8),
        _conv(f"{name}/phi", size, 1, c, c // 8),
        _conv(f"{name}/g", size, 1, c, c // 2),
        *_attention_matmuls(name, size, size, c),
        _conv(f"{name}/o_conv", size, 1, c // 2, c),
    ]


def _attention_matmuls(name, height, width, c):
    hw, pooled = height * width, (height // 2) * (width // 2)
    return [
        Product(f"{name}/theta_phi", "attention", 2 * hw * pooled * (c // 8)),
        Product(f"{name}/attention_g", "attention", 2 * hw * pooled * (c // 2)),
    ]


def _conditional_bn(generator, name, channels):
    """Products of one conditional BN of `generator` on `channels` channels."""
    chunk = generator.dim_z // (generator.num_blocks + 1) if generator.hierarchical_z else 0
    if generator.conditioning in ("biggan", "minegan"):  # minegan: BigGAN's BNs, K classes
        if generator.shared_dim:  # SN projections of [z chunk ; shared embedding]
            rows = chunk + generator.shared_dim
        else:  # per-class tables, applied as a one-hot (or mixture) matmul
            rows = _label_width(generator)
        return [_dense(f"{name}/gamma", rows, channels), _dense(f"{name}/beta", rows, channels)]
    k, n = generator.num_source_classes or 0, generator.num_classes
    products = []
    if generator.conditioning == "kp_bn":
        products += [
            _dense(f"{name}/A_gamma", n, k, "kp_bn"),
            _dense(f"{name}/A_beta", n, k, "kp_bn"),
        ]
        products += [_dense(f"{name}/P_gamma", k, channels, "kp_bn")]
        products += [_dense(f"{name}/P_beta", k, channels, "kp_bn")]
    if chunk:
        products += [_dense(f"{name}/Wz_gamma", chunk, channels, "kp_bn")]
        products += [_dense(f"{name}/Wz_beta", chunk, channels, "kp_bn")]
    products += [_dense(f"{name}/R_gamma", n, channels, "kp_bn")]
    products += [_dense(f"{name}/R_beta", n, channels, "kp_bn")]
    return products


def _label_width(generator):
    """Width of the label the BNs or the shared embedding see: K old classes for minegan
    (its miner's mixture), else the generator's classes."""
    if generator.conditioning == "minegan":
        return generator.num_source_classes
    return generator.num_classes


def _miner_products(generator):
    """`miner.Miner`'s matmuls: E, W_0, W_1, W_out and the mixture softmax(L)."""
    n, k, h, dz = (
        generator.num_classes,
        generator.num_source_classes,
        generator.miner_hidden_dim,
        generator.dim_z,
    )
    return [
        _dense("miner/class_embedding", n, h, "miner"),
        _dense("miner/kernel_0", dz, h, "miner"),
        _dense("miner/kernel_1", h, h, "miner"),
        _dense("miner/kernel_out", h, dz, "miner"),
        _dense("miner/class_logits", n, k, "miner"),
    ]


def _generator_products(generator):
    mult = biggan.G_CHANNELS[generator.resolution]
    ch = generator.ch
    chunk = generator.dim_z // (generator.num_blocks + 1) if generator.hierarchical_z else 0
    products = _miner_products(generator) if generator.conditioning == "minegan" else []
    if generator.shared_dim:
        products.append(_dense("linear", _label_width(generator), generator.shared_dim))
    products.append(_dense("G_linear", chunk or generator.dim_z, 16 * ch * mult[0]))
    for i in range(generator.num_blocks):
        name, size = biggan.block_name("GBlock", i), 4 * 2**i  # input side of block i
        cin, cout = ch * mult[i], ch * mult[i + 1]
        products += _conditional_bn(generator, f"{name}/HyperBN", cin)
        products.append(_conv(f"{name}/conv0", 2 * size, 3, cin, cout))
        products += _conditional_bn(generator, f"{name}/HyperBN_1", cout)
        products.append(_conv(f"{name}/conv1", 2 * size, 3, cout, cout))
        products.append(_conv(f"{name}/conv_sc", size, 1, cin, cout))
        if i == generator.attention_index:
            products += _attention("attention", 2 * size, cout)
    products.append(_conv("conv_2d", generator.resolution, 3, ch * mult[-1], 3))
    return products


def _discriminator_products(discriminator):
    mult, downsample = discriminator_lib.D_CHANNELS[discriminator.resolution]
    ch, size, cin = discriminator.ch, discriminator.resolution, 3
    products = []
    for i, (m, down) in enumerate(zip(mult, downsample)):
        name, cout = biggan.block_name("DBlock", i), ch * m
        products.append(_conv(f"{name}/conv1", size, 3, cin, cout))
        products.append(_conv(f"{name}/conv2", size, 3, cout, cout))
        if cin != cout or down:
            # Block 0 pools before its shortcut conv, the others after (discriminator_lib.DBlock).
            sc_size = size // 2 if i == 0 and down else size
            products.append(_conv(f"{name}/conv_sc", sc_size, 1, cin, cout))
        size, cin = (size // 2 if down else size), cout
        if i == discriminator.attention_index:
            products += _attention("attention", size, cout)
    products.append(_dense("linear", cin, 1))
    products.append(_dense("embedding", discriminator.num_classes, cin))
    return products


def analytic_products(model):
    """The products of a `biggan.Generator` or `Discriminator` from its architecture.

    Works on unbuilt models (only constructor attributes are read).
    """
    if isinstance(model, biggan.Generator):
        return _generator_products(model)
    if isinstance(model, discriminator_lib.Discriminator):
        return _discriminator_products(model)
    raise TypeError(f"Expected a biggan.Generator or Discriminator, got {type(model).__name__}.")


# ---- Products recorded from one call ------------------------------------------------

_RECORDED = (layers.SNConv2D, layers.SNDense, tf.keras.layers.Dense, layers.SelfAttention)


def _scope(variable, model):
    """ "GBlock/conv0" from the variable "Generator/GBlock/conv0/kernel:0"."""
    parts = variable.name.split(":")[0].split("/")
    if parts[0] == model.name:
        parts = parts[1:]
    return "/".join(parts[:-1])


def _example_inputs(model):
    if isinstance(model, biggan.Generator):
        return tf.zeros([1, model.dim_z]), tf.zeros([1], tf.int32)
    if isinstance(model, discriminator_lib.Discriminator):
        r = model.resolution
        return tf.zeros([1, r, r, 3]), tf.zeros([1], tf.int32)
    raise TypeError(f"Expected a biggan.Generator or Discriminator, got {type(model).__name__}.")


def traced_products(model):
    """The products of a built `biggan.Generator`/`Discriminator`, from one eager call.

    The call is a batch of one with `training=False` (no spectral-norm or statistics
    update). Each recorded layer's `call` is wrapped on the instance for the duration of
    the call and restored afterwards.
    """
    if not model.built:
        raise ValueError(f"{model.name} is not built: call build_weights() first.")
    calls = []  # (layer, input shape), in call order
    wrapped = [m for m in model.submodules if isinstance(m, _RECORDED)]

    def wrap(layer):
        original = layer.call

        def call(inputs, *args, **kwargs):
            calls.append((layer, inputs.shape))
            return original(inputs, *args, **kwargs)

        object.__setattr__(layer, "call", call)

    mixtures = {
        id(m)
        for bn in model.submodules
        if isinstance(bn, conditional_bn.KnowledgePropagationBatchNorm) and bn.use_mixture
        for m in (bn.A_gamma, bn.A_beta)
    }
    try:
        for layer in wrapped:
            wrap(layer)
        model(_example_inputs(model), training=False)
    finally:
        for layer in wrapped:
            object.__delattr__(layer, "call")  # back to the class's method
    products = []
    for layer, shape in calls:
        if isinstance(layer, layers.SelfAttention):
            name = _scope(layer.gamma, model)
            products += _attention_matmuls(name, int(shape[1]), int(shape[2]), int(shape[-1]))
            continue
        kernel = layer.kernel
        per_position = math.prod(int(d) for d in shape[1:-1])  # H*W for convs, 1 for dense
        if isinstance(layer, layers.SNConv2D):
            kind = "conv"  # stride 1, SAME: the output has the input's H x W
        else:
            kind = "kp_bn" if id(layer) in mixtures else "dense"
        flops = 2 * per_position * math.prod(int(d) for d in kernel.shape)
        products.append(Product(_scope(kernel, model), kind, flops, (kernel,)))
    for layer in model.submodules:  # the miner's plain matmuls (no Keras sublayers)
        if isinstance(layer, miner_lib.Miner):
            for name in ("class_embedding", "kernel_0", "kernel_1", "kernel_out", "class_logits"):
                weight = getattr(layer, name)
                flops = 2 * int(weight.shape[0]) * int(weight.shape[1])
                products.append(Product(f"miner/{name}", "miner", flops, (weight,)))
    for bn in model.submodules:
        if isinstance(bn, conditional_bn.KnowledgePropagationBatchNorm):
            # Per-example [B, rows] x [rows, C] matmuls of gain_and_bias.
            for weight in (bn.P_gamma, bn.P_beta, bn.Wz_gamma, bn.Wz_beta, bn.R_gamma, bn.R_beta):
                if weight is not None:
                    flops = 2 * int(weight.shape[0]) * int(weight.shape[1])
                    name = _scope(weight, model) + "/" + weight.name.split(":")[0].split("/")[-1]
                    products.append(Product(name, "kp_bn", flops, (weight,)))
    return products


def products(model):
    """`traced_products` of a built model, else `analytic_products`."""
    return traced_products(model) if model.built else analytic_products(model)


# ---- Training iteration -------------------------------------------------------------


def trains_everything(product):
    """Trainability predicate: every product's weights are trained (finetune, scratch)."""
    del product
    return True


def trainable_in(variables):
    """Predicate: a (traced) product is trained when it multiplies by one of `variables`."""
    ids = {id(v) for v in variables}
    return lambda product: any(id(v) in ids for v in product.variables)


def analytic_g_trainable(method, stage=None):
    """Predicate for analytic G products: which weights a transfer method trains in G.

    kp_bn's bn stage trains only the knowledge-propagation BNs (P, W^z, A, R), minegan's
    miner stage only the miner; finetune, scratch and minegan's ft stage train all of G. Other methods need traced products and `trainable_in`.
    """
    if method == "kp_bn" and (stage or "bn") == "bn":
        return lambda product: product.kind == "kp_bn"
    if method == "minegan" and (stage or "miner") == "miner":
        return lambda product: product.kind == "miner"
    if method == "minegan":
        return trains_everything
    if method in ("finetune", "scratch", "freeze_d"):
        return trains_everything
    raise ValueError(
        f"No analytic trainable set for method {method!r} stage {stage!r}: build the models "
        "and use trainable_in(models.g_variables)."
    )


def backward_flops(products, trainable: Callable[[Product], bool] = trains_everything):
    """`(input-gradient FLOPs, weight-gradient FLOPs)` per image of a backward pass.

    Input gradients go through every product (as many FLOPs as its forward); an attention
    matmul multiplies two activations, so both of its gradients cost that much again.
    Weight gradients (another forward's worth) only for products with trained weights.
    """
    inputs = sum(p.flops * (2 if p.kind == "attention" else 1) for p in products)
    weights = sum(p.flops for p in products if p.kind != "attention" and trainable(p))
    return inputs, weights


def iteration_flops(
    g_products,
    d_products,
    batch_size,
    g_trainable=trains_everything,
    d_trainable=trains_everything,
    num_d_steps=1,
):
    """FLOPs of one training iteration: `num_d_steps` D updates and one G update.

    D update (batch B): G forward on B, D forward on B real + B fake, D backward on 2B
    (input and weight gradients; the fake images are constants to it). G update: G and D
    forward on B, D backward with input gradients only, G backward (input gradients
    everywhere, weight gradients for the products `g_trainable` says are trained).

    Returns:
      A dict of FLOPs: `g_forward` and `d_forward` (per image), `d_step`, `g_step` and
      `iteration` (for the batch), `iteration_per_image`.
    """
    g_fwd, d_fwd = total(g_products), total(d_products)
    d_in, d_w = backward_flops(d_products, d_trainable)
    g_in, g_w = backward_flops(g_products, g_trainable)
    b = batch_size
    d_step = b * g_fwd + 2 * b * d_fwd + 2 * b * (d_in + d_w)
    g_step = b * g_fwd + b * d_fwd + b * d_in + b * (g_in + g_w)
    iteration = num_d_steps * d_step + g_step
    return dict(
        g_forward=g_fwd,
        d_forward=d_fwd,
        d_step=d_step,
        g_step=g_step,
        iteration=iteration,
        iteration_per_image=iteration / b,
    )


def main():
    """Prints G/D forward and iteration FLOPs of the hub architectures (nothing is built)."""
    batch, new_classes = 8, 5
    print(
        f"GFLOP: forward per image, iteration per batch of {batch}, {new_classes} new classes\n\n"
        "| resolution | G forward | D forward | kp_bn (bn) iteration | finetune iteration |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for resolution in (128, 256, 512):
        d = analytic_products(discriminator_lib.Discriminator(resolution, num_classes=new_classes))
        kp_bn = biggan.Generator(
            resolution, num_classes=new_classes, conditioning="kp_bn", num_source_classes=1000
        )
        finetune = biggan.Generator(resolution, num_classes=new_classes)
        kp_cost = iteration_flops(
            analytic_products(kp_bn), d, batch, g_trainable=analytic_g_trainable("kp_bn")
        )
        ft_cost = iteration_flops(analytic_products(finetune), d, batch)
        print(
            f"| {resolution} | {ft_cost['g_forward'] / 1e9:.2f} | {kp_cost['d_forward'] / 1e9:.2f} "
            f"| {kp_cost['iteration'] / 1e9:,.0f} | {ft_cost['iteration'] / 1e9:,.0f} |"
        )


if __name__ == "__main__":
    main()
