"""One training iteration: latent streams, the D and G replica steps, accumulation, EMA.

An iteration runs `num_d_steps` D updates and one G update, each over
`grad_accumulation` micro-batches. Losses are summed per replica and divided by the
global batch, so summing gradients over replicas gives the global-batch mean; G's BN
statistics are all-reduced across replicas inside the BN layers.

Latents and fake labels of a micro-batch are drawn for the global batch and each replica
takes its slice, so a step is the same computation whatever the number of replicas. Every
stream's key is derived with `tf.random.experimental.stateless_fold_in` from
(seed, step, purpose, micro-batch): no two streams of a run share a key, however many
micro-batches there are, and a resumed run draws what an uninterrupted one would. The
augmentation parameters of `limited_data` (real and generated images of D's step, and
G's step, each its own stream) are drawn and sliced the same way.
"""

import tensorflow as tf

from tf_cgan_transfer import biggan
from tf_cgan_transfer import limited_data
from tf_cgan_transfer import losses

# What a stream is for; folded into its key after the step.
D_STREAM = 1
G_STREAM = 2
D_REAL_AUGMENT_STREAM = 3
D_FAKE_AUGMENT_STREAM = 4
G_AUGMENT_STREAM = 5
_Z, _LABELS = 0, 1  # the two draws of a stream


def stream_key(seed, step, stream, micro_step):
    """The `[2]` int64 key of one stream: (seed, step, stream, micro-batch) folded in."""
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    for data in (step, stream, micro_step):
        key = tf.random.experimental.stateless_fold_in(
            key, tf.cast(data, tf.int64), alg=biggan.RNG_ALG
        )
    return key


def draw_latents(key, batch_size, dim_z, num_classes):
    """`(z [B, dim_z], labels [B] int32)` of a stream key (global batch)."""
    fold = lambda data: tf.random.experimental.stateless_fold_in(
        key, tf.constant(data, tf.int64), alg=biggan.RNG_ALG
    )
    z_key, label_key = fold(_Z), fold(_LABELS)
    z = biggan.sample_z(batch_size, dim_z, 1.0, z_key)
    labels = tf.random.stateless_uniform(
        [batch_size], label_key, 0, num_classes, tf.int32, alg=biggan.RNG_ALG
    )
    return z, labels


def all_finite(metrics):
    """A scalar bool tensor: every value of the metrics dict is finite."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in metrics.values()])


def make_ema_generator(generator):
    """A generator of the same config holding a copy of `generator`'s weights."""
    ema = biggan.Generator.from_config(generator.get_config()).build_weights()
    ema.set_weights(generator.get_weights())
    return ema


