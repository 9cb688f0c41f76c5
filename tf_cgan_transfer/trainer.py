"""The distributed GAN training run (library; `train.py` is its command line).

Reads top to bottom in run order: strategy and seeding, models and optimisers under the
strategy's scope (`transfer.build`), checkpoint restore, the step functions
(`train_step.GANStep`), the host loop and its hooks (logs, sample sheets, periodic
evaluation keeping the best models by a chosen metric, checkpoints, final models and the kp_bn
class-affinity report). Library code: it never reads flags; `train_config.TrainConfig` carries
everything, and `model_io.RunLayout` names every file it writes.
"""

import math
import time

from absl import logging
import tensorflow as tf

from tf_cgan_transfer import affinity
from tf_cgan_transfer import affinity_prior
from tf_cgan_transfer import biggan
from tf_cgan_transfer import class_names
from tf_cgan_transfer import data
from tf_cgan_transfer import distribute
from tf_cgan_transfer import errors
from tf_cgan_transfer import images
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import mixture_stats
from tf_cgan_transfer import model_io
from tf_cgan_transfer import optimizers
from tf_cgan_transfer import periodic_eval
from tf_cgan_transfer import precision
from tf_cgan_transfer import run_safety
from tf_cgan_transfer import sheets
from tf_cgan_transfer import train_step
from tf_cgan_transfer import transfer

SAMPLE_SEED_OFFSET = 12345  # sample sheets use other latents than evaluation (seed)
MAX_SAMPLE_ROWS = 16


class TrainingError(errors.UserError, ValueError):
    """Training cannot go on (non-finite loss, bad batch size); says what to do."""


class TrainingStopped(TrainingError):
    """SIGINT or SIGTERM stopped the run after a checkpoint of its current step."""


def is_due(step, every):
    """True when `every` > 0 and `step` (1-based count of finished steps) is a multiple."""
    return every > 0 and step % every == 0


