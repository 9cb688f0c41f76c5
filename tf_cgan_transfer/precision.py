"""Numeric precision of the models: Keras mixed-precision policies, scoped.

`float32` everywhere; `mixed_bfloat16` (convolutions and matmuls in bfloat16, variables,
batch-norm statistics, spectral norm and losses in float32: runs in hardware on TPUs,
Ampere+ GPUs and CPUs with AVX512-BF16/AMX); `mixed_float16` (the same in float16, for
GPUs, which needs loss scaling: `trainer.Trainer` wraps its optimisers then).

`auto` picks `mixed_bfloat16` where bfloat16 runs in hardware (a TPU strategy, GPUs of
compute capability 8.0+, CPUs with AVX512-BF16 or AMX-BF16) and `float32` elsewhere, where
bfloat16 would be emulated and slower.

Keras layers take their policy when they are constructed, so a model is built inside
`policy_scope(name)` and keeps that precision afterwards; the global policy is restored
on exit, so building one model in bfloat16 does not change what is built next.
"""

import contextlib

import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
AUTO = "auto"
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def check(name):
    """Returns `name` if it is a known policy; else a ValueError naming the choices."""
    if name not in POLICIES:
        raise ValueError(
            f"Unknown mixed precision policy {name!r}; use one of {', '.join(POLICIES)}"
            f" (or {AUTO!r} on the command line)."
        )
    return name


def cpu_has_bf16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU flags list AVX512-BF16 or AMX-BF16 (Linux; else False)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    return False


def gpus_have_bf16():
    """`None` without GPUs; else whether every GPU has compute capability >= 8.0."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capabilities = [
        tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus
    ]
    return all(c is not None and tuple(c) >= (8, 0) for c in capabilities)


def resolve(name, tpu=False, cpu_bf16=None, gpu_bf16=None):
    """The policy `name` stands for: itself, or for `auto` what this hardware runs fastest.

    `cpu_bf16` and `gpu_bf16` (True/False) replace the detection; None detects.
    """
    if name != AUTO:
        return check(name)
    if tpu:
        return "mixed_bfloat16"
    gpu_bf16 = gpus_have_bf16() if gpu_bf16 is None else gpu_bf16
    if gpu_bf16 is not None:
        return "mixed_bfloat16" if gpu_bf16 else "float32"
    cpu_bf16 = cpu_has_bf16() if cpu_bf16 is None else cpu_bf16
    return "mixed_bfloat16" if cpu_bf16 else "float32"


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
