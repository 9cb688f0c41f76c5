r"""Trains a BigGAN on new classes (or from scratch): the project's main command.

  python -m tf_cgan_transfer.train --flagfile=configs/flowers.flags

Every flag is validated before any work, so a bad flagfile fails at once. The run lives
under --model_dir: `ckpt/` (checkpoints), `samples/*.png`, TensorBoard events,
`flags.txt` (the resolved flags, reusable as a flagfile), `config.json`, and at the end
`models/` (G and D; a kp_bn 'ft' stage resumes from it) and `models_ema/`.
Flags after --flagfile override it.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
from absl import logging

from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import precision
from tf_cgan_transfer import trainer
from tf_cgan_transfer import transfer

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
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
        "kp_bn (the paper), bn_only, finetune (TransferGAN), freeze_d, scratch.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "stage",
        None,
        ["bn", "ft"],
        "kp_bn stage: bn (train BN parameters) or ft (fine-tune; needs "
        "--bn_checkpoint). None = the method's first stage.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "source",
        None,
        "Pretrained model: TF-Hub handle (deepmind/biggan-128/2), module "
        "directory, or a model directory of ours. None only with "
        "--method=scratch (then the architecture flags apply).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "bn_checkpoint",
        None,
        "kp_bn stage ft: the bn stage's --model_dir (or its models/).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "residual_init",
        "zeros",
        ["zeros", "orthogonal"],
        "Init of the per-class residuals R.",
        flag_values=fv,
    )
    flags.DEFINE_integer("freeze_d_blocks", 2, "freeze_d: D blocks kept frozen.", flag_values=fv)
    flags.DEFINE_float("l1_scale", 0.01, "Weight of the L1 term on the mixtures A.", flag_values=fv)
    flags.DEFINE_float("l2_scale", 0.1, "Weight of the L2 term on the residuals R.", flag_values=fv)
    # ---- Data ---------------------------------------------------------------------------
    flags.DEFINE_string(
        "dataset",
        None,
        "TFDS name (oxford_flowers102, cifar100, cgan_demo_shapes) or 'folder'.",
        flag_values=fv,
    )
    flags.DEFINE_string("split", "train", "TFDS split.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "TFDS data_dir (None: TFDS default).", flag_values=fv)
    flags.DEFINE_string(
        "image_folder",
        None,
        "--dataset=folder: root with one sub-folder of images per class.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "classes",
        None,
        "Subset of source class ids, remapped to 0..N-1 (None: all).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "images_per_class", None, "Cap on images per class (None: all).", flag_values=fv
    )
    flags.DEFINE_bool("flip", True, "Random horizontal flips.", flag_values=fv)
    flags.DEFINE_integer("shuffle_buffer", 10_000, "Shuffle buffer (examples).", flag_values=fv)
    flags.DEFINE_integer(
        "resolution",
        None,
        "Image resolution (None: the source model's; required for scratch " "without --source).",
        flag_values=fv,
    )
    # ---- Architecture (--method=scratch without --source) --------------------------------
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
    flags.DEFINE_float("g_lr", 1e-4, "G learning rate.", flag_values=fv)
    flags.DEFINE_float("d_lr", 4e-4, "D learning rate.", flag_values=fv)
    flags.DEFINE_float("g_beta1", 0.0, "G Adam beta1.", flag_values=fv)
    flags.DEFINE_float("g_beta2", 0.999, "G Adam beta2.", flag_values=fv)
    flags.DEFINE_float("d_beta1", 0.0, "D Adam beta1.", flag_values=fv)
    flags.DEFINE_float("d_beta2", 0.999, "D Adam beta2.", flag_values=fv)
    flags.DEFINE_float("adam_eps", 1e-6, "Adam epsilon (both).", flag_values=fv)
    flags.DEFINE_float("ema_decay", 0.0, "EMA decay of G (0: no EMA generator).", flag_values=fv)
    flags.DEFINE_integer("ema_start", 0, "Step from which the EMA averages.", flag_values=fv)
    # ---- Infrastructure -----------------------------------------------------------------
    flags.DEFINE_enum(
        "strategy", "default", list(trainer.STRATEGIES), "tf.distribute strategy.", flag_values=fv
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
        "Steps between FID evaluations (0: none); the best models by FID "
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
        "FID network: TF-Hub handle or SavedModel directory with pool_3/logits "
        "outputs (None: TF-GAN's Inception).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "eval_cache_dir",
        None,
        "Cache of real-data statistics (None: model_dir/eval_cache).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("model_dir", flag_values=fv)
    flags.mark_flag_as_required("dataset", flag_values=fv)

    flags.register_multi_flags_validator(
        ["method", "source", "resolution"],
        lambda f: f["source"] is not None or (f["method"] == "scratch" and f["resolution"]),
        "--source is required unless --method=scratch with --resolution.",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["dataset", "image_folder"],
        lambda f: (f["dataset"] == "folder") == (f["image_folder"] is not None),
        "--image_folder goes with --dataset=folder (and --dataset=folder needs it).",
        flag_values=fv,
    )
    for name in (
        "train_steps",
        "batch_size",
        "grad_accumulation",
        "num_d_steps",
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
        "classes",
        _valid_classes,
        "--classes must be a list of distinct non-negative integers.",
        flag_values=fv,
    )


def _valid_classes(value):
    if value is None:
        return True
    try:
        ids = [int(v) for v in value]
    except ValueError:
        return False
    return all(i >= 0 for i in ids) and len(set(ids)) == len(ids)


def config_from_flags(fv=FLAGS):
    """The typed `TrainConfig` of parsed flags; raises `app.UsageError` on bad combinations."""
    method, stage = fv.method, fv.stage
    try:
        transfer.TransferConfig(method, 1, stage=stage, residual_init=fv.residual_init).validate()
    except transfer.TransferError as e:
        raise app.UsageError(str(e)) from e
    if method == "kp_bn" and (stage or "bn") == "ft" and not fv.bn_checkpoint:
        raise app.UsageError(
            "--stage=ft of kp_bn needs --bn_checkpoint (the bn stage's model_dir)."
        )
    resolution = fv.resolution
    if resolution is None:
        resolution = _source_resolution(fv.source, fv.bn_checkpoint)
    data_config = data.DataConfig(
        dataset=fv.dataset,
        resolution=resolution,
        split=fv.split,
        data_dir=fv.data_dir,
        image_folder=fv.image_folder,
        classes=tuple(int(c) for c in fv.classes) if fv.classes else None,
        images_per_class=fv.images_per_class,
        flip=fv.flip,
        seed=fv.seed,
        shuffle_buffer=fv.shuffle_buffer,
    )
    return trainer.TrainConfig(
        model_dir=fv.model_dir,
        data=data_config,
        method=method,
        stage=stage,
        source=fv.source,
        bn_checkpoint=fv.bn_checkpoint,
        residual_init=fv.residual_init,
        freeze_d_blocks=fv.freeze_d_blocks,
        architecture=trainer.ArchitectureConfig(
            resolution=resolution,
            ch=fv.ch,
            dim_z=fv.dim_z,
            shared_dim=fv.shared_dim,
            hierarchical_z=fv.hierarchical_z,
            attention_resolution=fv.attention_resolution,
        ),
        optimizer=trainer.OptimizerConfig(
            g_lr=fv.g_lr,
            d_lr=fv.d_lr,
            g_beta1=fv.g_beta1,
            g_beta2=fv.g_beta2,
            d_beta1=fv.d_beta1,
            d_beta2=fv.d_beta2,
            epsilon=fv.adam_eps,
        ),
        batch_size=fv.batch_size,
        grad_accumulation=fv.grad_accumulation,
        num_d_steps=fv.num_d_steps,
        train_steps=fv.train_steps,
        l1_scale=fv.l1_scale,
        l2_scale=fv.l2_scale,
        ema_decay=fv.ema_decay,
        ema_start=fv.ema_start,
        seed=fv.seed,
        deterministic=fv.deterministic,
        mixed_precision=precision.resolve(fv.mixed_precision, tpu=fv.strategy == "tpu"),
        jit_compile=fv.jit_compile,
        checkpoint_every=fv.checkpoint_every,
        keep_checkpoints=fv.keep_checkpoints,
        log_every=fv.log_every,
        sample_every=fv.sample_every,
        samples_per_class=fv.samples_per_class,
        standing_stats_batches=fv.standing_stats_batches,
        eval_every=fv.eval_every,
        eval_num_images=fv.eval_num_images,
        eval_batch_size=fv.eval_batch_size,
        classifier=fv.classifier,
        eval_cache_dir=fv.eval_cache_dir,
    )


_HUB_RESOLUTION = {"biggan-128": 128, "biggan-256": 256, "biggan-512": 512}


def _source_resolution(source, bn_checkpoint):
    """The source's resolution without loading weights (config JSON, hub name or shapes)."""
    for directory in (bn_checkpoint and biggan.find_models_dir(bn_checkpoint), source):
        if directory and os.path.exists(os.path.join(directory, biggan.GENERATOR_CONFIG_FILE)):
            return biggan.read_config(directory)["resolution"]
    for name, resolution in _HUB_RESOLUTION.items():
        if source and f"/{name}/" in source + "/":
            return resolution
    if source and os.path.isdir(source):
        import tensorflow as tf  # local: only to read a module's variable shapes

        from tf_cgan_transfer import hub_import

        path = hub_import.resolve_module(source)
        reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
        return hub_import.infer_config(reader.get_variable_to_shape_map())["resolution"]
    raise app.UsageError("Cannot tell the source's resolution: pass --resolution.")


