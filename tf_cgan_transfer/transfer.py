"""Transfer a pretrained BigGAN to N new classes: the paper's method and its baselines.

`build(config, source=...)` turns a pretrained generator (a TF-Hub module or one of our
model directories) into the models of one method and stage (METHOD.md):

* `kp_bn`    knowledge propagation (the paper): each conditional BN becomes a
             `KnowledgePropagationBatchNorm` whose P and W^z start from the *effective*
             (post-spectral-norm) pretrained projections, A and R new. Stages `bn` (train
             P, W^z, A, R) and `ft` (all of G but A and P; resumes from a `bn` checkpoint).
* `bn_only`  BN-statistics-adaptation style: G frozen, new per-class gains/biases (R)
             learned from scratch on top of the pretrained z projection.
* `finetune` TransferGAN: start from the pretrained G (and D), train everything; the new
             classes' embedding rows are drawn at the scale of the old ones.
* `freeze_d` finetune with D's first `freeze_d_blocks` blocks frozen (FreezeD).
* `scratch`  the same architecture from random initialisation.

D is fresh for hub sources (they ship none); for our own checkpoints it keeps the
pretrained body with a fresh projection embedding for the N new classes.
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import hub_import
from tf_cgan_transfer import layers

METHODS = ("kp_bn", "bn_only", "finetune", "freeze_d", "scratch")
# Stages each method has; the first is the default.
STAGES = {
    "kp_bn": ("bn", "ft"),
    "bn_only": ("bn",),
    "finetune": ("ft",),
    "freeze_d": ("ft",),
    "scratch": ("ft",),
}


class TransferError(ValueError):
    """A transfer request that cannot be built; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """What to build.

    Attributes:
      method: one of METHODS.
      num_new_classes: N >= 1.
      stage: one of STAGES[method]; None = the method's first stage.
      residual_init: "zeros" (default: step 0 is a pure mixture of old classes) or
        "orthogonal" (the reference code's init) for R.
      freeze_d_blocks: D blocks kept frozen by `freeze_d`.
      resolution: the resolution the data needs; None accepts the source's.
      seed: seed of the fresh class parameters.
    """

    method: str
    num_new_classes: int
    stage: Optional[str] = None
    residual_init: str = "zeros"
    freeze_d_blocks: int = 2
    resolution: Optional[int] = None
    seed: int = 0

    @property
    def resolved_stage(self):
        return self.stage or STAGES.get(self.method, ("",))[0]

    def validate(self):
        if self.method not in METHODS:
            raise TransferError(f"Unknown method {self.method!r}; use one of {METHODS}.")
        if self.resolved_stage not in STAGES[self.method]:
            raise TransferError(
                f"Method {self.method!r} has no stage {self.stage!r}; its stages are "
                f"{STAGES[self.method]}."
            )
        if not isinstance(self.num_new_classes, (int, np.integer)) or self.num_new_classes < 1:
            raise TransferError(
                f"num_new_classes must be an integer >= 1, got {self.num_new_classes!r}."
            )
        if self.residual_init not in layers.KnowledgePropagationBatchNorm.RESIDUAL_INITS:
            raise TransferError(
                f"Unknown residual_init {self.residual_init!r}; use one of "
                f"{layers.KnowledgePropagationBatchNorm.RESIDUAL_INITS}."
            )
        if self.freeze_d_blocks < 0:
            raise TransferError(f"freeze_d_blocks must be >= 0, got {self.freeze_d_blocks}.")
        return self


@dataclasses.dataclass
class TransferModels:
    """The models of one method/stage and exactly the variables it trains."""

    generator: biggan.Generator
    discriminator: biggan.Discriminator
    g_variables: list
    d_variables: list
    config: TransferConfig


def load_source(source):
    """`(generator, discriminator or None)` from a model directory, a TF-Hub handle, a
    pretrained `biggan.Generator` or a `(generator, discriminator)` pair in memory."""
    if isinstance(source, biggan.Generator):
        return source.build_weights(), None
    if isinstance(source, tuple):
        return source
    directory = biggan.find_models_dir(str(source))  # a finished run stands for its models/
    if directory:
        return biggan.restore_models(directory)
    generator, _ = hub_import.load_generator(source)
    return generator, None


