"""Transfer a pretrained BigGAN to N new classes: the paper's method and its baselines.

`build(config, source=...)` turns a pretrained generator (a TF-Hub module or one of our
model directories) into the models of one method and stage (docs/method.md §5), and is
the only place that decides which variables a run trains:

* `kp_bn`    knowledge propagation (the paper): each conditional BN becomes a
             `KnowledgePropagationBatchNorm` whose P and W^z start from the *effective*
             (post-spectral-norm) pretrained projections, A and R new. Stages `bn` (train
             P, W^z, A, R) and `ft` (all of G but A and P; resumes from a `bn` checkpoint).
* `bn_only`  BN-statistics-adaptation style: G frozen, new per-class gains/biases (R)
             learned from scratch on top of the pretrained z projection.
* `finetune` TransferGAN: start from the pretrained G (and D), train everything; the new
             classes' embedding rows are drawn at the scale of the old ones.
* `freeze_d` finetune with D's first `freeze_d_blocks` blocks frozen (FreezeD).
* `scratch`  the same architecture from random initialisation; without a source, a
             BigGAN of `ArchitectureConfig` (e.g. to pretrain a source of our own).
* `minegan`  MineGAN: the whole pretrained G behind a `miner.Miner` that maps (z, new
             class) to (z', a mixture of old classes). Stages `miner` (train the miner
             only) and `ft` (the miner and all of G; resumes from a `miner` checkpoint).

D is fresh for hub sources (they ship none); for our own checkpoints and BigGAN-PyTorch
ones (`pytorch_import`: G or G_ema, and D) it keeps the pretrained body with a fresh
projection embedding for the N new classes.
"""

import dataclasses
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import discriminator as discriminator_lib
from tf_cgan_transfer import errors
from tf_cgan_transfer import model_io

METHODS = ("kp_bn", "bn_only", "finetune", "freeze_d", "scratch", "minegan")
# mixture_init that becomes "prior" when the source has a D, else "orthogonal"
# (`resolve_mixture_init`): the Wesnoth benchmark's choice (README, issue 22).
AUTO_MIXTURE = "auto"
# Stages each method has; the first is the default. A later stage resumes from the
# models the first one saved (`bn_checkpoint`).
STAGES = {
    "kp_bn": ("bn", "ft"),
    "bn_only": ("bn",),
    "finetune": ("ft",),
    "freeze_d": ("ft",),
    "scratch": ("ft",),
    "minegan": ("miner", "ft"),
}


class TransferError(errors.UserError, ValueError):
    """A transfer request that cannot be built; the message says what to change."""


def resolve_stage(method, stage=None):
    """The stage a run of `method` trains: `stage`, or the method's first one."""
    return stage or STAGES.get(method, ("",))[0]


def resumes_from_first_stage(method, stage=None):
    """True when `stage` of `method` starts from the first stage's saved models (kp_bn's
    and minegan's 'ft'), which `build` then needs as `bn_checkpoint`."""
    stages = STAGES.get(method, ())
    return len(stages) > 1 and resolve_stage(method, stage) != stages[0]


