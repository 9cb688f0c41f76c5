r"""Trains a BigGAN on new classes (or from scratch): the project's main command.

  python -m tf_cgan_transfer.train --flagfile=configs/flowers.flags

Every flag is validated before any work, so a bad flagfile fails at once. The run lives
under --model_dir (`model_io.RunLayout`): `ckpt/`, `samples/*.png`, TensorBoard events,
`flags.txt` (the resolved flags, reusable as a flagfile), `config.json`, and at the end
`models/` (G and D; a kp_bn or minegan 'ft' stage resumes from it), `models_ema/` and,
for kp_bn, `class_affinity.{json,txt,png}`. Sample sheets name their rows after the
classes (--class_names, else the data's names). Flags after --flagfile override it.

Rerunning the same command resumes the run (`run_safety`): SIGINT/SIGTERM stop it after
a checkpoint of the current step, a damaged latest checkpoint is moved to ckpt/damaged/
and the newest intact one resumed, a full disk stops it naming what was kept, and a
second run on a --model_dir that a live run holds (model_dir/.lock) refuses to start.
"""

import contextlib
import dataclasses
import json
import sys

from absl import flags
from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import cli
from tf_cgan_transfer import conditional_bn
from tf_cgan_transfer import data
from tf_cgan_transfer import distribute
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import model_io
from tf_cgan_transfer import periodic_eval
from tf_cgan_transfer import precision
from tf_cgan_transfer import run_safety
from tf_cgan_transfer import train_config
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer


def define_flags(fv):
    """Defines the training flags on `fv` (a FlagValues; tests pass a fresh one)."""
    # ---- Run ----------------------------------------------------------------------------
    flags.DEFINE_string(
        "model_dir", None, "Directory of this run (checkpoints, samples, logs).", flag_values=fv
    )
    flags.DEFINE_integer(
        "train_steps", 1000, "Iterations to train (one G update each).", flag_values=fv
    )
    flags.DEFINE_integer("seed", 0, "Seed of everything random.", flag_values=fv)
    flags.DEFINE_bool("deterministic", False, "Enable TF op determinism (slower).", flag_values=fv)
    flags.DEFINE_bool(
        "resume",
        True,
        "Continue from the latest checkpoint in --model_dir. With --noresume an "
        "existing checkpoint is an error (never overwritten).",
        flag_values=fv,
    )
    # ---- Transfer -----------------------------------------------------------------------
    flags.DEFINE_enum(
        "method",
        "kp_bn",
        transfer.METHODS,
        "kp_bn (the paper), bn_only, finetune (TransferGAN), freeze_d, scratch, minegan "
        "(MineGAN).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "stage",
        None,
        ["bn", "miner", "ft"],
        "kp_bn: bn (train BN parameters) or ft (fine-tune; needs --bn_checkpoint); "
        "minegan: miner (train the miner) or ft (miner and G; needs --bn_checkpoint). "
        "None = the method's first stage.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "source",
        None,
        "Pretrained model: TF-Hub handle (deepmind/biggan-128/2) or its Kaggle Models "
        "twin (deepmind/biggan/tensorFlow1/128/2), module directory, a BigGAN-PyTorch "
        "weights directory (G.pth, D.pth, G_ema.pth: G and D are both transferred), or a "
        "model directory of ours. None only with --method=scratch (then the architecture "
        "flags apply).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "source_ema",
        False,
        "BigGAN-PyTorch --source: start from its G_ema.pth instead of G.pth (the paper "
        "transfers from G).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "bn_checkpoint",
        None,
        "Stage ft of kp_bn (minegan): the bn (miner) stage's --model_dir (or its models/).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "residual_init",
        "zeros",
        ["zeros", "orthogonal"],
        "Init of the per-class residuals R.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "mixture_init",
        transfer.AUTO_MIXTURE,
        [transfer.AUTO_MIXTURE, *conditional_bn.KnowledgePropagationBatchNorm.MIXTURE_INITS],
        "kp_bn: init of the mixtures A: auto (the default: prior when the source has a D, "
        "else orthogonal; on the Wesnoth benchmark the prior's mixtures pointed at related "
        "old classes, the orthogonal ones at chance, at equal KID), orthogonal (the "
        "reference's), zeros, uniform (1/K), small (orthogonal x 0.01), prior (the source "
        "D's scores of the new classes' images; needs a source with a D). zeros and small "
        "need --nomixture_spectral_norm.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "mixture_spectral_norm",
        True,
        "kp_bn: spectrally normalise the mixtures A (the reference's ImageNet code does).",
        flag_values=fv,
    )
    flags.DEFINE_integer("freeze_d_blocks", 2, "freeze_d: D blocks kept frozen.", flag_values=fv)
    flags.DEFINE_float(
        "l1_scale", 0.01, "Weight of the L1 term on the mixtures A (kp_bn).", flag_values=fv
    )
    flags.DEFINE_float(
        "l2_scale",
        0.1,
        "Weight of the L2 term on the residuals R (kp_bn, bn_only).",
        flag_values=fv,
    )
    # ---- Data ---------------------------------------------------------------------------
    cli.define_data_flags(fv, "train", "Training data")
    cli.define_class_names_flag(
        fv, "class_names", "the new classes", "the data set's label names or folder names"
    )
    cli.define_class_names_flag(
        fv,
        "source_class_names",
        "the source's classes (the class-affinity report)",
        "the source run's data's, ImageNet's for a TF-Hub BigGAN; else class ids",
    )
    flags.DEFINE_bool("flip", True, "Random horizontal flips.", flag_values=fv)
    flags.DEFINE_integer("shuffle_buffer", 10_000, "Shuffle buffer (examples).", flag_values=fv)
    flags.DEFINE_integer(
        "resolution",
        None,
        "Image resolution (None: the source model's; required for scratch without --source).",
        flag_values=fv,
    )
    # ---- Architecture (--method=scratch without --source) --------------------------------
    flags.DEFINE_enum(
        "family",
        "biggan",
        list(biggan.FAMILIES),
        "Generator and D family: BigGAN or BigGAN-deep (which ignores --hierarchical_z).",
        flag_values=fv,
    )
    flags.DEFINE_integer("ch", 64, "Channel width.", flag_values=fv)
    flags.DEFINE_integer(
        "dim_z", None, "Latent width (None: per-resolution default).", flag_values=fv
    )
    flags.DEFINE_integer(
        "shared_dim", 128, "Shared class-embedding width (0: per-BN class tables).", flag_values=fv
    )
    flags.DEFINE_bool("hierarchical_z", True, "Split z over the blocks.", flag_values=fv)
    flags.DEFINE_integer(
        "attention_resolution",
        None,
        "Self-attention resolution (None: default, 0: none).",
        flag_values=fv,
    )
    # ---- Optimisation -------------------------------------------------------------------
    flags.DEFINE_integer("batch_size", 16, "Global batch per micro-batch.", flag_values=fv)
    flags.DEFINE_integer(
        "grad_accumulation",
        1,
        "Micro-batches per update (effective batch = batch_size x this).",
        flag_values=fv,
    )
    flags.DEFINE_integer("num_d_steps", 1, "D updates per G update.", flag_values=fv)
    flags.DEFINE_integer(
        "steps_per_call",
        1,
        "Iterations per compiled call: the host feeds no batch and reads no metric in "
        "between (faster for small models). Calls end where a log, sample sheet, "
        "evaluation or checkpoint is due; SIGINT/SIGTERM are seen between calls; the "
        "input-wait share is then not measured.",
        flag_values=fv,
    )
    flags.DEFINE_float("g_lr", 1e-4, "G learning rate.", flag_values=fv)
    flags.DEFINE_float("d_lr", 4e-4, "D learning rate.", flag_values=fv)
    flags.DEFINE_float("g_beta1", 0.0, "G Adam beta1.", flag_values=fv)
    flags.DEFINE_float("g_beta2", 0.999, "G Adam beta2.", flag_values=fv)
    flags.DEFINE_float("d_beta1", 0.0, "D Adam beta1.", flag_values=fv)
    flags.DEFINE_float("d_beta2", 0.999, "D Adam beta2.", flag_values=fv)
    flags.DEFINE_float("adam_eps", 1e-6, "Adam epsilon (both).", flag_values=fv)
    for group, what in (("a", "mixtures A"), ("r", "residuals R"), ("p", "old-class offsets P")):
        flags.DEFINE_float(
            f"{group}_lr_scale",
            1.0,
            f"kp_bn bn stage (bn_only: R): multiplier of --g_lr for the {what} (0 freezes).",
            lower_bound=0.0,
            flag_values=fv,
        )
    flags.DEFINE_bool(
        "fused_updates",
        True,
        "Adam updates all of a model's variables in one call (one XLA launch for large "
        "models); false: Keras' update per variable.",
        flag_values=fv,
    )
    flags.DEFINE_float("ema_decay", 0.0, "EMA decay of G (0: no EMA generator).", flag_values=fv)
    flags.DEFINE_integer("ema_start", 0, "Step from which the EMA averages.", flag_values=fv)
    # ---- Limited data: D's augmentation and regularisation ------------------------------
    flags.DEFINE_enum(
        "augment",
        "diffaugment",
        list(limited_data.AUGMENTS),
        "Differentiable augmentation of every image D sees, real and generated, in D's "
        "and G's steps: diffaugment (DiffAugment, Zhao et al. 2020; the default: it "
        "lowered KID on the demo transfer, benchmarks/results/limited_data_table.md) or "
        "none (the paper's training; the paper-reproduction configs set it).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "augment_policy",
        list(limited_data.DEFAULT_POLICY),
        "--augment=diffaugment: its ops, applied in this order, each with per-image random "
        "parameters: color (brightness, saturation, contrast), translation (up to 1/8 of "
        "the image, zero padding), cutout (a square of half the image side).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "lecam_weight",
        0.0,
        "Weight of LeCam regularisation of D (Tseng et al. 2021; 0: off, 0.3: the "
        "authors' BigGAN CIFAR-10 setting).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "lecam_decay",
        limited_data.LECAM_DECAY,
        "Decay of LeCam's moving averages of D's outputs (per D update).",
        flag_values=fv,
    )
    # ---- Infrastructure -----------------------------------------------------------------
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(distribute.STRATEGIES),
        "tf.distribute strategy.",
        flag_values=fv,
    )
    flags.DEFINE_string("tpu", None, "TPU address (--strategy=tpu).", flag_values=fv)
    flags.DEFINE_enum(
        "mixed_precision",
        precision.AUTO,  # measured: 2.5x faster on bf16 hardware, same demo FID
        [precision.AUTO, *precision.POLICIES],
        "Compute precision: float32, mixed_bfloat16 (TPUs, Ampere+ GPUs, CPUs with "
        "AVX512-BF16/AMX) or mixed_float16 (GPUs; with loss scaling); auto: mixed_bfloat16 "
        "where the hardware runs bfloat16, else float32. Variables, BN statistics and "
        "losses stay float32.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "jit_compile",
        False,
        "Compile each replica's forward and backward pass with XLA.",
        flag_values=fv,
    )
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.", flag_values=fv)
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", flag_values=fv)
    flags.DEFINE_integer("log_every", 50, "Steps between logs/scalars.", flag_values=fv)
    flags.DEFINE_integer(
        "sample_every", 500, "Steps between sample sheets (0: never).", flag_values=fv
    )
    flags.DEFINE_integer("samples_per_class", 4, "Columns of the sample sheets.", flag_values=fv)
    flags.DEFINE_integer(
        "standing_stats_batches",
        8,
        "Batches averaged into BN standing statistics before sampling.",
        flag_values=fv,
    )
    # ---- Evaluation ---------------------------------------------------------------------
    flags.DEFINE_integer(
        "eval_every",
        0,
        "Steps between evaluations (0: none); the best models by --best_metric "
        "are kept in model_dir/best.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "eval_num_images", 1000, "Real and generated images per evaluation.", flag_values=fv
    )
    flags.DEFINE_integer("eval_batch_size", 50, "Batch size of evaluation.", flag_values=fv)
    flags.DEFINE_string(
        "classifier",
        None,
        "FID network: TF-Hub or Kaggle Models handle, or SavedModel directory, with "
        "pool_3/logits outputs (None: TF-GAN's Inception).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "eval_cache_dir",
        None,
        "Cache of real-data statistics (None: model_dir/eval_cache).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "best_metric",
        periodic_eval.DEFAULT_BEST_METRIC,
        periodic_eval.BEST_METRICS,
        "The metric model_dir/best is selected by (lowest wins).",
        flag_values=fv,
    )
    cli.define_eval_data_flags(fv)
    flags.mark_flag_as_required("model_dir", flag_values=fv)
    flags.mark_flag_as_required("dataset", flag_values=fv)
    flags.register_multi_flags_validator(
        ["method", "source", "resolution"],
        lambda f: f["source"] is not None or (f["method"] == "scratch" and f["resolution"]),
        "--source is required unless --method=scratch with --resolution.",
        flag_values=fv,
    )
    for name in (
        "train_steps",
        "batch_size",
        "grad_accumulation",
        "num_d_steps",
        "steps_per_call",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
    ):
        flags.register_validator(
            name, lambda v: v is not None and v >= 1, f"--{name} must be >= 1.", flag_values=fv
        )
    flags.register_validator(
        "ema_decay", lambda v: 0.0 <= v < 1.0, "--ema_decay must be in [0, 1).", flag_values=fv
    )
    flags.register_validator(
        "lecam_weight", lambda v: v >= 0.0, "--lecam_weight must be >= 0 (0: off).", flag_values=fv
    )
    flags.register_validator(
        "lecam_decay", lambda v: 0.0 <= v < 1.0, "--lecam_decay must be in [0, 1).", flag_values=fv
    )