def _check_resolution(generator, config, what):
    if config.resolution and generator.resolution != config.resolution:
        raise TransferError(
            f"Resolution mismatch: {what} is {generator.resolution}x{generator.resolution} "
            f"but the data needs {config.resolution}x{config.resolution}."
        )


def _copy(src, dst):
    dst.set_weights(src.get_weights())


def _copy_generator_body(src, dst):
    """Copies every weight and statistic that does not depend on the class set."""
    _copy(src.G_linear, dst.G_linear)
    for src_block, dst_block in zip(src.blocks, dst.blocks):
        for name in ("conv0", "conv1", "conv_sc"):
            _copy(getattr(src_block, name), getattr(dst_block, name))
    for src_bn, dst_bn in zip(src.conditional_batch_norms(), dst.conditional_batch_norms()):
        _copy(src_bn.bn, dst_bn.bn)
    if src.attention is not None:
        _copy(src.attention, dst.attention)
    _copy(src.ScaledCrossReplicaBN, dst.ScaledCrossReplicaBN)
    _copy(src.conv_2d, dst.conv_2d)


def old_class_offsets(source, cbn, part):
    """Prior knowledge of one pretrained conditional BN: `(P [K, C], W^z [dz, C] or None)`.

    `part` is "gamma" or "beta". With a shared embedding E, the effective projection is
    W_SN = W / sigma(W) with rows [z chunk ; embedding]: P = E W_SN[dz:], W^z = W_SN[:dz].
    Without one, P is the layer's own per-class table.
    """
    projection = getattr(cbn, part)
    if not cbn.shared_embedding:
        return tf.convert_to_tensor(projection.kernel), None
    w = projection.normalized_kernel()
    z_rows = w.shape[0] - source.shared_dim
    p = tf.matmul(source.linear.kernel, w[z_rows:])
    return p, (w[:z_rows] if z_rows else None)


def _fresh_like(reference, shape, seed):
    """N(0, std(reference)) draws: new class parameters at the old ones' scale."""
    std = float(tf.math.reduce_std(reference))
    return tf.random.stateless_normal(shape, [seed, 0], stddev=std, alg=biggan.RNG_ALG)


def _new_generator(source, config):
    method, n = config.method, config.num_new_classes
    generator_config = source.get_config()
    generator_config.update(num_classes=n, residual_init=config.residual_init)
    if method in ("kp_bn", "bn_only"):
        generator_config.update(conditioning=method, num_source_classes=source.num_classes)
    generator = biggan.Generator.from_config(generator_config).build_weights()
    if method == "scratch":
        return generator
    _copy_generator_body(source, generator)
    pairs = list(zip(source.conditional_batch_norms(), generator.conditional_batch_norms()))
    if method in ("kp_bn", "bn_only"):
        for src_bn, dst_bn in pairs:
            for part in ("gamma", "beta"):
                p, wz = old_class_offsets(source, src_bn, part)
                if dst_bn.use_mixture:
                    getattr(dst_bn, f"P_{part}").assign(p)
                if dst_bn.z_dim:
                    getattr(dst_bn, f"Wz_{part}").assign(wz)
        return generator
    # finetune / freeze_d: keep the class-independent projections, new class rows.
    seed = config.seed
    if source.shared_dim:
        for src_bn, dst_bn in pairs:
            _copy(src_bn.gamma, dst_bn.gamma)
            _copy(src_bn.beta, dst_bn.beta)
        old = source.linear.kernel
        generator.linear.kernel.assign(_fresh_like(old, [n, old.shape[1]], seed))
    else:
        for i, (src_bn, dst_bn) in enumerate(pairs):
            for j, part in enumerate(("gamma", "beta")):
                old = getattr(src_bn, part).kernel
                fresh = _fresh_like(old, [n, old.shape[1]], seed + 2 * i + j + 1)
                getattr(dst_bn, part).kernel.assign(fresh)
    return generator