class Trainer:
    """Builds the models, optimisers and step functions of a run and runs the loop.

    Args:
      config: the `train_config.TrainConfig`.
      strategy: a `tf.distribute.Strategy` (None: the default one).
      num_classes: the new classes' count; None reads it from the data plan.
      plan: the `data.DataPlan` of `config.data` when the caller has it (the labels are
        then not read again); None makes it when first needed.
    """

    def __init__(self, config, strategy=None, num_classes=None, plan=None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        tf.keras.utils.set_random_seed(config.seed)
        self.plan = plan
        if num_classes is None:
            self.plan = data.validate(plan or config.data)
            num_classes = self.plan.num_classes
        self.num_classes = num_classes
        known = self.plan.class_names if self.plan is not None else None
        self.class_names = class_names.resolve(config.class_names, num_classes, known)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise TrainingError(
                f"batch_size={config.batch_size} must be divisible by the "
                f"{replicas} replicas in sync."
            )
        limited_data.check(
            config.augment, config.augment_policy, config.lecam_weight, config.lecam_decay
        )
        if config.steps_per_call < 1:
            raise TrainingError(f"steps_per_call={config.steps_per_call} must be >= 1.")
        jit_compile = distribute.check_jit(config.jit_compile, self.strategy, TrainingError)
        loss_scaling = precision.needs_loss_scaling(config.mixed_precision)

        # Layers take the precision policy at construction: build everything inside it.
        with precision.policy_scope(config.mixed_precision), self.strategy.scope():
            self.models = transfer.build(
                config.transfer_config(num_classes),
                source=config.source,
                bn_checkpoint=config.bn_checkpoint,
                architecture=config.architecture,
                source_ema=config.source_ema,
                prior=affinity_prior.for_run(
                    config.model_dir,
                    self.data_plan,
                    num_classes,
                    write=distribute.is_chief(self.strategy),
                ),
            )
            self.generator = self.models.generator
            self.discriminator = self.models.discriminator
            opt = config.optimizer
            g_scales = self._g_lr_scales()
            self.g_optimizer = self._optimizer(
                opt.g_lr, opt.g_beta1, opt.g_beta2, loss_scaling, self.models.g_variables, g_scales
            )
            self.d_optimizer = self._optimizer(
                opt.d_lr, opt.d_beta1, opt.d_beta2, loss_scaling, self.models.d_variables
            )
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_fid = tf.Variable(float("inf"), trainable=False, name="best_fid")
            self.ema_generator = None
            if config.ema_decay > 0:
                self.ema_generator = train_step.make_ema_generator(self.generator)
            self.lecam = None
            if config.lecam_weight > 0:
                self.lecam = limited_data.LeCamAverages(config.lecam_decay)
        self.initial_mixtures = None  # kp_bn: set by `train` (mixture_stats)
        self.checkpoint = tf.train.Checkpoint(**self._trackables())
        # Only the chief writes: other workers save to a scratch directory.
        self.is_chief = distribute.is_chief(self.strategy)
        self.layout = config.layout
        self.output = (
            self.layout if self.is_chief else distribute.worker_layout(self.layout, self.strategy)
        )
        self.manager = self._make_manager()
        # Optimiser slots now, not inside the first step: a step that creates variables
        # is traced twice.
        self._build_optimizer_slots()
        self.steps = train_step.GANStep(
            config,
            self.models,
            self.g_optimizer,
            self.d_optimizer,
            self.step,
            self.strategy,
            num_classes,
            ema_generator=self.ema_generator,
            lecam=self.lecam,
            jit_compile=jit_compile,
            loss_scaling=loss_scaling,
        )
        self.train_step = self.steps.train_step
        # Built (and the classifier loaded) now, so a missing classifier fails before training.
        self.evaluation = self.make_evaluation()

    def _g_lr_scales(self):
        """G's `(variable, multiplier)` pairs; a group at 0 leaves the trained variables."""
        scales = self.config.optimizer.lr_scales()
        if all(v == 1.0 for v in scales.values()):
            return []
        groups = transfer.bn_parameter_groups(self.generator)
        pairs, kept = optimizers.scaled_groups(groups, self.models.g_variables, scales)
        if pairs is None:
            raise TrainingError(
                "--a_lr_scale, --r_lr_scale and --p_lr_scale scale the BN parameters of "
                f"kp_bn's bn stage and bn_only; {self.config.method} "
                f"({self.config.resolved_stage}) trains none of them."
            )
        self.models.g_variables = kept
        return pairs

    def _optimizer(self, lr, beta1, beta2, loss_scaling, variables, lr_scales=()):
        opt = self.config.optimizer
        xla = optimizers.xla_updates_pay(variables)
        return optimizers.make(
            lr, beta1, beta2, opt.epsilon, loss_scaling, lr_scales, xla, opt.fused_updates
        )

    def _trackables(self):
        objects = {
            model_io.GENERATOR_KEY: self.generator,
            model_io.DISCRIMINATOR_KEY: self.discriminator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "step": self.step,
            "best_fid": self.best_fid,
        }
        if self.ema_generator is not None:
            objects[model_io.EMA_GENERATOR_KEY] = self.ema_generator
        if self.lecam is not None:
            objects["lecam"] = self.lecam
        return objects

    def data_plan(self):
        """The validated `data.DataPlan` of the training data (made once)."""
        if self.plan is None or not self.plan.validated:
            self.plan = data.validate(self.plan or self.config.data)
        return self.plan

    # ---- Restore -------------------------------------------------------------------------

    def _make_manager(self):
        return tf.train.CheckpointManager(
            self.checkpoint, self.output.ckpt_dir, max_to_keep=self.config.keep_checkpoints
        )

    def restore(self):
        """Resumes from the latest intact checkpoint in model_dir, if any; returns the step.

        A damaged latest checkpoint is moved to ckpt/damaged/ (`run_safety`) first.
        """
        if run_safety.check_checkpoints(self.output.ckpt_dir, TrainingError):
            self.manager = self._make_manager()  # it read the list before the move
        latest = self.manager.latest_checkpoint
        if latest:
            # Build optimiser slots first so the restore can match them all.
            self._build_optimizer_slots()
            try:
                self.checkpoint.restore(latest).assert_consumed()
            except AssertionError as e:
                raise TrainingError(
                    f"{latest} does not match this run's state ({str(e).splitlines()[0]}). "
                    "Resume with the flags it was written with (--ema_decay and "
                    "--lecam_weight on or off, method, stage, architecture) or pass a new "
                    "--model_dir; the checkpoint is untouched."
                ) from e
            logging.info("Resumed from %s at step %d", latest, int(self.step.numpy()))
        return int(self.step.numpy())

    def _build_optimizer_slots(self):
        with self.strategy.scope():
            self.g_optimizer.build(self.models.g_variables)
            self.d_optimizer.build(self.models.d_variables)

    # ---- Evaluation ----------------------------------------------------------------------

    def make_evaluation(self):
        """The run's `periodic_eval.PeriodicEvaluation` when `eval_every` > 0, else None."""
        if self.config.eval_every <= 0:
            return None
        return periodic_eval.PeriodicEvaluation(
            self.config, self.data_plan, self.layout, self.best_fid
        )

    @property
    def evaluator(self):
        """The `evaluator.Evaluator` of periodic evaluation, or None."""
        return self.evaluation and self.evaluation.evaluator

    def _standing_stats(self, generator):
        cfg = self.config
        biggan.accumulate_standing_stats(
            generator, cfg.standing_stats_batches, max(cfg.batch_size, 16), seed=cfg.seed
        )

    def run_evaluation(self, step, writer=None):
        """Scores the sampling generator; keeps the best models by `best_metric` in `best/`."""
        if self.evaluation is None or not self.is_chief:
            return None
        generator = self.sampling_generator()
        self._standing_stats(generator)
        return self.evaluation(step, generator, self.discriminator, writer)

    # ---- Data ----------------------------------------------------------------------------

    @property
    def batches_per_step(self):
        return self.config.num_d_steps * self.config.grad_accumulation

    def make_iterator(self, start_step):
        """A distributed iterator positioned after `start_step` finished iterations."""
        plan, batch_size = self.data_plan(), self.config.batch_size

        def dataset_fn(input_context):
            dataset = data.make_dataset(
                plan,
                batch_size,
                input_context=input_context,
                skip_batches=start_step * self.batches_per_step,
            )
            # One element = all micro-batches of one iteration, [M, b, ...].
            dataset = dataset.batch(self.batches_per_step, drop_remainder=True)
            return dataset.prefetch(tf.data.AUTOTUNE)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # ---- Loop ----------------------------------------------------------------------------

    def train(self):
        """Runs (or resumes) the loop to `train_steps`; returns the last metrics."""
        cfg = self.config
        start = self.restore()
        # kp_bn: the mixtures' starting point, against which their movement is measured.
        self.initial_mixtures = None
        if self.is_chief:
            self.initial_mixtures = mixture_stats.record_initial(
                self.output.root, self.generator, cfg.bn_checkpoint
            )
        # What export/sample need to rebuild G from a checkpoint of this run (ckpt/).
        model_io.write_json(self.output.generator_config_file, self.generator.get_config())
        writer = tf.summary.create_file_writer(self.output.root)
        aids = (cfg.augment, self.steps.policy, cfg.lecam_weight, cfg.lecam_decay)
        logging.info("D's limited-data aids: %s", limited_data.describe(*aids))
        iterator = self.make_iterator(start)
        metrics_, self._last_log = {}, (time.time(), start, 0.0)
        step = start
        kept = lambda: self.manager.latest_checkpoint or "no checkpoint yet"  # noqa: E731
        with run_safety.StopSignals() as stop, run_safety.disk_full(TrainingError, kept):
            while step < cfg.train_steps and not stop.requested:
                if cfg.steps_per_call == 1:  # the host feeds the step: its wait is measured
                    wait_start = time.time()
                    batch = next(iterator)
                    input_wait = time.time() - wait_start
                    metrics_ = self.train_step(*batch)
                else:  # the call draws its batches itself
                    length = tf.constant(self.call_length(step), tf.int32)
                    metrics_, input_wait = self.steps.train_steps(iterator, length), 0.0
                metrics_ = {k: float(v) for k, v in metrics_.items()}
                step = int(self.step.numpy())
                self._check_finite(step, metrics_)
                self._after_step(step, metrics_, input_wait, writer)
                run_safety.fault_point("step_end")
            if self.manager.latest_checkpoint != self.output.checkpoint_path(step):
                self.save_checkpoint(step)
            if stop.requested:
                writer.flush()
                raise TrainingStopped(
                    f"Stopped by {stop.requested} at step {step}/{cfg.train_steps}; "
                    f"saved {self.manager.latest_checkpoint}. Rerun the same command to "
                    "continue from it."
                )
            self.save_final_models(writer)
        writer.flush()
        return metrics_

    def call_length(self, step):
        """Steps of the next call after `step`: `steps_per_call`, cut at the next step where
        a log, sample sheet, evaluation or checkpoint is due, and at `train_steps`."""
        cfg = self.config
        end = min(step + cfg.steps_per_call, cfg.train_steps)
        for every in (cfg.log_every, cfg.sample_every, cfg.eval_every, cfg.checkpoint_every):
            if every > 0:
                end = min(end, (step // every + 1) * every)
        return end - step

    def save_checkpoint(self, step):
        """`ckpt/ckpt-<step>`: TF writes its files, then records it in `ckpt/checkpoint`."""
        # The hook runs between the two (files complete, not yet recorded).
        hook = lambda *_: run_safety.fault_point("checkpoint_save")  # noqa: E731
        options = tf.train.CheckpointOptions(experimental_write_callbacks=[hook])
        return self.manager.save(checkpoint_number=step, options=options)

    def _check_finite(self, step, step_metrics):
        bad = [k for k, v in step_metrics.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(
                f"Non-finite {', '.join(bad)} at step {step} (after step {step - 1}): "
                f"{step_metrics}. Nothing was saved from this step; the last good checkpoint "
                f"is {self.manager.latest_checkpoint or 'none'}. Lower the learning "
                "rates or check the data."
            )

    def _after_step(self, step, step_metrics, input_wait, writer):
        """The hooks of a finished step: log, samples, evaluation, checkpoint."""
        cfg = self.config
        last_time, last_step, waited = self._last_log
        waited += input_wait
        if is_due(step, cfg.log_every) or step == cfg.train_steps:
            now = time.time()
            rate = (step - last_step) / max(now - last_time, 1e-9)
            eta = (cfg.train_steps - step) / max(rate, 1e-9)
            # The share of wall time the loop waited for input: > a few % means the
            # input pipeline, not the model, limits the speed.
            # (Unmeasured when a compiled call draws its own batches.)
            input_share = waited / max(now - last_time, 1e-9)
            measured = cfg.steps_per_call == 1
            logging.info(
                "step %d/%d  %.3f steps/s  input wait %s  ETA %s  %s",
                step,
                cfg.train_steps,
                rate,
                f"{100 * input_share:.0f}%" if measured else "n/a",
                time.strftime("%H:%M:%S", time.gmtime(eta)),
                "  ".join(f"{k}={v:.4f}" for k, v in step_metrics.items()),
            )
            with writer.as_default(step=step):
                for k, v in step_metrics.items():
                    tf.summary.scalar(f"train/{k}", v)
                tf.summary.scalar("train/steps_per_sec", rate)
                if measured:
                    tf.summary.scalar("train/input_wait_fraction", input_share)
            if self.is_chief:
                mixture_stats.log_summaries(self.generator, self.initial_mixtures, writer, step)
            last_time, last_step, waited = now, step, 0.0
        self._last_log = (last_time, last_step, waited)
        if is_due(step, cfg.sample_every):
            self.write_samples(step, writer)
        if is_due(step, cfg.eval_every):
            self.run_evaluation(step, writer)
        if is_due(step, cfg.checkpoint_every):
            self.save_checkpoint(step)

    def sampling_generator(self):
        return self.ema_generator if self.ema_generator is not None else self.generator

    def write_samples(self, step, writer=None):
        """A sample sheet (rows = classes) with freshly accumulated standing statistics."""
        cfg = self.config
        if not self.is_chief or cfg.samples_per_class <= 0:
            return None
        generator = self.sampling_generator()
        self._standing_stats(generator)
        rows, names = min(self.num_classes, MAX_SAMPLE_ROWS), self.class_names
        seed = cfg.seed + SAMPLE_SEED_OFFSET
        sheet = sheets.sample_sheet(generator, range(rows), cfg.samples_per_class, names, seed=seed)
        path = self.layout.sample_file(step)
        images.write_png(path, sheet)
        if writer is not None:
            with writer.as_default(step=step):
                tf.summary.image("train/samples", sheet[None])
        return path

    def save_final_models(self, writer=None):
        """`models/` (G and D as trained; a kp_bn or minegan 'ft' stage resumes from it),
        with EMA `models_ema/` (the EMA generator, what sampling and export use), and for
        kp_bn the class-affinity report and heat map, also in TensorBoard (other methods
        learn no mixtures A). Non-chief workers write theirs to their scratch directory."""
        out = self.output
        model_io.save_models(out.models_dir, self.generator, self.discriminator)
        run_safety.fault_point("final_models")
        if self.ema_generator is not None:
            model_io.save_models(out.ema_models_dir, self.ema_generator)
        if self.generator.conditioning == "kp_bn":
            args = (self.sampling_generator(), out.root, self.class_names, self.config.source)
            affinity.write_run_report(
                *args, self.config.source_class_names, writer, self.step, self.initial_mixtures
            )
