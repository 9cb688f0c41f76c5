"""The distributed GAN training loop (library; `train.py` is its command line).

Reads top to bottom in run order: strategy, models and optimisers under the strategy's
scope, checkpoint restore, the replica step functions, the host loop. Library code: it
never reads flags; `TrainConfig` carries everything.

Distribution: one `tf.distribute.Strategy`. Losses are summed per replica and divided
by the global batch (gradients are then summed across replicas); G's batch-norm
statistics are all-reduced across replicas inside the BN layers. Latents and fake
labels of a step are drawn for the global batch from a stateless seed (seed, step) and
each replica takes its slice, so a step is the same computation whatever the number of
replicas, and a resumed run draws what an uninterrupted one would.
"""

import dataclasses
import json
import math
import os
import time
from typing import Optional

from absl import logging
import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import data
from tf_cgan_transfer import evaluate
from tf_cgan_transfer import images
from tf_cgan_transfer import losses
from tf_cgan_transfer import precision
from tf_cgan_transfer import transfer

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, clobbering a run); says what to do."""


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig:
    """A BigGAN built from scratch when there is no source model (`--method=scratch`)."""

    resolution: int = 32
    ch: int = 64
    dim_z: Optional[int] = None
    shared_dim: int = 128
    hierarchical_z: bool = True
    attention_resolution: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    g_beta1: float = 0.0
    g_beta2: float = 0.999
    d_beta1: float = 0.0
    d_beta2: float = 0.999
    epsilon: float = 1e-6


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    `batch_size` is the global batch of one micro-batch; an iteration runs `num_d_steps`
    D updates and one G update, each over `grad_accumulation` micro-batches (effective
    batch = batch_size * grad_accumulation, like BigGAN's 256 x 8).

    `mixed_precision` is a `precision.POLICIES` name (models compute in bfloat16 or
    float16, variables and statistics stay float32); `jit_compile` compiles each
    replica's forward and backward pass with XLA.
    """

    model_dir: str
    data: data.DataConfig
    method: str = "kp_bn"
    stage: Optional[str] = None
    source: Optional[str] = None
    bn_checkpoint: Optional[str] = None
    residual_init: str = "zeros"
    freeze_d_blocks: int = 2
    architecture: ArchitectureConfig = ArchitectureConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: int = 16
    grad_accumulation: int = 1
    num_d_steps: int = 1
    train_steps: int = 1000
    l1_scale: float = 0.01
    l2_scale: float = 0.1
    ema_decay: float = 0.0
    ema_start: int = 0
    seed: int = 0
    deterministic: bool = False
    mixed_precision: str = "float32"
    jit_compile: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    sample_every: int = 500
    samples_per_class: int = 4
    standing_stats_batches: int = 8
    eval_every: int = 0
    eval_num_images: int = 1000
    eval_batch_size: int = 50
    classifier: Optional[str] = None
    eval_cache_dir: Optional[str] = None
    # Real images of periodic evaluation; None: `data` (with images_per_class, the capped
    # training subset, repeated up to eval_num_images).
    eval_data: Optional[data.DataConfig] = None

    @property
    def transfer_config(self):
        return transfer.TransferConfig(
            method=self.method,
            num_new_classes=1,  # replaced by the data's class count
            stage=self.stage,
            residual_init=self.residual_init,
            freeze_d_blocks=self.freeze_d_blocks,
            resolution=self.data.resolution,
            seed=self.seed,
        )

    @property
    def resolved_stage(self):
        return self.transfer_config.resolved_stage


