"""The training optimisers: Adam, with a learning-rate multiplier per variable group.

kp_bn's bn stage trains parameters of very different roles with one optimiser: the
mixtures A, the residuals R and the old classes' offsets P (docs/method.md §2). Adam
moves every weight by about the learning rate per step whatever its gradient's scale,
so rescaling a gradient changes nothing; giving a group its own pace needs its own
learning rate. Adam's step is linear in the learning rate, so the step at `lr * s` is
`s` times the step at `lr`: `ScaledAdam` takes Keras' own update and rescales it for the
variables that have a multiplier (the others are updated exactly as by `Adam`).

Example:
    opt = ScaledAdam([(a_kernel, 10.0)], 2e-4, beta_1=0.0)
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


# Trained parameters from which each variable's Adam update is compiled with XLA. Keras
# compiles per variable: one trace and one XLA compilation per variable at the first
# step, then one XLA call per variable per step. For large models the compiled update is
# faster (100M parameters: 0.21 s against 0.58 s a step; BigGAN-128 fine-tuning, 70M in
# G, batch 8, on a 2-core AVX2 EPYC: 38.2 s against 39.5 s an iteration); for small
# ones the calls cost more than they save (the demo's fine-tuning, 80k in G, same
# machine: 0.39 and 0.36 s a step without against 0.44 and 0.51 s with, in alternating
# runs; `benchmarks.train_speed --preset=demo --method=finetune`).
XLA_UPDATE_MIN_PARAMETERS = 10_000_000


def xla_updates_pay(variables):
    """Whether XLA-compiled updates are worth it for these trained variables."""
    return sum(v.shape.num_elements() for v in variables) >= XLA_UPDATE_MIN_PARAMETERS


def make(lr, beta1, beta2, epsilon, loss_scaling=False, lr_scales=(), xla_updates=True):
    """The Adam of one model (`ScaledAdam` when `lr_scales` is not empty).

    Args:
      lr, beta1, beta2, epsilon: Adam's.
      loss_scaling: wrap it for float16 (dynamic loss scaling against underflow).
      lr_scales: `(variable, multiplier)` pairs (`scaled_groups`).
      xla_updates: compile each variable's update with XLA (`xla_updates_pay`).
    """
    kwargs = dict(beta_1=beta1, beta_2=beta2, epsilon=epsilon)
    if lr_scales:
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
