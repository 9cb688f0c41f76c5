"""Test-session set-up: two logical CPU devices so MirroredStrategy tests have 2 replicas.

Logical devices must be configured before TensorFlow initialises its runtime, which is
why this happens at import time of the first conftest, before any test module runs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# tf.test.TestCase helpers (create_tempdir, ...) read absl flags, which pytest never parses.
from absl import flags  # noqa: E402

if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase's inherited `test_session` helper: it is not a test."""
    kept = [item for item in items if item.name != "test_session"]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.name == "test_session"])
        items[:] = kept