class GANStep:
    """The step functions of a run; `train_step(images, labels)` runs one iteration.

    Args:
      config: the run's `train_config.TrainConfig` (batch_size, grad_accumulation,
        num_d_steps, l1_scale, l2_scale, ema_decay, ema_start, seed, augment,
        augment_policy, lecam_weight).
      models: the `transfer.TransferModels` (G, D and the variables they train).
      g_optimizer, d_optimizer: Keras optimisers (`LossScaleOptimizer`s under float16).
      step: the int64 iteration counter variable (advanced by `train_step`).
      strategy: the `tf.distribute.Strategy` the variables live in.
      num_classes: classes of the fake labels.
      ema_generator: the EMA copy of G, or None.
      lecam: the `limited_data.LeCamAverages` of the run when `lecam_weight` > 0.
      jit_compile: compile each replica's forward and backward pass with XLA.
      loss_scaling: float16: gradients through the optimisers' scaled loss.
    """

    def __init__(
        self,
        config,
        models,
        g_optimizer,
        d_optimizer,
        step,
        strategy,
        num_classes,
        ema_generator=None,
        lecam=None,
        jit_compile=False,
        loss_scaling=False,
    ):
        self.config = config
        self.models = models
        self.generator, self.discriminator = models.generator, models.discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.step = step
        self.strategy = strategy
        self.num_classes = num_classes
        self.ema_generator = ema_generator
        self.policy = limited_data.check(
            config.augment, config.augment_policy, config.lecam_weight, config.lecam_decay
        )
        if (lecam is None) != (config.lecam_weight == 0):
            raise ValueError("Pass LeCam averages exactly when lecam_weight > 0.")
        self.lecam = lecam
        self.loss_scaling = loss_scaling
        self.per_replica_batch = config.batch_size // strategy.num_replicas_in_sync
        self._d_accumulators = self._make_accumulators(models.d_variables, "d")
        self._g_accumulators = self._make_accumulators(models.g_variables, "g")
        # XLA compiles each replica's forward + backward pass (the bulk of the FLOPs);
        # optimiser updates and cross-replica gradient sums stay outside.
        self._d_gradients, self._g_gradients = self.d_micro_step, self.g_micro_step
        if jit_compile:
            self._d_gradients = tf.function(self.d_micro_step, jit_compile=True)
            self._g_gradients = tf.function(self.g_micro_step, jit_compile=True)
        self.train_step = tf.function(self._train_step)
        self.train_steps = tf.function(self._train_steps)

    # ---- Replica functions ---------------------------------------------------------------

    def latents(self, micro_step, stream):
        """This replica's slice of the global batch of (z, labels) for one micro-batch."""
        cfg = self.config
        key = stream_key(cfg.seed, self.step, stream, micro_step)
        z, labels = draw_latents(key, cfg.batch_size, self.generator.dim_z, self.num_classes)
        start = self._replica_start()
        return (
            z[start : start + self.per_replica_batch],
            labels[start : start + self.per_replica_batch],
        )

    def augmentation(self, micro_step, stream):
        """This replica's slice of one stream's augmentation parameters ({} without)."""
        if not self.policy:
            return {}
        key = stream_key(self.config.seed, self.step, stream, micro_step)
        resolution = self.generator.resolution
        params = limited_data.draw(key, self.config.batch_size, resolution, self.policy)
        return limited_data.replica_slice(params, self._replica_start(), self.per_replica_batch)

    def _replica_start(self):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return replica * self.per_replica_batch

    def d_micro_step(
        self, real_images, real_labels, z, fake_labels, real_aug=None, fake_aug=None, anchors=None
    ):
        """`(D gradients, terms)` of one micro-batch on this replica.

        `real_aug`/`fake_aug` are the augmentation parameters of the real and generated
        images (None: none), `anchors` LeCam's `(α_R, α_F, active)`. `terms` holds the hinge
        losses `loss_real`, `loss_fake`, D's mean outputs `real_mean`, `fake_mean` and the
        unweighted LeCam penalty `lecam`, each this replica's share of the global-batch
        mean (they sum over replicas).
        """
        cfg = self.config
        fake = self.generator((z, fake_labels), training=True)
        real_images = limited_data.apply(real_images, real_aug, self.policy)
        fake = limited_data.apply(tf.stop_gradient(fake), fake_aug, self.policy)
        with tf.GradientTape() as tape:
            # One D call on real and fake together, as BigGAN-PyTorch's G_D and
            # compare_gan do: one spectral-norm power iteration per D step (u advances
            # once, both halves see the same sigma) and twice the batch per conv.
            logits = self.discriminator(
                (
                    tf.concat([real_images, tf.cast(fake, real_images.dtype)], 0),
                    tf.concat([real_labels, tf.cast(fake_labels, real_labels.dtype)], 0),
                ),
                training=True,
            )
            real_logits, fake_logits = tf.split(logits, 2)
            # Per-replica sum / global batch: summing gradients over replicas then gives
            # the global-batch mean; / accumulation averages the micro-batches.
            loss_real, loss_fake = losses.discriminator_hinge_loss(
                real_logits, fake_logits, global_batch_size=cfg.batch_size
            )
            loss = loss_real + loss_fake
            lecam = tf.constant(0.0)
            if self.lecam is not None:
                anchor_real, anchor_fake, active = anchors
                lecam = active * limited_data.lecam_penalty(
                    real_logits, fake_logits, anchor_real, anchor_fake, cfg.batch_size
                )
                loss += cfg.lecam_weight * lecam
            loss /= cfg.grad_accumulation
        grads = self._gradients(tape, loss, self.models.d_variables, self.d_optimizer)
        mean = lambda logits: tf.reduce_sum(logits) / float(cfg.batch_size)
        terms = dict(
            loss_real=loss_real,
            loss_fake=loss_fake,
            real_mean=mean(real_logits),
            fake_mean=mean(fake_logits),
            lecam=lecam,
        )
        return grads, terms

    def g_micro_step(self, z, labels, aug=None):
        """`(G gradients, g_loss, {"l1", "l2"})` of one micro-batch on this replica.

        `aug`: the augmentation parameters of the generated images (None: none).
        """
        cfg = self.config
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as tape:
            fake = self.generator((z, labels), training=True)
            fake = limited_data.apply(fake, aug, self.policy)
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

    # Without accumulation each update is one `strategy.run`. With accumulation the
    # micro-batches run in a `tf.range` loop of `strategy.run` calls that add into
    # per-replica accumulator variables, and one more call applies them: the
    # cross-replica BN all-reduce may not sit inside a loop *within* `strategy.run`, and
    # an unrolled loop would make the graph grow with the number of micro-batches.

    def _d_update(self, real_images, real_labels, index, anchors):
        # Random draws happen outside XLA: its truncated normal draws other numbers.
        z, fake_labels = self.latents(index, D_STREAM)
        real_aug = self.augmentation(index, D_REAL_AUGMENT_STREAM)
        fake_aug = self.augmentation(index, D_FAKE_AUGMENT_STREAM)
        grads, terms = self._d_gradients(
            tf.gather(real_images, index),
            tf.gather(real_labels, index),
            z,
            fake_labels,
            real_aug,
            fake_aug,
            anchors,
        )
        self._apply_or_accumulate(
            grads, self._d_accumulators, self.d_optimizer, self.models.d_variables
        )
        return terms

    def _g_update(self, index):
        z, labels = self.latents(index, G_STREAM)
        aug = self.augmentation(index, G_AUGMENT_STREAM)
        grads, g_loss, parts = self._g_gradients(z, labels, aug)
        self._apply_or_accumulate(
            grads, self._g_accumulators, self.g_optimizer, self.models.g_variables
        )
        scale = tf.cast(tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32)
        return g_loss, parts["l1"] / scale, parts["l2"] / scale

    @staticmethod
    def _apply_or_accumulate(grads, accumulators, optimizer, variables):
        if accumulators is None:
            optimizer.apply_gradients(zip(grads, variables))
        else:
            for acc, g in zip(accumulators, grads):
                acc.assign_add(g)

    @staticmethod
    def _apply_accumulated(optimizer, accumulators, variables):
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

    # ---- Cross-replica ---------------------------------------------------------------------

    def _update_ema(self):
        """EMA of G's trainable weights; other state (statistics, u) copied from G."""
        decay = tf.where(self.step < self.config.ema_start, 0.0, self.config.ema_decay)
        trainable = {id(v) for v in self.generator.trainable_variables}
        for ema_var, var in zip(self.ema_generator.variables, self.generator.variables):
            if id(var) in trainable:
                ema_var.assign(decay * ema_var + (1.0 - decay) * var)
            else:
                ema_var.assign(var)

    def _total(self, per_replica):
        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), per_replica
        )

    def _train_steps(self, iterator, num_steps):
        """Up to `num_steps` iterations in one call, each drawing its batch from `iterator`
        (a distributed iterator of `(images, labels)` as `_train_step` takes them).

        One compiled call per many steps: the host neither feeds batches nor reads metrics
        in between (small models are bound by that per-step overhead). `num_steps` is a
        scalar int32 tensor, so every call length shares one trace. The loop stops after
        the first step whose metrics are not all finite, so the host sees that step.

        Returns:
          The metrics of the last iteration run.
        """
        metrics = self._train_step(*next(iterator))
        for _ in tf.range(num_steps - 1):
            if not all_finite(metrics):
                break
            metrics = self._train_step(*next(iterator))
        return metrics

    def _train_step(self, real_images, real_labels):
        """One iteration: `num_d_steps` D updates, then one G update.

        `real_images [M, b, R, R, 3]` and `real_labels [M, b]` (per replica) hold the
        iteration's M = num_d_steps * grad_accumulation micro-batches.
        """
        cfg, strategy = self.config, self.strategy
        n_acc = cfg.grad_accumulation
        keys = ("loss_real", "loss_fake", "real_mean", "fake_mean", "lecam")
        d_terms = dict.fromkeys(keys, 0.0)
        for d_step in range(cfg.num_d_steps):  # unrolled: few, and each one updates D
            # LeCam's anchors stay fixed during an update (also over its micro-batches).
            anchors = self.lecam.anchors() if self.lecam is not None else None
            update = dict.fromkeys(keys, 0.0)  # sums over this update's micro-batches
            for i in tf.range(n_acc):
                index = d_step * n_acc + i
                terms = self._total(
                    strategy.run(self._d_update, args=(real_images, real_labels, index, anchors))
                )
                update = {k: update[k] + terms[k] for k in keys}
            if self._d_accumulators is not None:
                strategy.run(
                    self._apply_accumulated,
                    args=(self.d_optimizer, self._d_accumulators, self.models.d_variables),
                )
            if self.lecam is not None:
                self.lecam.update(update["real_mean"] / n_acc, update["fake_mean"] / n_acc)
            d_terms = {k: d_terms[k] + update[k] for k in keys}
        g_loss = l1 = l2 = 0.0
        for i in tf.range(n_acc):
            step_g, step_l1, step_l2 = self._total(strategy.run(self._g_update, args=(i,)))
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
        d_terms = {k: v / d_micro_batches for k, v in d_terms.items()}
        metrics = dict(
            d_loss_real=d_terms["loss_real"],
            d_loss_fake=d_terms["loss_fake"],
            g_loss=g_loss / n_acc,
            l1=l1 / n_acc,
            l2=l2 / n_acc,
            # D's mean output on the (augmented) real and generated images it trained on:
            # a gap that keeps growing is D memorising the real images.
            d_real=d_terms["real_mean"],
            d_fake=d_terms["fake_mean"],
        )
        if self.lecam is not None:
            anchor_real, anchor_fake, _ = self.lecam.anchors()
            metrics.update(lecam=d_terms["lecam"], lecam_real=anchor_real, lecam_fake=anchor_fake)
        return metrics