def config_from_flags(fv):
    """The typed `TrainConfig` of parsed flags; raises a `UserError` on bad combinations."""
    method, stage = fv.method, fv.stage
    transfer.check_method(method, stage, fv.residual_init)
    transfer.check_mixture(fv.mixture_init, fv.mixture_spectral_norm)
    hub = fv.source and not (
        model_io.is_model_path(fv.source) or model_io.is_pytorch_source(fv.source)
    )
    if fv.mixture_init == "prior" and hub:
        raise transfer.TransferError(
            "--mixture_init=prior scores the new classes' images with the source's D; a "
            "TF-Hub BigGAN has none. Use a source with a D or another --mixture_init."
        )
    # The policy is checked even with --augment=none: a typo fails now, not when enabled.
    policy = limited_data.parse_policy(fv.augment_policy)
    limited_data.check(fv.augment, policy, fv.lecam_weight, fv.lecam_decay)
    if transfer.resumes_from_first_stage(method, stage) and not fv.bn_checkpoint:
        first = transfer.STAGES[method][0]
        raise transfer.TransferError(
            f"--stage={transfer.resolve_stage(method, stage)} of {method} needs --bn_checkpoint "
            f"(the {first} stage's model_dir)."
        )
    if fv.source_ema and not (fv.source and model_io.is_pytorch_source(fv.source)):
        raise transfer.TransferError(
            "--source_ema chooses G_ema.pth of a BigGAN-PyTorch --source; "
            f"{fv.source!r} is not a BigGAN-PyTorch weights directory."
        )
    resolution = fv.resolution or _source_resolution(fv.source, fv.bn_checkpoint)
    data_config = cli.data_config(
        fv, resolution, flip=fv.flip, seed=fv.seed, shuffle_buffer=fv.shuffle_buffer
    )
    # Every other TrainConfig field (and every ArchitectureConfig and OptimizerConfig
    # field but the Adam epsilon) is the flag of the same name.
    return cli.config_of(
        train_config.TrainConfig,
        fv,
        data=data_config,
        architecture=cli.config_of(transfer.ArchitectureConfig, fv),
        optimizer=cli.config_of(train_config.OptimizerConfig, fv, epsilon=fv.adam_eps),
        mixed_precision=precision.resolve(fv.mixed_precision, tpu=fv.strategy == "tpu"),
        augment_policy=policy,
        eval_data=cli.eval_data_config(fv, data_config),
        classifier_classes=cli.class_map(fv),
        # Only kp_bn has mixtures: other methods record the library default, not "auto".
        mixture_init=fv.mixture_init if method == "kp_bn" else "orthogonal",
    )