def make_strategy(name, tpu_address=None):
    """The `tf.distribute.Strategy` for `--strategy`."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; use one of {STRATEGIES}.")


def is_due(step, every):
    """True when `every` > 0 and `step` (1-based count of finished steps) is a multiple."""
    return every > 0 and step % every == 0


def build_models(config, num_classes):
    """`transfer.TransferModels` for the run: a transfer, or a BigGAN from scratch."""
    if config.method == "scratch" and config.source is None:
        arch = config.architecture
        generator = biggan.Generator(
            resolution=config.data.resolution,
            ch=arch.ch,
            num_classes=num_classes,
            dim_z=arch.dim_z,
            shared_dim=arch.shared_dim,
            hierarchical_z=arch.hierarchical_z,
            attention_resolution=arch.attention_resolution,
        ).build_weights()
        discriminator = biggan.Discriminator(
            resolution=config.data.resolution,
            ch=arch.ch,
            num_classes=num_classes,
            attention_resolution=generator.attention_resolution,
        ).build_weights()
        return transfer.TransferModels(
            generator,
            discriminator,
            list(generator.trainable_variables),
            list(discriminator.trainable_variables),
            dataclasses.replace(config.transfer_config, num_new_classes=num_classes),
        )
    transfer_config = dataclasses.replace(config.transfer_config, num_new_classes=num_classes)
    # A bn-stage run directory stands for its models/.
    bn_checkpoint = config.bn_checkpoint and (
        biggan.find_models_dir(config.bn_checkpoint) or config.bn_checkpoint
    )
    return transfer.build(transfer_config, source=config.source, bn_checkpoint=bn_checkpoint)


class Trainer:
    """Builds the models, optimisers and step functions of a run and runs the loop."""

    def __init__(self, config, strategy=None, num_classes=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        tf.keras.utils.set_random_seed(config.seed)
        self.num_classes = num_classes
        if self.num_classes is None:
            self.num_classes = data.validate(config.data).num_classes
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"batch_size={config.batch_size} must be divisible by the "
                f"{replicas} replicas in sync."
            )
        self.per_replica_batch = config.batch_size // replicas
        self.jit_compile = config.jit_compile
        if self.jit_compile and isinstance(self.strategy, tf.distribute.TPUStrategy):
            self.jit_compile = False  # the TPU compiles the whole step with XLA anyway
        elif self.jit_compile and replicas > 1:
            raise ValueError(
                f"jit_compile with {replicas} replicas: the cross-replica batch-norm "
                "all-reduce cannot run inside an XLA-compiled replica function under "
                f"{type(self.strategy).__name__}. Use --jit_compile with one replica per "
                "process, or drop it (TPUStrategy compiles with XLA by itself)."
            )
        self.loss_scaling = precision.needs_loss_scaling(config.mixed_precision)

        # Layers take the precision policy at construction: build everything inside it.
        with precision.policy_scope(config.mixed_precision), self.strategy.scope():
            self.models = build_models(config, self.num_classes)
            self.generator = self.models.generator
            self.discriminator = self.models.discriminator
            opt = config.optimizer
            self.g_optimizer = self._optimizer(opt.g_lr, opt.g_beta1, opt.g_beta2)
            self.d_optimizer = self._optimizer(opt.d_lr, opt.d_beta1, opt.d_beta2)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_fid = tf.Variable(float("inf"), trainable=False, name="best_fid")
            self.ema_generator = None
            if config.ema_decay > 0:
                self.ema_generator = biggan.Generator.from_config(
                    self.generator.get_config()
                ).build_weights()
                self.ema_generator.set_weights(self.generator.get_weights())
        self.checkpoint = tf.train.Checkpoint(**self._trackables())
        # Only the chief writes: other workers save to a scratch directory.
        self.is_chief = _is_chief(self.strategy)
        self.checkpoint_dir = os.path.join(self.output_dir(), "ckpt")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.checkpoint_dir, max_to_keep=config.keep_checkpoints
        )
        # Optimiser slots now, not inside the first step: a step that creates variables
        # is traced twice.
        self._build_optimizer_slots()
        self._build_step_functions()
        # Built (and the classifier loaded) now, so a missing classifier fails before training.
        self.evaluator = self.make_evaluator()

    def _optimizer(self, lr, beta1, beta2):
        optimizer = tf.keras.optimizers.Adam(
            lr, beta_1=beta1, beta_2=beta2, epsilon=self.config.optimizer.epsilon
        )
        # Keras compiles the per-variable update with XLA only when it sees a GPU; on CPU
        # the compiled update is ~2.8x faster as well (100M parameters: 0.21 s vs 0.58 s).
        optimizer.jit_compile = True
        if self.loss_scaling:  # float16: dynamic loss scaling against underflow
            optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        return optimizer

    def _trackables(self):
        objects = dict(
            generator=self.generator,
            discriminator=self.discriminator,
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            step=self.step,
            best_fid=self.best_fid,
        )
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
        return objects

    # ---- Restore -------------------------------------------------------------------------

    def restore(self):
        """Resumes from the latest checkpoint in model_dir, if any; returns the step."""
        latest = self.manager.latest_checkpoint
        if latest:
            # Build optimiser slots first so the restore can match them all.
            self._build_optimizer_slots()
            self.checkpoint.restore(latest).assert_consumed()
            logging.info("Resumed from %s at step %d", latest, int(self.step.numpy()))
        return int(self.step.numpy())

    def _build_optimizer_slots(self):
        with self.strategy.scope():
            self.g_optimizer.build(self.models.g_variables)
            self.d_optimizer.build(self.models.d_variables)

    # ---- Step functions ------------------------------------------------------------------

    def _latents(self, micro_step, salt):
        """This replica's slice of the global batch of (z, labels) for one micro-batch."""
        cfg = self.config
        ctx = tf.distribute.get_replica_context()
        micro_step = tf.cast(micro_step, tf.int64)
        seed = tf.stack([tf.cast(cfg.seed, tf.int64), self.step * 1000 + micro_step * 10 + salt])
        z = biggan.sample_z(cfg.batch_size, self.generator.dim_z, 1.0, seed)
        labels = tf.random.stateless_uniform(
            [cfg.batch_size], seed + [0, 7], 0, self.num_classes, tf.int32, alg=biggan.RNG_ALG
        )
        start = ctx.replica_id_in_sync_group * self.per_replica_batch
        return (
            z[start : start + self.per_replica_batch],
            labels[start : start + self.per_replica_batch],
        )

    def _d_micro_step(self, real_images, real_labels, z, fake_labels):
        cfg = self.config
        fake = self.generator((z, fake_labels), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator((real_images, real_labels), training=True)
            fake_logits = self.discriminator((tf.stop_gradient(fake), fake_labels), training=True)
            # Per-replica sum / global batch: summing gradients over replicas then gives
            # the global-batch mean; / accumulation averages the micro-batches.
            loss_real, loss_fake = losses.discriminator_hinge_loss(
                real_logits, fake_logits, global_batch_size=cfg.batch_size
            )
            loss = (loss_real + loss_fake) / cfg.grad_accumulation
        grads = self._gradients(tape, loss, self.models.d_variables, self.d_optimizer)
        return grads, loss_real, loss_fake

    def _g_micro_step(self, z, labels):
        cfg = self.config
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as tape:
            fake = self.generator((z, labels), training=True)
            fake_logits = self.discriminator((fake, labels), training=True)
            g_loss = losses.generator_hinge_loss(fake_logits, global_batch_size=cfg.batch_size)
            reg, parts = losses.transfer_regularizer(self.generator, cfg.l1_scale, cfg.l2_scale)
            # Every replica adds the regulariser once; gradients are summed over replicas.
            loss = (g_loss + reg / tf.cast(replicas, tf.float32)) / cfg.grad_accumulation
        grads = self._gradients(tape, loss, self.models.g_variables, self.g_optimizer)
        return grads, g_loss, parts

    def _gradients(self, tape, loss, variables, optimizer):
        """d loss / d variables; under float16 through a scaled loss, then unscaled."""
        if not self.loss_scaling:
            return tape.gradient(loss, variables)
        with tape:  # resumes recording: the scaling must be on the tape
            scaled = optimizer.get_scaled_loss(loss)
        return optimizer.get_unscaled_gradients(tape.gradient(scaled, variables))

    def _replica_scale(self):
        return tf.cast(tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32)

    # Without accumulation each update is one `strategy.run`. With accumulation the
    # micro-batches run in a `tf.range` loop of `strategy.run` calls that add into
    # per-replica accumulator variables, and one more call applies them: the
    # cross-replica BN all-reduce may not sit inside a loop *within* `strategy.run`, and
    # an unrolled loop would make the graph grow with the number of micro-batches.

    def _d_update(self, real_images, real_labels, index):
        # Latents are drawn outside XLA: its truncated normal draws other numbers.
        z, fake_labels = self._latents(index, salt=1)
        grads, loss_real, loss_fake = self._d_gradients(
            tf.gather(real_images, index), tf.gather(real_labels, index), z, fake_labels
        )
        if self._d_accumulators is None:
            self.d_optimizer.apply_gradients(zip(grads, self.models.d_variables))
        else:
            for acc, g in zip(self._d_accumulators, grads):
                acc.assign_add(g)
        return loss_real, loss_fake

    def _g_update(self, index):
        grads, g_loss, parts = self._g_gradients(*self._latents(index, salt=2))
        if self._g_accumulators is None:
            self.g_optimizer.apply_gradients(zip(grads, self.models.g_variables))
        else:
            for acc, g in zip(self._g_accumulators, grads):
                acc.assign_add(g)
        scale = self._replica_scale()
        return g_loss, parts["l1"] / scale, parts["l2"] / scale

    def _apply_accumulated(self, optimizer, accumulators, variables):
        optimizer.apply_gradients(zip([a.read_value() for a in accumulators], variables))
        for acc in accumulators:
            acc.assign(tf.zeros_like(acc))

    def _make_accumulators(self, variables, name):
        if self.config.grad_accumulation == 1:
            return None
        with self.strategy.scope():
            return [
                tf.Variable(
                    tf.zeros(v.shape, v.dtype),
                    trainable=False,
                    name=f"{name}_accumulator_{i}",
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.SUM,
                )
                for i, v in enumerate(variables)
            ]

    def _update_ema(self):
        """Cross-replica: EMA of G's trainable weights; other state copied from G."""
        decay = tf.where(self.step < self.config.ema_start, 0.0, self.config.ema_decay)
        trainable = {id(v) for v in self.generator.trainable_variables}
        for ema_var, var in zip(self.ema_generator.variables, self.generator.variables):
            if id(var) in trainable:
                ema_var.assign(decay * ema_var + (1.0 - decay) * var)
            else:
                ema_var.assign(var)

    def _build_step_functions(self):
        cfg = self.config
        n_acc = cfg.grad_accumulation
        self._d_accumulators = self._make_accumulators(self.models.d_variables, "d")
        self._g_accumulators = self._make_accumulators(self.models.g_variables, "g")
        # XLA compiles each replica's forward + backward pass (the bulk of the FLOPs);
        # optimiser updates and cross-replica gradient sums stay outside.
        self._d_gradients, self._g_gradients = self._d_micro_step, self._g_micro_step
        if self.jit_compile:
            self._d_gradients = tf.function(self._d_micro_step, jit_compile=True)
            self._g_gradients = tf.function(self._g_micro_step, jit_compile=True)
        strategy = self.strategy

        def total(per_replica):
            return tf.nest.map_structure(
                lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), per_replica
            )

        @tf.function
        def train_step(real_images, real_labels):
            """One iteration: `num_d_steps` D updates, then one G update.

            `real_images [M, b, R, R, 3]` and `real_labels [M, b]` (per replica) hold the
            iteration's M = num_d_steps * grad_accumulation micro-batches.
            """
            d_real = d_fake = 0.0
            for d_step in range(cfg.num_d_steps):  # unrolled: few, and each one updates D
                for i in tf.range(n_acc):
                    index = d_step * n_acc + i
                    loss_real, loss_fake = total(
                        strategy.run(self._d_update, args=(real_images, real_labels, index))
                    )
                    d_real += loss_real
                    d_fake += loss_fake
                if self._d_accumulators is not None:
                    strategy.run(
                        self._apply_accumulated,
                        args=(self.d_optimizer, self._d_accumulators, self.models.d_variables),
                    )
            g_loss = l1 = l2 = 0.0
            for i in tf.range(n_acc):
                step_g, step_l1, step_l2 = total(strategy.run(self._g_update, args=(i,)))
                g_loss += step_g
                l1 += step_l1
                l2 += step_l2
            if self._g_accumulators is not None:
                strategy.run(
                    self._apply_accumulated,
                    args=(self.g_optimizer, self._g_accumulators, self.models.g_variables),
                )
            self.step.assign_add(1)
            if self.ema_generator is not None:
                self._update_ema()
            # Means over the iteration's micro-batches (each already a global-batch mean).
            d_micro_batches = cfg.num_d_steps * n_acc
            return dict(
                d_loss_real=d_real / d_micro_batches,
                d_loss_fake=d_fake / d_micro_batches,
                g_loss=g_loss / n_acc,
                l1=l1 / n_acc,
                l2=l2 / n_acc,
            )

        self.train_step = train_step

    # ---- Evaluation ----------------------------------------------------------------------

    def make_evaluator(self):
        """An `evaluate.Evaluator` for periodic FID when `eval_every` > 0, else None."""
        cfg = self.config
        if cfg.eval_every <= 0:
            return None
        # The classifier first: a missing one is the likelier, and cheaper, failure.
        classifier = evaluate.load_classifier(cfg.classifier or evaluate.INCEPTION_HANDLE)
        real = evaluate.data_real_source(cfg.eval_data or cfg.data, cfg.eval_batch_size)
        return evaluate.Evaluator(
            classifier,
            real.dataset_fn,
            real.cache_key,
            num_images=cfg.eval_num_images,
            batch_size=cfg.eval_batch_size,
            cache_dir=cfg.eval_cache_dir or os.path.join(cfg.model_dir, "eval_cache"),
            seed=cfg.seed,
        )

    def run_evaluation(self, step, writer=None):
        """FID & co. of the sampling generator; keeps the best models by FID in `best/`."""
        if self.evaluator is None or not self.is_chief:
            return None
        cfg = self.config
        generator = self.sampling_generator()
        biggan.accumulate_standing_stats(
            generator, cfg.standing_stats_batches, max(cfg.batch_size, 16), seed=cfg.seed
        )
        results = self.evaluator.evaluate(generator)
        results["step"] = step
        path = os.path.join(cfg.model_dir, "eval", f"step_{step:07d}.json")
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(evaluate.json_safe(results), f, indent=2, sort_keys=True)
        if writer is not None:
            with writer.as_default(step=step):
                for key in ("fid", "kid", "inception_score", "kmmd", "mean_per_class_fid"):
                    if key in results:
                        tf.summary.scalar(f"eval/{key}", results[key])
        logging.info(
            "eval at step %d: FID %.3f KID %.4f IS %.3f",
            step,
            results["fid"],
            results["kid"],
            results["inception_score"],
        )
        if math.isfinite(results["fid"]) and results["fid"] < float(self.best_fid.numpy()):
            self.best_fid.assign(results["fid"])
            best = os.path.join(cfg.model_dir, "best")
            biggan.save_models(best, generator, self.discriminator)
            with tf.io.gfile.GFile(os.path.join(best, "metrics.json"), "w") as f:
                json.dump(evaluate.json_safe(results), f, indent=2, sort_keys=True)
            logging.info("New best FID %.3f at step %d: saved %s", results["fid"], step, best)
        return results

    # ---- Data ----------------------------------------------------------------------------

    @property
    def batches_per_step(self):
        return self.config.num_d_steps * self.config.grad_accumulation

    def make_iterator(self, start_step):
        """A distributed iterator positioned after `start_step` finished iterations."""
        cfg = self.config

        def dataset_fn(input_context):
            dataset = data.make_dataset(
                cfg.data,
                cfg.batch_size,
                input_context=input_context,
                skip_batches=start_step * self.batches_per_step,
            )
            # One element = all micro-batches of one iteration, [M, b, ...].
            dataset = dataset.batch(self.batches_per_step, drop_remainder=True)
            return dataset.prefetch(tf.data.AUTOTUNE)

        dataset = self.strategy.distribute_datasets_from_function(dataset_fn)
        return iter(dataset)

    # ---- Loop ----------------------------------------------------------------------------

    def train(self):
        """Runs (or resumes) the loop to `train_steps`; returns the last metrics."""
        cfg = self.config
        start = self.restore()
        # What export/sample need to rebuild G from a checkpoint of this run (ckpt/).
        tf.io.gfile.makedirs(self.output_dir())
        with tf.io.gfile.GFile(
            os.path.join(self.output_dir(), biggan.GENERATOR_CONFIG_FILE), "w"
        ) as f:
            json.dump(self.generator.get_config(), f, indent=2, sort_keys=True)
        writer = tf.summary.create_file_writer(self.output_dir())
        iterator = self.make_iterator(start)
        metrics, last_time, last_step = {}, time.time(), start
        input_wait = 0.0  # seconds spent waiting for input since the last log
        step = start
        while step < cfg.train_steps:
            wait_start = time.time()
            batch = next(iterator)
            input_wait += time.time() - wait_start
            metrics = {k: float(v) for k, v in self.train_step(*batch).items()}
            step = int(self.step.numpy())
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"Non-finite {', '.join(bad)} at step {step} (after step {step - 1}): "
                    f"{metrics}. Nothing was saved from this step; the last good checkpoint "
                    f"is {self.manager.latest_checkpoint or 'none'}. Lower the learning "
                    "rates or check the data."
                )
            if is_due(step, cfg.log_every) or step == cfg.train_steps:
                now = time.time()
                rate = (step - last_step) / max(now - last_time, 1e-9)
                eta = (cfg.train_steps - step) / max(rate, 1e-9)
                # The share of wall time the loop waited for input: > a few % means
                # the input pipeline, not the model, limits the speed.
                input_share = input_wait / max(now - last_time, 1e-9)
                logging.info(
                    "step %d/%d  %.3f steps/s  input wait %.0f%%  ETA %s  %s",
                    step,
                    cfg.train_steps,
                    rate,
                    100 * input_share,
                    time.strftime("%H:%M:%S", time.gmtime(eta)),
                    "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
                )
                with writer.as_default(step=step):
                    for k, v in metrics.items():
                        tf.summary.scalar(f"train/{k}", v)
                    tf.summary.scalar("train/steps_per_sec", rate)
                    tf.summary.scalar("train/input_wait_fraction", input_share)
                last_time, last_step, input_wait = now, step, 0.0
            if is_due(step, cfg.sample_every):
                self.write_samples(step, writer)
            if is_due(step, cfg.eval_every):
                self.run_evaluation(step, writer)
            if is_due(step, cfg.checkpoint_every):
                self.manager.save(checkpoint_number=step)
        if self.manager.latest_checkpoint != os.path.join(self.checkpoint_dir, f"ckpt-{step}"):
            self.manager.save(checkpoint_number=step)
        self.save_final_models()
        writer.flush()
        return metrics

    def sampling_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator

    def write_samples(self, step, writer=None):
        """A sample sheet (rows = classes) with freshly accumulated standing statistics."""
        cfg = self.config
        if not self.is_chief or cfg.samples_per_class <= 0:
            return None
        generator = self.sampling_generator()
        biggan.accumulate_standing_stats(
            generator, cfg.standing_stats_batches, max(cfg.batch_size, 16), seed=cfg.seed
        )
        rows = min(self.num_classes, 16)
        labels = tf.repeat(tf.range(rows), cfg.samples_per_class)
        z = biggan.sample_z(len(labels), generator.dim_z, 1.0, seed=cfg.seed + 12345)
        sheet = images.make_grid(generator((z, labels)), rows=rows)
        path = os.path.join(cfg.model_dir, "samples", f"step_{step:07d}.png")
        images.write_png(path, sheet)
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("train/samples", sheet[None])
        return path

    def output_dir(self):
        """model_dir on the chief; a scratch directory inside it on other workers."""
        if self.is_chief:
            return self.config.model_dir
        return _worker_dir(self.config.model_dir, self.strategy)

    def save_final_models(self):
        """`models/` (G and D as trained; a kp_bn 'ft' stage resumes from it) and, with
        EMA, `models_ema/` (the EMA generator, what sampling and export should use).
        Non-chief workers write theirs to their scratch directory."""
        out = self.output_dir()
        biggan.save_models(os.path.join(out, "models"), self.generator, self.discriminator)
        if self.ema_generator is not None:
            biggan.save_models(os.path.join(out, "models_ema"), self.ema_generator)


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def _worker_dir(model_dir, strategy):
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, f"workertemp_{resolver.task_type}_{resolver.task_id}")


def write_flags_file(model_dir, flag_lines):
    """Writes `flags.txt`: the resolved flags, one per line, reusable as a flagfile."""
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, "flags.txt"), "w") as f:
        f.write("\n".join(flag_lines) + "\n")


def config_to_json(config):
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True, default=str)