def check_method(method, stage=None, residual_init="zeros"):
    """Raises a `TransferError` unless `method`, `stage` and `residual_init` go together."""
    if method not in METHODS:
        raise TransferError(f"Unknown method {method!r}; use one of {METHODS}.")
    if resolve_stage(method, stage) not in STAGES[method]:
        raise TransferError(
            f"Method {method!r} has no stage {stage!r}; its stages are {STAGES[method]}."
        )
    inits = conditional_bn.KnowledgePropagationBatchNorm.RESIDUAL_INITS
    if residual_init not in inits:
        raise TransferError(f"Unknown residual_init {residual_init!r}; use one of {inits}.")


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig:
    """The BigGAN that `scratch` builds when there is no source model (`biggan.Generator`
    arguments; the resolution is the data's). `family` "biggan_deep" builds BigGAN-deep's
    G and D (`biggan_deep.py`, `discriminator_deep.py`), which ignore `hierarchical_z`."""

    ch: int = 64
    dim_z: Optional[int] = None
    shared_dim: int = 128
    hierarchical_z: bool = True
    attention_resolution: Optional[int] = None
    family: str = "biggan"


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """What to build.

    Attributes:
      method: one of METHODS.
      num_new_classes: N >= 1.
      stage: one of STAGES[method]; None = the method's first stage.
      residual_init: "zeros" (default: step 0 is a pure mixture of old classes) or
        "orthogonal" (the reference code's init) for R.
      mixture_init, mixture_spectral_norm: kp_bn's mixtures A: kernel initialiser
        ("orthogonal", the reference's; "zeros", "uniform", "small"; "prior", from the
        source D's view of the new classes' images, `affinity_prior`; "auto": "prior"
        when the source has a D, else "orthogonal") and whether A is spectrally
        normalised (`conditional_bn.check_mixture`).
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
    mixture_init: str = "orthogonal"
    mixture_spectral_norm: bool = True

    @property
    def resolved_stage(self):
        return resolve_stage(self.method, self.stage)

    def validate(self):
        check_method(self.method, self.stage, self.residual_init)
        check_mixture(self.mixture_init, self.mixture_spectral_norm)
        if not isinstance(self.num_new_classes, (int, np.integer)) or self.num_new_classes < 1:
            raise TransferError(
                f"num_new_classes must be an integer >= 1, got {self.num_new_classes!r}."
            )
        if self.freeze_d_blocks < 0:
            raise TransferError(f"freeze_d_blocks must be >= 0, got {self.freeze_d_blocks}.")
        return self


@dataclasses.dataclass
class TransferModels:
    """The models of one method/stage and exactly the variables it trains."""

    generator: biggan.Generator
    discriminator: discriminator_lib.Discriminator
    g_variables: list
    d_variables: list
    config: TransferConfig


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
    for src_layer, dst_layer in zip(src.body_layers(), dst.body_layers(), strict=True):
        _copy(src_layer, dst_layer)


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
    generator_config.update(
        num_classes=n,
        residual_init=config.residual_init,
        mixture_init=config.mixture_init,
        mixture_spectral_norm=config.mixture_spectral_norm,
    )
    if method in ("kp_bn", "bn_only", "minegan"):
        generator_config.update(conditioning=method, num_source_classes=source.num_classes)
    generator = biggan.Generator.from_config(generator_config).build_weights()
    if method == "scratch":
        return generator
    _copy_generator_body(source, generator)
    pairs = list(zip(source.conditional_batch_norms(), generator.conditional_batch_norms()))
    if method == "minegan":  # the whole pretrained G, its old-class conditioning included
        for src_bn, dst_bn in pairs:
            _copy(src_bn.gamma, dst_bn.gamma)
            _copy(src_bn.beta, dst_bn.beta)
        if source.shared_dim:
            _copy(source.linear, generator.linear)
        return generator
    if method in ("kp_bn", "bn_only"):
        embedding = getattr(generator, "linear", None)  # BigGAN-deep's, for G_linear
        if embedding is not None and embedding.use_mixture:
            embedding.P_code.assign(source.linear.kernel)  # row k: old class k's embedding
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


def _d_attention(generator):
    """Where a fresh D for `generator` puts attention: where G does (BigGAN), or where
    its own table says (BigGAN-deep's D: at 64x64 once a block keeps that size)."""
    return generator.attention_resolution if generator.family == "biggan" else None


def _new_discriminator(source_g, source_d, config):
    if source_d is not None:
        d_config = source_d.get_config()
    else:  # hub sources ship no D: the family's D for the generator's resolution and width
        d_config = dict(
            resolution=source_g.resolution,
            ch=source_g.ch,
            attention_resolution=_d_attention(source_g),
            family=source_g.family,
        )
    d_config.update(num_classes=config.num_new_classes)
    discriminator = discriminator_lib.Discriminator.from_config(d_config).build_weights()
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


def bn_parameter_groups(generator):
    """kp_bn's and bn_only's BN parameters by role: `{"a": A's kernels and biases,
    "r": the residuals R, "p": the old classes' offsets P}` (empty lists without)."""
    groups = dict(a=[], r=[], p=[])
    for layer in conditional_bn.knowledge_propagating(generator):
        groups["r"] += layer.residuals()
        groups["a"] += [v for a in layer.mixtures() for v in a.trainable_variables]
        groups["p"] += layer.offsets()
    return groups


def trainable_variables(generator, discriminator, config):
    """`(g_variables, d_variables)` that the method and stage train, from layer objects."""
    method, stage = config.method, config.resolved_stage
    # The BNs, and BigGAN-deep's class embedding (it feeds G_linear too).
    kp_layers = conditional_bn.knowledge_propagating(generator)
    if method == "kp_bn" and stage == "bn":
        g_vars = [v for layer in kp_layers for v in layer.trainable_variables]
    elif method == "kp_bn":  # ft: everything but the mixtures A and the prior P
        groups = bn_parameter_groups(generator)
        g_vars = _excluding(generator.trainable_variables, groups["a"] + groups["p"])
    elif method == "bn_only":
        g_vars = bn_parameter_groups(generator)["r"]
    elif method == "minegan" and stage == "miner":
        g_vars = list(generator.miner.trainable_variables)
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


def _restore_first_stage(bn_checkpoint, config):
    """G and D of the method's first stage (kp_bn 'bn', minegan 'miner'), checked."""
    method, stage = config.method, config.resolved_stage
    first = STAGES[method][0]
    try:
        generator, discriminator = model_io.load_models(bn_checkpoint)
    except model_io.ModelError as e:
        raise TransferError(f"Cannot resume stage {stage!r} from {bn_checkpoint!r}: {e}") from e
    # The generator's conditioning is named after the method (kp_bn, minegan).
    if generator.conditioning != method or discriminator is None:
        raise TransferError(
            f"{bn_checkpoint!r} is not a {method} {first!r}-stage model directory (generator "
            f"conditioning is {generator.conditioning!r}); run stage {first!r} first."
        )
    if generator.num_classes != config.num_new_classes:
        raise TransferError(
            f"Class count mismatch: {bn_checkpoint!r} was trained for "
            f"{generator.num_classes} new classes, this run asks for {config.num_new_classes}."
        )
    _check_resolution(generator, config, f"the {first!r} checkpoint {bn_checkpoint!r}")
    return generator, discriminator


def _scratch_models(config, architecture):
    """A fresh BigGAN G and D of `architecture` at `config.resolution` (no source)."""
    if not config.resolution:
        raise TransferError("scratch without a source needs the resolution (TransferConfig).")
    arch = architecture or ArchitectureConfig()
    if arch.family not in biggan.FAMILIES:
        raise TransferError(f"Unknown family {arch.family!r}; use one of {biggan.FAMILIES}.")
    deep = arch.family == "biggan_deep"
    common = dict(
        family=arch.family,
        resolution=config.resolution,
        ch=arch.ch,
        num_classes=config.num_new_classes,
    )
    try:
        generator = biggan.Generator.from_config(
            dict(
                common,
                dim_z=arch.dim_z,
                shared_dim=arch.shared_dim,
                hierarchical_z=arch.hierarchical_z and not deep,  # deep never splits z
                attention_resolution=arch.attention_resolution,
            )
        ).build_weights()
    except ValueError as e:
        raise TransferError(str(e)) from e
    discriminator = discriminator_lib.Discriminator.from_config(
        dict(common, attention_resolution=_d_attention(generator))
    ).build_weights()
    return generator, discriminator


def check_mixture(mixture_init, spectral_norm):
    """`conditional_bn.check_mixture` that also takes "auto" (checked as "prior", which
    goes with either spectral-norm setting, as "orthogonal" does); a `TransferError`."""
    init = "prior" if mixture_init == AUTO_MIXTURE else mixture_init
    try:
        conditional_bn.check_mixture(init, spectral_norm)
    except ValueError as e:
        raise TransferError(str(e)) from e


def resolve_mixture_init(config, source_d, prior):
    """`config` with `mixture_init="auto"` resolved: "prior" for kp_bn when the source has
    a D to compute it from (and `prior` is given), else the reference's "orthogonal"."""
    if config.mixture_init != AUTO_MIXTURE:
        return config
    has_prior = config.method == "kp_bn" and source_d is not None and prior is not None
    init = "prior" if has_prior else "orthogonal"
    logging.info("mixture_init=auto: %s (the source %s a discriminator)", init,
                 "has" if source_d is not None else "has no")
    return dataclasses.replace(config, mixture_init=init)


def _set_prior(generator, source_g, source_d, prior):
    if prior is None:
        raise TransferError(
            "mixture_init='prior' needs prior= (a function of the source's G and D giving "
            "the [N, K] initial mixtures, e.g. affinity_prior.for_source)."
        )
    weights = np.asarray(prior(source_g, source_d), np.float32)
    expected = (generator.num_classes, generator.num_source_classes)
    if weights.shape != expected:
        raise TransferError(f"The prior is {weights.shape}; this transfer needs {expected}.")
    for bn in conditional_bn.knowledge_propagating(generator):
        bn.set_mixtures(weights)


def build(config, source=None, bn_checkpoint=None, architecture=None, source_ema=False, prior=None):
    """Builds the models of `config` (a TransferConfig) and the variables they train.

    Args:
      config: what to build.
      source: TF-Hub handle or module directory, one of our model or run directories,
        or models in memory (see `model_io.load_source`); not needed for the 'ft' stage
        of kp_bn or minegan, nor for `scratch`, which then builds `architecture`.
      bn_checkpoint: for the 'ft' stage of kp_bn (minegan), the models directory (or run
        directory) its 'bn' ('miner') stage saved. (The name is kp_bn's, kept for
        `--bn_checkpoint`.)
      architecture: for `scratch` without a source, an `ArchitectureConfig` (None: its
        defaults).
      source_ema: for a BigGAN-PyTorch source, start from its G_ema instead of G (the
        paper's choice).
      prior: with `mixture_init="prior"` (kp_bn's first stage), a function of the source
        `(generator, discriminator or None)` returning the `[N, K]` initial mixtures
        (`affinity_prior`).

    Returns:
      A `TransferModels`.
    """
    config.validate()
    if resumes_from_first_stage(config.method, config.stage):
        method, stage, first = config.method, config.resolved_stage, STAGES[config.method][0]
        if not bn_checkpoint:
            raise TransferError(
                f"Stage {stage!r} of {method} resumes from a {first!r}-stage model directory: "
                f"pass bn_checkpoint= (the directory the {first!r} stage saved its models to)."
            )
        generator, discriminator = _restore_first_stage(bn_checkpoint, config)
    elif config.method == "scratch" and source is None:
        generator, discriminator = _scratch_models(config, architecture)
    else:
        if source is None:
            raise TransferError(f"Method {config.method!r} needs a source model (source=).")
        try:
            source_g, source_d = model_io.load_source(source, ema=source_ema)
        except model_io.ModelError as e:
            raise TransferError(str(e)) from e
        if source_g.conditioning != "biggan":
            raise TransferError(
                f"The source is already a transferred ({source_g.conditioning}) generator; "
                "transfer from the pretrained BigGAN instead."
            )
        _check_resolution(source_g, config, "the source model")
        config = resolve_mixture_init(config, source_d, prior)
        generator = _new_generator(source_g, config)
        if config.method == "kp_bn" and config.mixture_init == "prior":
            _set_prior(generator, source_g, source_d, prior)
        discriminator = _new_discriminator(source_g, source_d, config)
    g_vars, d_vars = trainable_variables(generator, discriminator, config)
    return TransferModels(generator, discriminator, g_vars, d_vars, config)