def _new_discriminator(source_g, source_d, config):
    if source_d is not None:
        d_config = source_d.get_config()
    else:  # hub sources ship no D: BigGAN's D for the generator's resolution and width
        d_config = dict(
            resolution=source_g.resolution,
            ch=source_g.ch,
            attention_resolution=source_g.attention_resolution,
        )
    d_config.update(num_classes=config.num_new_classes)
    discriminator = biggan.Discriminator.from_config(d_config).build_weights()
    if source_d is not None and config.method != "scratch":
        for src_block, dst_block in zip(source_d.blocks, discriminator.blocks):
            _copy(src_block, dst_block)
        if source_d.attention is not None:
            _copy(source_d.attention, discriminator.attention)
        _copy(source_d.linear, discriminator.linear)  # the projection embedding stays fresh
    return discriminator


def _excluding(variables, excluded):
    excluded = {id(v) for v in excluded}
    return [v for v in variables if id(v) not in excluded]


def trainable_variables(generator, discriminator, config):
    """`(g_variables, d_variables)` that the method and stage train, from layer objects."""
    method, stage = config.method, config.resolved_stage
    cbns = generator.conditional_batch_norms()
    if method == "kp_bn" and stage == "bn":
        g_vars = [v for bn in cbns for v in bn.trainable_variables]
    elif method == "kp_bn":  # ft: everything but the mixtures A and the prior P
        frozen = [
            v
            for bn in cbns
            for v in bn.A_gamma.trainable_variables
            + bn.A_beta.trainable_variables
            + [bn.P_gamma, bn.P_beta]
        ]
        g_vars = _excluding(generator.trainable_variables, frozen)
    elif method == "bn_only":
        g_vars = [v for bn in cbns for v in (bn.R_gamma, bn.R_beta)]
    else:
        g_vars = list(generator.trainable_variables)
    d_vars = list(discriminator.trainable_variables)
    if method == "freeze_d":
        k = config.freeze_d_blocks
        if k > len(discriminator.blocks):
            raise TransferError(
                f"freeze_d_blocks={k} but D has only {len(discriminator.blocks)} blocks."
            )
        frozen = [v for block in discriminator.blocks[:k] for v in block.trainable_variables]
        if discriminator.attention is not None and discriminator.attention_index < k:
            frozen += discriminator.attention.trainable_variables  # sits inside the prefix
        d_vars = _excluding(d_vars, frozen)
    return g_vars, d_vars


def _restore_bn_stage(bn_checkpoint, config):
    try:
        generator, discriminator = biggan.restore_models(bn_checkpoint)
    except FileNotFoundError as e:
        raise TransferError(f"Cannot resume stage 'ft' from {bn_checkpoint!r}: {e}") from e
    if generator.conditioning != "kp_bn" or discriminator is None:
        raise TransferError(
            f"{bn_checkpoint!r} is not a kp_bn 'bn'-stage model directory (generator "
            f"conditioning is {generator.conditioning!r}); run stage 'bn' first."
        )
    if generator.num_classes != config.num_new_classes:
        raise TransferError(
            f"Class count mismatch: {bn_checkpoint!r} was trained for "
            f"{generator.num_classes} new classes, this run asks for {config.num_new_classes}."
        )
    _check_resolution(generator, config, f"the 'bn' checkpoint {bn_checkpoint!r}")
    return generator, discriminator


