"""One MirroredStrategy over the two logical CPUs, shared by every test in the process.

Collective all-reduces are matched across replicas by instance keys; a second
MirroredStrategy in the same process can hand out keys that collide with the first's
("Shape mismatch in the collective instance"), so tests reuse a single strategy.
"""

import functools

import tensorflow as tf


@functools.lru_cache(maxsize=None)
def two_replica_strategy():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) != 2:
        raise RuntimeError(f"tests/conftest.py should configure 2 logical CPUs, found {devices}")
    return tf.distribute.MirroredStrategy(devices)