def flag_lines(fv=FLAGS):
    """The resolved training flags as flagfile lines."""
    module_flags = fv.get_flags_for_module(sys.modules[__name__])
    return [
        f.serialize() for f in sorted(module_flags, key=lambda f: f.name) if f.value is not None
    ]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # First: MultiWorkerMirroredStrategy must configure collectives before any TF op runs.
    strategy = trainer.make_strategy(FLAGS.strategy, FLAGS.tpu)
    config = config_from_flags()
    import tensorflow as tf

    checkpoint_dir = os.path.join(config.model_dir, "ckpt")
    if not FLAGS.resume and tf.train.latest_checkpoint(checkpoint_dir):
        sys.exit(
            f"error: {checkpoint_dir} already holds checkpoints and --noresume was given; "
            "choose another --model_dir (nothing was overwritten)."
        )
    try:
        if data.ensure_prepared(config.data):
            logging.info("Generated the offline demo data set in %s", config.data.data_dir)
        data.validate(config.data)
    except data.DataError as e:
        sys.exit(f"error: {e}")
    trainer.write_flags_file(config.model_dir, flag_lines())
    with tf.io.gfile.GFile(os.path.join(config.model_dir, "config.json"), "w") as f:
        f.write(trainer.config_to_json(config))
    logging.info("Config: %s", trainer.config_to_json(config))
    try:
        run = trainer.Trainer(config, strategy)
        metrics = run.train()
    except (
        transfer.TransferError,
        trainer.TrainingError,
        data.DataError,
        evaluate.ClassifierError,
        evaluate.EvaluationError,
    ) as e:
        sys.exit(f"error: {e}")
    print(f"Finished {config.train_steps} steps in {config.model_dir}: {metrics}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