def build(config, source=None, bn_checkpoint=None):
    """Builds the models of `config` (a TransferConfig) and the variables they train.

    Args:
      config: what to build.
      source: TF-Hub handle or module directory, one of our model directories
        (`biggan.save_models`), or models in memory (see `load_source`); not needed for
        kp_bn's 'ft' stage.
      bn_checkpoint: for kp_bn stage 'ft', the model directory the 'bn' stage saved.

    Returns:
      A `TransferModels`.
    """
    config.validate()
    if config.method == "kp_bn" and config.resolved_stage == "ft":
        if not bn_checkpoint:
            raise TransferError(
                "Stage 'ft' of kp_bn resumes from a 'bn'-stage model directory: pass "
                "bn_checkpoint= (the directory the 'bn' stage saved its models to)."
            )
        generator, discriminator = _restore_bn_stage(bn_checkpoint, config)
    else:
        if source is None:
            raise TransferError(f"Method {config.method!r} needs a source model (source=).")
        source_g, source_d = load_source(source)
        if source_g.conditioning != "biggan":
            raise TransferError(
                f"The source is already a transferred ({source_g.conditioning}) generator; "
                "transfer from the pretrained BigGAN instead."
            )
        _check_resolution(source_g, config, "the source model")
        generator = _new_generator(source_g, config)
        discriminator = _new_discriminator(source_g, source_d, config)
    g_vars, d_vars = trainable_variables(generator, discriminator, config)
    return TransferModels(generator, discriminator, g_vars, d_vars, config)


def count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


# ---- Class affinity -------------------------------------------------------------------


def imagenet_class_names():
    """The 1000 ImageNet (ILSVRC-2012) class ids in label order, as TFDS ships them.

    BigGAN's class k is line k (WordNet ids such as n01440764, "tench").
    """
    import tensorflow_datasets as tfds  # deferred: heavy, only needed for reports

    path = os.path.join(os.path.dirname(tfds.__file__), "datasets", "imagenet2012", "labels.txt")
    with tf.io.gfile.GFile(path) as f:
        return [line.strip() for line in f if line.strip()]


def class_affinity(generator, top_k=5, old_names=None, new_names=None):
    """For each new class, the old classes its learned mixtures weight most.

    The score of old class k for new class n is A(y_n)[k] averaged over every
    knowledge-propagating BN layer and over gain and bias. Returns a JSON-able dict.
    """
    layers_ = [
        bn
        for bn in generator.conditional_batch_norms()
        if isinstance(bn, layers.KnowledgePropagationBatchNorm) and bn.use_mixture
    ]
    if not layers_:
        raise TransferError("A class-affinity report needs a kp_bn generator.")
    n, k = generator.num_classes, generator.num_source_classes
    y = tf.eye(n)
    scores = tf.add_n([w for bn in layers_ for w in bn.mixture_weights(y)]) / (2 * len(layers_))
    scores = scores.numpy()
    top_k = min(top_k, k)
    classes = []
    for new in range(n):
        order = np.argsort(-scores[new], kind="stable")[:top_k]
        classes.append(
            dict(
                new_class=new,
                name=new_names[new] if new_names else None,
                top=[
                    dict(
                        old_class=int(o),
                        name=old_names[o] if old_names else None,
                        score=float(scores[new, o]),
                    )
                    for o in order
                ],
            )
        )
    return dict(
        num_new_classes=n, num_old_classes=k, num_layers=len(layers_), top_k=top_k, classes=classes
    )


def format_affinity(report):
    """Readable text of a `class_affinity` report, one line per new class."""
    lines = [
        f"Class affinity: top {report['top_k']} of {report['num_old_classes']} old "
        f"classes per new class (mean mixture weight over {report['num_layers']} BN layers)"
    ]
    for entry in report["classes"]:
        label = entry["name"] or f"new class {entry['new_class']}"
        tops = ", ".join(f"{t['name'] or t['old_class']} ({t['score']:+.3f})" for t in entry["top"])
        lines.append(f"{label}: {tops}")
    return "\n".join(lines) + "\n"


def write_affinity_report(report, directory):
    """Writes `class_affinity.json` and `class_affinity.txt`; returns their paths."""
    tf.io.gfile.makedirs(directory)
    json_path = os.path.join(directory, "class_affinity.json")
    text_path = os.path.join(directory, "class_affinity.txt")
    with tf.io.gfile.GFile(json_path, "w") as f:
        json.dump(report, f, indent=2)
    with tf.io.gfile.GFile(text_path, "w") as f:
        f.write(format_affinity(report))
    return json_path, text_path