def _source_resolution(source, bn_checkpoint):
    """The source's resolution from its config, module shapes or handle name (no download)."""
    for candidate in (bn_checkpoint, source):
        resolution = candidate and model_io.source_resolution(candidate)
        if resolution:
            return resolution
    raise transfer.TransferError("Cannot tell the source's resolution: pass --resolution.")


def flag_lines(fv):
    """The resolved training flags (this module's and the shared data flags) as flagfile lines."""
    module_flags = {
        f.name: f
        for module in (sys.modules[__name__], cli)
        for f in fv.get_flags_for_module(module)
    }
    return [f.serialize() for _, f in sorted(module_flags.items()) if f.value is not None]


def config_to_json(config):
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True, default=str)


def main(fv):
    # First: MultiWorkerMirroredStrategy must configure collectives before any TF op runs.
    strategy = distribute.make_strategy(fv.strategy, fv.tpu)
    config = config_from_flags(fv)
    layout = config.layout
    if not fv.resume and layout.latest_checkpoint():
        raise trainer.TrainingError(
            f"{layout.ckpt_dir} already holds checkpoints and --noresume was given; "
            "choose another --model_dir (nothing was overwritten)."
        )
    # Held until the process exits: a second run on this directory refuses to start.
    # Only the chief locks: the workers of one multi-worker run share the directory.
    lock = run_safety.RunLock(layout.lock_file)
    with lock if distribute.is_chief(strategy) else contextlib.nullcontext():
        _train(fv, config, strategy, layout)


def _train(fv, config, strategy, layout):
    if data.ensure_prepared(config.data):
        logging.info("Generated the offline demo data set in %s", config.data.data_dir)
    plan = data.validate(config.data)  # the one read of the labels
    tf.io.gfile.makedirs(layout.root)
    with tf.io.gfile.GFile(layout.flags_file, "w") as f:
        f.write("\n".join(flag_lines(fv)) + "\n")
    with tf.io.gfile.GFile(layout.config_file, "w") as f:
        f.write(config_to_json(config))
    logging.info("Config: %s", config_to_json(config))
    metrics = trainer.Trainer(config, strategy, plan=plan).train()
    print(f"Finished {config.train_steps} steps in {config.model_dir}: {metrics}")


if __name__ == "__main__":
    cli.run(main, define_flags)
