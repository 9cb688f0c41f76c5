"""Numeric precision of the models: Keras mixed-precision policies, scoped.

`float32` everywhere; `mixed_bfloat16` (convolutions and matmuls in bfloat16, variables,
batch-norm statistics, spectral norm and losses in float32: runs in hardware on TPUs,
Ampere+ GPUs and CPUs with AVX512-BF16/AMX); `mixed_float16` (the same in float16, for
GPUs, which needs loss scaling: `trainer.Trainer` wraps its optimisers then).

Keras layers take their policy when they are constructed, so a model is built inside
`policy_scope(name)` and keeps that precision afterwards; the global policy is restored
on exit, so building one model in bfloat16 does not change what is built next.
"""

import contextlib

import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def check(name):
    """Returns `name` if it is a known policy; else a ValueError naming the choices."""
    if name not in POLICIES:
        raise ValueError(
            f"Unknown mixed precision policy {name!r}; use one of {', '.join(POLICIES)}."
        )
    return name


def needs_loss_scaling(name):
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
    return check(name) == "mixed_float16"


@contextlib.contextmanager
def policy_scope(name):
    """Builds layers constructed inside with the Keras policy `name`; restores the old one."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(check(name))
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def compute_dtype(model):
    """The dtype a model's layers compute in (`float32`, `bfloat16` or `float16`)."""
    return tf.as_dtype(model.compute_dtype)
