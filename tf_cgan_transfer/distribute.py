"""Distribution: choosing the `tf.distribute.Strategy`, the chief, and what XLA allows.

Losses are scaled by the global batch inside the replica functions (`train_step`), and
G's batch-norm statistics are all-reduced across replicas inside the BN layers, so a
step on N replicas equals the same step on one device.
"""

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


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


def check_jit(jit_compile, strategy, error=ValueError):
    """Whether to compile replica functions with XLA; raises where it cannot work."""
    replicas = strategy.num_replicas_in_sync
    if not jit_compile or isinstance(strategy, tf.distribute.TPUStrategy):
        return False  # the TPU compiles the whole step with XLA anyway
    if replicas > 1:
        raise error(
            f"jit_compile with {replicas} replicas: the cross-replica batch-norm "
            "all-reduce cannot run inside an XLA-compiled replica function under "
            f"{type(strategy).__name__}. Use --jit_compile with one replica per "
            "process, or drop it (TPUStrategy compiles with XLA by itself)."
        )
    return True


def is_chief(strategy):
    """True on the one worker that writes the run directory (always, with one worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def worker_layout(layout, strategy):
    """A non-chief worker's scratch `RunLayout` inside the run directory."""
    resolver = strategy.cluster_resolver
    return layout.worker(resolver.task_type, resolver.task_id)
