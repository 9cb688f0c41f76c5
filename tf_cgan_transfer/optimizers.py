"""The training optimisers: Adam, with a learning-rate multiplier per variable group.

kp_bn's bn stage trains parameters of very different roles with one optimiser: the
mixtures A, the residuals R and the old classes' offsets P (docs/method.md §2). Adam
moves every weight by about the learning rate per step whatever its gradient's scale,
so rescaling a gradient changes nothing; giving a group its own pace needs its own
learning rate. Adam's step is linear in the learning rate, so the step at `lr * s` is
`s` times the step at `lr`: `ScaledAdam` takes Keras' own update and rescales it for the
variables that have a multiplier (the others are updated exactly as by `Adam`).
`FusedAdam`, what training uses (`make`), computes the same update for all variables in
one call per device instead of one per variable.

Example:
    opt = make(2e-4, 0.0, 0.999, 1e-6, lr_scales=[(a_kernel, 10.0)])
    opt.apply_gradients(zip(grads, variables))  # a_kernel moves at 2e-3
"""

import tensorflow as tf


class ScaledAdam(tf.keras.optimizers.Adam):
    """`tf.keras.optimizers.Adam` whose step of some variables is multiplied by a factor.

    Args:
      lr_scales: `(variable, multiplier)` pairs; variables not listed keep the
        optimiser's learning rate. (Matched by identity, as Keras keys its slots, so a
        distributed variable's per-device components find their multiplier too.)
      *args, **kwargs: `tf.keras.optimizers.Adam`'s.
    """

    def __init__(self, lr_scales, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr_scales = {self._var_key(v): float(scale) for v, scale in lr_scales}

    def update_step(self, gradient, variable):
        scale = self._lr_scales.get(self._var_key(variable))
        if scale is None or scale == 1.0:
            return super().update_step(gradient, variable)
        before = tf.identity(variable)
        super().update_step(gradient, variable)
        # variable = before - step; the step at lr * scale is scale * step.
        variable.assign_add((1.0 - scale) * (before - variable))
        return None


class FusedAdam(ScaledAdam):
    """`ScaledAdam` whose step updates every variable in one call per device.

    Keras runs Adam's update once per variable: a dozen small graph ops each, or one
    XLA launch each with `jit_compile`. Here one function takes every gradient, variable
    and slot of the step and updates them all (with `jit_compile`: one XLA cluster, the
    whole step's update in one launch). The arithmetic is Keras' Adam, op for op
    (m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), w -= s m alpha / (sqrt(v) + eps) with
    alpha = lr sqrt(1 - b2^t) / (1 - b1^t) and s the variable's multiplier), on the same
    slot variables, so checkpoints of either optimiser restore into the other.

    Gradients arrive summed over replicas (Keras all-reduces them before the update);
    each device then updates its own copies of the mirrored variables. Strategies whose
    variables are not mirrored per device (TPU, parameter servers) take Keras'
    per-variable path.

    Args:
      lr_scales, *args, **kwargs: `ScaledAdam`'s.
    """

    def __init__(self, lr_scales, *args, **kwargs):
        super().__init__(lr_scales, *args, **kwargs)
        self._fused_update = None

    def _fused(self):
        if self._fused_update is None:
            self._fused_update = tf.function(self._update_all, jit_compile=self.jit_compile)
        return self._fused_update

    def _update_all(self, grads, variables, momentums, velocities, scales, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        alpha = lr * tf.sqrt(1 - tf.pow(tf.cast(b2, lr.dtype), step)) / (
            1 - tf.pow(tf.cast(b1, lr.dtype), step)
        )
        for g, w, m, v, s in zip(grads, variables, momentums, velocities, scales):
            m.assign_add((g - m) * (1 - b1))
            v.assign_add((tf.square(g) - v) * (1 - b2))
            update = (m * alpha) / (tf.sqrt(v) + self.epsilon)
            w.assign_sub(update if s == 1.0 else s * update)

    def _distributed_apply_gradients_fn(self, distribution, grads_and_vars, **kwargs):
        if not _mirrored_per_device(distribution) or self.amsgrad or self.use_ema:
            return super()._distributed_apply_gradients_fn(distribution, grads_and_vars, **kwargs)
        local = distribution.experimental_local_results
        grads, variables = zip(*grads_and_vars)
        keys = [self._var_key(v) for v in variables]
        slots = [self._index_dict[k] for k in keys]
        per_variable = [
            (local(g), local(w), local(self._momentums[i]), local(self._velocities[i]))
            for g, w, i in zip(grads, variables, slots)
        ]
        scales = [self._lr_scales.get(k, 1.0) for k in keys]
        step = tf.cast(self.iterations + 1, tf.float32)
        lr = tf.cast(self.learning_rate, tf.float32)
        for d in range(len(per_variable[0][1])):  # each device's copies
            g, w, m, v = ([parts[k][d] for parts in per_variable] for k in range(4))
            with tf.device(w[0].device):
                g = [tf.convert_to_tensor(x) for x in g]  # IndexedSlices (embeddings): dense
                self._fused()(g, w, m, v, scales, lr, step)
        return self.iterations.assign_add(1)


def _mirrored_per_device(distribution):
    """Whether every variable has one plain copy per local device under `distribution`."""
    mirrored = (
        tf.distribute.MirroredStrategy,
        tf.distribute.MultiWorkerMirroredStrategy,
        tf.distribute.OneDeviceStrategy,
    )
    default = tf.distribute.get_strategy() is distribution and not tf.distribute.has_strategy()
    return isinstance(distribution, mirrored) or default


# Trained parameters from which the Adam update is compiled with XLA (`FusedAdam`: one
# compilation and one launch for all variables; Keras: one per variable). For large
# models the compiled update is faster (BigGAN-128's D, 86M parameters, 2-core AVX2
# EPYC: 87 ms fused and compiled, 98 ms compiled per variable, 620-690 ms as graph ops;
# kp_bn's G, 15M in 100 variables: 19 against 27 and 52-67 ms); for small ones a launch
# costs more than the update's work (the demo's G and D, 10k-80k parameters: 0.7-1.9 ms
# as fused graph ops against 0.9-2.5 ms compiled; `benchmarks.optimizer_update`).
XLA_UPDATE_MIN_PARAMETERS = 10_000_000


def xla_updates_pay(variables):
    """Whether XLA-compiled updates are worth it for these trained variables."""
    return sum(v.shape.num_elements() for v in variables) >= XLA_UPDATE_MIN_PARAMETERS


def make(
    lr, beta1, beta2, epsilon, loss_scaling=False, lr_scales=(), xla_updates=True, fused=True
):
    """The Adam of one model.

    Args:
      lr, beta1, beta2, epsilon: Adam's.
      loss_scaling: wrap it for float16 (dynamic loss scaling against underflow).
      lr_scales: `(variable, multiplier)` pairs (`scaled_groups`).
      xla_updates: compile the update with XLA (`xla_updates_pay`): the fused update of
        all variables, or else each variable's.
      fused: a `FusedAdam` (one update call for all variables); else Keras' update per
        variable (a `ScaledAdam` with `lr_scales`, else a `tf.keras.optimizers.Adam`).
    """
    kwargs = dict(beta_1=beta1, beta_2=beta2, epsilon=epsilon)
    if fused:
        optimizer = FusedAdam(lr_scales, lr, **kwargs)
    elif lr_scales:
        optimizer = ScaledAdam(lr_scales, lr, **kwargs)
    else:
        optimizer = tf.keras.optimizers.Adam(lr, **kwargs)
    # Keras compiles the per-variable update with XLA only when it sees a GPU; we choose.
    optimizer.jit_compile = xla_updates
    if loss_scaling:
        optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def scaled_groups(groups, trained, scales):
    """Which trained variables get which multiplier, and which are frozen.

    Args:
      groups: `{group: [variables]}` (e.g. `transfer.bn_parameter_groups`).
      trained: the variables the optimiser would train.
      scales: `{group: multiplier}`; 0 freezes the group.

    Returns:
      `(pairs, kept)`: `(variable, multiplier)` of every trained variable of a group
      whose multiplier is not 0 or 1... (those at 1 are left out), and `trained` without
      the frozen variables. `pairs` is None when no trained variable is in a group.
    """
    trained_ids = {id(v) for v in trained}
    members = [(v, scales[g]) for g, vs in groups.items() for v in vs if id(v) in trained_ids]
    if not members:
        return None, list(trained)
    frozen = {id(v) for v, scale in members if scale == 0.0}
    pairs = [(v, scale) for v, scale in members if scale not in (0.0, 1.0)]
    return pairs, [v for v in trained if id(v) not in frozen]
